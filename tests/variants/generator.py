"""Variants of every positive fixture that keep its meaning, each with its recorded break moved along.

A fixture's break is a stack of frames (file, line, function). The generator marks the statement
of each frame with a trailing comment (``# bfv:N``), transforms the modules with LibCST (the marks
travel with the statements they sit on), reads where each mark ended up, and strips the marks:
the variant's stack is the marks' new lines, plus the frames a transformation adds (a call of the
helper a statement moved into, with its own mark). A transformation that cannot apply to a
fixture raises ``NotApplicable`` with the reason, and no variant is made.

Transformations (``TRANSFORMATIONS``):

- ``rename_target``, ``rename_site_function``, ``rename_locals``: rename the target (its class
  for a method target, in inputs.py too), the function of the break when it is not the target,
  the locals of the function of the break;
- ``helper_depth_1..3``: the breaking statement moves into a helper of the same file, called
  1, 2 or 3 calls deep (the names it reads become parameters, the names it binds that are read
  elsewhere are returned);
- ``method``: into a method (of the same class for a method, else of a new class with a
  module-level instance); ``child_module``: into the ``forward`` of an ``nn.Module`` whose
  instance is module-level; ``other_file``: into a helper of a second module ``steps.py``
  that before.py imports;
- ``local_to_attribute``: a local the breaking statement reads becomes ``self.<name>``;
  ``local_to_parameter``: the rest of the function from the breaking statement on moves into a
  helper that receives the function's locals as parameters;
- ``drop_else`` / ``add_else``: the ``if`` at or around the break loses / gains its ``else``
  (an ``if`` that exits takes the statements after it as its ``else``, or gives them back; an
  ``else`` that only assigns what the ``if`` assigns is hoisted before it; else ``else: pass``);
- ``loop_body``: the breaking statement runs in the body of ``for _ in range(1):``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import libcst as cst
import libcst.matchers as m
from libcst.metadata import MetadataWrapper, PositionProvider

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from breakfix.codemods._base import fresh_name, insert_top_level, names_in

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MARK = "bfv:"
_MARK_IN_COMMENT = re.compile(r"\s*# bfv:\d+")
OTHER_MODULE = "steps"
Statement = cst.SimpleStatementLine | cst.BaseCompoundStatement


class NotApplicable(Exception):
    """The transformation does not apply to this fixture; the message says why."""


# --- fixtures -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    folder: Path
    spec: dict

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def family(self) -> str:
        return self.folder.parent.name

    @property
    def code(self) -> str:
        return self.spec["code"]

    @property
    def first_break(self) -> dict:
        """The break the codemod is asked to fix first (a multi-round case's later breaks are in
        code the first fix wrote)."""
        return self.spec["breaks"][0]


def positive_fixtures() -> list[Fixture]:
    cases = [Fixture(p.parent, tomllib.loads(p.read_text())) for p in sorted(FIXTURES.glob("*/*/case.toml"))]
    return [c for c in cases if c.spec["kind"] == "positive"]


# --- projects with marked frames ------------------------------------------------------------------


@dataclass(frozen=True)
class FrameRef:
    """A frame of the break: the statement carrying mark ``mark`` in ``file``; the frame's line is
    the mark's line minus ``offset`` (a mark sits at the end of a statement's first line for a
    compound statement, at the end of its last line for a simple one)."""

    file: str
    mark: int
    offset: int
    function: str


@dataclass(frozen=True)
class Project:
    modules: dict[str, cst.Module]  # file name -> module (with marks)
    target: str
    stack: tuple[FrameRef, ...]
    facts: dict
    next_mark: int

    def site_module(self) -> cst.Module:
        return self.modules[self.stack[-1].file]

    def with_module(self, name: str, module: cst.Module, **changes) -> Project:
        return replace(self, modules={**self.modules, name: module}, **changes)


@dataclass(frozen=True)
class Variant:
    fixture: Fixture
    transformation: str
    files: dict[str, str]  # file name -> source
    target: str
    stack: tuple[tuple[str, int, str], ...]  # (file, line, function), outermost first
    facts: dict

    @property
    def id(self) -> str:
        return f"{self.fixture.id}:{self.transformation}"

    def materialize(self, folder: Path) -> Path:
        """The variant as a project in ``folder``: the fixture's files but after.py and case.toml
        (a library folder such as site-packages comes along), then the variant's files."""
        import shutil

        shutil.copytree(
            self.fixture.folder,
            folder,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("after.py", "case.toml", "__pycache__"),
        )
        for name, code in self.files.items():
            (folder / name).write_text(code)
        return folder


def _markable(node: cst.CSTNode) -> bool:
    return isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement))


def _with_mark(statement: Statement, mark: int) -> Statement:
    def add(trailing: cst.TrailingWhitespace) -> cst.TrailingWhitespace:
        if trailing.comment is None:
            return trailing.with_changes(whitespace=cst.SimpleWhitespace("  "), comment=cst.Comment(f"# {MARK}{mark}"))
        return trailing.with_changes(comment=cst.Comment(f"{trailing.comment.value}  # {MARK}{mark}"))

    if isinstance(statement, cst.SimpleStatementLine):
        return statement.with_changes(trailing_whitespace=add(statement.trailing_whitespace))
    body = statement.body
    if isinstance(body, cst.IndentedBlock):
        return statement.with_changes(body=body.with_changes(header=add(body.header)))
    return statement.with_changes(body=body.with_changes(trailing_whitespace=add(body.trailing_whitespace)))


