"""Data-dependent control flow: a branch on a tensor's value becomes ``torch.cond``, a validation
``raise`` on one a ``torch._check``."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import BuiltinAssignment, FunctionScope, ParentNodeProvider, PositionProvider, ScopeProvider

from breakfix.codemods._base import BreakfixCodemod, fresh_name, names_in
from breakfix.types import DATA_DEPENDENT_GUARD, Applicability

COND = "torch.cond"


class DataDependentBranch(BreakfixCodemod):
    """Turn an ``if``/``else`` (or a conditional expression) on a tensor's value into ``torch.cond``.

    ## What it fixes
    A branch on a value computed from tensors, ``if x.sum() > 0:``, ``if x.abs().max() > t:``,
    ``if torch.isnan(loss).any():``, ``if a.item() > t:`` or ``y = a if (x < 0).any() else b``, in
    the compiled function, a helper, a method or a child module (the file of the innermost project
    frame), in a loop body too, whose branches only compute values: each branch is assignments to
    names; the names both assign are the results, and a name only one branch assigns is a
    temporary of that branch. An ``if`` without ``else`` is one too when each name it rebinds was
    last bound before it by an assignment that makes a new tensor (arithmetic, or a torch function
    or tensor method that never returns a view or its input, such as ``sum``, ``clamp``,
    ``softmax``, ``where``; not a call of a module or method of ``self``): the untaken branch
    passes a copy of it through (``return grad.clone()``).

    ## Why it breaks
    Dynamo traces one path through the code; which path a data-dependent condition takes is only
    known when the graph runs, so it stops there (GB0170, or a data-dependent guard with no GB id).
    ``torch.cond(pred, true_fn, false_fn, operands)`` is a branch inside the graph: both branches
    are traced, and exactly one runs, on the values of the call. The branches become two nested
    functions returning the names they assign; a name a branch reads before rebinding it is
    passed in as an operand, the rest are read from the enclosing function.

    ## Example
    ```python
    s = x.sum()
    if s > 0:
        y = x * w
    else:
        y = x - w
    ```
    becomes
    ```python
    s = x.sum()

    def _if_true():
        y = x * w
        return y

    def _if_false():
        y = x - w
        return y

    y = torch.cond(s > 0, _if_true, _if_false)
    ```

    ## Fix safety
    Safe: exactly one branch runs, as before, on the same values, and gradients flow through it
    as before. ``torch.cond`` traces its branches even in eager code and rejects what would change
    the meaning, so such a rewrite does not compile and is not written: a branch with side effects (print, I/O, mutating a tensor or a
    Python object), branches whose results differ in shape or dtype, a result that is an input
    unchanged (an alias), or results that are not tensors. Only branches that are plain
    assignments are rewritten (no ``+=``, which updates a tensor in place); the names both
    branches assign are the results, and a name only one branch assigns must not be mentioned
    anywhere else in the function. ``elif`` chains are left alone. An ``if`` without ``else``
    keeps the very objects on its untaken branch, which ``torch.cond`` cannot return; the rewrite
    returns copies, which is the same only where nothing can tell a copy from the tensor. So it is
    refused when a rebound name is a parameter or was bound another way (a loop, ``with``,
    unpacking: it may be the caller's tensor, whose in-place updates would no longer reach the
    caller), when its last value before the ``if`` may be a view or the input itself
    (``x.view(...)``, ``x.to(...)``, ``x.float()``, ``self.block(x)``: a copy would not share its
    memory), and when the function updates it in place after the ``if`` (the update would reach
    the copy). A compound test with ``and``/``or`` (``a.item() > t and flag``) fails to compile and
    is not written: ``and`` needs the truth of its left side while tracing, and evaluating both
    sides would run the right side where Python skips it. Both branches are traced when the code
    compiles, so a branch that cannot be traced for the other branch's shapes fails to compile
    instead of being skipped.
    """

    CODE = "BF601"
    FIX_TITLE = "Branch inside the graph with torch.cond"
    REQUIRES = (COND,)
    GB_IDS = frozenset({"GB0170", "GB0035"})
    GB_TYPES = frozenset({DATA_DEPENDENT_GUARD, "Data-dependent branching"})
    APPLICABILITY = Applicability.SAFE

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.rewritten = 0
        self.refused = ""  # why the branch at the site was not rewritten
        self.functions: list[cst.FunctionDef] = []
        self.in_test = 0
        self.elifs: set[cst.If] = set()  # Ifs in an elif position: their replacement must be an If

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions.append(node)

    # A conditional expression inside an if's test is the if's business: rewriting it alone would
    # leave the if for a second pass (the rewrite must be idempotent).
    def visit_If_test(self, node: cst.If) -> None:
        self.in_test += 1

    def leave_If_test(self, node: cst.If) -> None:
        self.in_test -= 1

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self.functions.pop()
        return updated

    def visit_If(self, node: cst.If) -> None:
        if isinstance(node.orelse, cst.If):
            self.elifs.add(node.orelse)

    def leave_If(self, original: cst.If, updated: cst.If) -> cst.BaseStatement | cst.FlattenSentinel:
        if self.rewritten or not self.functions or not self.spans_break(original.test):
            return updated
        if original in self.elifs:  # its replacement would have to be an `else:` block, not statements
            self.refused = "the condition is an elif's"
            return updated
        try:
            if updated.orelse is None:
                outputs = self._passthrough_outputs(original)
                true_names, false_names = _read_before_bound(updated.body.body), set(outputs)
                false_body = [cst.parse_statement(f"return {', '.join(f'{n}.clone()' for n in outputs)}\n")]
            else:
                true_names, false_names = self._branches(updated)
                false_assigned = _assigned_in_order(updated.orelse.body.body)
                outputs = [name for name in _assigned_in_order(updated.body.body) if name in false_assigned]
                false_body = [*updated.orelse.body.body, cst.parse_statement(f"return {', '.join(outputs)}\n")]
        except _Refused as why:
            self.refused = str(why)
            return updated
        taken = names_in(self.functions[-1])
        true_fn, false_fn = fresh_name("_if_true", taken), fresh_name("_if_false", taken)
        operands = sorted(true_names | false_names, key=lambda n: outputs.index(n) if n in outputs else len(outputs))
        true_body = [*updated.body.body, cst.parse_statement(f"return {', '.join(outputs)}\n")]
        definitions = [
            _branch_function(true_fn, operands, true_body),
            _branch_function(false_fn, operands, false_body),
        ]
        arguments = [updated.test, cst.Name(true_fn), cst.Name(false_fn)]
        call = _cond_call(arguments, operands)
        target = cst.AssignTarget(cst.parse_expression(", ".join(outputs)))
        assignment = cst.SimpleStatementLine(
            [cst.Assign(targets=[target], value=call)], leading_lines=[cst.EmptyLine(indent=False)]
        )
        definitions[0] = definitions[0].with_changes(leading_lines=updated.leading_lines)
        definitions[1] = definitions[1].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        self.rewritten += 1
        return cst.FlattenSentinel([*definitions, assignment])

    def leave_IfExp(self, original: cst.IfExp, updated: cst.IfExp) -> cst.BaseExpression:
        if self.rewritten or self.in_test or not self.functions or not self.spans_break(original.test):
            return updated
        if any(
            m.findall(part, m.Yield() | m.Await() | m.NamedExpr() | m.IfExp())
            for part in (updated.test, updated.body, updated.orelse)
        ):
            # A nested conditional would be rewritten by a second pass: the rewrite must be idempotent.
            self.refused = "the conditional expression nests another, yields, awaits or binds a name"
            return updated
        self.rewritten += 1
        lambdas = [cst.Lambda(params=cst.Parameters(), body=branch) for branch in (updated.body, updated.orelse)]
        return _cond_call([updated.test, *lambdas], [])

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.rewritten:
            raise self.skip(
                self.refused or f"no if/else or conditional expression at line {self.request.brk.site.lineno}"
            )
        AddImportsVisitor.add_needed_import(self.context, "torch")
        return updated

    def _passthrough_outputs(self, node: cst.If) -> list[str]:
        """The names an ``if`` without ``else`` rebinds that the untaken branch passes through as
        copies; refuse where a copy is not the same as the tensor it copies."""
        body = node.body.body
        if not all(m.matches(s, _ASSIGNMENT) for s in body) or m.findall(
            node.body, m.Yield() | m.Await() | m.NamedExpr() | m.Lambda()
        ):
            raise _Refused("the if has no else and its body does more than assign names")
        function = self.functions[-1]
        start, end = self._lines(node)
        outputs = []
        for name in _assigned_in_order(body):
            if len(m.findall(function, m.Name(name))) == len(m.findall(node.body, m.Name(name))):
                continue  # a temporary of the branch
            binding = self._binding_before(function, name, start)
            if binding is None:
                raise _Refused(
                    f"the if has no else and {name} is not bound by an assignment before it: on the "
                    "untaken branch it would hold the caller's object (or nothing), which a copy is not"
                )
            if not _fresh(binding):
                raise _Refused(
                    f"the if has no else and {name} may be a view or alias of another tensor before it "
                    f"(`{cst.Module([]).code_for_node(binding)}`): a copy would not share its memory"
                )
            mutated = (
                m.Call(
                    func=m.Attribute(
                        value=m.Name(name),
                        attr=m.Name(m.MatchIfTrue(lambda a: a.endswith("_") and not a.startswith("_"))),
                    )
                )
                | m.AugAssign(target=m.Name(name))
                | m.AssignTarget(target=m.Subscript(value=m.Name(name)) | m.Attribute(value=m.Name(name)))
                | m.AugAssign(target=m.Subscript(value=m.Name(name)) | m.Attribute(value=m.Name(name)))
            )
            if any(self._lines(found)[0] > end for found in m.findall(function, mutated)):
                raise _Refused(
                    f"{name} is updated in place after the if: on the untaken branch the update would reach a copy"
                )
            outputs.append(name)
        if not outputs:
            raise _Refused("the if has no else and rebinds no name that is used after it")
        return outputs

    def _lines(self, node: cst.CSTNode) -> tuple[int, int]:
        position = self.get_metadata(PositionProvider, node)
        return position.start.line, position.end.line

    def _binding_before(self, function: cst.FunctionDef, name: str, line: int) -> cst.BaseExpression | None:
        """The value of the last binding of ``name`` before ``line`` in ``function``, when that is a
        plain assignment and the function binds ``name`` no other way (parameters, loops, ``with``)."""
        params = {p.name.value for p in _all_params(function.params)}
        others = (
            m.For(target=m.MatchIfTrue(lambda t: bool(m.findall(t, m.Name(name)))))
            | m.AsName(name=m.Name(name))
            | m.NamedExpr(target=m.Name(name))
            | m.AugAssign(target=m.Name(name))
            | m.AssignTarget(target=m.Tuple() | m.List())
        )
        if name in params or any(m.findall(a, m.Name(name)) for a in m.findall(function, others)):
            return None
        assignments = [
            a for a in m.findall(function, m.Assign(targets=[m.AssignTarget(m.Name(name))])) if self._lines(a)[1] < line
        ]
        return max(assignments, key=lambda a: self._lines(a)[0]).value if assignments else None

    def _branches(self, node: cst.If) -> tuple[set[str], set[str]]:
        """Names each branch reads before it binds them (they become operands); refuse what is not
        two blocks of plain assignments binding the same names."""
        if node.orelse is None:
            raise _Refused(
                "the if has no else: the other branch would return its inputs unchanged, which "
                "torch.cond refuses (an output may not alias an input) and a copy would not be the same object"
            )
        if isinstance(node.orelse, cst.If):
            raise _Refused("an elif chain")
        reads = []
        for block in (node.body.body, node.orelse.body.body):
            for statement in block:
                if not m.matches(
                    statement,
                    m.SimpleStatementLine(
                        body=[
                            m.Assign(
                                targets=[
                                    m.AssignTarget(
                                        target=m.Name() | m.Tuple(elements=[m.AtLeastN(m.Element(m.Name()), n=1)])
                                    )
                                ]
                            )
                        ]
                    ),
                ):
                    raise _Refused("a branch does more than assign names")
                if m.findall(statement, m.Yield() | m.Await() | m.NamedExpr() | m.Lambda()):
                    raise _Refused("a branch yields, awaits, or defines a function")
            reads.append(_read_before_bound(block))
        true_names, false_names = (set(_assigned_in_order(b)) for b in (node.body.body, node.orelse.body.body))
        if not true_names & false_names:
            raise _Refused("the branches assign no name in common")
        # A name only one branch assigns stays inside that branch's function: only when nothing
        # else in the enclosing function mentions it (a temporary of the branch).
        function = self.functions[-1]
        for name, block in [
            *((n, node.body) for n in true_names - false_names),
            *((n, node.orelse.body) for n in false_names - true_names),
        ]:
            if len(m.findall(function, m.Name(name))) != len(m.findall(block, m.Name(name))):
                raise _Refused(f"{name} is assigned on one branch only and used outside it")
        return reads[0], reads[1]


class _Refused(Exception):
    pass


_ASSIGNMENT = m.SimpleStatementLine(
    body=[
        m.Assign(targets=[m.AssignTarget(target=m.Name() | m.Tuple(elements=[m.AtLeastN(m.Element(m.Name()), n=1)]))])
    ]
)

# Tensor methods and torch functions that always return a new tensor (never a view, never their
# input unchanged); a module call (``self.drop(x)`` may be an identity) is not one of them.
_FRESH = frozenset(
    {
        "abs",
        "add",
        "sub",
        "mul",
        "div",
        "true_divide",
        "pow",
        "neg",
        "exp",
        "expm1",
        "log",
        "log1p",
        "log2",
        "sqrt",
        "rsqrt",
        "reciprocal",
        "sign",
        "sin",
        "cos",
        "tanh",
        "sigmoid",
        "relu",
        "gelu",
        "silu",
        "softplus",
        "softmax",
        "log_softmax",
        "logsumexp",
        "sum",
        "mean",
        "std",
        "var",
        "prod",
        "norm",
        "amax",
        "amin",
        "cumsum",
        "cumprod",
        "clamp",
        "clip",
        "where",
        "masked_fill",
        "nan_to_num",
        "round",
        "floor",
        "ceil",
        "matmul",
        "mm",
        "bmm",
        "einsum",
        "cat",
        "stack",
        "clone",
        "zeros_like",
        "ones_like",
        "full_like",
        "empty_like",
        "zeros",
        "ones",
        "full",
        "lerp",
        "addcmul",
        "addcdiv",
        "maximum",
        "minimum",
        "fmod",
        "remainder",
        "normalize",
        "linear",
        "layer_norm",
        "square",
        "erf",
        "logaddexp",
        "outer",
        "cross",
        "diff",
    }
)


def _fresh(value: cst.BaseExpression) -> bool:
    """Whether ``value`` always makes a new tensor (arithmetic, or a torch function or tensor method
    of ``_FRESH``): then a copy of it is indistinguishable from it."""
    if isinstance(value, (cst.BinaryOperation, cst.UnaryOperation)):
        return True
    if isinstance(value, cst.Call) and isinstance(value.func, (cst.Attribute, cst.Name)):
        receiver = value.func.value if isinstance(value.func, cst.Attribute) else None
        if m.matches(receiver, m.Name("self")) or m.matches(receiver, m.Attribute(value=m.Name("self"))):
            return False  # a module or method of the object: it may hand back its input
        name = value.func.attr.value if isinstance(value.func, cst.Attribute) else value.func.value
        return name in _FRESH
    return False


def _assigned_in_order(block) -> list[str]:
    names: list[str] = []
    for statement in block:
        for target in statement.body[0].targets:
            for name in m.findall(target.target, m.Name()):
                if name.value not in names:
                    names.append(name.value)
    return names


def _read_before_bound(block) -> set[str]:
    bound: set[str] = set()
    read: set[str] = set()
    for statement in block:
        assign = statement.body[0]
        read |= {n.value for n in m.findall(assign.value, m.Name())} - bound
        for target in assign.targets:
            bound |= {n.value for n in m.findall(target.target, m.Name())}
    return read & bound


def _branch_function(name: str, params: list[str], statements) -> cst.FunctionDef:
    return cst.FunctionDef(
        name=cst.Name(name),
        params=cst.Parameters([cst.Param(cst.Name(p)) for p in params]),
        body=cst.IndentedBlock(body=list(statements)),
    )


def _cond_call(arguments: list[cst.BaseExpression], operands: list[str]) -> cst.Call:
    args = [cst.Arg(a) for a in arguments]
    if operands:
        args.append(cst.Arg(cst.parse_expression(f"({', '.join(operands)},)")))
    return cst.Call(func=cst.parse_expression(COND), args=args)


class DataDependentExpertLoop(BreakfixCodemod):
    """Loop over every expert of a mixture-of-experts layer instead of the experts some token picked.

    ## What it fixes
    A mixture-of-experts layer that loops only over the experts its router picked: over the rows
    of a ``nonzero()`` (``for expert_idx in expert_hit:`` after
    ``expert_hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0).nonzero()``), over
    ``torch.nonzero(counts, as_tuple=True)[0]``, or over either's ``.tolist()``; or that loops
    over every expert but skips one without tokens (``if token_idx.shape[0] == 0: continue``
    right after ``token_idx`` is selected with ``torch.where`` or ``nonzero``).

    ## Why it breaks
    How many experts were picked is known only when the graph runs: ``nonzero()`` has a
    data-dependent length, and a Python loop over it, or an ``if`` on a selection's length, needs
    that number while dynamo traces (a data-dependent guard, no GB id). The tensor that
    ``nonzero()`` reads has a static length (one entry per expert), so the loop becomes a loop
    over all of its indices, each shaped as the loop used it (``[i]`` for a row, ``i`` for an
    index), and the skip goes: an expert that no token picked selects no tokens, and the
    ``index_add_`` (or masked assignment) of its empty result adds nothing.

    ## Example
    ```python
    expert_hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0).nonzero()
    for expert_idx in expert_hit:
        expert_idx = expert_idx[0]
        top_k_pos, token_idx = torch.where(expert_mask[expert_idx])
        out.index_add_(0, token_idx, self.experts[expert_idx](x[token_idx]))
    ```
    becomes
    ```python
    expert_hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0)
    for expert_idx in ([index] for index in range(expert_hit.shape[0])):
        expert_idx = expert_idx[0]
        top_k_pos, token_idx = torch.where(expert_mask[expert_idx])
        out.index_add_(0, token_idx, self.experts[expert_idx](x[token_idx]))
    ```

    ## Fix safety
    Unsafe: the loop body now also runs for the experts no token picked, on an empty selection.
    The results are the same only if such a run adds nothing, which the body's form cannot show
    when it calls an expert module: the module's forward hooks run, a training-mode layer (batch
    norm, dropout) sees an empty batch, an expert no token reached gets zero gradients instead of
    none, and every call pays for every expert. An index the body cannot use fails: a ``one_hot``
    with a spare class for dropped tokens gives an index past the last expert, and the rewrite
    does not compile (it is not written). The rows of ``nonzero()`` are tensors and the new
    loop's are a list of one int (or an int), so without ``.tolist()`` the loop variable may only
    be used where the two behave alike: as an index (``t[expert_idx]``), its ``[0]`` as an index
    or in an f-string (``f"expert_{expert_idx[0]}"``), and ``expert_idx = expert_idx[0]`` first.
    Only the loop may read the ``nonzero()``'s result; the loop has no ``else`` or ``break`` and
    its variable is not read after it. The rank of the tensor ``nonzero()`` reads is not visible
    in the source: the rewrite takes it as 1-D (one row per expert); the rows of a tensor of more
    dimensions hold more indices, and only the verification's comparison of the results tells.
    Only a skip whose body is ``continue`` alone is removed.
    """

    CODE = "BF602"
    FIX_TITLE = "Loop over every expert, statically"
    GB_TYPES = frozenset({DATA_DEPENDENT_GUARD})
    APPLICABILITY = Applicability.UNSAFE
    CHANGES = (
        "the loop body also runs for experts no token was routed to, on an empty selection: "
        "their modules run on an empty batch (hooks, training-mode layers, zero instead of no "
        "gradients), and every call pays for every expert"
    )

    METADATA_DEPENDENCIES = (PositionProvider, ParentNodeProvider)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.refused = ""
        self.function: cst.FunctionDef | None = None  # the function around the node looked at
        # Original node -> its replacement (RemovalSentinel to drop a statement), found before the
        # transform starts: the assignment to rewrite comes before the loop that decides it.
        self.edits: dict[cst.CSTNode, cst.CSTNode | cst.RemovalSentinel] = {}

    def _lines(self, node: cst.CSTNode) -> tuple[int, int]:
        position = self.get_metadata(PositionProvider, node)
        return position.start.line, position.end.line

    def _at(self, node: cst.CSTNode) -> bool:
        first, last = self._lines(node)
        return first <= self.request.brk.site.lineno <= last

    def visit_Module(self, node: cst.Module) -> None:
        for candidate in m.findall(node, m.For(iter=m.Name()) | m.If()):
            self.function = next((a for a in self._ancestors(candidate) if isinstance(a, cst.FunctionDef)), None)
            if self.function is None:
                continue
            try:
                if isinstance(candidate, cst.For):
                    self.edits = self._static_loop(candidate)
                elif self._at(candidate.test):
                    self._check_empty_skip(candidate)
                    self.edits = {candidate: cst.RemoveFromParent()}
            except _Refused as why:
                self.refused = str(why)
            if self.edits:
                return

    def leave_For(self, original: cst.For, updated: cst.For) -> cst.For:
        replacement = self.edits.get(original)
        return updated.with_changes(iter=replacement) if replacement is not None else updated

    def leave_If(self, original: cst.If, updated: cst.If) -> cst.If | cst.RemovalSentinel:
        return self.edits.get(original, updated)

    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.RemovalSentinel:
        return self.edits.get(original, updated)

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.edits:
            raise self.skip(
                self.refused
                or f"no loop over nonzero() indices and no skip of an empty "
                f"selection at line {self.request.brk.site.lineno}"
            )
        return updated

    # --- a loop over the rows of nonzero() -----------------------------------------------------

    def _binding_before(self, loop: cst.For, name: str) -> cst.SimpleStatementLine | None:
        """The last plain assignment to ``name`` before the loop, in the loop's function."""
        loop_line = self._lines(loop)[0]
        assignments = [
            s
            for s in m.findall(
                self.function, m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(target=m.Name(name))])])
            )
            if self._lines(s)[1] < loop_line
        ]
        return max(assignments, key=lambda s: self._lines(s)[0], default=None)

    def _static_loop(self, loop: cst.For) -> dict:
        """The edits that make ``loop`` static, or none when the break is not at it."""
        name = loop.iter.value
        assignment = self._binding_before(loop, name)
        header = self._lines(loop)[0] <= self.request.brk.site.lineno <= self._lines(loop.iter)[1]
        if not header and not (assignment and self._at(assignment)):
            return {}
        if assignment is None:
            raise _Refused(f"{name} is not assigned before the loop")
        source = _nonzero_source(assignment.body[0].value)
        if source is None:
            raise _Refused(f"{name} is not a nonzero() of a tensor (or its .tolist())")
        counted, row, listed = source
        self._check_unconditional(assignment, loop)
        self._check_only_the_loop_reads(name, assignment, loop)
        if loop.orelse is not None or m.findall(loop.body, m.Break() | m.Return() | m.Yield()):
            raise _Refused("the loop has an else, a break, a return or a yield: its iterations would not all run")
        if not isinstance(loop.target, cst.Name):
            raise _Refused("the loop unpacks its items")
        variable = loop.target.value
        loop_end = self._lines(loop)[1]
        if any(self._lines(n)[0] > loop_end for n in m.findall(self.function, m.Name(variable))):
            raise _Refused(f"{variable} is read after the loop: its last value would change")
        if not listed:  # .tolist() gives ints (or lists of ints) like the static loop; a tensor may not
            self._check_index_uses(loop, variable, row)
        index = fresh_name("index", names_in(self.function))
        counter = f"range({name}.shape[0])"
        items = cst.parse_expression(f"([{index}] for {index} in {counter})" if row else counter)
        counted = counted.with_changes(lpar=[], rpar=[])
        if m.matches(counted, m.Name(name)):  # `x = x.nonzero()`: x already holds the tensor counted
            if len(self.get_metadata(ParentNodeProvider, assignment).body) == 1:
                raise _Refused(f"the assignment to {name} is alone in its block")
            statement = cst.RemoveFromParent()
        else:
            statement = assignment.with_changes(body=[assignment.body[0].with_changes(value=counted)])
        return {assignment: statement, loop: items}

    def _check_unconditional(self, assignment: cst.CSTNode, loop: cst.For) -> None:
        """The assignment runs whenever the loop does: each block around it also holds the loop,
        or is a ``with`` block."""
        around_loop = set(self._ancestors(loop))
        for node in self._ancestors(assignment):
            if node is self.function:
                return
            if node not in around_loop and not isinstance(node, (cst.IndentedBlock, cst.With)):
                raise _Refused("the assignment is conditional (in an if, a loop or a try the loop is not in)")

    def _check_only_the_loop_reads(self, name: str, assignment: cst.SimpleStatementLine, loop: cst.For) -> None:
        assigned_end = self._lines(assignment)[1]
        for mention in m.findall(self.function, m.Name(name)):
            if self._lines(mention)[0] > assigned_end and mention is not loop.iter:
                raise _Refused(f"{name} is used again after its assignment, not only by the loop")

    def _check_index_uses(self, loop: cst.For, variable: str, row: bool) -> None:
        """Every use of a tensor row (or index) must behave alike for a list of one int (an int)."""
        body = loop.body.body
        unpacked = (
            row
            and body
            and m.matches(
                body[0],
                m.SimpleStatementLine(
                    body=[m.Assign(targets=[m.AssignTarget(target=m.Name(variable))], value=_first_of(variable))]
                ),
            )
        )
        if unpacked:
            row = False  # `v = v[0]` first: from there on v is an index
        for mention in m.findall(loop.body, m.Name(variable)):
            if unpacked and _contains(body[0], mention):
                continue
            use = self.get_metadata(ParentNodeProvider, mention)
            scalar = not row
            if row and m.matches(use, _first_of(variable)) and use.value is mention:
                use, scalar = self.get_metadata(ParentNodeProvider, use), True  # v[0]: one index
            # A 0-d integer tensor and an int index alike and format alike (Tensor.__format__ formats
            # its item); a 1-element index tensor and a list of one int index alike.
            if isinstance(use, cst.Index) or (
                scalar and isinstance(use, cst.FormattedStringExpression) and use.conversion is None
            ):
                continue
            statement = next((a for a in self._ancestors(use) if isinstance(a, cst.BaseSmallStatement)), use)
            kind = "int" if scalar else "list"
            raise _Refused(
                f"{variable} is used in `{self.module.code_for_node(statement)}`, where a tensor "
                f"and the static loop's {kind} may differ"
            )

    def _ancestors(self, node: cst.CSTNode):
        while True:
            try:
                node = self.get_metadata(ParentNodeProvider, node)
            except KeyError:
                return
            yield node

    # --- `if selection.shape[0] == 0: continue` --------------------------------------------------

    def _check_empty_skip(self, node: cst.If) -> None:
        if node.orelse is not None or not m.matches(
            node.body,
            m.IndentedBlock(body=[m.SimpleStatementLine(body=[m.Continue()])])
            | m.SimpleStatementSuite(body=[m.Continue()]),
        ):
            raise _Refused("the if does more than `continue`")
        selection = _emptiness_of(node.test)
        if selection is None:
            raise _Refused("the condition is not a selection's length compared with 0")
        block = self.get_metadata(ParentNodeProvider, node)
        loop = self.get_metadata(ParentNodeProvider, block)
        if not isinstance(loop, cst.For):
            raise _Refused("the skip is not a statement of a for loop's body")
        before = block.body[: block.body.index(node)]
        if not any(
            m.matches(
                s,
                m.SimpleStatementLine(
                    body=[
                        m.Assign(
                            targets=[
                                m.AssignTarget(
                                    target=m.Name(selection)
                                    | m.Tuple(elements=[m.ZeroOrMore(), m.Element(m.Name(selection)), m.ZeroOrMore()])
                                )
                            ],
                            value=_SELECTION,
                        )
                    ]
                ),
            )
            for s in before
        ):
            raise _Refused(f"{selection} is not selected with torch.where or nonzero() earlier in the loop")


