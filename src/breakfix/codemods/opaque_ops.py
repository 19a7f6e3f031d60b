"""Opaque and Python-only code: custom operators (recipe 3 of the fullgraph chapter), and numpy
scalar math that has an exact Python counterpart."""

from __future__ import annotations

from functools import partial

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor, RemoveImportsVisitor
from libcst.helpers import get_full_name_for_node
from libcst.metadata import PositionProvider, QualifiedNameProvider
from libcst.metadata.base_provider import LazyValue

from breakfix.codemods._base import BreakfixCodemod, FixRequest, SiteCodemod, code_of, function_at, readable_module
from breakfix.codemods._purity import impurity
from breakfix.types import DATA_DEPENDENT_GUARD, Applicability, Frame, OpaqueOpFact

CUSTOM_OP = "torch.library.custom_op"
_ATOMIC = (cst.Name, cst.Attribute, cst.Call, cst.Subscript)


class OpaqueComputation(BreakfixCodemod):
    """Turn a pure helper dynamo cannot trace into a custom operator with a derived fake kernel.

    ## What it fixes
    A graph break inside a helper function of your project that computes tensors through code
    dynamo cannot trace: PIL, numpy functions torch does not implement, byte-level tricks, C
    extensions, Python math on numbers read off tensors (``counts.tolist()`` and a loop that
    branches on each, a data-dependent guard). The helper must be pure, defined at module level, and take only tensors, ints,
    floats, bools, strings and sequences of ints. The break may be deeper, in a function the
    helper calls (in its file or another): when that function cannot be an op itself (a method,
    one that returns an ndarray or a list), the innermost function of the break's stack that can
    is made one, below the compiled function, and the calls under it run inside the op.

    ## Why it breaks
    Dynamo traces Python bytecode and stops where the values stop being tensors it can model
    (a ``PIL.Image``, an ndarray method torch has no counterpart for). A custom operator is opaque:
    the compiler does not look inside it, it only needs a *fake* kernel that says what the outputs
    look like (sizes, dtype, device, strides).

    ## Example
    ```python
    def crop(pic, box):                              # before
        arr = (pic * 255).to(torch.uint8).permute(1, 2, 0).numpy()
        cropped = PIL.Image.fromarray(arr).crop(box)
        return torch.from_numpy(np.array(cropped)).permute(2, 0, 1) / 255.0

    @torch.library.custom_op("breakfix::before_crop", mutates_args=())   # after
    def crop(pic: torch.Tensor, box: Sequence[int]) -> torch.Tensor:
        ...  # body unchanged

    @crop.register_fake
    def _(pic, box):
        return pic.new_empty((box[3] - box[1], box[2] - box[0], pic.shape[0]), dtype=torch.float32).permute(2, 0, 1)
    ```

    ## Fix safety
    Safe: the op runs the unchanged body on real tensors, so outputs are bit-equal. The fake is
    never guessed: breakfix captures the helper's arguments in an eager run, reruns it with each
    size, int and floating dtype nudged and with a leading dim added or taken away, fits every
    output size to the arguments (in terms of an input's sizes, ``x.new_empty(x.shape[:-1] + (k,))``,
    when the helper takes other ranks too, so the fake holds for them), checks the fake
    against every run and with ``torch.library.opcheck``, and the rewrite is verified in a fresh
    process. Helpers with side effects are skipped (a custom op's effects are invisible to the
    compiler, and one returning nothing is dead-code-eliminated), looking into the functions they
    call that are defined in the same module or imported from the project's (a project function
    whose code cannot be read is taken as impure), and so are differentiable ones
    (the op has no autograd formula). When a result may alias an argument it is cloned. Other
    callers of the helper must pass the same kinds of arguments: the op checks them.
    """

    CODE = "BF202"
    FIX_TITLE = "Make the helper an opaque torch.library.custom_op with a derived fake"
    REQUIRES = (CUSTOM_OP, "torch.library.register_fake", "torch.library.opcheck")
    GB_IDS = frozenset(
        {
            "GB4841",  # Unsupported python_type() call (PIL)
            "GB0294",  # numpy function torch does not implement
            "GB0156",
            "GB0158",
            "GB0147",  # unsupported (ndarray) method or function call
            "GB0087",  # fake tensor exception on a traced numpy op
            "GB0090",  # an operator without a fake kernel (np.histogram traced as torch.histogram)
            "GB0109",  # float .tolist()
            "GB0007",
            "GB0059",
            "GB0025",  # skipped function, untraceable builtin, graph_break()
        }
    )
    # A helper doing Python math on numbers read off tensors (``counts.tolist()``, then a loop
    # that branches on each): a guard on data, with no GB id.
    GB_TYPES = frozenset({DATA_DEPENDENT_GUARD})
    APPLICABILITY = Applicability.SAFE

    @classmethod
    def file_to_edit(cls, request: FixRequest) -> str:
        frame = _helper_frame(request)
        return request.brk.site.filename if frame is None else frame.filename

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        if len(self.request.brk.project_stack) < 2:
            raise self.skip("the break is in the compiled function itself, not in a helper it calls")
        fact = self.request.facts.opaque_op
        if fact is None:
            raise self.skip("no runtime facts about the helper: its fake kernel cannot be derived")
        if fact.rejected:
            raise self.skip(f"no fake kernel: {fact.rejected}")
        frame = _helper_frame(self.request)
        definition = None if frame is None else function_at(tree, frame.lineno)
        if definition is None or definition not in tree.body or definition.name.value != fact.helper:
            raise self.skip(f"{fact.helper} is not a module-level function of a file on the break's stack")
        if definition.decorators or definition.asynchronous:
            raise self.skip(f"{fact.helper} is decorated or async; a custom op wraps a plain function")
        reasons = impurity(definition, tree, self.context.filename or "", partial(readable_module, self.request))
        if reasons:
            raise self.skip(f"the helper is not pure: {reasons[0]}")
        names = [p.name.value for p in (*definition.params.params, *definition.params.kwonly_params)]
        if definition.params.posonly_params or set(names) != set(fact.annotations):
            raise self.skip("the helper's parameters differ from the ones observed at runtime")

        op = self._as_custom_op(definition, fact, tree)
        fake = self._fake(definition, fact, tree)
        index = tree.body.index(definition)
        AddImportsVisitor.add_needed_import(self.context, "torch")
        return tree.with_changes(body=[*tree.body[:index], op, fake, *tree.body[index + 1 :]])

    def _as_custom_op(self, definition: cst.FunctionDef, fact: OpaqueOpFact, tree: cst.Module) -> cst.FunctionDef:
        sequence = self._sequence_name(tree) if "Sequence[int]" in fact.annotations.values() else ""

        def annotated(param: cst.Param) -> cst.Param:
            text = fact.annotations[param.name.value].replace("Sequence", sequence)
            annotated = param.with_changes(annotation=cst.Annotation(cst.parse_expression(text)))
            if param.default is None:
                return annotated
            # An annotated parameter's default takes spaces around "=" (PEP 8).
            return annotated.with_changes(
                equal=cst.AssignEqual(
                    whitespace_before=cst.SimpleWhitespace(" "), whitespace_after=cst.SimpleWhitespace(" ")
                )
            )

        params = definition.params.with_changes(
            params=[annotated(p) for p in definition.params.params],
            kwonly_params=[annotated(p) for p in definition.params.kwonly_params],
        )
        decorator = cst.Decorator(cst.parse_expression(f'{CUSTOM_OP}("{fact.op_name}", mutates_args=())'))
        body = definition.body
        if fact.wrap:
            body = body.visit(_WrapReturns(fact.wrap, is_tuple=fact.returns != "torch.Tensor"))
        return definition.with_changes(
            decorators=[decorator], params=params, body=body, returns=cst.Annotation(cst.parse_expression(fact.returns))
        )

    def _fake(self, definition: cst.FunctionDef, fact: OpaqueOpFact, tree: cst.Module) -> cst.FunctionDef:
        # ``_`` as in the torch docs, unless the module already means something by it.
        name = f"_{definition.name.value}_fake" if m.findall(tree, m.Name("_")) else "_"
        # The helper's parameters and defaults: a call that leaves one to its default reaches the
        # fake without it.
        params = definition.params.visit(_WithoutAnnotations())
        source = f"@{definition.name.value}.register_fake\ndef {name}({code_of(params)}):\n    return {fact.fake}\n"
        fake = cst.parse_statement(source, config=tree.config_for_parsing)
        return fake.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()])

    def _sequence_name(self, tree: cst.Module) -> str:
        """``Sequence`` as the module already imports it, else imported from collections.abc."""
        for node in m.findall(tree, m.ImportFrom()):
            module = get_full_name_for_node(node.module) if node.module else ""
            if module in ("typing", "collections.abc") and not isinstance(node.names, cst.ImportStar):
                for alias in node.names:
                    if alias.name.value == "Sequence":
                        return alias.asname.name.value if alias.asname else "Sequence"
        for node in m.findall(tree, m.Import()):
            for alias in node.names:
                if get_full_name_for_node(alias.name) in ("typing", "collections.abc") and alias.asname is None:
                    return f"{get_full_name_for_node(alias.name)}.Sequence"
        AddImportsVisitor.add_needed_import(self.context, "collections.abc", "Sequence")
        return "Sequence"