def _marks_of(statement: cst.CSTNode) -> list[int]:
    if isinstance(statement, cst.SimpleStatementLine):
        trailing = statement.trailing_whitespace
    elif isinstance(statement, cst.BaseCompoundStatement):
        body = statement.body
        trailing = body.header if isinstance(body, cst.IndentedBlock) else body.trailing_whitespace
    else:
        return []
    return [int(n) for n in re.findall(rf"{MARK}(\d+)", trailing.comment.value)] if trailing.comment else []


class _Unmark(cst.CSTTransformer):
    def leave_TrailingWhitespace(
        self, original: cst.TrailingWhitespace, updated: cst.TrailingWhitespace
    ) -> cst.TrailingWhitespace:
        if updated.comment is None or MARK not in updated.comment.value:
            return updated
        rest = _MARK_IN_COMMENT.sub("", updated.comment.value)
        if not rest:
            return updated.with_changes(whitespace=cst.SimpleWhitespace(""), comment=None)
        return updated.with_changes(comment=cst.Comment(rest))


class _Replace(cst.CSTTransformer):
    """Replaces nodes by identity (a node of the tree being transformed -> its replacement)."""

    def __init__(self, replacements: dict[int, Callable[[cst.CSTNode], cst.CSTNode | cst.FlattenSentinel]]) -> None:
        super().__init__()
        self.replacements = replacements

    def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode):
        build = self.replacements.get(id(original))
        return build(updated) if build else updated


def _mark_lines(code: str) -> dict[int, int]:
    return {int(n): i for i, line in enumerate(code.splitlines(), start=1) for n in re.findall(rf"{MARK}(\d+)", line)}


def _statement_at(module: cst.Module, line: int) -> Statement:
    """The innermost statement spanning ``line`` (a compound statement when it is its header)."""
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    spanning = [
        (p.start.line, -p.end.line, id(n), n)
        for n, p in positions.items()
        if _markable(n) and p.start.line <= line <= p.end.line
    ]
    if not spanning:
        raise LookupError(f"no statement at line {line}")
    return max(spanning, key=lambda s: s[:2])[3]


def base_project(fixture: Fixture) -> Project:
    """The fixture's before.py with each frame's statement marked, and its inputs.py."""
    before = cst.parse_module((fixture.folder / "before.py").read_text())
    inputs = cst.parse_module((fixture.folder / "inputs.py").read_text())
    marks: dict[int, int] = {}
    frames = []
    for mark, item in enumerate(fixture.first_break["stack"]):
        name, line, function = item.split(":")
        if name != "before.py":
            raise ValueError(f"{fixture.id}: a frame outside before.py ({item})")
        statement = _statement_at(before, int(line))
        if id(statement) in marks:
            raise ValueError(f"{fixture.id}: two frames on one statement")
        marks[id(statement)] = mark
        frames.append((mark, int(line), function))
    marked = before.visit(_Replace({key: (lambda node, n=n: _with_mark(node, n)) for key, n in marks.items()}))
    lines = _mark_lines(marked.code)
    stack = tuple(FrameRef("before.py", mark, lines[mark] - line, function) for mark, line, function in frames)
    facts = json.loads(fixture.first_break.get("facts", "{}"))
    return Project({"before.py": marked, "inputs.py": inputs}, fixture.spec["target"], stack, facts, len(frames))


def finish(fixture: Fixture, transformation: str, project: Project) -> Variant:
    """The variant: marks read off and stripped; every file must still compile."""
    stack = []
    lines = {name: _mark_lines(module.code) for name, module in project.modules.items()}
    for ref in project.stack:
        stack.append((ref.file, lines[ref.file][ref.mark] - ref.offset, ref.function))
    files = {}
    for name, module in project.modules.items():
        code = module.visit(_Unmark()).code
        if code.count("\n") != module.code.count("\n") or MARK in code:
            raise AssertionError(f"{fixture.id}:{transformation}: stripping the marks moved lines in {name}")
        compile(code, name, "exec", dont_inherit=True)
        files[name] = code
    return Variant(fixture, transformation, files, project.target, tuple(stack), project.facts)


# --- where the break is -------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """The statement of the innermost frame and what holds it."""

    statement: Statement
    ancestors: tuple[cst.CSTNode, ...]  # module first, the statement's parent last

    @property
    def function(self) -> cst.FunctionDef:
        return next(n for n in reversed(self.ancestors) if isinstance(n, cst.FunctionDef))

    @property
    def owner(self) -> cst.ClassDef | None:
        """The class the function is a method of, if any."""
        index = self.ancestors.index(self.function)
        parent = self.ancestors[index - 2] if index >= 2 else None
        return parent if isinstance(parent, cst.ClassDef) else None

    @property
    def top(self) -> cst.CSTNode:
        """The module-level statement holding the function."""
        return self.ancestors[1]

    def enclosing(self, kind: type) -> list[cst.CSTNode]:
        """Ancestors of that type inside the function, innermost first."""
        index = self.ancestors.index(self.function)
        return [n for n in reversed(self.ancestors[index + 1 :]) if isinstance(n, kind)]

    def top_level_statement(self) -> cst.CSTNode:
        """The statement of the function's own body holding the site."""
        index = self.ancestors.index(self.function)
        chain = [*self.ancestors[index + 2 :], self.statement]  # past the function and its IndentedBlock
        return chain[0]


