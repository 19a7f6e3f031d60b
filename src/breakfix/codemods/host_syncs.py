"""Python numbers read off tensors: the host syncs torch.compile traces when they are explicit."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.metadata import MetadataWrapper, PositionProvider, QualifiedNameProvider

from breakfix.codemods._base import SiteCodemod, code_of, in_place_update_of, names_in, parameter_names
from breakfix.codemods._orchestration import NotSplittable, function_site, is_compiled_piece, single_caller
from breakfix.types import DATA_DEPENDENT_GUARD, TENSOR_ASSERT, Applicability, ValueKind

ARANGE = "torch.arange"
HELPER = "_number"
# The helper's exact text: a module that already has it is reused, a different function of that
# name is never overwritten.
HELPER_SOURCE = f"""\
def {HELPER}(value):
    # What torch.arange does with a one-element tensor given as a bound, done before the call
    # (its Python number, .item()): torch.compile traces the explicit read.
    return value.item() if isinstance(value, torch.Tensor) else value
"""


class TensorBoundsOfArange(SiteCodemod):
    """Read the bounds of ``torch.arange`` off their tensors with ``.item()`` before the call.

    ## What it fixes
    A ``torch.arange(start, end, step)`` inside compiled code whose bounds are one-element
    tensors computed from data, such as distances read off position tensors
    (``max_dist = pooled_pos[0] - pos[0] + n * stride``), which stops ``fullgraph=True`` with a
    dynamo internal error, ``PendingUnbackedSymbolNotFound`` (no GB id; transformers' funnel).

    ## Why it breaks
    Given a tensor where it takes a number, ``torch.arange`` reads the number itself. Under
    ``fullgraph=True`` (scalar capture on) that hidden read makes unbacked sizes that dynamo loses
    track of (torch 2.13: "Pending unbacked symbols ... not in returned outputs"). The same read
    written out, ``bound.item()``, traces. Each bound that is not a literal is passed through a
    helper that returns ``value.item()`` for a tensor and the value itself otherwise, so a bound
    that is a Python number on some calls is left as it is.

    ## Example
    ```python
    max_dist = ref_point + num_remove * stride
    min_dist = pooled_pos[0] - pos[-1]
    return torch.arange(max_dist, min_dist - 1, -stride, dtype=torch.long)
    ```
    becomes
    ```python
    max_dist = ref_point + num_remove * stride
    min_dist = pooled_pos[0] - pos[-1]
    return torch.arange(_number(max_dist), _number(min_dist - 1), _number(-stride), dtype=torch.long)
    ```

    ## Fix safety
    Safe: ``torch.arange`` turns a tensor bound into its Python number with the same read
    (``Tensor.item()``: an int for an integer tensor, a float for a floating one), so it receives
    the same numbers and infers the same dtype; a tensor of more than one element fails both ways.
    Only the positional bounds of a ``torch.arange`` call at the break's line are touched; keyword
    arguments (``dtype=``, ``device=``) are not. Other functions that read a number off a tensor
    argument the same way (``x.roll(shift)`` with a 0-d tensor ``shift``) are not rewritten. Not
    applied in a compiled piece an orchestrator calls, outside the piece's loops: there BF301 keeps
    the statement eager at the cost of that statement alone, and the rest of the piece gets an
    arange of known size instead of an unbacked one that later code may have to guard on
    (transformers' gemma2: ``if cache_position.shape[0] > max_cache_len:`` in its cache).
    """

    CODE = "BF701"
    FIX_TITLE = "Read torch.arange's tensor bounds with .item() before the call"
    GB_TYPES = frozenset({"InternalTorchDynamoError"})
    APPLICABILITY = Applicability.SAFE

    SITE = "torch.arange(...) with bounds that may be tensors"
    HELPER_SOURCE = HELPER_SOURCE

    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider)

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        if _orchestrator_can_run_it(tree, self.request.brk.site.lineno):
            raise self.skip(
                "the arange is in a compiled piece outside any loop: BF301 keeps it eager in the "
                "orchestrator, so the piece gets a tensor of known size instead of an unbacked one"
            )
        return super().transform_module_impl(tree)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if any(f.name.value == HELPER for f in self.functions) or not self.spans_break(original):
            return updated
        if ARANGE not in {q.name for q in self.get_metadata(QualifiedNameProvider, original.func, set())}:
            return updated
        args = [
            arg.with_changes(value=_read_number(arg.value)) if arg.keyword is None and not arg.star else arg
            for arg in updated.args
        ]
        if all(new.value is old.value for new, old in zip(args, updated.args)):
            return updated
        self.rewritten += 1
        return updated.with_changes(args=args)


def _orchestrator_can_run_it(module: cst.Module, line: int) -> bool:
    """Whether ``line`` is in a compiled piece an orchestrator calls, outside any loop of the
    piece: keeping its statement eager then costs no compiled code but that statement, and the
    arange's size is a plain number to the rest of the piece. Read with ``.item()`` inside, it
    is an unbacked size, and code after it (a library's ``if positions.shape[0] > n:``) may need
    a guard on it that no rewrite can give."""
    try:
        site = function_site(module, line)
    except NotSplittable:
        return False
    if not is_compiled_piece(site.function) or single_caller(module, site.function) is None:
        return False
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    statement = next(
        (s for s in site.function.body.body if positions[s].start.line <= line <= positions[s].end.line), None
    )
    return statement is not None and not m.findall(statement, m.For() | m.While())


def _read_number(value: cst.BaseExpression) -> cst.BaseExpression:
    """``value`` passed through the helper, unless it is a number literal or already passed."""
    literal = m.Integer() | m.Float() | m.UnaryOperation(expression=m.Integer() | m.Float())
    if m.matches(value, literal | m.Call(func=m.Name(HELPER))):
        return value
    return cst.Call(func=cst.Name(HELPER), args=[cst.Arg(value)])


class SizeAssertOnTensor(SiteCodemod):
    """Compare sizes with ``int()`` of a value that may be a one-element tensor.

    ## What it fixes
    An ``assert`` comparing a tensor's sizes with a list or tuple of values, one of which is a
    one-element tensor used as a size, such as a count read off the data
    (``m = counts.max()``, then ``x.new_zeros(b, m)`` and
    ``assert list(x.size()) == [b, m]``). ``fullgraph=True`` stops with a dynamo internal error,
    ``AssertionError: Expected bool, got FakeTensor`` (no GB id; breakfix names it
    "Tensor-valued assert"). transformers' longformer and led hit it in their global attention,
    once ``torch.cond`` (BF603) makes the compiler trace that branch.

    ## Why it breaks
    ``[b, m] == [b, t]`` with ``t`` a tensor compares ``m == t`` to a tensor, so the assert's
    test is a tensor. Eagerly its truth is read off the tensor; dynamo's ``assert`` handling
    requires a Python bool and fails. ``int(t)`` is the number the tensor holds (the value
    ``x.new_zeros(b, t)`` already read to size ``x``), and dynamo traces it: the comparison is
    then between sizes.

    ## Example
    ```python
    def scores(self, hidden, max_count):
        batch = hidden.size(0)
        out = hidden.new_zeros(batch, max_count)
        assert list(out.size()) == [batch, max_count], "wrong size"
        return out
    ```
    becomes
    ```python
    def scores(self, hidden, max_count):
        batch = hidden.size(0)
        out = hidden.new_zeros(batch, max_count)
        assert list(out.size()) == [batch, int(max_count)], "wrong size"
        return out
    ```

    ## Fix safety
    Safe: for an integer tensor of one element ``int(t)`` is its value, so each comparison is
    true exactly when it was; for a Python int or a traced size it is the value itself (it does
    not specialise a dynamic size: measured, one graph for three input lengths). Only the
    asserts of the function at the break's line that compare ``.size()``/``.shape`` with a list,
    tuple or name are touched, and in them only the bare names that are parameters or locals not
    computed from sizes (``seq_len, batch = x.shape[:2]`` is left alone). A name holding a
    floating tensor would be truncated by ``int()``; such a size makes ``new_zeros`` fail before
    the assert, so it does not occur where the assert passed. The message is not changed: it is
    only formatted when the assert fails.
    """

    CODE = "BF702"
    FIX_TITLE = "Compare sizes with int() of a one-element tensor in asserts"
    GB_TYPES = frozenset({TENSOR_ASSERT})
    APPLICABILITY = Applicability.SAFE

    SITE = "assert comparing sizes with a name that may hold a tensor"
    IMPORTS = ()

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.function: cst.FunctionDef | None = None  # the innermost function at the break's line
        self.rewritten_break_line = False

    def visit_Module(self, node: cst.Module) -> None:
        self.function = self.function_at_break(node)
        if self.function is not None:
            sized, unsized = _locals_by_origin(self.function)
            self.maybe_tensors = (set(parameter_names(self.function)) - sized) | unsized

    def done(self) -> bool:
        return self.rewritten_break_line

    def leave_Assert(self, original: cst.Assert, updated: cst.Assert) -> cst.Assert:
        if not self.functions or self.functions[-1] is not self.function:
            return updated
        test = _with_int_sizes(updated.test, self.maybe_tensors)
        if test is updated.test:
            return updated
        self.rewritten += 1
        self.rewritten_break_line |= self.spans_break(original)
        return updated.with_changes(test=test)


_SIZE_READS = m.Attribute(attr=m.Name("size") | m.Name("shape") | m.Name("ndim")) | m.Call(
    func=m.Name("len") | m.Attribute(attr=m.Name("dim") | m.Name("numel"))
)


def _reads_sizes(node: cst.CSTNode) -> bool:
    return bool(m.findall(node, _SIZE_READS))


def _locals_by_origin(function: cst.FunctionDef) -> tuple[set[str], set[str]]:
    """The locals every assignment of which computes sizes (``b, n = x.shape[:2]``,
    ``n = len(xs)``, ``n = 4``: Python ints or traced sizes, never tensors), and the other locals."""
    sized: set[str] = set()
    other: set[str] = set()
    for node in m.findall(
        function.body, m.Assign() | m.AugAssign() | m.AnnAssign() | m.For() | m.NamedExpr() | m.WithItem()
    ):
        if isinstance(node, cst.Assign):
            names = set().union(*(names_in(t.target) for t in node.targets))
            from_sizes = _reads_sizes(node.value) or m.matches(node.value, m.Integer())
            (sized if from_sizes else other).update(names)
        else:
            other |= names_in(getattr(node, "target", None) or getattr(node, "asname", None) or cst.Name("_"))
    return sized - other, other


def _with_int_sizes(test: cst.BaseExpression, maybe_tensors: set[str]) -> cst.BaseExpression:
    """``test`` with ``int(name)`` for each bare name in ``maybe_tensors`` that is compared
    (``==``/``!=``) with sizes, alone or as an element of a list or tuple."""
    if (
        not isinstance(test, cst.Comparison)
        or len(test.comparisons) != 1
        or not m.matches(test.comparisons[0].operator, m.Equal() | m.NotEqual())
    ):
        return test
    left, right = test.left, test.comparisons[0].comparator

    def as_int(value: cst.BaseExpression) -> cst.BaseExpression:
        if isinstance(value, cst.Name) and value.value in maybe_tensors:
            return cst.Call(func=cst.Name("int"), args=[cst.Arg(value)])
        if isinstance(value, (cst.List, cst.Tuple)):
            elements = [
                e.with_changes(value=as_int(e.value)) if isinstance(e, cst.Element) else e for e in value.elements
            ]
            if any(new.value is not old.value for new, old in zip(elements, value.elements)):
                return value.with_changes(elements=elements)
        return value

    if _reads_sizes(left) and not _reads_sizes(right):
        new_right = as_int(right)
        return (
            test
            if new_right is right
            else test.with_changes(comparisons=[test.comparisons[0].with_changes(comparator=new_right)])
        )
    if _reads_sizes(right) and not _reads_sizes(left):
        new_left = as_int(left)
        return test if new_left is left else test.with_changes(left=new_left)
    return test


class IndexByScalarTensor(SiteCodemod):
    """Index with a 0-d integer tensor through a one-element index tensor.

    ## What it fixes
    ``table[t]`` where the worker measured ``t`` holding a 0-d integer tensor and ``table`` a
    tensor, as in a diffusion scheduler's ``self.alphas_cumprod[timestep]`` with the timestep
    taken from ``self.timesteps``. The break is a data-dependent guard ("Could not extract
    specialized integer from data-dependent expression", no GB id). Every such subscript of the
    function holding the break is rewritten, in any expression of a simple statement
    (assignments, returns, conditional expressions); the index and the indexed value must be
    names, attributes, subscripts or constants.

    ## Why it breaks
    A 0-d tensor used as an index is read as a Python int (``__index__``): a host sync, which
    dynamo traces as an unbacked integer and then has to guard on to pick a basic index. A
    one-element index tensor is advanced indexing, which stays in the graph; ``.squeeze(0)``
    drops the dimension it adds.

    ## Example
    ```python
    alpha_prod_t = self.alphas_cumprod[timestep]
    ```
    becomes
    ```python
    alpha_prod_t = self.alphas_cumprod[timestep.reshape(1)].squeeze(0)
    ```

    ## Fix safety
    Safe: the same element is read, with the same dtype and shape, and the same index errors
    for an index out of range (an ``IndexError`` either way; the message differs); a negative
    index counts from the end both ways. Only subscripts whose index the worker measured as a 0-d
    integer tensor each time the line ran, and whose value as a tensor, are rewritten: a Python
    int, a bool tensor (a mask) or a one-element 1-d tensor index is not one. The difference is
    that a basic index returns a view of the table and advanced indexing a copy: so the rewrite is
    refused when the function updates the table or the name it binds the element to in place, or
    stores into a subscript of either (the update would reach one and not the other).
    """

    CODE = "BF703"
    FIX_TITLE = "Index with a 0-d integer tensor as a one-element index tensor"
    GB_TYPES = frozenset({DATA_DEPENDENT_GUARD})
    APPLICABILITY = Applicability.SAFE

    SITE = "subscript whose index was measured as a 0-d integer tensor"
    IMPORTS = ()

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.function: cst.FunctionDef | None = None  # the innermost function at the break's line
        self.stores: set[cst.CSTNode] = set()  # subscripts that are assigned to, not read
        self.rewritten_break_line = False
        self.at_header = False
        self.rewritten_before: list[int] = []  # self.rewritten when each enclosing assignment was entered

    def visit_Module(self, node: cst.Module) -> None:
        self.function = self.function_at_break(node)
        if self.function is not None:
            # Dynamo may place a guard at the function's header: any subscript of it is then at the break.
            self.at_header = (
                self.get_metadata(PositionProvider, self.function.name).start.line == self.request.brk.site.lineno
            )
            targets = m.findall(self.function, m.AssignTarget() | m.AugAssign() | m.Del() | m.AnnAssign())
            self.stores = {t for t in (getattr(n, "target", None) for n in targets) if isinstance(t, cst.Subscript)}

    def done(self) -> bool:
        return self.rewritten_break_line

    def leave_Subscript(self, original: cst.Subscript, updated: cst.Subscript) -> cst.BaseExpression:
        if self.function is None or self.function not in self.functions or original in self.stores:
            return updated
        if len(updated.slice) != 1 or not isinstance(updated.slice[0].slice, cst.Index):
            return updated
        index = updated.slice[0].slice.value
        facts = self.request.facts
        text = code_of(index)
        if facts.kinds_of(text) != (ValueKind.INDEX_TENSOR,):
            return updated
        if (
            not facts.kinds_of(code_of(updated.value))
            or not set(facts.kinds_of(code_of(updated.value))) <= _TENSOR_KINDS
        ):
            return updated
        updates = m.findall(self.function, in_place_update_of(updated.value))
        if updates:
            self.refused = (
                f"`{code_of(updated.value)}` is updated in place in the function (`{code_of(updates[0])}`): "
                "a view of it would see the update, a copy would not"
            )
            return updated
        self.rewritten += 1
        self.rewritten_break_line |= self.at_header or self.spans_break(original)
        one_element = (
            cst.parse_expression(f"{text}.reshape(1)")
            if _atomic(index)
            else cst.parse_expression(f"({text}).reshape(1)")
        )
        indexed = updated.with_changes(slice=[cst.SubscriptElement(cst.Index(one_element))])
        return cst.Call(func=cst.Attribute(value=indexed, attr=cst.Name("squeeze")), args=[cst.Arg(cst.Integer("0"))])

    def visit_Assign(self, node: cst.Assign) -> None:
        self.rewritten_before.append(self.rewritten)

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        # The element a name is bound to: a view before, a copy after; an in-place update of the
        # name later in the function would reach the table before and not after. Only an
        # assignment whose value holds a rewritten subscript binds such an element.
        holds_rewrite = self.rewritten > self.rewritten_before.pop()
        if self.function is None or not holds_rewrite or len(updated.targets) != 1:
            return updated
        target = updated.targets[0].target
        updates = m.findall(self.function, in_place_update_of(target)) if isinstance(target, cst.Name) else []
        if updates:
            raise self.skip(
                f"{code_of(target)} is updated in place (`{code_of(updates[0])}`): the element it holds would be a copy"
            )
        return updated


_TENSOR_KINDS = frozenset({ValueKind.TENSOR, ValueKind.TENSOR_GRAD, ValueKind.TENSOR_SUBCLASS, ValueKind.INDEX_TENSOR})


def _atomic(node: cst.BaseExpression) -> bool:
    return isinstance(node, (cst.Name, cst.Attribute, cst.Subscript)) and not node.lpar


SORTED_HELPER = "_sorted_tensors"
# The helper's exact text: a module that already has it is reused.
SORTED_HELPER_SOURCE = f"""\
def {SORTED_HELPER}(values, descending=False):
    # sorted() of one-element tensors as torch's stable sort, which keeps equal values in the order
    # sorted() keeps them and stays in the graph: the same values, with their gradients.
    values = list(values)
    if not values:
        return []
    return list(torch.stack(values).sort(dim=0, descending=descending, stable=True).values.unbind(0))
"""

# Keys that sort one-element tensors by their own value: sorted() compares them so already.
_VALUE_KEYS = (
    m.Name("float")
    | m.Attribute(value=m.Attribute(value=m.Name("torch"), attr=m.Name("Tensor")), attr=m.Name("item"))
    | m.Lambda(
        params=m.Parameters(params=[m.Param(name=m.SaveMatchedNode(m.Name(), "parameter"))]),
        body=m.SaveMatchedNode(m.DoNotCare(), "body"),
    )
)


class SortedTensors(SiteCodemod):
    """Sort a list of one-element tensors with torch's stable sort instead of ``sorted()``.

    ## What it fixes
    ``sorted(losses)``, ``sorted(losses, reverse=True)``, ``sorted(scores, key=lambda s:
    s.item())`` (or ``key=float``, ``key=lambda s: float(s)``, ``key=torch.Tensor.item``) over
    a list, tuple or generator of one-element tensors (per-micro-batch losses, per-scale losses,
    scores), in the compiled function, a helper, a method or a child module, in any expression
    (``sorted(losses, reverse=True)[:k]``). The break is GB0207 ("sort with non-constant keys").

    ## Why it breaks
    ``sorted()`` compares the tensors with ``<`` and asks Python for each answer (or calls the
    key, which reads each value with ``.item()``): a host sync per comparison, which dynamo
    cannot put in a graph. ``torch.sort`` orders the stacked values inside the graph;
    ``unbind`` gives the list back.

    ## Example
    ```python
    hardest = sorted(losses, reverse=True)[:k]
    ```
    becomes
    ```python
    hardest = _sorted_tensors(losses, descending=True)[:k]
    ```
    with ``_sorted_tensors`` defined once in the module (``torch.stack``, a stable ``sort``,
    ``unbind``).

    ## Fix safety
    Safe: the result is a list of the same values in the same order (equal values keep the
    order ``sorted()`` keeps them in, ascending or with ``reverse``: the sort is stable), of the
    same shape and dtype, with the same gradients to the tensors they came from. Each element is
    a new tensor: an in-place update of one no longer reaches the tensor it was sorted from, and
    ``is`` tells them apart; verification compares what a call returns and leaves in its
    arguments. A list holding NaN is ordered differently: ``sorted()``'s comparisons with NaN all
    answer False, so its order is whatever its algorithm leaves, where ``torch.sort`` puts NaN
    last (first with ``descending``). Tensors of different shapes, dtypes or devices do not
    stack: such a rewrite fails verification and is not written. Refused: a key that sorts by
    something else than the value (``key=lambda s: -s.item()``, ``key=len``), other keywords,
    ``*args``.
    """

    CODE = "BF704"
    FIX_TITLE = "Sort one-element tensors with a stable torch.sort"
    GB_IDS = frozenset({"GB0207"})
    APPLICABILITY = Applicability.SAFE
    SITE = "sorted(...) call"
    HELPER_SOURCE = SORTED_HELPER_SOURCE

    METADATA_DEPENDENCIES = (PositionProvider,)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if not m.matches(updated.func, m.Name("sorted")) or not self.spans_break(original):
            return updated
        positional = [a for a in updated.args if a.keyword is None]
        keywords = {a.keyword.value: a.value for a in updated.args if a.keyword is not None}
        if any(a.star for a in updated.args) or len(positional) != 1 or set(keywords) - {"key", "reverse"}:
            self.refused = "sorted() is given *args or arguments other than the values, key and reverse"
            return updated
        key = keywords.get("key")
        if key is not None and not _sorts_by_value(key):
            self.refused = f"the key `{code_of(key)}` sorts by something else than each tensor's value"
            return updated
        args = [positional[0]]
        reverse = keywords.get("reverse")
        if reverse is not None and not m.matches(reverse, m.Name("False")):
            descending = (
                reverse if m.matches(reverse, m.Name("True")) else cst.parse_expression(f"bool({code_of(reverse)})")
            )
            equal = cst.AssignEqual(
                whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
            )
            args.append(cst.Arg(descending, keyword=cst.Name("descending"), equal=equal))
        self.rewritten += 1
        return cst.Call(
            func=cst.Name(SORTED_HELPER), args=[a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in args]
        )


def _sorts_by_value(key: cst.BaseExpression) -> bool:
    """Whether ``key`` orders one-element tensors by their own value: ``float``,
    ``torch.Tensor.item``, or a lambda returning its parameter, its ``.item()`` or ``float()`` of it."""
    found = m.extract(key, _VALUE_KEYS)
    if found is None:
        return False
    if "parameter" not in found:
        return True
    name = cst.ensure_type(found["parameter"], cst.Name).value
    body = found["body"]
    return isinstance(body, cst.CSTNode) and m.matches(
        body,
        m.Name(name)
        | m.Call(func=m.Attribute(value=m.Name(name), attr=m.Name("item")), args=[])
        | m.Call(func=m.Name("float"), args=[m.Arg(value=m.Name(name))]),
    )