def _helper_frame(request: FixRequest) -> Frame | None:
    """The frame of the helper the worker chose to make opaque: the innermost frame of the break's
    project stack, below the compiled function, running a function of that name (the break may
    be in a function the helper calls, which could not be one: a method, or one that returns an
    array)."""
    fact = request.facts.opaque_op
    if fact is None or not fact.helper:
        return None
    frames = request.brk.project_stack[1:]
    return next((f for f in reversed(frames) if f.name == fact.helper), None)


class _WithoutAnnotations(cst.CSTTransformer):
    def leave_Param(self, original: cst.Param, updated: cst.Param) -> cst.Param:
        return updated.with_changes(annotation=None)


class _WrapReturns(cst.CSTTransformer):
    """``return x`` -> ``return x.clone()`` (or ``.contiguous()``) in the helper, not in nested scopes:
    a custom op's output must not alias its inputs, and a fake states one layout."""

    def __init__(self, wrap: str, is_tuple: bool) -> None:
        self.method = wrap
        self.is_tuple = is_tuple

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def _wrapped(self, value: cst.BaseExpression) -> cst.BaseExpression:
        if not isinstance(value, _ATOMIC) and not value.lpar:
            value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        return cst.Call(func=cst.Attribute(value=value, attr=cst.Name(self.method)))

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        value = updated.value
        if value is None:
            return updated
        if not self.is_tuple:
            return updated.with_changes(value=self._wrapped(value))
        if isinstance(value, cst.Tuple):
            return updated.with_changes(
                value=value.with_changes(
                    elements=[e.with_changes(value=self._wrapped(e.value)) for e in value.elements]
                )
            )
        each = cst.parse_expression(f"tuple(t.{self.method}() for t in _)")
        return updated.with_changes(value=each.deep_replace(m.findall(each, m.Name("_"))[0], value))