class _FindMark(cst.CSTVisitor):
    def __init__(self, mark: int) -> None:
        super().__init__()
        self.mark = mark
        self.path: list[cst.CSTNode] = []
        self.found: Site | None = None

    def on_visit(self, node: cst.CSTNode) -> bool:
        if _markable(node) and self.mark in _marks_of(node) and self.found is None:
            self.found = Site(node, tuple(self.path))
        self.path.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.path.pop()


def find_site(project: Project, index: int = -1) -> Site:
    ref = project.stack[index]
    finder = _FindMark(ref.mark)
    project.modules[ref.file].visit(finder)
    if finder.found is None:
        raise AssertionError(f"mark {ref.mark} lost")
    return finder.found


# --- names --------------------------------------------------------------------------------------


def parameters(function: cst.FunctionDef) -> list[str]:
    p = function.params
    names = [x.name.value for x in (*p.posonly_params, *p.params)]
    names += [x.name.value for x in (p.star_arg, p.star_kwarg) if isinstance(x, cst.Param)]
    return names + [x.name.value for x in p.kwonly_params]


def _target_names(target: cst.BaseExpression) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _target_names(e.value)]
    if isinstance(target, cst.StarredElement):
        return _target_names(target.value)
    return []


@dataclass
class Scope:
    """Names bound and mentioned in a function body before, inside and after a region of it."""

    bound: dict[str, dict[str, None]] = field(default_factory=lambda: {"before": {}, "inside": {}, "after": {}})
    mentioned: dict[str, dict[str, None]] = field(default_factory=lambda: {"before": {}, "inside": {}, "after": {}})
    declared_global: set[str] = field(default_factory=set)
    unusual: set[str] = field(default_factory=set)  # bound by import, def, class, walrus or `except ... as`


class _ScopeVisitor(cst.CSTVisitor):
    def __init__(self, region: Iterable[cst.CSTNode]) -> None:
        super().__init__()
        self.region = {id(n) for n in region}
        self.phase = "before"
        self.nested = 0
        self.skip: set[int] = set()
        self.scope = Scope()

    def on_visit(self, node: cst.CSTNode) -> bool:
        if id(node) in self.region:
            self.phase = "inside"
        return super().on_visit(node)

    def on_leave(self, original_node: cst.CSTNode) -> None:
        super().on_leave(original_node)
        if id(original_node) in self.region:
            self.phase = "after"

    def _bind(self, names: Iterable[str], unusual: bool = False) -> None:
        if self.nested:
            return
        for name in names:
            self.scope.bound[self.phase][name] = None
            if unusual:
                self.scope.unusual.add(name)

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._bind(_target_names(target.target))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind(_target_names(node.target))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._bind(_target_names(node.target))

    def visit_For(self, node: cst.For) -> None:
        self._bind(_target_names(node.target))

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._bind(_target_names(node.asname.name))

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        if node.name is not None:
            self._bind(_target_names(node.name.name), unusual=True)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind(_target_names(node.target), unusual=True)

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        name = node.asname.name if node.asname else node.name
        self._bind([cst.Module([]).code_for_node(name).split(".")[0]], unusual=True)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._bind([node.name.value], unusual=True)
        self.skip.add(id(node.name))
        self.nested += 1

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.nested -= 1

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._bind([node.name.value], unusual=True)
        self.skip.add(id(node.name))
        self.nested += 1

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.nested -= 1

    def visit_Global(self, node: cst.Global) -> None:
        self.scope.declared_global |= {n.name.value for n in node.names}

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        self.scope.declared_global |= {n.name.value for n in node.names}

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.skip.add(id(node.attr))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.skip.add(id(node.keyword))

    def visit_Name(self, node: cst.Name) -> None:
        if id(node) not in self.skip:
            self.scope.mentioned[self.phase][node.value] = None


def scope_of(function: cst.FunctionDef, region: Iterable[cst.CSTNode]) -> Scope:
    visitor = _ScopeVisitor(region)
    function.body.visit(visitor)
    return visitor.scope


class _Escapes(cst.CSTVisitor):
    """What in a statement leaves it other than by falling through: return, yield, loop exits."""

    def __init__(self) -> None:
        super().__init__()
        self.loops = 0
        self.nested = 0
        self.found: set[str] = set()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.nested += 1

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.nested -= 1

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self.nested += 1

    def leave_Lambda(self, original_node: cst.Lambda) -> None:
        self.nested -= 1

    def visit_For(self, node: cst.For) -> None:
        self.loops += 1

    def leave_For(self, original_node: cst.For) -> None:
        self.loops -= 1

    def visit_While(self, node: cst.While) -> None:
        self.loops += 1

    def leave_While(self, original_node: cst.While) -> None:
        self.loops -= 1

    def visit_Return(self, node: cst.Return) -> None:
        if not self.nested:
            self.found.add("return")

    def visit_Yield(self, node: cst.Yield) -> None:
        if not self.nested:
            self.found.add("yield")

    def visit_Await(self, node: cst.Await) -> None:
        if not self.nested:
            self.found.add("await")

    def visit_Continue(self, node: cst.Continue) -> None:
        if not self.loops and not self.nested:
            self.found.add("continue")

    def visit_Break(self, node: cst.Break) -> None:
        if not self.loops and not self.nested:
            self.found.add("break")

    def visit_Call(self, node: cst.Call) -> None:
        if m.matches(node, m.Call(func=m.Name("super"), args=[])):
            self.found.add("super()")

    def visit_Global(self, node: cst.Global) -> None:
        self.found.add("global")

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        self.found.add("nonlocal")