def _first_of(variable: str) -> m.Subscript:
    """A matcher for ``variable[0]``."""
    return m.Subscript(value=m.Name(variable), slice=[m.SubscriptElement(m.Index(m.Integer("0")))])


_NONZERO = m.Call(func=m.Attribute(attr=m.Name("nonzero"))) | m.Call(
    func=m.Attribute(value=m.Name("torch"), attr=m.Name("nonzero"))
)

_SELECTION = m.Call(func=m.Attribute(value=m.Name("torch"), attr=m.Name("where")), args=[m.Arg()]) | _NONZERO


def _nonzero_source(value: cst.BaseExpression) -> tuple[cst.BaseExpression, bool, bool] | None:
    """(the tensor counted, items are rows, items come from .tolist()) of ``X.nonzero()``,
    ``torch.nonzero(X)``, ``torch.nonzero(X, as_tuple=True)[0]`` and their ``.tolist()``."""
    listed = m.matches(value, m.Call(func=m.Attribute(attr=m.Name("tolist")), args=[]))
    if listed:
        value = value.func.value
    first = m.matches(value, m.Subscript(slice=[m.SubscriptElement(m.Index(m.Integer("0")))]))
    if first:
        value = value.value
    if not m.matches(value, _NONZERO):
        return None
    args = list(value.args)
    if m.matches(value.func.value, m.Name("torch")) and m.matches(value.func, m.Attribute(attr=m.Name("nonzero"))):
        if not args or args[0].keyword is not None:
            return None
        counted, args = args[0].value, args[1:]
    else:
        counted = value.func.value
    as_tuple = False
    for arg in args:
        if not m.matches(arg, m.Arg(keyword=m.Name("as_tuple"), value=m.Name("True") | m.Name("False"))):
            return None
        as_tuple = arg.value.value == "True"
    if as_tuple != first:  # as_tuple without [0] is a tuple of tensors; [0] without it, the first row
        return None
    return counted, not first, listed