# numpy functions whose value on Python ints the named Python function computes exactly, while
# the result fits in int64 (numpy's integer loops wrap past it). Deliberately short: np.sqrt,
# np.floor, np.round, np.prod, np.mod and np.abs differ from math/builtins in the result's type,
# on domain errors (nan and a warning vs an exception) or on empty input.
EXACT_COUNTERPARTS = {"numpy.lcm": "math.lcm", "numpy.gcd": "math.gcd"}
_MAX_HELPER_DEPTH = 3  # helpers calling helpers: how far the assignment chain is followed


class NumpyScalarMath(BreakfixCodemod):
    """Compute ``np.lcm``/``np.gcd`` of Python ints with ``math`` when the result steers Python code.

    ## What it fixes
    A data-dependent branch whose condition is ordinary integer arithmetic, except that one of
    its numbers came from a numpy function applied to Python ints: ``np.lcm(a, b)`` or
    ``np.gcd(a, b)``, called in the function that branches or in a module-level helper of the
    same file whose return value it is assigned from. The names in the condition are followed
    back through the assignments before the branch (and through a helper's assignments to its
    return value); a numpy call whose value does not reach the condition is left alone.

    ## Why it breaks
    Dynamo traces numpy by translating it to torch (``trace_numpy``): ``np.lcm(4, 6)`` becomes a
    0-d tensor, not the int 12, so ``if length % np.lcm(4, 6):`` branches on a tensor's value
    (GB0170, "Data-dependent branching"), and so does every later use of the value as a Python
    number. ``math.lcm(4, 6)`` is plain Python on constants: dynamo folds it to 12 at trace time.

    ## Example
    ```python
    def chunk_length(sizes):                         # before
        return np.lcm(sizes[0], sizes[1])

    def forward(self, x):
        chunk = chunk_length(self.sizes)
        if x.shape[-1] % chunk != 0:
            x = F.pad(x, (0, chunk - x.shape[-1] % chunk))

    def chunk_length(sizes):                         # after
        return math.lcm(sizes[0], sizes[1])
    ```

    ## Fix safety
    Unsafe (written only with ``--unsafe-fixes``): the value is the same while it fits in int64,
    but its type changes from ``np.int64`` to ``int``, and with it what later code sees:
    ``isinstance(v, int)`` becomes true and ``isinstance(v, np.integer)`` false, ``repr`` prints
    ``12`` instead of NumPy 2's ``np.int64(12)``, ``n % v`` with ``v == 0`` raises
    ``ZeroDivisionError`` instead of warning and giving 0, and arithmetic on it no longer wraps
    at 2**63 (with a warning). Past int64, ``np.lcm`` silently
    wraps (``np.lcm(2**40, 2**40 + 1)`` is ``2**40``) where ``math.lcm`` is exact. Only calls
    with two positional arguments and no ``out=``/``dtype=`` are rewritten; an argument that is
    an array at runtime makes ``math`` raise, so the rewrite fails verification and is not
    written. Every caller of a rewritten helper gets an ``int`` too. Other numpy functions are
    left alone: ``np.sqrt`` returns nan with a warning where ``math.sqrt`` raises, ``np.floor``
    and ``np.round`` return floats where ``math.floor`` and ``round`` return ints.
    """

    CODE = "BF203"
    FIX_TITLE = "Compute np.lcm/np.gcd of Python ints with math.lcm/math.gcd"
    GB_IDS = frozenset({"GB0170"})
    GB_TYPES = frozenset({"Data-dependent branching"})
    APPLICABILITY = Applicability.UNSAFE
    CHANGES = (
        "np.lcm/np.gcd of Python ints become math.lcm/math.gcd: an int instead of an np.int64, "
        "equal while it fits in int64 (numpy wraps past it)"
    )

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        line = self.request.brk.site.lineno
        # Most files never import numpy: refuse them before resolving names on the whole module.
        if not any(_imports_numpy(node) for node in m.findall(tree, m.Import() | m.ImportFrom())):
            raise self.skip("the file does not import numpy")
        wrapper = cst.MetadataWrapper(tree, unsafe_skip_copy=True)
        self.positions = wrapper.resolve(PositionProvider)
        self.qualified_names = wrapper.resolve(QualifiedNameProvider)
        function = self._innermost(cst.FunctionDef, line)
        statement = self._innermost((cst.SimpleStatementLine, cst.BaseCompoundStatement), line)
        if function is None or statement is None:
            raise self.skip(f"line {line} is not a statement inside a function")
        helpers = {node.name.value: node for node in tree.body if isinstance(node, cst.FunctionDef)}
        calls = _NumpyCalls(self, helpers)
        calls.follow(function, _read_names(_header(statement)), depth=0, before=line)
        if not calls.found:
            raise self.skip(calls.refused or f"no np.lcm/np.gcd call feeds line {line}")
        if self._shadows_math(tree):
            raise self.skip("the name math is bound to something other than the math module here")
        for call, _ in calls.found:
            RemoveImportsVisitor.remove_unused_import_by_node(self.context, call.func)
        AddImportsVisitor.add_needed_import(self.context, "math")
        return tree.visit(_Replace({id(call): cst.parse_expression(name) for call, name in calls.found}))

    def _innermost(self, kinds: type | tuple[type, ...], line: int):
        """The node of one of ``kinds`` that spans ``line`` and starts last."""
        best, best_start = None, 0
        for node, position in self.positions.items():
            if (
                isinstance(node, kinds)
                and position.start.line <= line <= position.end.line
                and position.start.line >= best_start
            ):
                best, best_start = node, position.start.line
        return best

    def _shadows_math(self, tree: cst.Module) -> bool:
        return any(
            q != "math" and not q.startswith("math.")
            for name in m.findall(tree, m.Name("math"))
            for q in self.qualified(name)
        )

    def qualified(self, node: cst.CSTNode) -> set[str]:
        names = self.qualified_names.get(node, set())
        return {q.name for q in (names() if isinstance(names, LazyValue) else names)}