def escapes(node: cst.CSTNode) -> set[str]:
    visitor = _Escapes()
    node.visit(visitor)
    return visitor.found


def _block_statements(block: cst.BaseSuite) -> list[cst.CSTNode]:
    return list(block.body) if isinstance(block, cst.IndentedBlock) else [cst.SimpleStatementLine(list(block.body))]


def definitely_bound(statements: Iterable[cst.CSTNode]) -> set[str]:
    """Names every path through these statements binds (assignments, both sides of an if/else)."""
    names: set[str] = set()
    for statement in statements:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, cst.Assign):
                    names |= {n for t in small.targets for n in _target_names(t.target)}
                elif isinstance(small, (cst.AnnAssign, cst.AugAssign)) and getattr(small, "value", None) is not None:
                    names |= set(_target_names(small.target))
        elif isinstance(statement, cst.If) and statement.orelse is not None:
            other = statement.orelse
            other_names = definitely_bound([other] if isinstance(other, cst.If) else _block_statements(other.body))
            names |= definitely_bound(_block_statements(statement.body)) & other_names
        elif isinstance(statement, cst.With):
            names |= definitely_bound(_block_statements(statement.body))
    return names


def _exits(block: cst.BaseSuite) -> bool:
    """Whether the block always ends in return, raise, continue or break."""
    last = _block_statements(block)[-1]
    return isinstance(last, cst.SimpleStatementLine) and isinstance(
        last.body[-1], (cst.Return, cst.Raise, cst.Continue, cst.Break)
    )


class _RenameNames(cst.CSTTransformer):
    """Renames variables (not attributes, not keywords) inside ``within`` (every node when None);
    ``to_attribute`` turns them into ``self.<name>`` instead."""

    def __init__(self, mapping: dict[str, str], within: cst.CSTNode | None = None, to_attribute: bool = False) -> None:
        super().__init__()
        self.mapping = mapping
        self.within = within
        self.inside = within is None
        self.to_attribute = to_attribute
        self.scopes: list[str] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if node is self.within:
            self.inside = True
        return super().on_visit(node)

    def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode):
        result = super().on_leave(original, updated)
        if original is self.within:
            self.inside = False
        return result

    def leave_Name(self, original: cst.Name, updated: cst.Name):
        if not self.inside or original.value not in self.mapping:
            return updated
        new = self.mapping[original.value]
        return cst.Attribute(cst.Name("self"), cst.Name(new)) if self.to_attribute else updated.with_changes(value=new)

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.Attribute:
        return updated.with_changes(attr=original.attr)

    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        return updated.with_changes(keyword=original.keyword)

    def leave_Param(self, original: cst.Param, updated: cst.Param) -> cst.Param:
        return updated.with_changes(name=original.name)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.scopes.append("class")

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self.scopes.pop()
        return updated

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scopes.append("function")

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self.scopes.pop()
        # a method's name is an attribute of its class, not a variable
        return updated.with_changes(name=original.name) if self.scopes[-1:] == ["class"] else updated


def _rename_facts(facts: dict, old: str, new: str) -> dict:
    facts = copy.deepcopy(facts)
    op = facts.get("opaque_op")
    if isinstance(op, dict) and op.get("helper") == old:
        op["helper"] = new
        op["op_name"] = op.get("op_name", "").replace(f"_{old}", f"_{new}")
    return facts


def _taken(project: Project) -> set[str]:
    return set().union(*(names_in(module) for module in project.modules.values()))


def _locally_bound(module: cst.Module) -> set[str]:
    names: set[str] = set()
    for function in m.findall(module, m.FunctionDef()):
        names |= set(parameters(function))
        scope = scope_of(function, [])
        names |= set(scope.bound["before"])
    return names


# --- transformations: renames -------------------------------------------------------------------


def _rename_global(project: Project, file: str, old: str, new: str) -> Project:
    """``old`` -> ``new`` at module level of ``file``, in inputs.py's ``before.<old>`` too."""
    module = project.modules[file]
    if old in _locally_bound(module):
        raise NotApplicable(f"{old} is also a local or parameter name in {file}")
    renamed = module.visit(_RenameNames({old: new}))
    project = project.with_module(file, renamed)
    if file == "before.py":
        inputs = project.modules["inputs.py"]
        inputs = inputs.visit(
            _Replace(
                {
                    id(a): (lambda node: node.with_changes(attr=cst.Name(new)))
                    for a in m.findall(inputs, m.Attribute(value=m.Name("before"), attr=m.Name(old)))
                }
            )
        )
        if m.findall(inputs, m.ImportFrom(module=m.Name("before"))):  # ``from before import <old>``
            inputs = inputs.visit(_RenameNames({old: new}))
        project = project.with_module("inputs.py", inputs)
    return project