def _emptiness_of(test: cst.BaseExpression) -> str | None:
    """The name whose emptiness ``test`` checks: ``s.shape[0] == 0``, ``s.numel() == 0``, ``len(s) == 0``."""
    if not m.matches(test, m.Comparison(comparisons=[m.ComparisonTarget(m.Equal(), m.Integer("0"))])):
        return None
    left = test.left
    for pattern in (
        m.Subscript(
            value=m.Attribute(value=m.Name(), attr=m.Name("shape")), slice=[m.SubscriptElement(m.Index(m.Integer("0")))]
        ),
        m.Call(func=m.Attribute(value=m.Name(), attr=m.Name("numel")), args=[]),
    ):
        if m.matches(left, pattern):
            return (left.value if isinstance(left, cst.Subscript) else left.func).value.value
    if m.matches(left, m.Call(func=m.Name("len"), args=[m.Arg(m.Name(), keyword=None)])):
        return left.args[0].value.value
    return None


def _contains(tree: cst.CSTNode, node: cst.CSTNode) -> bool:
    return any(found is node for found in m.findall(tree, m.Name()))


class DataDependentTail(BreakfixCodemod):
    """Turn the rest of a function after ``if flag:`` into ``torch.cond`` over two specialised copies.

    ## What it fixes
    A flag read off the data (``flag = mask.any().item()``, or passed in by the caller) that
    several ``if flag:`` blocks of one function test, where a branch changes what the code after
    it sees: a tensor of another shape, names only that branch binds, indices from ``nonzero()``.
    The longformer/LED self-attention is this: ``if is_global_attn:`` concatenates global-key
    scores onto the local ones, and later ``if is_global_attn:`` blocks use them.
    An early ``return`` under a data-dependent test of any form (``if torch.isnan(loss).any():
    return fallback``) is one too: the rest of the function is what the test decides.

    ## Why it breaks
    Dynamo traces one path through the code; a data-dependent flag is only known when the graph
    runs, so ``if flag:`` stops it (a data-dependent guard with no GB id, or GB0170). One
    ``if``/``else`` that only assigns names is BF601's; here the branch has no ``else``, or more
    than assignments, and its effect reaches the next ``if flag:``. Everything from the first
    ``if flag:`` to the ``return`` is what the flag decides, so that whole tail becomes the two
    branches of ``torch.cond``: one copy with every test of ``flag`` true, one with it false.
    ``torch.cond`` accepts branches whose intermediate shapes differ and which call ``nonzero()``;
    only their results must agree in dtype and layout.

    ## Example
    ```python
    has_global = is_global.any().item()
    scores = x @ x.T
    if has_global:
        scores = torch.cat((x @ x[is_global].T, scores), dim=-1)
    probs = scores.softmax(-1)
    if has_global:
        out = probs[:, :n] @ x[is_global] + probs[:, n:] @ x
    else:
        out = probs @ x
    return out
    ```
    becomes
    ```python
    has_global = is_global.any().item()
    scores = x @ x.T
    def _tail_true(scores):
        scores = torch.cat((x @ x[is_global].T, scores), dim=-1)
        probs = scores.softmax(-1)
        out = probs[:, :n] @ x[is_global] + probs[:, n:] @ x
        return out

    def _tail_false(scores):
        probs = scores.softmax(-1)
        out = probs @ x
        return out

    if not isinstance(has_global, (bool, torch.SymBool, torch.Tensor)):
        has_global = bool(has_global)
    return torch.cond(has_global, _tail_true, _tail_false, (scores,))
    ```

    ## Fix safety
    Safe: the flag is a name the tail never rebinds, so every test of it in the tail has the value
    the first one had; each copy is the tail with those tests decided (``if flag:`` keeps its body
    or its ``else``, ``flag and c`` becomes ``c`` or ``False``, ``not flag`` its value), and
    exactly one copy runs, as before. A flag that is neither a bool nor a tensor (``None``) is
    first turned into its truth value, which is what ``if`` tested. Names the tail rebinds that
    were bound before it are passed in as operands (in eager code ``torch.cond`` runs the chosen
    copy directly on them); the rest are read from the enclosing function. ``torch.cond`` rejects
    what would change the meaning, so such a rewrite does not compile and is not written: a tail
    that updates an input or a captured tensor in place, returns an input unchanged, returns
    results whose dtype or number differ between the copies, or rebinds a name that is not a
    tensor. A test that is not a plain name (``if torch.isnan(loss).any():`` over an early
    ``return``) is first named where it stands (``_taken = torch.isnan(loss).any()``), which
    evaluates it once, at the same point, as the ``if`` did. Refused before trying: the ``if`` is
    not a statement of the function's own body; the tail rebinds the flag, has no final
    ``return``, returns from inside a block, yields, awaits, defines a function, class or lambda, or declares
    ``global``/``nonlocal``; an ``elif`` tests the flag; the function's own nested functions use
    a name the tail binds, or it calls ``locals``/``vars``/``eval``/``exec``. Both copies are traced
    when the code compiles, so code that only the untaken copy runs must compile too.
    """

    CODE = "BF603"
    FIX_TITLE = "Branch the rest of the function inside the graph with torch.cond"
    REQUIRES = (COND, "torch.SymBool")
    GB_IDS = frozenset({"GB0170", "GB0035"})
    GB_TYPES = frozenset({DATA_DEPENDENT_GUARD, "Data-dependent branching"})
    APPLICABILITY = Applicability.SAFE

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.rewritten = 0
        self.refused = ""

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        if self.rewritten or not isinstance(original.body, cst.IndentedBlock):
            return updated
        statements = list(original.body.body)
        for index, statement in enumerate(statements):
            if isinstance(statement, cst.If) and self.spans_break(statement.test):
                break
        else:
            return updated
        hoisted: list[cst.BaseStatement] = []
        if not isinstance(statement.test, cst.Name):
            # `if torch.isnan(loss).any():` tests a value once, where it stands: name it there, and
            # the tail tests the name (which nothing else binds) with the same truth.
            flag = fresh_name("_taken", names_in(original))
            hoisted = [
                cst.SimpleStatementLine(
                    [cst.Assign([cst.AssignTarget(cst.Name(flag))], statement.test)],
                    leading_lines=statement.leading_lines,
                )
            ]
            statements[index] = statement.with_changes(test=cst.Name(flag), leading_lines=())
            original = original.with_changes(body=original.body.with_changes(body=statements))
        try:
            replacement = self._rewrite(original, index, cst.ensure_type(statements[index], cst.If).test.value)
        except _Refused as why:
            self.refused = str(why)
            return updated
        self.rewritten += 1
        body = [*statements[:index], *hoisted, *replacement]
        return updated.with_changes(body=updated.body.with_changes(body=body))

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.rewritten:
            raise self.skip(self.refused or f"no `if` in a function body at line {self.request.brk.site.lineno}")
        AddImportsVisitor.add_needed_import(self.context, "torch")
        return updated

    def _rewrite(self, function: cst.FunctionDef, index: int, flag: str) -> list[cst.BaseStatement]:
        before, tail = function.body.body[:index], function.body.body[index:]
        # The comments above the `if` go above the first copy, once.
        tail_module = cst.Module(body=[tail[0].with_changes(leading_lines=()), *tail[1:]])
        if m.findall(
            tail_module, m.FunctionDef() | m.ClassDef() | m.Lambda() | m.Yield() | m.Await() | m.Global() | m.Nonlocal()
        ):
            raise _Refused("the tail defines a function, class or lambda, yields, awaits or declares global/nonlocal")
        tail_bound = _bound_names(tail_module)
        if flag in tail_bound:
            raise _Refused(f"the tail rebinds {flag}")
        if m.findall(
            tail_module, m.If(orelse=m.If(test=m.MatchIfTrue(lambda test: bool(m.findall(test, m.Name(flag))))))
        ):
            raise _Refused(f"an elif tests {flag}")
        if m.findall(function, m.Name(m.MatchIfTrue(lambda n: n in {"locals", "vars", "eval", "exec"}))):
            raise _Refused("the function calls locals, vars, eval or exec")
        for scope in m.findall(cst.Module(body=list(before)), m.FunctionDef() | m.ClassDef() | m.Lambda()):
            if {n.value for n in m.findall(scope, m.Name())} & tail_bound:
                raise _Refused("a nested function of the function uses a name the tail binds")
        copies = [_returning_copy(tail_module, flag, value) for value in (True, False)]
        bound_before = {p.name.value for p in _all_params(function.params)} | _bound_names(
            cst.Module(body=list(before))
        )
        operands = [
            name
            for name in _names_in_order(tail_module)
            if name in bound_before and any(name in _bound_names(c) and name in _read_names(c) for c in copies)
        ]
        taken = names_in(function)
        names = [fresh_name("_tail_true", taken), fresh_name("_tail_false", taken)]
        params = cst.Parameters([cst.Param(cst.Name(p)) for p in operands])
        definitions = [
            cst.FunctionDef(name=cst.Name(name), params=params, body=cst.IndentedBlock(body=copy.body))
            for name, copy in zip(names, copies)
        ]
        definitions[0] = definitions[0].with_changes(leading_lines=tail[0].leading_lines)
        definitions[1] = definitions[1].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        # `if flag:` tested truth; torch.cond takes a bool or a tensor as it is and refuses the rest (None).
        prelude = cst.parse_statement(
            f"if not isinstance({flag}, (bool, torch.SymBool, torch.Tensor)):\n    {flag} = bool({flag})\n"
        )
        prelude = prelude.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        call = _cond_call([cst.Name(flag), cst.Name(names[0]), cst.Name(names[1])], operands)
        return [*definitions, prelude, cst.SimpleStatementLine([cst.Return(value=call)])]


