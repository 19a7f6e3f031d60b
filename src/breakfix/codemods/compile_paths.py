"""Paths only compiled code takes: checks of whether the code is being compiled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext
from libcst.metadata import MetadataWrapper, PositionProvider, QualifiedNameProvider, QualifiedNameSource

from breakfix.codemods._base import FixRequest, SiteCodemod, spans
from breakfix.types import Applicability, Frame

# The functions that say whether the code runs under torch.compile: torch's
# (``torch.compiler.is_compiling``, ``torch.compiler.is_dynamo_compiling``,
# ``torch._dynamo.is_compiling``, ``torch._utils.is_compiling``) and the libraries' wrappers of them
# (transformers' and diffusers' ``is_torchdynamo_compiling``). Each is False when the code runs eagerly.
PREDICATES = frozenset({"is_compiling", "is_dynamo_compiling", "is_torchdynamo_compiling"})


class CompileOnlyPath(SiteCodemod):
    """Take the eager path where the code asks whether it is being compiled.

    ## What it fixes
    Code that asks whether it is being compiled (``torch.compiler.is_compiling()``,
    ``torch.compiler.is_dynamo_compiling()``, ``torch._dynamo.is_compiling()``, or a function of
    one of those names imported from a library, such as transformers'
    ``is_torchdynamo_compiling()``) and so runs a path under ``torch.compile`` that it never runs
    eagerly, when that path raises: ``if mask is None and not is_compiling(): mask = ...`` leaves
    ``mask`` None in compiled code only, and a helper three calls down reads ``mask.shape``
    (GB0088, "Observed exception": the compiled run raises where the eager one does not). The
    checks rewritten are every call of such a function that ran on the way to the break: in the
    function holding the break before its line, and in each caller up the break's stack before the
    line of its call, in any file of the project (the innermost file holding one first, one file
    per round). Each call becomes ``False``, its value when the code runs eagerly, and the tests it
    decides are simplified: ``if mask is None and not is_compiling():`` becomes
    ``if mask is None:``; ``if is_compiling(): A else: B`` becomes ``B``; ``if not is_compiling():
    A`` becomes ``A``; an ``elif`` on it is dropped or becomes the ``else``; ``a if is_compiling()
    else b`` becomes ``b``; ``flag = is_compiling()`` becomes ``flag = False``.

    It refuses when no such call ran before the break in the functions on its stack, and leaves
    alone a function of one of those names defined in the project (its meaning is the project's),
    checks after the break's line (they did not run) and functions off the break's stack.

    ## Why it breaks
    Dynamo traces the code as it runs under ``torch.compile``, where the check is True, so it
    traces the compile-only path, and fails where that path raises (a library that skips building
    a default when compiled, assuming a compiled caller passes one). Eagerly the check is False
    and the code takes the other path, which may trace as it is.

    ## Example
    ```python
    def forward(self, hidden, mask=None):
        if mask is None and not torch.compiler.is_compiling():
            mask = hidden.new_ones(hidden.shape[:2])
        return self.proj(hidden) * blocks(mask, self.block)
    ```
    becomes
    ```python
    def forward(self, hidden, mask=None):
        if mask is None:
            mask = hidden.new_ones(hidden.shape[:2])
        return self.proj(hidden) * blocks(mask, self.block)
    ```

    ## Fix safety
    Safe: each rewritten call returns False whenever the code runs eagerly, so the rewrite changes
    nothing eagerly; compiled, the code then does what it does eagerly, which is what the compiled
    result is checked against. A compile-only path written to avoid something the eager path
    does that cannot be traced (a host sync, a print) gives that break back: the rewrite is then
    not verified, or the break is fixed by the codemod that answers it.
    """

    CODE = "BF801"
    FIX_TITLE = "Take the eager path where the code asks whether it is being compiled"
    GB_IDS = frozenset({"GB0088"})
    GB_TYPES = frozenset({"Observed exception"})
    APPLICABILITY = Applicability.SAFE
    SITE = "call of is_compiling() (or is_dynamo_compiling, is_torchdynamo_compiling) that ran before the break"
    IMPORTS = ()

    @classmethod
    def file_to_edit(cls, request: FixRequest) -> str:
        """The innermost file of the break's stack holding a check that ran before the break."""
        for filename in dict.fromkeys(frame.filename for frame in reversed(request.brk.project_stack)):
            try:
                source = request.sources.get(filename) or Path(filename).read_text(encoding="utf-8")
                module = cst.parse_module(source)
            except (OSError, UnicodeDecodeError, cst.ParserSyntaxError):
                continue
            if checks_that_ran(module, _lines_in(request.brk.project_stack, filename)):
                return filename
        return request.brk.site.filename

    def __init__(self, context: CodemodContext, request: FixRequest) -> None:
        super().__init__(context, request)
        self.checks: set[cst.Call] = set()  # the calls that ran before the break, in this file
        self.constants: set[int] = set()  # ids of the True/False names the rewrite wrote
        self.elifs: set[cst.If] = set()

    def visit_Module(self, node: cst.Module) -> None:
        filename = self.context.filename or self.request.brk.site.filename
        self.checks = set(checks_that_ran(node, _lines_in(self.request.brk.project_stack, filename)))

    def visit_If(self, node: cst.If) -> None:
        if isinstance(node.orelse, cst.If):
            self.elifs.add(node.orelse)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if original not in self.checks:
            return updated
        self.rewritten += 1
        return self._constant(False, updated)

    def leave_UnaryOperation(self, original: cst.UnaryOperation, updated: cst.UnaryOperation) -> cst.BaseExpression:
        value = self._value_of(updated.expression)
        if value is None or not isinstance(updated.operator, cst.Not):
            return updated
        return self._constant(not value, updated)

    def leave_BooleanOperation(
        self, original: cst.BooleanOperation, updated: cst.BooleanOperation
    ) -> cst.BaseExpression:
        # Only a constant on the left is dropped here: ``False and x`` is False and ``True and x``
        # is x whatever the context. A constant on the right is dropped only in a test (below).
        left = self._value_of(updated.left)
        if left is None:
            return updated
        decides = left is False if isinstance(updated.operator, cst.And) else left is True
        if decides:
            return self._constant(left, updated)
        return _keep_parentheses(updated.right, updated)

    def leave_IfExp(self, original: cst.IfExp, updated: cst.IfExp) -> cst.BaseExpression:
        value = self._value_of(_as_test(updated.test, self.constants))
        if value is None:
            return updated.with_changes(test=_as_test(updated.test, self.constants))
        return _keep_parentheses(updated.body if value else updated.orelse, updated)

    def leave_While(self, original: cst.While, updated: cst.While) -> cst.While:
        return updated.with_changes(test=_as_test(updated.test, self.constants))

    def leave_If(
        self, original: cst.If, updated: cst.If
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement] | cst.RemovalSentinel:
        updated = updated.with_changes(test=_as_test(updated.test, self.constants))
        elif_ = updated.orelse
        if isinstance(elif_, cst.If):
            branch = self._value_of(elif_.test)
            if branch is True:
                updated = updated.with_changes(orelse=cst.Else(body=elif_.body))
            elif branch is False:
                updated = updated.with_changes(orelse=elif_.orelse)
        value = self._value_of(updated.test)
        if original in self.elifs or value is None:
            return updated  # an elif is decided by the if it belongs to
        taken = _statements(updated.body if value else updated.orelse)
        if not taken:
            return cst.RemovalSentinel.REMOVE
        # The comments above the if stay above the code that replaces it.
        first = taken[0].with_changes(leading_lines=[*updated.leading_lines, *taken[0].leading_lines])
        return cst.FlattenSentinel([first, *taken[1:]])

    def _constant(self, value: bool, replaced: cst.BaseExpression) -> cst.Name:
        name = cst.Name(str(value), lpar=replaced.lpar, rpar=replaced.rpar)
        self.constants.add(id(name))
        return name

    def _value_of(self, node: cst.BaseExpression) -> bool | None:
        """True or False when ``node`` is a constant the rewrite wrote, else None."""
        if id(node) not in self.constants:
            return None
        return cst.ensure_type(node, cst.Name).value == "True"


def checks_that_ran(module: cst.Module, lines: Sequence[int]) -> list[cst.Call]:
    """The calls of a compiling check in ``module`` that ran before the frames at ``lines``: each
    in the innermost function spanning a frame's line, at or before that line."""
    finder = _CheckFinder(lines)
    MetadataWrapper(module, unsafe_skip_copy=True).visit(finder)
    return finder.found


class _CheckFinder(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider)

    def __init__(self, lines: Sequence[int]) -> None:
        super().__init__()
        self.lines = lines
        self.found: list[cst.Call] = []

    def visit_Module(self, node: cst.Module) -> None:
        functions = [f for f in m.findall(node, m.FunctionDef()) if isinstance(f, cst.FunctionDef)]
        for line in self.lines:
            around = [f for f in functions if spans(self.get_metadata(PositionProvider, f), line)]
            if not around:
                continue
            function = max(around, key=lambda f: self.get_metadata(PositionProvider, f).start.line)
            for call in m.findall(function, m.Call(args=[])):
                call = cst.ensure_type(call, cst.Call)
                ran = self.get_metadata(PositionProvider, call).start.line <= line
                if ran and self._is_compiling_check(call) and call not in self.found:
                    self.found.append(call)

    def _is_compiling_check(self, call: cst.Call) -> bool:
        """A call of torch's or a library's is-compiling function (resolved through the imports;
        a function of that name defined in the project is not one)."""
        return any(
            q.source is QualifiedNameSource.IMPORT and q.name.rsplit(".", 1)[-1] in PREDICATES
            for q in self.get_metadata(QualifiedNameProvider, call.func, set())
        )


def _lines_in(stack: Sequence[Frame], filename: str) -> list[int]:
    """The lines of the frames of ``stack`` in ``filename``."""
    return [frame.lineno for frame in stack if frame.filename == filename]


def _as_test(test: cst.BaseExpression, constants: set[int]) -> cst.BaseExpression:
    """``test`` where only its truth matters: ``x and True`` and ``x or False`` are ``x``."""
    if not isinstance(test, cst.BooleanOperation) or id(test.right) not in constants:
        return test
    right = cst.ensure_type(test.right, cst.Name).value == "True"
    if right == isinstance(test.operator, cst.And):
        return _keep_parentheses(_as_test(test.left, constants), test)
    return test  # ``x and False``, ``x or True``: x may have effects, left as written


def _keep_parentheses(kept: cst.BaseExpression, replaced: cst.BaseExpression) -> cst.BaseExpression:
    """``kept`` standing where ``replaced`` was, with its parentheses when it has none."""
    if kept.lpar or not replaced.lpar:
        return kept
    return kept.with_changes(lpar=replaced.lpar, rpar=replaced.rpar)


def _statements(
    branch: cst.BaseSuite | cst.If | cst.Else | None,
) -> list[cst.SimpleStatementLine | cst.BaseCompoundStatement]:
    """The statements a branch of an ``if`` runs, as statements of the block around the ``if``."""
    if branch is None:
        return []
    if isinstance(branch, cst.If):
        return [branch]  # an elif becomes an if
    body = branch.body if isinstance(branch, cst.Else) else branch
    if isinstance(body, cst.SimpleStatementSuite):
        return [cst.SimpleStatementLine(body=body.body)]
    return [
        s
        for s in cst.ensure_type(body, cst.IndentedBlock).body
        if isinstance(s, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
    ]