def rename_target(project: Project) -> Project:
    owner, _, method = project.target.rpartition(".")
    if owner:
        if "." in owner:
            raise NotApplicable("the target is a method of a nested class")
        new = fresh_name(f"My{owner}", _taken(project))
        project = _rename_global(project, "before.py", owner, new)
        return replace(project, target=f"{new}.{method}")
    new = fresh_name(f"my_{method}", _taken(project))
    project = _rename_global(project, "before.py", method, new)
    stack = tuple(
        replace(f, function=new) if f.file == "before.py" and f.function == method else f for f in project.stack
    )
    return replace(project, target=new, stack=stack, facts=_rename_facts(project.facts, method, new))


def rename_site_function(project: Project) -> Project:
    if len(project.stack) == 1:
        raise NotApplicable("the break is in the target itself (rename_target renames it)")
    site = find_site(project)
    function = site.function
    old = function.name.value
    if old.startswith("__") or old == "forward":
        raise NotApplicable(f"{old} is called by Python or nn.Module.__call__ under that name")
    new = fresh_name(f"{old}_renamed", _taken(project))
    file = project.stack[-1].file
    if site.owner is None:
        if site.top is not function:
            raise NotApplicable("the function of the break is nested in another function")
        project = _rename_global(project, file, old, new)
    else:
        module = project.modules[file]
        uses = m.findall(site.owner, m.Attribute(value=m.Name("self"), attr=m.Name(old)))
        replacements = {id(a): (lambda node: node.with_changes(attr=cst.Name(new))) for a in uses}
        replacements[id(function.name)] = lambda node: node.with_changes(value=new)
        project = project.with_module(file, module.visit(_Replace(replacements)))
    stack = tuple(replace(f, function=new) if f.file == file and f.function == old else f for f in project.stack)
    return replace(project, stack=stack, facts=_rename_facts(project.facts, old, new))


def rename_locals(project: Project) -> Project:
    site = find_site(project)
    function = site.function
    scope = scope_of(function, [])
    params = set(parameters(function))
    local = [n for n in scope.bound["before"] if n not in params | scope.declared_global | scope.unusual]
    if not local:
        raise NotApplicable("the function of the break has no local variables")
    taken = _taken(project)
    mapping = {}
    for name in local:
        mapping[name] = fresh_name(f"{name}_v", taken)
        taken.add(mapping[name])
    file = project.stack[-1].file
    return project.with_module(file, project.modules[file].visit(_RenameNames(mapping, within=function)))


# --- transformations: moving the breaking statement ---------------------------------------------


@dataclass(frozen=True)
class Extraction:
    """How the breaking statement becomes a call: what it reads, what it binds for the rest."""

    arguments: list[str]
    results: list[str]
    returns: bool  # the statement is ``return ...``

    def call_statement(self, call: str) -> cst.SimpleStatementLine:
        if self.returns:
            return cst.parse_statement(f"return {call}\n")
        if self.results:
            return cst.parse_statement(f"{', '.join(self.results)} = {call}\n")
        return cst.parse_statement(f"{call}\n")

    def body(self, statement: Statement) -> list[cst.BaseStatement]:
        tail = [] if self.returns or not self.results else [cst.parse_statement(f"return {', '.join(self.results)}\n")]
        return [statement.with_changes(leading_lines=[]), *tail]


def plan_extraction(site: Site, region: list[cst.CSTNode] | None = None) -> Extraction:
    """What moving ``region`` (the breaking statement by default) out of its function needs."""
    region = region or [site.statement]
    function = site.function
    for statement in region:
        left = escapes(statement)
        is_return = m.matches(statement, m.SimpleStatementLine(body=[m.Return()]))
        # The rest of a function is called as `return helper(...)`, and a lone `return x` becomes
        # `return helper(...)`: their returns stay returns. A return inside a lone block would
        # return from the helper only.
        if "return" in left and not is_return and len(region) == 1:
            raise NotApplicable("the statement returns from inside a block")
        left -= {"return"}
        for what in ("yield", "await", "continue", "break", "super()", "global", "nonlocal"):
            if what in left:
                raise NotApplicable(f"the statement uses {what}")
    scope = scope_of(function, region)
    if set(scope.bound["inside"]) & scope.declared_global:
        raise NotApplicable("the statement rebinds a global")
    bound_before = set(parameters(function)) | set(scope.bound["before"])
    arguments = [n for n in scope.mentioned["inside"] if n in bound_before and n not in scope.declared_global]
    if "self" in arguments:
        arguments = ["self", *(a for a in arguments if a != "self")]
    read_elsewhere = set(scope.mentioned["before"]) | set(scope.mentioned["after"])
    results = [n for n in scope.bound["inside"] if n in read_elsewhere and n not in scope.declared_global]
    definite = definitely_bound(region)
    for name in results:
        if name not in definite and name not in bound_before:
            raise NotApplicable(f"the statement may leave {name} unbound")
    returns = len(region) == 1 and m.matches(region[0], m.SimpleStatementLine(body=[m.Return()]))
    if len(region) > 1:  # the rest of a function: whatever it returns is returned
        return Extraction(arguments, [], True)
    return Extraction(arguments, results, returns)


