"""What every breakfix codemod is: a LibCST codemod aimed at one located graph break.

A codemod class names the *pattern* it answers; its class attributes say which breaks it answers
(GB ids and Gb_types), how safe its fix is and what the fix is called; its docstring, with the
headings in ``DOC_HEADINGS``, is its documentation page. The engine instantiates it with a
``FixRequest`` (the break, where the target is, runtime facts) and runs it on one file in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext, SkipFile, VisitorBasedCodemodCommand
from libcst.codemod.visitors import AddImportsVisitor
from libcst.helpers import get_full_name_for_node
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from breakfix.codemods._logging_ops import with_warning_lines
from breakfix.piece_options import PieceOptions
from breakfix.types import Applicability, BreakFacts, GraphBreak

DOC_HEADINGS = ("What it fixes", "Why it breaks", "Example", "Fix safety")


@dataclass(frozen=True)
class FixRequest:
    """Everything a codemod may know about the break it is asked to fix."""

    brk: GraphBreak
    target_file: str
    target_qualname: str
    facts: BreakFacts = field(default_factory=BreakFacts)  # what the worker measured at this break
    sources: dict[str, str] = field(default_factory=dict)  # files already rewritten in memory
    other_breaks: tuple[GraphBreak, ...] = ()  # the other breaks located in the code as rewritten so far
    piece_options: PieceOptions = ()  # compile options of new pieces when the target's own are unknown


class BreakfixCodemod(VisitorBasedCodemodCommand):
    CODE: ClassVar[str]
    FIX_TITLE: ClassVar[str]
    GB_IDS: ClassVar[frozenset[str]] = frozenset()
    GB_TYPES: ClassVar[frozenset[str]] = frozenset()
    APPLICABILITY: ClassVar[Applicability] = Applicability.SAFE
    # A last resort that answers any break (after every codemod that answers it specifically).
    CATCH_ALL: ClassVar[bool] = False
    # What an unsafe fix changes, stated in the report (empty for safe fixes).
    CHANGES: ClassVar[str] = ""
    # The torch APIs the fix relies on, as dotted names (the rewrite calls them, or the worker uses
    # them to derive it): on a torch that lacks one the codemod is not offered (breakfix.torch_apis
    # looks each up on the installed torch).
    REQUIRES: ClassVar[tuple[str, ...]] = ()

    def __init__(self, context: CodemodContext, request: FixRequest) -> None:
        super().__init__(context)
        self.request = request
        # A codemod may lower its own applicability for one site (e.g. when it cannot prove an
        # iterator is consumed exactly as before); the engine reads these after the transform.
        self.applicability = self.APPLICABILITY
        self.changes = self.CHANGES

    @classmethod
    def file_to_edit(cls, request: FixRequest) -> str:
        """The file this codemod rewrites: by default, where the innermost project frame is."""
        return request.brk.site.filename

    @classmethod
    def answers(cls, gb_id: str | None, gb_type: str) -> bool:
        return cls.CATCH_ALL or (gb_id is not None and gb_id in cls.GB_IDS) or gb_type in cls.GB_TYPES

    @classmethod
    def refusal(cls, brk: GraphBreak) -> str | None:
        """Why this located break is none of this codemod's business whatever the code says (its
        frames, not its GB id, rule it out), or None. The classifier leaves such a codemod out."""
        return None

    @property
    def DESCRIPTION(self) -> str:  # noqa: N802 (LibCST's name)
        return self.FIX_TITLE

    # --- helpers shared by the codemods ---------------------------------------------------------

    def transform_module(self, tree: cst.Module) -> cst.Module:
        # A rewritten warnings.warn (BF503) passes the line of its call: any rewrite may move it.
        return with_warning_lines(super().transform_module(tree))

    def spans_break(self, node: cst.CSTNode) -> bool:
        """Whether ``node`` spans the line of the break (the codemod declares PositionProvider)."""
        return spans(self.get_metadata(PositionProvider, node), self.request.brk.site.lineno)

    def skip(self, why: str) -> SkipFile:
        return SkipFile(why)

    def parse_file(self, path: str) -> cst.Module:
        """Another file of the project, as rewritten so far in memory."""
        try:
            return read_module(self.request, path)
        except UNREADABLE as e:
            raise self.skip(f"cannot read {path}: {e}") from e


# What reading a project file may raise: gone, not text, or not Python.
UNREADABLE = (OSError, UnicodeDecodeError, cst.ParserSyntaxError)


def read_module(request: FixRequest, path: str) -> cst.Module:
    """The file at ``path`` as rewritten so far in memory (else as on disk), parsed; raises one of
    ``UNREADABLE``."""
    return cst.parse_module(request.sources.get(path) or Path(path).read_text(encoding="utf-8"))


def readable_module(request: FixRequest, path: str) -> cst.Module | None:
    """``read_module``, or None when the file cannot be read."""
    try:
        return read_module(request, path)
    except UNREADABLE:
        return None


class SiteCodemod(BreakfixCodemod):
    """A codemod that rewrites code at the break's site: the scaffolding such codemods share.

    A subclass counts each rewrite in ``rewritten`` and records in ``refused`` why a candidate it
    found was left alone; ``SITE`` names what it looks for, for the refusal when it
    found nothing ("no <SITE> at line N"). ``functions`` is the stack of functions around the node
    being visited (a subclass that overrides ``visit_FunctionDef`` or ``leave_FunctionDef`` calls
    the base). Once something is rewritten, the modules in ``IMPORTS`` are imported and the
    module-level functions the rewrite calls (``helpers()``: ``HELPER_SOURCE`` unless a subclass
    says otherwise) are inserted after the imports once (an identical helper already there is
    reused, a different one of its name is refused).
    """

    SITE: ClassVar[str]
    IMPORTS: ClassVar[tuple[str, ...]] = ("torch",)
    HELPER_SOURCE: ClassVar[str] = ""

    def __init__(self, context: CodemodContext, request: FixRequest) -> None:
        super().__init__(context, request)
        self.functions: list[cst.FunctionDef] = []
        self.rewritten = 0
        self.refused = ""  # why the last candidate at the site was left alone

    def function_at_break(self, module: cst.Module) -> cst.FunctionDef | None:
        """The innermost function of ``module`` spanning the break's line (the codemod declares
        PositionProvider)."""
        spanning = [
            f for f in m.findall(module, m.FunctionDef()) if isinstance(f, cst.FunctionDef) and self.spans_break(f)
        ]
        # Nested functions start after the functions around them.
        return max(spanning, key=lambda f: self.get_metadata(PositionProvider, f).start.line, default=None)

    def done(self) -> bool:
        """Whether the transform made its fix (by default: it rewrote something)."""
        return bool(self.rewritten)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions.append(node)

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self.functions.pop()
        return updated

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.done():
            raise self.skip(self.refused or f"no {self.SITE} at line {self.request.brk.site.lineno}")
        for module in self.IMPORTS:
            AddImportsVisitor.add_needed_import(self.context, module)
        body: list[cst.CSTNode] = list(updated.body)
        for source in self.helpers():
            helper = cst.ensure_type(cst.parse_statement(source, config=updated.config_for_parsing), cst.FunctionDef)
            if not existing_helper(body, helper):
                body = insert_top_level(body, index_after_imports(body), helper)
        return updated.with_changes(body=body)

    def helpers(self) -> list[str]:
        """The source of the module-level functions the rewrite calls: ``HELPER_SOURCE``."""
        return [self.HELPER_SOURCE] if self.HELPER_SOURCE else []


class Refused(Exception):
    """A codemod's helper declines the site it was asked to rewrite; the message says why."""