def _imports_numpy(node: cst.Import | cst.ImportFrom) -> bool:
    if isinstance(node, cst.ImportFrom):
        return (
            not node.relative
            and node.module is not None
            and get_full_name_for_node(node.module).split(".")[0] == "numpy"
        )
    return any(get_full_name_for_node(alias.name).split(".")[0] == "numpy" for alias in node.names)


class _NumpyCalls:
    """The allow-listed numpy calls whose values reach a set of names: through the assignments of
    a function, and into the return values of module-level helpers of the file it calls."""

    def __init__(self, codemod: NumpyScalarMath, helpers: dict[str, cst.FunctionDef]) -> None:
        self.codemod = codemod
        self.helpers = helpers
        self.found: list[tuple[cst.Call, str]] = []
        self.refused = ""
        self.seen: set[tuple[int, str]] = set()

    def follow(self, function: cst.FunctionDef, names: set[str], depth: int, before: int | None = None) -> None:
        """Follow ``names`` through the assignments of ``function`` (those starting before line
        ``before`` when given: what runs after the branch does not feed it)."""
        pending = list(names)
        while pending:
            name = pending.pop()
            if (id(function), name) in self.seen:
                continue
            self.seen.add((id(function), name))
            for assignment in _assignments(function, name):
                if before is None or self.codemod.positions[assignment].start.line <= before:
                    pending.extend(self.expression(assignment.value, depth))

    def expression(self, value: cst.BaseExpression, depth: int) -> set[str]:
        """Record the numpy calls in ``value`` and follow the helpers it calls; the names it reads."""
        for call in m.findall(value, m.Call()):
            numpy_names = sorted(n for n in self.codemod.qualified(call.func) if n.startswith("numpy."))
            if numpy_names and numpy_names[0] in EXACT_COUNTERPARTS:
                if len(call.args) != 2 or any(a.keyword is not None or a.star for a in call.args):
                    self.refused = f"{numpy_names[0]} is called with other than two positional arguments"
                elif all(c is not call for c, _ in self.found):
                    self.found.append((call, EXACT_COUNTERPARTS[numpy_names[0]]))
            elif numpy_names:
                self.refused = f"{numpy_names[0]} feeds the branch and has no exact Python counterpart"
            elif isinstance(call.func, cst.Name) and call.func.value in self.helpers and depth < _MAX_HELPER_DEPTH:
                helper = self.helpers[call.func.value]
                for returned in _own_nodes(helper, cst.Return):
                    if returned.value is not None:
                        self.follow(helper, self.expression(returned.value, depth + 1), depth + 1)
        return _read_names(value)