def _module_bindings(module: cst.Module) -> dict[str, str]:
    """Module-level names of ``module`` -> "import" or "other"."""
    names: dict[str, str] = {}
    for statement in module.body:
        if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
            names[statement.name.value] = "other"
        elif isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(small.names, cst.ImportStar):
                    for alias in small.names:
                        name = alias.asname.name if alias.asname else alias.name
                        names[cst.Module([]).code_for_node(name).split(".")[0]] = "import"
                elif isinstance(small, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
                    targets = small.targets if isinstance(small, cst.Assign) else [small]
                    for target in targets:
                        names.update({n: "other" for n in _target_names(target.target)})
    return names


def _prelude_end(module: cst.Module) -> int:
    """Index after the last import that comes before the first def or class."""
    end = 0
    for index, statement in enumerate(module.body):
        if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
            break
        if m.matches(statement, m.SimpleStatementLine(body=[m.OneOf(m.Import(), m.ImportFrom())])):
            end = index + 1
    return end


def _imports_torch(module: cst.Module) -> bool:
    return bool(m.findall(module, m.Import(names=[m.ImportAlias(name=m.Name("torch"), asname=None)])))


def _self_to_owner(statement: Statement) -> Statement:
    return statement.visit(_RenameNames({"self": "owner"}))


def extract(project: Project, how: str, depth: int = 1) -> Project:
    """Move the breaking statement into a helper (``how``: function, method, module, file)."""
    site = find_site(project)
    plan = plan_extraction(site)
    function, statement = site.function, site.statement
    file = project.stack[-1].file
    module = project.modules[file]
    taken = _taken(project)
    base = function.name.value.strip("_") or "helper"
    site_ref = project.stack[-1]
    mark = project.next_mark
    stack = list(project.stack[:-1])
    top_level: list[cst.BaseStatement] = []  # new module-level statements, in order
    class_methods: list[cst.FunctionDef] = []  # new methods of the function's own class

    if how in ("function", "file"):
        names = [fresh_name(f"{base}_{suffix}", taken) for suffix in ("part", "inner", "core")[:depth]]
        arguments = ", ".join(plan.arguments)
        call = f"{names[0]}({arguments})"
        stack.append(FrameRef(file, mark, 0, function.name.value))
        helper_file = f"{OTHER_MODULE}.py" if how == "file" else file
        for index, name in enumerate(names):
            if index + 1 < len(names):
                chained = f"{names[index + 1]}({arguments})"
                body = [_with_mark(cst.parse_statement(f"return {chained}\n"), mark + 1 + index)]
                stack.append(FrameRef(helper_file, mark + 1 + index, 0, name))
            else:
                body = plan.body(statement)
                stack.append(replace(site_ref, file=helper_file, function=name))
            helper = cst.parse_statement(f"def {name}({arguments}):\n    pass\n")
            top_level.append(helper.with_changes(body=helper.body.with_changes(body=body)))
        next_mark = mark + len(names)
    elif how == "method" and site.owner is not None and parameters(function)[:1] == ["self"]:
        name = fresh_name(f"{base}_part", taken)
        arguments = [a for a in plan.arguments if a != "self"]
        call = f"self.{name}({', '.join(arguments)})"
        helper = cst.parse_statement(f"def {name}({', '.join(['self', *arguments])}):\n    pass\n")
        class_methods.append(
            helper.with_changes(
                body=helper.body.with_changes(body=plan.body(statement)), leading_lines=[cst.EmptyLine(indent=False)]
            )
        )
        stack += [FrameRef(file, mark, 0, function.name.value), replace(site_ref, function=name)]
        next_mark = mark + 1
    elif how in ("method", "module"):
        if "owner" in plan.arguments:
            raise NotApplicable("the statement already reads a name `owner`")
        if how == "module" and not _imports_torch(module):
            raise NotApplicable("the module does not `import torch` (the child module subclasses torch.nn.Module)")
        arguments = ["owner" if a == "self" else a for a in plan.arguments]
        class_name = fresh_name("Steps" if how == "method" else f"{base.title().replace('_', '')}Block", taken)
        instance = fresh_name("steps" if how == "method" else f"{base}_block", taken)
        method = "run" if how == "method" else "forward"
        passed = ", ".join(plan.arguments)  # the caller passes self, the helper calls it owner
        call = f"{instance}.run({passed})" if how == "method" else f"{instance}({passed})"
        base_class = "" if how == "method" else "(torch.nn.Module)"
        cls = cst.parse_statement(
            f"class {class_name}{base_class}:\n    def {method}(self, {', '.join(arguments)}):\n        pass\n"
        )
        method_def = cls.body.body[0]
        method_def = method_def.with_changes(
            body=method_def.body.with_changes(
                body=plan.body(_self_to_owner(statement) if "self" in plan.arguments else statement)
            )
        )
        top_level += [
            cls.with_changes(body=cls.body.with_changes(body=[method_def])),
            cst.parse_statement(f"{instance} = {class_name}()\n"),
        ]
        stack += [FrameRef(file, mark, 0, function.name.value), replace(site_ref, function=method)]
        next_mark = mark + 1
    else:
        raise ValueError(how)

    if how == "file":
        bindings = _module_bindings(module)
        foreign = [n for n in names_in(statement) if bindings.get(n) == "other" and n not in plan.arguments]
        if foreign:
            raise NotApplicable(f"the statement reads {', '.join(sorted(foreign))}, defined in {file}")

    caller = _with_mark(plan.call_statement(call).with_changes(leading_lines=statement.leading_lines), mark)
    replacements = {id(statement): lambda node: caller}
    if class_methods:
        owner = site.owner

        def add_methods(node: cst.ClassDef) -> cst.ClassDef:
            body = list(node.body.body)
            at = next(i for i, s in enumerate(owner.body.body) if s is function)
            return node.with_changes(body=node.body.with_changes(body=[*body[:at], *class_methods, *body[at:]]))

        replacements[id(owner)] = add_methods
    new_module = module.visit(_Replace(replacements))
    body = list(new_module.body)
    at = next(i for i, s in enumerate(module.body) if s is site.top)
    if how == "file":
        prelude = [
            s.with_changes(leading_lines=[]) if i == 0 else s
            for i, s in enumerate(module.body[: _prelude_end(module)])
            if not m.matches(s, m.SimpleStatementLine(body=[m.Expr(m.SimpleString())]))
        ]
        other = cst.Module(body=[])
        other_body = list(prelude)
        for statement_ in top_level:
            other_body = insert_top_level(other_body, len(other_body), statement_)
        modules = {f"{OTHER_MODULE}.py": other.with_changes(body=other_body)}
        import_at = _prelude_end(module)
        body = insert_top_level(body, import_at, cst.parse_statement(f"from {OTHER_MODULE} import {names[0]}\n"))
        body[import_at] = body[import_at].with_changes(leading_lines=[cst.EmptyLine()] if import_at else [])
    else:
        modules = {}
        for statement_ in reversed(top_level):
            body = insert_top_level(body, at, statement_)
        if top_level and len(top_level) == 2 and how in ("method", "module"):
            # the instance right below its class
            body[at + 1] = body[at + 1].with_changes(leading_lines=[cst.EmptyLine()])
    project = project.with_module(file, new_module.with_changes(body=body), stack=tuple(stack), next_mark=next_mark + 1)
    for name, other_module in modules.items():
        project = project.with_module(name, other_module)
    return project


def local_to_parameter(project: Project) -> Project:
    """The rest of the function, from the top-level statement of the break on, becomes a helper
    whose parameters are the function's locals (and parameters) it reads."""
    site = find_site(project)
    function = site.function
    statements = list(function.body.body)
    first = site.top_level_statement()
    index = next(i for i, s in enumerate(statements) if s is first)
    region = statements[index:]
    plan = plan_extraction(site, region)
    params = set(parameters(function))
    if not [a for a in plan.arguments if a not in params]:
        raise NotApplicable("no local of the function is read at or after the break")
    if escapes(function) & {"yield", "await", "global", "nonlocal"}:
        raise NotApplicable("the function is a generator or declares globals")
    file = project.stack[-1].file
    module = project.modules[file]
    name = fresh_name(f"{function.name.value.strip('_') or 'helper'}_rest", _taken(project))
    arguments = ", ".join(plan.arguments)
    mark = project.next_mark
    caller = _with_mark(
        cst.parse_statement(f"return {name}({arguments})\n").with_changes(leading_lines=region[0].leading_lines), mark
    )
    helper = cst.parse_statement(f"def {name}({arguments}):\n    pass\n")
    moved = [region[0].with_changes(leading_lines=[]), *region[1:]]
    helper = helper.with_changes(body=helper.body.with_changes(body=moved))

    def cut(node: cst.FunctionDef) -> cst.FunctionDef:
        return node.with_changes(body=node.body.with_changes(body=[*node.body.body[:index], caller]))

    new_module = module.visit(_Replace({id(function): cut}))
    at = next(i for i, s in enumerate(module.body) if s is site.top)
    body = insert_top_level(list(new_module.body), at, helper)
    site_ref = project.stack[-1]
    stack = (*project.stack[:-1], FrameRef(file, mark, 0, function.name.value), replace(site_ref, function=name))
    return project.with_module(file, new_module.with_changes(body=body), stack=stack, next_mark=mark + 1)


def local_to_attribute(project: Project) -> Project:
    site = find_site(project)
    function = site.function
    if site.owner is None or parameters(function)[:1] != ["self"]:
        raise NotApplicable("the function of the break is not a method")
    scope = scope_of(function, [site.statement])
    params = set(parameters(function))
    used = {a.attr.value for a in m.findall(site.owner, m.Attribute(value=m.Name("self")))}
    candidates = [
        n
        for n in scope.bound["before"]
        if n in scope.mentioned["inside"] and n not in params | scope.declared_global | scope.unusual | used
    ]
    if not candidates:
        raise NotApplicable("no local bound before the break is read by the breaking statement")
    file = project.stack[-1].file
    attribute = _RenameNames({candidates[0]: candidates[0]}, within=function, to_attribute=True)
    renamed = project.modules[file].visit(attribute)
    return project.with_module(file, renamed)


# --- transformations: statement forms -----------------------------------------------------------


def _the_if(site: Site) -> cst.If:
    if isinstance(site.statement, cst.If):
        return site.statement
    enclosing = site.enclosing(cst.If)
    if not enclosing:
        raise NotApplicable("no if at or around the break")
    return enclosing[0]


def _is_elif(site: Site, node: cst.If) -> bool:
    return any(isinstance(a, cst.If) and a.orelse is node for a in site.ancestors)


def _replace_in_block(
    project: Project, node: cst.CSTNode, rebuild: Callable[[list[cst.BaseStatement], int], list[cst.BaseStatement]]
) -> Project:
    """Rebuild the statement list of the block holding ``node`` (``rebuild(statements, index)``)."""
    file = project.stack[-1].file
    module = project.modules[file]
    blocks = [b for b in m.findall(module, m.IndentedBlock()) if any(s is node for s in b.body)]
    if len(blocks) != 1:
        raise NotApplicable("the if is not in an indented block")
    block = blocks[0]
    index = next(i for i, s in enumerate(block.body) if s is node)
    new = module.visit(_Replace({id(block): lambda b: b.with_changes(body=rebuild(list(b.body), index))}))
    return project.with_module(file, new)


def drop_else(project: Project) -> Project:
    site = find_site(project)
    node = _the_if(site)
    if node.orelse is None:
        raise NotApplicable("the if at the break has no else")
    if isinstance(node.orelse, cst.If) or _is_elif(site, node):
        raise NotApplicable("the if is part of an elif chain")
    if not isinstance(node.orelse.body, cst.IndentedBlock):
        raise NotApplicable("the else is on one line")
    other = list(node.orelse.body.body)
    if _exits(node.body):

        def rebuild(statements, index):
            return [
                *statements[:index],
                statements[index].with_changes(orelse=None),
                *(s.with_changes(leading_lines=[]) if i == 0 else s for i, s in enumerate(other)),
                *statements[index + 1 :],
            ]

        return _replace_in_block(project, node, rebuild)
    assigned = definitely_bound(_block_statements(node.body))
    plain = all(m.matches(s, m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(m.Name())])])) for s in other)
    if not plain or not {s.body[0].targets[0].target.value for s in other} <= assigned:
        raise NotApplicable("the else does more than assign names the if also assigns, and the if does not exit")

    def hoist(statements, index):
        current = statements[index]
        moved = [s.with_changes(leading_lines=current.leading_lines if i == 0 else []) for i, s in enumerate(other)]
        return [
            *statements[:index],
            *moved,
            current.with_changes(orelse=None, leading_lines=[]),
            *statements[index + 1 :],
        ]

    return _replace_in_block(project, node, hoist)