def spans(position: CodeRange, line: int) -> bool:
    return position.start.line <= line <= position.end.line


def definitions_at(module: cst.Module, line: int) -> list[cst.FunctionDef | cst.ClassDef]:
    """The functions and classes whose code spans ``line``, outermost first."""
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    chain: list[cst.FunctionDef | cst.ClassDef] = []
    nodes: Sequence[cst.CSTNode] = module.body
    while node := next((n for n in nodes if n in positions and spans(positions[n], line)), None):
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            chain.append(node)
        nodes = node.children
    return chain


def function_at(module: cst.Module, line: int) -> cst.FunctionDef | None:
    """The innermost function whose code spans ``line``."""
    functions = [node for node in definitions_at(module, line) if isinstance(node, cst.FunctionDef)]
    return functions[-1] if functions else None


def parameters(function: cst.FunctionDef, variadic: bool = True) -> list[cst.Param]:
    """Every parameter in signature order; ``*args`` and ``**kwargs`` only when ``variadic``."""
    params = function.params
    star = [params.star_arg] if variadic and isinstance(params.star_arg, cst.Param) else []
    star_kwarg = [params.star_kwarg] if variadic and params.star_kwarg is not None else []
    return [*params.posonly_params, *params.params, *star, *params.kwonly_params, *star_kwarg]


def parameter_names(function: cst.FunctionDef) -> list[str]:
    """Every parameter's name in signature order; a piece takes them all as plain positional parameters."""
    return [param.name.value for param in parameters(function)]