def _all_params(params: cst.Parameters) -> list[cst.Param]:
    star = [params.star_arg] if isinstance(params.star_arg, cst.Param) else []
    return [
        *params.posonly_params,
        *params.params,
        *star,
        *params.kwonly_params,
        *([params.star_kwarg] if params.star_kwarg else []),
    ]


class _TargetNames(cst.CSTVisitor):
    """The Name nodes a block binds (assignment, augmented assignment, for, with, del, walrus,
    import, except) and every Name node it reads."""

    def __init__(self) -> None:
        self.bound: list[cst.Name] = []

    def _targets(self, node: cst.CSTNode | None) -> None:
        if node is None:
            return
        if isinstance(node, cst.Name):
            self.bound.append(node)
        elif isinstance(node, (cst.Tuple, cst.List)):
            for element in node.elements:
                self._targets(element.value)
        elif isinstance(node, cst.StarredElement):
            self._targets(node.value)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._targets(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._targets(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._targets(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._targets(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        return None  # a comprehension binds in its own scope

    def visit_AsName(self, node: cst.AsName) -> None:
        self._targets(node.name)

    def visit_Del(self, node: cst.Del) -> None:
        self._targets(node.target)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._targets(node.target)

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        if node.asname is None:
            self.bound.append(cst.Name(cst.Module([]).code_for_node(node.name).split(".")[0]))


def _bound_names(block: cst.Module) -> set[str]:
    visitor = _TargetNames()
    block.visit(visitor)
    return {n.value for n in visitor.bound}


def _read_names(block: cst.Module) -> set[str]:
    visitor = _TargetNames()
    block.visit(visitor)
    targets = {id(n) for n in visitor.bound}
    # `x += 1` and `del x` read x too.
    extra = {node.target.value for node in m.findall(block, m.AugAssign(target=m.Name()) | m.Del(target=m.Name()))}
    return {n.value for n in m.findall(block, m.Name()) if id(n) not in targets} | extra


def _names_in_order(block: cst.Module) -> list[str]:
    return list(dict.fromkeys(n.value for n in m.findall(block, m.Name())))


def _literal(node: cst.BaseExpression) -> bool | None:
    if m.matches(node, m.Name("True")):
        return True
    if m.matches(node, m.Name("False")):
        return False
    return None


class _Specialise(cst.CSTTransformer):
    """The tail with every test of ``flag`` decided: only where its truth is all that is read."""

    def __init__(self, flag: str, value: bool) -> None:
        super().__init__()
        self.flag = flag
        self.value = value

    def _decide(self, test: cst.BaseExpression) -> cst.BaseExpression:
        if m.matches(test, m.Name(self.flag)):
            return cst.Name(str(self.value))
        if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            operand = self._decide(test.expression)
            known = _literal(operand)
            return cst.Name(str(not known)) if known is not None else test.with_changes(expression=operand)
        if isinstance(test, cst.BooleanOperation):
            left, right = self._decide(test.left), self._decide(test.right)
            known = _literal(left)
            if known is None:
                return test.with_changes(left=left, right=right)
            short_circuits = known is (not isinstance(test.operator, cst.And))
            return cst.Name(str(known)) if short_circuits else right
        return test

    def leave_If(self, original: cst.If, updated: cst.If) -> cst.BaseStatement | cst.FlattenSentinel:
        test = self._decide(updated.test)
        known = _literal(test)
        if known is None:
            return updated.with_changes(test=test)
        if known:
            chosen = list(updated.body.body)
        elif isinstance(updated.orelse, cst.Else):
            chosen = list(updated.orelse.body.body)
        else:
            chosen = []
        if not chosen:
            return cst.FlattenSentinel([])
        # The `if` line's own comment goes above the statements that stay.
        header = updated.body.header.comment if known else None
        comment = [cst.EmptyLine(comment=header)] if header else []
        return cst.FlattenSentinel(
            [
                chosen[0].with_changes(leading_lines=[*updated.leading_lines, *comment, *chosen[0].leading_lines]),
                *chosen[1:],
            ]
        )

    def leave_IfExp(self, original: cst.IfExp, updated: cst.IfExp) -> cst.BaseExpression:
        test = self._decide(updated.test)
        known = _literal(test)
        if known is None:
            return updated.with_changes(test=test)
        chosen = updated.body if known else updated.orelse
        # The conditional's own parentheses keep the chosen operand's precedence where it sits.
        return chosen.with_changes(lpar=updated.lpar, rpar=updated.rpar) if not chosen.lpar else chosen

    def leave_While(self, original: cst.While, updated: cst.While) -> cst.While:
        return updated.with_changes(test=self._decide(updated.test))

    def leave_Assert(self, original: cst.Assert, updated: cst.Assert) -> cst.Assert:
        return updated.with_changes(test=self._decide(updated.test))

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        return updated if updated.body else updated.with_changes(body=[cst.SimpleStatementLine([cst.Pass()])])


def _returning_copy(tail: cst.Module, flag: str, value: bool) -> cst.Module:
    """The tail specialised for ``flag`` == ``value``, up to its first return, which every copy needs."""
    copy = tail.visit(_Specialise(flag, value))
    for index, statement in enumerate(copy.body):
        if not m.findall(statement, m.Return()):
            continue
        if not isinstance(statement, cst.SimpleStatementLine):
            raise _Refused("the tail returns from inside a block")
        returns = [s for s in statement.body if isinstance(s, cst.Return)]
        if returns[0] is not statement.body[-1]:
            raise _Refused("the tail returns from inside a block")
        if returns[0].value is None or m.matches(returns[0].value, m.Name("None")):
            break
        return copy.with_changes(body=list(copy.body[: index + 1]))
    raise _Refused(f"the tail with {flag} {str(value).lower()} does not end in a return of a value")


def _compiled_failure_changes(cls: str, message: cst.BaseExpression | None) -> str:
    """What a failing check does differently in compiled code, for this class and message (measured:
    the runtime assertion raises RuntimeError, with the message only when it is a constant string)."""
    literal = message is not None and not m.findall(message, m.FormattedStringExpression())
    raised = "RuntimeError" if cls == "RuntimeError" else f"RuntimeError instead of {cls}"
    text = "with the same message" if literal else "with a generic message"
    return (
        f"a check failing in compiled code raises {raised} {text}, and skips the in-place input updates made "
        "before it; eager code raises as before"
    )


# Which torch._check* raises each builtin exception class (torch/__init__.py: each is
# _check_with(<class>, cond, message)); a class not here has no check that raises it.
_CHECK_RAISING = {
    "RuntimeError": "_check",
    "ValueError": "_check_value",
    "TypeError": "_check_type",
    "IndexError": "_check_index",
    "NotImplementedError": "_check_not_implemented",
}


class ValidationRaise(BreakfixCodemod):
    """Turn ``if COND: raise ValueError("...")`` on a tensor's value into ``torch._check_value``.

    ## What it fixes
    A validation that raises a builtin exception when a value computed from tensors says the input
    is bad: ``if (x < 0).any(): raise ValueError("negative input")``, or a condition on an
    ``.item()``. The ``if`` has no ``else`` or ``elif``, its body is that one ``raise`` of
    ``RuntimeError``, ``ValueError``, ``TypeError``, ``IndexError`` or ``NotImplementedError``
    with a string literal, an f-string or no message.

    ## Why it breaks
    Dynamo traces one path through the code; whether the condition holds is only known when the
    graph runs, so the ``if`` stops it (GB0170, or a data-dependent guard with no GB id).
    ``torch._check_value(cond, message)`` (and ``_check``, ``_check_type``, ``_check_index``,
    ``_check_not_implemented`` for the other classes) states the condition instead of branching on
    it: traced, it becomes a runtime assertion inside the graph, so the code stays one graph and
    still fails on the same inputs. The condition is negated with ``torch.sym_not(bool(COND))``:
    ``bool`` is what ``if`` applies, and ``sym_not`` keeps a traced condition symbolic where
    ``not`` would guard on it and break again. The message becomes a lambda, evaluated only when
    the check fails, at the point the ``raise`` built it.

    ## Example
    ```python
    if (x < 0).any():
        raise ValueError("negative input")
    return x.sqrt()
    ```
    becomes
    ```python
    torch._check_value(torch.sym_not(bool((x < 0).any())), lambda: "negative input")
    return x.sqrt()
    ```

    ## Fix safety
    Unsafe, for what changes when the check fails in compiled code (measured on torch 2.13,
    aot_eager). Eager code behaves as before: the condition is evaluated once, at the same point,
    and on failure the same exception class is raised with the same message (the check raises
    ``E(message)``), after the same earlier effects; only the traceback ends in torch's
    ``_check_with`` frame, and ``raise E`` with no message raises ``E("")`` (same text, ``args``
    is ``("",)`` instead of ``()``). Compiled, the check passes on the same inputs and fails on
    the same inputs, but its failure is the graph's runtime assertion: it raises ``RuntimeError``
    whatever the class was (so an ``except ValueError`` around the compiled call no longer
    catches it), with the message for a string literal and a generic ``Runtime assertion failed
    for expression ...`` for an f-string (``Assertion is failed`` for no message); in-place
    updates of inputs made earlier in the compiled region are not applied when it fails (so even
    ``RuntimeError`` with a string literal, which raises the same class and text, is not exact).
    The report states, for each site, which of these apply. Inductor was not measured. A
    message reading anything but constants (``self.name``, a tensor) does not compile
    (``torch._check*`` needs a message closure of constants), so that rewrite is not written.
    Refused before trying: the ``if`` is an ``elif``, has an ``else``, or its body is more than
    the ``raise``; ``raise ... from ...``; a class that is not one of the five builtins (a custom
    class, ``KeyError``, ``AssertionError``, a name the module rebinds); a message that is not
    one string literal or f-string, or is a bytes literal, or awaits, yields, binds a name or
    calls ``super``; a bare ``raise``; an ``if`` outside a function body (a lambda in a class body
    does not see the class's names); code that rebinds ``bool``.
    """

    CODE = "BF604"
    FIX_TITLE = "State the validation as a torch._check inside the graph"
    REQUIRES = (*(f"torch.{check}" for check in _CHECK_RAISING.values()), "torch.sym_not")
    GB_IDS = frozenset({"GB0170", "GB0035"})
    GB_TYPES = frozenset({DATA_DEPENDENT_GUARD, "Data-dependent branching"})
    APPLICABILITY = Applicability.UNSAFE
    CHANGES = (
        "a check failing in compiled code raises RuntimeError instead of the exception class, with a generic "
        "message for an f-string or no message, and skips the in-place input updates made before it; eager "
        "code raises as before"
    )

    METADATA_DEPENDENCIES = (PositionProvider, ScopeProvider)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.rewritten = 0
        self.refused = ""
        self.elifs: set[cst.If] = set()

    def visit_If(self, node: cst.If) -> None:
        if isinstance(node.orelse, cst.If):
            self.elifs.add(node.orelse)

    def leave_If(self, original: cst.If, updated: cst.If) -> cst.If | cst.SimpleStatementLine:
        if self.rewritten or not self.spans_break(original.test):
            return updated
        try:
            check, message = self._check_and_message(original)
        except _Refused as why:
            self.refused = str(why)
            return updated
        negated = cst.Call(
            func=cst.parse_expression("torch.sym_not"),
            args=[cst.Arg(cst.Call(func=cst.Name("bool"), args=[cst.Arg(updated.test)]))],
        )
        call = cst.Call(
            func=cst.parse_expression(f"torch.{check}"),
            args=[cst.Arg(negated), cst.Arg(cst.Lambda(params=cst.Parameters(), body=message))],
        )
        # Comments above the `if`, on its line and above the `raise` go above the check; the `raise`
        # line's own stays on its line.
        body = original.body
        if isinstance(body, cst.IndentedBlock):
            header = [cst.EmptyLine(comment=body.header.comment)] if body.header.comment else []
            leading = [*updated.leading_lines, *header, *body.body[0].leading_lines]
            trailing = body.body[0].trailing_whitespace
        else:
            leading, trailing = list(updated.leading_lines), body.trailing_whitespace
        self.rewritten += 1
        return cst.SimpleStatementLine([cst.Expr(call)], leading_lines=leading, trailing_whitespace=trailing)

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.rewritten:
            raise self.skip(self.refused or f"no `if ...: raise` at line {self.request.brk.site.lineno}")
        AddImportsVisitor.add_needed_import(self.context, "torch")
        return updated

    def _check_and_message(self, node: cst.If) -> tuple[str, cst.BaseExpression]:
        """The torch._check* that raises the same class, and the message it must build."""
        if node in self.elifs:
            raise _Refused("the if is an elif: its replacement would have to be an else block")
        if node.orelse is not None:
            raise _Refused("the if has an else or elif: the check can only replace a branch that raises")
        scope = self.get_metadata(ScopeProvider, node)
        if not isinstance(scope, FunctionScope):
            raise _Refused("the if is not in a function body: the message's lambda would not see the names around it")
        small = node.body.body
        if isinstance(node.body, cst.IndentedBlock):
            small = small[0].body if len(small) == 1 and isinstance(small[0], cst.SimpleStatementLine) else ()
        if len(small) != 1 or not isinstance(small[0], cst.Raise):
            raise _Refused("the if's body is more than one raise")
        statement = small[0]
        if statement.cause is not None:
            raise _Refused("raise ... from ...: no torch._check chains a cause")
        exc = statement.exc
        if exc is None:
            raise _Refused("a bare raise re-raises the exception being handled")
        call_args = exc.args if isinstance(exc, cst.Call) else ()
        cls = exc.func if isinstance(exc, cst.Call) else exc
        if not isinstance(cls, cst.Name) or cls.value not in _CHECK_RAISING:
            shown = cst.Module([]).code_for_node(cls)
            raise _Refused(f"raises {shown}: only {', '.join(_CHECK_RAISING)} have a torch._check* that raises them")
        for name in (cls.value, "bool"):
            if not all(isinstance(a, BuiltinAssignment) for a in scope[name]):
                raise _Refused(f"the module rebinds {name}")
        if not call_args:
            self.changes = _compiled_failure_changes(cls.value, None)
            return _CHECK_RAISING[cls.value], cst.SimpleString('""')
        if len(call_args) != 1 or call_args[0].keyword is not None or call_args[0].star:
            raise _Refused("the exception gets more than one positional message")
        message = call_args[0].value
        if not isinstance(message, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
            raise _Refused("the message is not a string literal or f-string")
        if any("b" in s.prefix.lower() for s in m.findall(message, m.SimpleString() | m.FormattedString())):
            raise _Refused("the message is a bytes literal")
        if m.findall(message, m.Await() | m.Yield() | m.NamedExpr() | m.Name("super")):
            raise _Refused("the message awaits, yields, binds a name or calls super: it cannot move into a lambda")
        self.changes = _compiled_failure_changes(cls.value, message)
        return _CHECK_RAISING[cls.value], message