def add_else(project: Project) -> Project:
    site = find_site(project)
    node = _the_if(site)
    if node.orelse is not None:
        raise NotApplicable("the if at the break already has an else")

    def rebuild(statements, index):
        following = statements[index + 1 :]
        if _exits(node.body) and following:
            moved = [s.with_changes(leading_lines=[]) if i == 0 else s for i, s in enumerate(following)]
            return [*statements[:index], statements[index].with_changes(orelse=cst.Else(cst.IndentedBlock(moved)))]
        return [
            *statements[:index],
            statements[index].with_changes(orelse=cst.Else(cst.IndentedBlock([cst.SimpleStatementLine([cst.Pass()])]))),
            *following,
        ]

    return _replace_in_block(project, node, rebuild)


def loop_body(project: Project) -> Project:
    site = find_site(project)
    statement = site.statement
    if escapes(statement) & {"continue", "break"}:
        raise NotApplicable("the statement continues or breaks an enclosing loop")
    variable = fresh_name("_", set(names_in(site.function)))
    loop = cst.parse_statement(f"for {variable} in range(1):\n    pass\n")
    loop = loop.with_changes(
        leading_lines=statement.leading_lines,
        body=loop.body.with_changes(body=[statement.with_changes(leading_lines=[])]),
    )
    file = project.stack[-1].file
    return project.with_module(file, project.modules[file].visit(_Replace({id(statement): lambda node: loop})))


