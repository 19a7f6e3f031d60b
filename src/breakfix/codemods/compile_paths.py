"""Code that runs differently under torch.compile: checks of whether it is being compiled, and
functions disabled for it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext
from libcst.helpers import get_full_name_for_node
from libcst.metadata import MetadataWrapper, PositionProvider, QualifiedNameProvider, QualifiedNameSource

from breakfix.codemods._base import (
    BreakfixCodemod,
    FixRequest,
    SiteCodemod,
    imported_from,
    readable_module,
    spans,
)
from breakfix.codemods._orchestration import disables, is_compiled_piece
from breakfix.codemods._purity import impurity
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
    checks after the break's line (they did not run) and functions off the break's stack, even
    one called before the break that returned (a rewrite stays in the functions of the stack).

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
            module = readable_module(request, filename)
            if module is not None and checks_that_ran(module, _lines_in(request.brk.project_stack, filename)):
                return filename
        return request.brk.site.filename

    def __init__(self, context: CodemodContext, request: FixRequest) -> None:
        super().__init__(context, request)
        self.checks: set[cst.Call] = set()  # the calls that ran before the break, in this file
        # The True/False names the rewrite wrote, by id (held here, so no other node takes an id).
        self.constants: dict[int, cst.Name] = {}
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
        self.constants[id(name)] = name
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


def _as_test(test: cst.BaseExpression, constants: dict[int, cst.Name]) -> cst.BaseExpression:
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


class DisabledHelper(BreakfixCodemod):
    """Compile the project function the code disabled with ``torch.compiler.disable``.

    ## What it fixes
    A function of the project decorated with ``@torch.compiler.disable`` (or
    ``@torch._dynamo.disable``, with or without arguments such as ``recursive=False``), called
    from compiled code: a helper disabled while a kernel or an old torch could not compile it,
    and never re-enabled (GB0098, "Skip calling ``torch.compiler.disable()``d function"; GB0099
    when it is inlined). The function is found by the name the break reports (or, when it names
    none, among the functions called on the break's line: ``f(...)``, ``self.f(...)``), defined
    in the file of the call (a module-level function or a method) or imported into it from a
    project module (``from .blocks import normalize``, ``from model.blocks import normalize``).
    Its disabling decorator is removed; nothing else changes.

    It refuses a function that calls compiled pieces (an eager orchestrator a split wrote: it is
    disabled on purpose), a function with side effects (I/O, logging, writes to its arguments,
    attributes or globals, in it or the same-module helpers it calls: a cache hook, an offload or
    a step counter may be disabled for them), a function it cannot find in the project, a name
    imported under an alias, and a function disabled by a call rather than a decorator
    (``f = torch.compiler.disable(g)``).

    ## Why it breaks
    ``torch.compiler.disable`` tells dynamo to run the function eagerly: every call of it from
    compiled code ends the graph before the call and starts another after it, and
    ``fullgraph=True`` refuses. Often the reason it was disabled is gone; whether it is, is what
    the verification of the rewrite measures.

    ## Example
    ```python
    @torch.compiler.disable
    def normalize(x):
        return x / x.norm(dim=-1, keepdim=True)
    ```
    becomes
    ```python
    def normalize(x):
        return x / x.norm(dim=-1, keepdim=True)
    ```

    ## Fix safety
    Safe: the decorator changes nothing when the code runs eagerly, so neither does its removal;
    compiled, the function is traced into the graph, and the rewrite is written only when it
    compiles and computes what the original computes eagerly, with the same side effects. A
    function that still cannot be traced gives back the break inside it, which another codemod
    may fix, or the rewrite is not verified.
    """

    CODE = "BF802"
    FIX_TITLE = "Compile the function the code disabled with torch.compiler.disable"
    GB_IDS = frozenset({"GB0098", "GB0099"})
    APPLICABILITY = Applicability.SAFE

    @classmethod
    def file_to_edit(cls, request: FixRequest) -> str:
        found = _disabled_definition(request)
        return found[0] if found is not None else request.brk.site.filename

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        found = _disabled_definition(self.request)
        if found is None:
            raise self.skip(
                "no function called at the break is defined with a torch.compiler.disable decorator in the "
                "project (in the call's file, or a project module it imports it from)"
            )
        qualname = found[1]
        definition = _definition(tree, qualname)
        if definition is None:
            raise self.skip(f"cannot find {qualname} in {self.context.filename}")
        functions = [f for f in m.findall(tree, m.FunctionDef()) if isinstance(f, cst.FunctionDef)]
        pieces = {f.name.value for f in functions if is_compiled_piece(f)}
        if pieces & {
            get_full_name_for_node(c.func) for c in m.findall(definition, m.Call()) if isinstance(c, cst.Call)
        }:
            raise self.skip(f"{qualname} is an eager orchestrator of compiled pieces (a split), disabled on purpose")
        reasons = impurity(definition, tree, self.context.filename or "", partial(readable_module, self.request))
        if reasons:
            # A cache hook, an offload or a counter may be disabled for its effects: those are
            # verified on the example's calls only.
            raise self.skip(f"{qualname} has side effects, which may be why it was disabled: {reasons[0]}")
        # The comments above the removed decorator stay above the function.
        leading = [line for d in definition.decorators if disables(d) for line in d.leading_lines]
        updated = definition.with_changes(
            decorators=[d for d in definition.decorators if not disables(d)],
            leading_lines=[*definition.leading_lines, *leading],
        )
        return cst.ensure_type(tree.deep_replace(definition, updated), cst.Module)


def _disabled_qualname(explanation: str) -> str | None:
    """The function dynamo skipped, from "Skip calling function `<function Head.norm at 0x..>`"."""
    found = re.search(r"<function ([\w.]+) at 0x", explanation)
    return found.group(1) if found else None


def _definition(module: cst.Module, qualname: str) -> cst.FunctionDef | None:
    """The module-level function or method (``Class.method``) of that qualified name."""
    *owners, name = qualname.split(".")
    body: Sequence[cst.CSTNode] = module.body
    for owner in owners:
        found = next((s for s in body if isinstance(s, cst.ClassDef) and s.name.value == owner), None)
        if found is None:
            return None
        body = found.body.body
    return next((s for s in body if isinstance(s, cst.FunctionDef) and s.name.value == name), None)


def _disabled_definition(request: FixRequest) -> tuple[str, str] | None:
    """The file and qualified name of the disabled function the break's call reaches: the one
    dynamo names, else a function called on the break's line; defined with a disabling decorator
    in the call's file, or in the project module the call's file imports it from."""
    call_file = request.brk.site.filename
    call_module = readable_module(request, call_file)
    if call_module is None:
        return None
    named = _disabled_qualname(request.brk.explanation)
    for qualname in [named] if named else _called_at(call_module, request.brk.site.lineno):
        for filename in [call_file, *imported_from(call_file, call_module, qualname.split(".")[0])]:
            module = call_module if filename == call_file else readable_module(request, filename)
            definition = _definition(module, qualname) if module is not None else None
            if definition is not None and any(disables(d) for d in definition.decorators):
                return filename, qualname
    return None


def _called_at(module: cst.Module, line: int) -> list[str]:
    """The qualified names of the functions called on ``line``: ``f(...)`` is ``f``, and
    ``self.f(...)`` in a method of ``Head`` is ``Head.f``."""
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    names: list[str] = []
    for owner in [module, *m.findall(module, m.ClassDef())]:
        statements = owner.body if isinstance(owner, cst.Module) else cst.ensure_type(owner, cst.ClassDef).body.body
        for statement in statements:
            if not isinstance(statement, cst.FunctionDef) or not spans(positions[statement], line):
                continue
            for call in m.findall(statement, m.Call()):
                call = cst.ensure_type(call, cst.Call)
                if not spans(positions[call], line):
                    continue
                if isinstance(call.func, cst.Name):
                    names.append(call.func.value)
                elif m.matches(call.func, m.Attribute(value=m.Name("self"))) and isinstance(owner, cst.ClassDef):
                    names.append(f"{owner.name.value}.{cst.ensure_type(call.func, cst.Attribute).attr.value}")
    return list(dict.fromkeys(names))