def names_in(node: cst.CSTNode) -> set[str]:
    """Every variable name mentioned in ``node`` (a function: its locals, the globals it reads,
    nested code); the ``attr`` of ``x.attr`` and the keyword of ``f(attr=...)`` are not variables."""
    not_variables = {id(a.attr) for a in m.findall(node, m.Attribute())}
    not_variables |= {id(a.keyword) for a in m.findall(node, m.Arg(keyword=m.Name()))}
    return {n.value for n in m.findall(node, m.Name()) if id(n) not in not_variables}


def in_place_update_of(value: cst.BaseExpression) -> m.BaseMatcherNode:
    """A statement or call that updates in place what ``value`` (a name or attribute read) holds: a
    trailing-underscore method (``x.add_(1)``), an augmented assignment, a store into it."""
    # Any: one matcher of an expression stands where libcst's stubs want each node type's own.
    same: Any = m.MatchIfTrue(lambda node: isinstance(node, cst.BaseExpression) and node.deep_equals(value))
    into = same | m.Subscript(value=same) | m.Attribute(value=same)
    return (
        m.Call(
            func=m.Attribute(
                value=same, attr=m.Name(m.MatchIfTrue(lambda a: a.endswith("_") and not a.startswith("_")))
            )
        )
        | m.AugAssign(target=into)
        | m.AssignTarget(target=m.Subscript(value=same) | m.Attribute(value=same))
    )


def code_of(node: cst.CSTNode) -> str:
    """The source text of ``node`` alone."""
    return cst.Module([]).code_for_node(node)


def fresh_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``... : the first not in ``taken``."""
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}_{number}"
    return name


def existing_helper(body: list[cst.CSTNode], helper: cst.FunctionDef) -> bool:
    """Whether the module already has this exact helper (a fix applied before); a different
    function of that name is never overwritten."""
    existing = [s for s in body if m.matches(s, m.FunctionDef(name=m.Name(helper.name.value)))]
    if existing and not existing[0].with_changes(leading_lines=[]).deep_equals(helper.with_changes(leading_lines=[])):
        raise SkipFile(f"the module already defines a different {helper.name.value}")
    return bool(existing)


def insert_top_level(body: list[cst.CSTNode], at: int, statement: cst.BaseStatement) -> list[cst.CSTNode]:
    """``body`` with ``statement`` at index ``at``, two blank lines around it as for any top-level
    definition; comments above the statement that moves down stay with it."""
    statement = statement.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()] if at else [])
    following = body[at:]
    if following:
        following[0] = following[0].with_changes(
            leading_lines=[
                cst.EmptyLine(),
                cst.EmptyLine(),
                *(line for line in following[0].leading_lines if line.comment is not None),
            ]
        )
    return [*body[:at], statement, *following]


def index_after_imports(body: list[cst.CSTNode]) -> int:
    """Index after the module docstring, ``__future__`` and other leading imports."""
    index = 0
    for statement in body:
        leading = m.matches(
            statement, m.SimpleStatementLine(body=[m.OneOf(m.Import(), m.ImportFrom(), m.Expr(value=m.SimpleString()))])
        )
        if not leading:
            break
        index += 1
    return index


def imported_from(filename: str, module: cst.Module, name: str) -> list[str]:
    """The project files ``filename`` (parsed: ``module``) may import ``name`` from
    (``from .m import name``, ``from pkg.m import name``), nearest first."""
    found: list[str] = []
    for node in m.findall(module, m.ImportFrom()):
        node = cst.ensure_type(node, cst.ImportFrom)
        # An alias (``import normalize as norm``) is not followed: the definition has the other name.
        if isinstance(node.names, cst.ImportStar) or not any(
            a.asname is None and get_full_name_for_node(a.name) == name for a in node.names
        ):
            continue
        found += module_files(filename, node)
    return found


def module_files(filename: str, node: cst.ImportFrom) -> list[str]:
    """The project files an ``import from`` in ``filename`` may read (``from .m import x``: ``m.py``
    beside it, or ``m/__init__.py``), nearest first; none for a library."""
    here = Path(filename).parent
    dotted = (get_full_name_for_node(node.module) or "") if node.module is not None else ""
    parts = [p for p in dotted.split(".") if p]
    if node.relative:
        levels = len(node.relative) - 1  # ``.m`` is beside the file, ``..m`` one folder up
        bases = [here.parents[levels - 1] if levels else here] if levels <= len(here.parents) else []
    else:
        bases = [here, *here.parents]
    found: list[str] = []
    for base in bases:
        path = base.joinpath(*parts)
        for candidate in (path.with_suffix(".py"), path / "__init__.py"):
            if candidate.is_file():
                found.append(str(candidate))
    return found