class _Replace(cst.CSTTransformer):
    def __init__(self, functions: dict[int, cst.BaseExpression]) -> None:
        self.functions = functions  # id of an original call -> the function it calls instead

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        function = self.functions.get(id(original))
        return updated if function is None else updated.with_changes(func=function)


class _OwnNodes(cst.CSTVisitor):
    """Every node of a function's body outside the functions, lambdas and classes nested in it."""

    def __init__(self) -> None:
        self.nodes: list[cst.CSTNode] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.nodes.append(node)
        return not isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda))


def _own_nodes(function: cst.FunctionDef, kind: type) -> list:
    visitor = _OwnNodes()
    function.body.visit(visitor)
    return [node for node in visitor.nodes if isinstance(node, kind)]


def _header(statement: cst.CSTNode) -> cst.CSTNode:
    """What a compound statement evaluates at its first line (its test or iterable); a simple
    statement whole."""
    for attribute in ("test", "iter"):
        part = getattr(statement, attribute, None)
        if isinstance(part, cst.CSTNode):
            return part
    return statement


def _read_names(node: cst.CSTNode) -> set[str]:
    """Plain names in ``node``, not attribute names or call keywords (a superset of the reads is
    fine: a name the function does not assign leads nowhere)."""
    excluded = {id(a.attr) for a in m.findall(node, m.Attribute())}
    excluded |= {id(a.keyword) for a in m.findall(node, m.Arg()) if a.keyword is not None}
    return {n.value for n in m.findall(node, m.Name()) if id(n) not in excluded}


