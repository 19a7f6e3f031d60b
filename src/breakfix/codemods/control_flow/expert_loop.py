"""BF602: loop over every expert of a mixture-of-experts layer, not only the experts some token picked."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.metadata import ParentNodeProvider, PositionProvider

from breakfix.codemods._base import BreakfixCodemod, Refused, fresh_name, names_in
from breakfix.types import DATA_DEPENDENT_GUARD, Applicability


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
            except Refused as why:
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
            raise Refused(f"{name} is not assigned before the loop")
        source = _nonzero_source(assignment.body[0].value)
        if source is None:
            raise Refused(f"{name} is not a nonzero() of a tensor (or its .tolist())")
        counted, row, listed = source
        self._check_unconditional(assignment, loop)
        self._check_only_the_loop_reads(name, assignment, loop)
        if loop.orelse is not None or m.findall(loop.body, m.Break() | m.Return() | m.Yield()):
            raise Refused("the loop has an else, a break, a return or a yield: its iterations would not all run")
        if not isinstance(loop.target, cst.Name):
            raise Refused("the loop unpacks its items")
        variable = loop.target.value
        loop_end = self._lines(loop)[1]
        if any(self._lines(n)[0] > loop_end for n in m.findall(self.function, m.Name(variable))):
            raise Refused(f"{variable} is read after the loop: its last value would change")
        if not listed:  # .tolist() gives ints (or lists of ints) like the static loop; a tensor may not
            self._check_index_uses(loop, variable, row)
        index = fresh_name("index", names_in(self.function))
        counter = f"range({name}.shape[0])"
        items = cst.parse_expression(f"([{index}] for {index} in {counter})" if row else counter)
        counted = counted.with_changes(lpar=[], rpar=[])
        if m.matches(counted, m.Name(name)):  # `x = x.nonzero()`: x already holds the tensor counted
            if len(self.get_metadata(ParentNodeProvider, assignment).body) == 1:
                raise Refused(f"the assignment to {name} is alone in its block")
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
                raise Refused("the assignment is conditional (in an if, a loop or a try the loop is not in)")

    def _check_only_the_loop_reads(self, name: str, assignment: cst.SimpleStatementLine, loop: cst.For) -> None:
        assigned_end = self._lines(assignment)[1]
        for mention in m.findall(self.function, m.Name(name)):
            if self._lines(mention)[0] > assigned_end and mention is not loop.iter:
                raise Refused(f"{name} is used again after its assignment, not only by the loop")

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
            raise Refused(
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
            raise Refused("the if does more than `continue`")
        selection = _emptiness_of(node.test)
        if selection is None:
            raise Refused("the condition is not a selection's length compared with 0")
        block = self.get_metadata(ParentNodeProvider, node)
        loop = self.get_metadata(ParentNodeProvider, block)
        if not isinstance(loop, cst.For):
            raise Refused("the skip is not a statement of a for loop's body")
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
            raise Refused(f"{selection} is not selected with torch.where or nonzero() earlier in the loop")


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