TRANSFORMATIONS: dict[str, Callable[[Project], Project]] = {
    "rename_target": rename_target,
    "rename_site_function": rename_site_function,
    "rename_locals": rename_locals,
    "helper_depth_1": lambda p: extract(p, "function", 1),
    "helper_depth_2": lambda p: extract(p, "function", 2),
    "helper_depth_3": lambda p: extract(p, "function", 3),
    "method": lambda p: extract(p, "method"),
    "child_module": lambda p: extract(p, "module"),
    "other_file": lambda p: extract(p, "file"),
    "local_to_attribute": local_to_attribute,
    "local_to_parameter": local_to_parameter,
    "drop_else": drop_else,
    "add_else": add_else,
    "loop_body": loop_body,
}


@dataclass(frozen=True)
class Skipped:
    fixture: Fixture
    transformation: str
    reason: str


def variants(fixture: Fixture, names: Iterable[str] = TRANSFORMATIONS) -> list[Variant | Skipped]:
    """Every transformation applied to the fixture: a variant, or why there is none."""
    result: list[Variant | Skipped] = []
    base = base_project(fixture)
    for name in names:
        try:
            result.append(finish(fixture, name, TRANSFORMATIONS[name](base)))
        except NotApplicable as e:
            result.append(Skipped(fixture, name, str(e)))
    return result