def _assignments(function: cst.FunctionDef, name: str) -> list[cst.Assign | cst.AnnAssign | cst.AugAssign]:
    """The assignments to ``name`` in ``function``'s own scope."""
    return [
        node
        for node in _own_nodes(function, (cst.Assign, cst.AnnAssign, cst.AugAssign))
        if node.value is not None
        and any(
            m.findall(target, m.Name(name))
            for target in ([t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target])
        )
    ]


DIGITIZE_HELPER = "_np_digitize"
# The helper's exact text: a module that already has it is reused.
DIGITIZE_SOURCE = f"""\
def {DIGITIZE_HELPER}(x, bins, right=False):
    # numpy's own np.digitize, which dynamo cannot trace, less its check that the bins are monotonic
    # (a host sync): np.searchsorted, which it traces, on the bins as they rise or as they fall.
    x, bins = numpy.asarray(x), numpy.asarray(bins)
    side = "left" if right else "right"
    rising = numpy.searchsorted(bins, x, side=side)
    falling = len(bins) - numpy.searchsorted(bins[::-1], x, side=side)
    return numpy.where(bins[0] <= bins[-1] if len(bins) else True, rising, falling)[()]
"""


class UntracedNumpyFunction(SiteCodemod):
    """Compute ``np.digitize`` with ``np.searchsorted``, which torch.compile traces.

    ## What it fixes
    ``np.digitize(x, bins)`` and ``np.digitize(x, bins, right=True)`` (``numpy.digitize``,
    any alias numpy is imported as) in compiled code: bucketing values by edges (calibration
    bins, relative-position buckets, histogram equalization), on arrays, scalars or
    ``t.numpy()`` of a tensor, in the compiled function, a helper, a method or a child module.
    The break is GB0294 ("attempted to trace numpy function unsupported by PyTorch").

    ## Why it breaks
    Dynamo traces numpy code by running it on torch (``torch._numpy``), which has no
    ``digitize``. numpy's ``digitize`` is itself two ``np.searchsorted`` calls, on the bins as
    they rise or reversed as they fall, after a check that they are monotonic; ``searchsorted``
    is traced. The rewrite calls a module-level helper doing just that, so the values stay in
    the graph (and differentiable code around them stays differentiable, where BF202's opaque
    op would cut the gradient).

    ## Example
    ```python
    bin_ids = np.digitize(confidences.detach().numpy(), edges[1:-1])
    ```
    becomes
    ```python
    bin_ids = _np_digitize(confidences.detach().numpy(), edges[1:-1])
    ```
    with ``_np_digitize`` defined once in the module.

    ## Fix safety
    Safe: the same indices of the same integer type, for rising and falling bins, ``right`` or
    not, arrays and scalars (a scalar gives a numpy integer, as before), since it is numpy's own
    algorithm; outside compiled code it runs on numpy itself. The one difference is bins that
    neither rise nor fall: ``np.digitize`` raises ``ValueError``, the rewrite returns the indices
    of ``searchsorted`` on them (by the direction of their ends). Refused: other arguments than
    ``x``, ``bins`` and ``right``, ``*args``.
    """

    CODE = "BF204"
    FIX_TITLE = "Compute np.digitize with np.searchsorted, which torch.compile traces"
    GB_IDS = frozenset({"GB0294"})
    APPLICABILITY = Applicability.SAFE
    SITE = "np.digitize(...) call"
    IMPORTS = ("numpy",)
    HELPER_SOURCE = DIGITIZE_SOURCE

    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if not self.spans_break(original):
            return updated
        names = {q.name for q in self.get_metadata(QualifiedNameProvider, original.func, set())}
        if "numpy.digitize" not in names:
            return updated
        positional = [a for a in updated.args if a.keyword is None]
        keywords = {a.keyword.value for a in updated.args if a.keyword is not None}
        if (
            any(a.star for a in updated.args)
            or not 2 <= len(positional) + len(keywords) <= 3
            or keywords
            - {
                "x",
                "bins",
                "right",
            }
        ):
            self.refused = "np.digitize is given *args or arguments other than x, bins and right"
            return updated
        self.rewritten += 1
        return updated.with_changes(func=cst.Name(DIGITIZE_HELPER))
