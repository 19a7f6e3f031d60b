"""Eager orchestrators of compiled pieces: the shared machinery of recipes 1 and 4.

Some code should not be compiled at all (I/O, consuming the caller's iterator). The fix keeps the
function its callers see, decorated ``@torch.compiler.disable`` so it runs eagerly, and moves the
code around the eager part into module-level functions decorated
``@torch.compile(fullgraph=True)``: the *pieces*. A piece receives exactly the local values it
reads and returns exactly the ones read after it, so the orchestrator reads like the original.

Everything here is LibCST only. ``NotSplittable`` carries the reason a function cannot be split;
the codemods turn it into a skip.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import libcst as cst
import libcst.matchers as m
from libcst.helpers import get_full_name_for_node
from libcst.metadata import (
    ClassScope,
    ComprehensionScope,
    FunctionScope,
    MetadataWrapper,
    PositionProvider,
    QualifiedNameProvider,
    Scope,
    ScopeProvider,
)

from breakfix.codemods._base import FixRequest
from breakfix.piece_options import PieceOptions
from breakfix.types import EagerCallers

COMPILE = "torch.compile"
DISABLE = "torch.compiler.disable"
_DISABLE_NAMES = frozenset({DISABLE, "torch._dynamo.disable"})
_COMPILE_DECORATOR = f"{COMPILE}(fullgraph=True)"
_TEMPORARY = "__breakfix_piece_"
# Names that read or write the frame's locals behind the analysis' back.
_INTROSPECTION = frozenset({"locals", "vars", "exec", "eval", "globals"})


class NotSplittable(Exception):
    """Why a function cannot become an orchestrator; the message is a codemod's skip reason."""


# --- where things are --------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionSite:
    """A function defined at module level, or a method of a module-level class."""

    function: cst.FunctionDef
    owner: cst.ClassDef | None  # the class of a method
    top: cst.BaseStatement  # the module-level statement holding it: the function or its class

    @property
    def qualname(self) -> str:
        name = self.function.name.value
        return f"{self.owner.name.value}.{name}" if self.owner is not None else name

    @property
    def base_name(self) -> str:
        """What its pieces are named after: ``_f_piece_1`` for ``f`` and ``_forward_piece_1``."""
        return self.function.name.value.strip("_") or "fn"


def function_site(module: cst.Module, line: int) -> FunctionSite:
    """The innermost function whose body spans ``line``; it must be movable to module level."""
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    chain: list[cst.CSTNode] = []

    def descend(nodes: Iterable[cst.CSTNode]) -> None:
        for node in nodes:
            position = positions.get(node)
            if position is not None and position.start.line <= line <= position.end.line:
                if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
                    chain.append(node)
                descend(node.children)
                return

    descend(module.body)
    functions = [i for i, node in enumerate(chain) if isinstance(node, cst.FunctionDef)]
    if not functions:
        raise NotSplittable(f"no function spans line {line}")
    enclosing = chain[: functions[-1]]
    function = chain[functions[-1]]
    if any(isinstance(node, cst.FunctionDef) for node in enclosing):
        raise NotSplittable(f"{function.name.value} is nested in another function (its closure cannot move)")
    if len(enclosing) > 1:
        raise NotSplittable(f"{function.name.value} is defined in a nested class")
    owner = enclosing[0] if enclosing else None
    # ``install`` replaces the function among the statements of the module or of its class; one
    # defined under an ``if``/``try``/``with`` there would be left as it was.
    if owner is not None and function not in owner.body.body or (owner or function) not in module.body:
        raise NotSplittable(f"{function.name.value} is defined inside an if, try or with block")
    return FunctionSite(function, owner, owner or function)


def compiled_function(module: cst.Module, request: FixRequest) -> FunctionSite:
    """The function of the compiled frame (the break's outermost frame): the target, or a
    compiled piece of it once the target is an orchestrator."""
    frame = request.brk.project_stack[0]
    site = function_site(module, frame.lineno)
    same_file = os.path.realpath(frame.filename) == os.path.realpath(request.target_file)
    if not is_compiled_piece(site.function) and not (same_file and site.qualname == request.target_qualname):
        raise NotSplittable(f"the compiled frame is in {site.qualname}, neither the target nor a compiled piece")
    return site


def docstring(function: cst.FunctionDef) -> list[cst.BaseStatement]:
    """The docstring statement, if any: it stays with the function callers see."""
    first = function.body.body[0]
    string = m.SimpleString() | m.ConcatenatedString()
    return [first] if m.matches(first, m.SimpleStatementLine(body=[m.Expr(value=string)])) else []


def _decorator_names(function: cst.FunctionDef) -> list[str]:
    names = []
    for decorator in function.decorators:
        expression = decorator.decorator
        if isinstance(expression, cst.Call):
            expression = expression.func
        names.append(get_full_name_for_node(expression) or "")
    return names


def is_compiled_piece(function: cst.FunctionDef) -> bool:
    return COMPILE in _decorator_names(function)


def is_orchestrator(function: cst.FunctionDef) -> bool:
    return any(name in _DISABLE_NAMES for name in _decorator_names(function))


def parameter_names(function: cst.FunctionDef) -> list[str]:
    """Every parameter in signature order; a piece takes them all as plain positional parameters."""
    params = function.params
    names = [p.name.value for p in (*params.posonly_params, *params.params)]
    if isinstance(params.star_arg, cst.Param):
        names.append(params.star_arg.name.value)
    names += [p.name.value for p in params.kwonly_params]
    if params.star_kwarg is not None:
        names.append(params.star_kwarg.name.value)
    return names


def check_movable(function: cst.FunctionDef, allow_globals: bool = False) -> None:
    """Raise unless the body means the same when moved into a module-level function.
    ``allow_globals``: the caller keeps leading ``global`` declarations in the orchestrator."""
    name = function.name.value
    if function.asynchronous is not None:
        raise NotSplittable(f"{name} is async")
    if is_orchestrator(function):
        raise NotSplittable(f"{name} already runs eagerly (torch.compiler.disable)")
    if not isinstance(function.body, cst.IndentedBlock):
        raise NotSplittable(f"{name} is a one-line function")
    body = function.body
    problems = (
        (m.Yield(), "is a generator"),
        (m.Await(), "awaits"),
        (m.Nonlocal(), "declares nonlocal names"),
        *(() if allow_globals else ((m.Global(), "declares global names"),)),
        (m.Del(), "deletes names"),
        (m.ClassDef(), "defines a class"),
        (m.Call(func=m.Name("super")), "calls super() (it needs the class cell)"),
        (m.Name("__class__"), "reads __class__"),
        (m.Call(func=m.Name(value=m.MatchIfTrue(lambda v: v in _INTROSPECTION))), "introspects its locals"),
        (m.ImportStar(), "star-imports"),
    )
    for matcher, why in problems:
        if m.findall(body, matcher):
            raise NotSplittable(f"{name} {why}")


# --- which values flow where -------------------------------------------------------------------


def _subtree_ids(node: cst.CSTNode) -> set[int]:
    ids = {id(node)}
    for child in node.children:
        ids |= _subtree_ids(child)
    return ids


def _target_names(target: cst.BaseExpression) -> set[str]:
    if isinstance(target, cst.Name):
        return {target.value}
    if isinstance(target, (cst.Tuple, cst.List)):
        return set().union(*(_target_names(e.value) for e in target.elements))
    if isinstance(target, cst.StarredElement):
        return _target_names(target.value)
    return set()


def _definite_binds(statement: cst.BaseStatement) -> set[str]:
    """Names ``statement`` binds whenever it completes normally (may-binds are a superset)."""
    if isinstance(statement, cst.SimpleStatementLine):
        names: set[str] = set()
        for small in statement.body:
            if isinstance(small, cst.Assign):
                for target in small.targets:
                    names |= _target_names(target.target)
            elif isinstance(small, cst.AnnAssign) and small.value is not None or isinstance(small, cst.AugAssign):
                names |= _target_names(small.target)
            elif isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(small.names, cst.ImportStar):
                for alias in small.names:
                    bound = alias.asname.name if alias.asname else alias.name
                    names.add((get_full_name_for_node(bound) or "").split(".")[0])
        return names
    if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
        return {statement.name.value}
    if isinstance(statement, cst.If):
        if statement.orelse is None:
            return set()
        orelse = statement.orelse.body if isinstance(statement.orelse, cst.Else) else statement.orelse
        other = _block_binds(orelse.body) if isinstance(orelse, cst.IndentedBlock) else _definite_binds(orelse)
        return _block_binds(statement.body.body) & other
    if isinstance(statement, cst.With):
        names = set().union(*(_target_names(item.asname.name) for item in statement.items if item.asname))
        return names | _block_binds(statement.body.body)
    return set()  # loops may not run, try bodies may stop anywhere


def _block_binds(statements: Sequence[cst.CSTNode]) -> set[str]:
    return set().union(*(_definite_binds(s) for s in statements if isinstance(s, cst.BaseStatement)))


def inside(scope: Scope, outer: Scope) -> bool:
    while scope is not outer:
        if scope.parent is scope:
            return False
        scope = scope.parent
    return True


@dataclass(frozen=True)
class Cut:
    """A function split around one top-level statement that stays eager."""

    head: list[cst.BaseStatement]  # compiled before it (piece 1)
    eager: cst.BaseStatement
    tail: list[cst.BaseStatement]  # compiled after it (piece 2)
    head_inputs: list[str]
    head_outputs: list[str]
    tail_inputs: list[str]
    tail_returns: bool  # the tail has a `return`: the orchestrator returns what piece 2 returns
    prologue: list[cst.BaseStatement]  # the docstring and `global` declarations: stay in the orchestrator


@dataclass(frozen=True)
class LoopBody:
    """The body of a ``for`` kept eager, compiled as a piece the loop calls once per iteration."""

    statements: list[cst.BaseStatement]
    inputs: list[str]
    outputs: list[str]


def _leaves_loop(body: Sequence[cst.BaseStatement]) -> bool:
    """A ``break`` or ``continue`` of this loop (not of a loop nested in it)."""

    class Finder(cst.CSTVisitor):
        found = False

        def visit_For(self, node: cst.For) -> bool:
            return self._else_only(node)

        def visit_While(self, node: cst.While) -> bool:
            return self._else_only(node)

        def _else_only(self, node: cst.For | cst.While) -> bool:
            if node.orelse is not None:  # a break in a nested loop's else clause leaves this loop
                node.orelse.visit(self)
            return False

        def visit_Break(self, node: cst.Break) -> None:
            self.found = True

        def visit_Continue(self, node: cst.Continue) -> None:
            self.found = True

    finder = Finder()
    for statement in body:
        statement.visit(finder)
    return finder.found


class Flow:
    """Which local names each top-level statement of one function reads and binds."""

    def __init__(self, module: cst.Module, function: cst.FunctionDef) -> None:
        check_movable(function, allow_globals=True)
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        scopes = wrapper.resolve(ScopeProvider)
        self._positions = wrapper.resolve(PositionProvider)
        self.function = function
        self.statements: list[cst.BaseStatement] = list(function.body.body)
        self.params = parameter_names(function)
        scope = scopes[self.statements[0]]
        if not isinstance(scope, FunctionScope):
            raise NotSplittable(f"cannot analyse the names of {function.name.value}")
        owner: dict[int, int] = {}
        for index, statement in enumerate(self.statements):
            owner.update(dict.fromkeys(_subtree_ids(statement), index))
        count = len(self.statements)
        self.reads: list[set[str]] = [set() for _ in range(count)]
        self.may: list[set[str]] = [set() for _ in range(count)]
        self.definite = [_definite_binds(s) for s in self.statements]
        self.binders: dict[str, set[int]] = {}
        self.closures: list[tuple[int, str]] = []  # (statement, local a nested function reads)
        # (id of the node, local name) of every read and bind: what nested blocks read and bind
        self._reads_at: list[tuple[int, str]] = []
        self._binds_at: list[tuple[int, str]] = []
        for assignment in scope.assignments:
            if "." in assignment.name or isinstance(assignment.node, cst.Param):
                continue
            index = owner.get(id(assignment.node))
            if index is None:
                raise NotSplittable(f"cannot place the binding of {assignment.name} in {function.name.value}")
            self.may[index].add(assignment.name)
            self.binders.setdefault(assignment.name, set()).add(index)
            self._binds_at.append((id(assignment.node), assignment.name))
        for inner in {s for s in scopes.values() if s is not None and inside(s, scope)}:
            for access in inner.accesses:
                if isinstance(access.node, cst.Name):
                    # LibCST links a read only to bindings before it in the text; in a loop body a
                    # read may see the binding further down from the previous pass.
                    self._reads_at.append((id(access.node), access.node.value))
                if not isinstance(access.node, cst.Name) or not any(r.scope is scope for r in access.referents):
                    continue
                index = owner[id(access.node)]
                self.reads[index].add(access.node.value)
                if inner is not scope and not isinstance(inner, ComprehensionScope):
                    if isinstance(inner, ClassScope):
                        raise NotSplittable(f"{function.name.value} defines a class reading its locals")
                    self.closures.append((index, access.node.value))
        self.prologue = len(docstring(function))
        while self.prologue < count and m.matches(
            self.statements[self.prologue], m.SimpleStatementLine(body=[m.Global()])
        ):
            self.prologue += 1
        self.globals = self._declared_globals(scopes, scope, owner)
        for index, statement in enumerate(self.statements):
            for aug in m.findall(statement, m.AugAssign(target=m.Name())):
                self.reads[index].add(aug.target.value)  # `y += 1` reads y; scope analysis records only the bind
        self.order = _first_seen(function)

    def _declared_globals(self, scopes, scope: FunctionScope, owner: dict[int, int]) -> set[str]:
        """Names of the leading ``global`` statements, recorded as locals of the statements that read
        or bind them: pieces take them as parameters and return them when they rebind them, and the
        orchestrator, which keeps the declarations, reads and rebinds the module's names."""
        declarations = self.statements[len(docstring(self.function)) : self.prologue]
        declared = {n.name.value for s in declarations for small in s.body for n in small.names}
        if m.findall(cst.IndentedBlock(body=self.statements[self.prologue :]), m.Global()):
            raise NotSplittable(f"{self.function.name.value} declares globals after its first statement")
        if not declared:
            return declared
        for assignment in scope.globals.assignments:
            index = owner.get(id(assignment.node))
            if assignment.name in declared and index is not None:
                if scopes[assignment.node] is not scope:
                    raise NotSplittable(f"the global {assignment.name} is rebound in a nested scope")
                self.may[index].add(assignment.name)
                self.binders.setdefault(assignment.name, set()).add(index)
        for inner in {s for s in scopes.values() if s is not None and inside(s, scope)}:
            for access in inner.accesses:
                if (
                    not isinstance(access.node, cst.Name)
                    or access.node.value not in declared
                    or id(access.node) not in owner
                ):
                    continue
                if inner is not scope and not isinstance(inner, ComprehensionScope):
                    raise NotSplittable(f"a nested function reads the global {access.node.value}")
                self.reads[owner[id(access.node)]].add(access.node.value)
        return declared

    def index_at(self, line: int) -> int:
        for index, statement in enumerate(self.statements):
            position = self._positions[statement]
            if position.start.line <= line <= position.end.line:
                return index
        raise NotSplittable(f"line {line} is not in the body of {self.function.name.value}")

    def exposed(self, indices: Iterable[int]) -> set[str]:
        """Names read in these statements before they bind them (loops and branches read all)."""
        bound: set[str] = set()
        names: set[str] = set()
        for index in indices:
            names |= self.reads[index] - bound
            bound |= self.definite[index]
        return names

    def _sorted(self, names: Iterable[str]) -> list[str]:
        return sorted(names, key=lambda n: (self.order.get(n, len(self.order)), n))

    def cut(self, index: int, require_work: bool = True) -> Cut:
        """Split around statement ``index``, passing exactly the live values. ``require_work``:
        refuse when the pieces would compute nothing (not needed when splitting a compiled piece:
        its orchestrator compiles other pieces)."""
        name = self.function.name.value
        start = self.prologue
        eager = self.statements[index]
        if index < start:
            raise NotSplittable("the line is the docstring or a global declaration")
        if isinstance(eager, (cst.FunctionDef, cst.ClassDef)):
            raise NotSplittable(f"the break is inside a definition nested in {name}")
        head = list(range(start, index))
        tail = list(range(index + 1, len(self.statements)))
        if any(has_return(self.statements[i]) for i in head):
            raise NotSplittable(f"{name} may return before the statement to keep eager")
        # A return nested in a compound statement returns from the orchestrator, as it did from
        # the function; only an unconditional one makes the tail unreachable.
        if tail and isinstance(eager, cst.SimpleStatementLine) and has_return(eager):
            raise NotSplittable(f"{name} has unreachable code after the statement to keep eager")
        if require_work and all(is_trivial(self.statements[i]) for i in head + tail):
            # Compiling `return y` alone gains nothing: the break would be "fixed" by compiling nothing.
            raise NotSplittable(f"nothing in {name} is left to compile around the statement to keep eager")
        rebound_late = self.globals & set().union(*(self.may[i] for i in tail))
        if rebound_late:
            raise NotSplittable(
                f"the global {', '.join(self._sorted(rebound_late))} is rebound after the statement to keep eager"
            )
        # A declared global is a parameter of the pieces that read it, and an output of the head
        # when the head rebinds it: the orchestrator's assignment is what rebinds the module's name.
        params = set(self.params) | self.globals
        head_may = set().union(*(self.may[i] for i in head))
        head_definite = params | set().union(*(self.definite[i] for i in head))
        outputs = (self.exposed([index, *tail]) | self.globals) & head_may
        tail_inputs = self.exposed(tail) & (params | head_may | self.may[index])
        unsure = (outputs - head_definite) | (tail_inputs - head_definite - self.definite[index])
        if unsure:
            raise NotSplittable(f"cannot prove {', '.join(self._sorted(unsure))} is bound before it is passed on")
        self._check_closures(head, index, tail)
        return Cut(
            head=[self.statements[i] for i in head],
            eager=eager,
            tail=[self.statements[i] for i in tail],
            head_inputs=self._sorted(self.exposed(head) & params),
            head_outputs=self._sorted(outputs),
            tail_inputs=self._sorted(tail_inputs),
            tail_returns=any(has_return(self.statements[i]) for i in tail),
            prologue=self.statements[:start],
        )

    def header_loop(self, index: int, line: int) -> cst.For | None:
        """The ``for`` statement at ``index`` when ``line`` is in its header (the iteration broke,
        not its body): its body can be compiled while the loop itself runs eagerly."""
        loop = self.statements[index]
        if not isinstance(loop, cst.For) or not isinstance(loop.body, cst.IndentedBlock):
            return None
        return loop if line < self._positions[loop.body.body[0]].start.line else None

    def loop_body(self, index: int, breaking_lines: frozenset[int] | set[int] = frozenset()) -> LoopBody:
        """The body of the ``for`` at ``index`` as a compiled piece called once per iteration: it
        takes the values its statements read (the loop variables, values bound before the loop,
        values carried from the previous iteration) and returns those the next iteration or the
        code after the loop reads. ``breaking_lines``: lines known to break, which the body must
        not hold."""
        loop = self.statements[index]
        name = self.function.name.value
        if loop.asynchronous is not None or loop.orelse is not None:
            raise NotSplittable(f"the loop in {name} is async or has an else clause")
        body = list(loop.body.body)
        start, end = self._positions[body[0]].start.line, self._positions[body[-1]].end.line
        inside = sorted(line for line in breaking_lines if start <= line <= end)
        if inside:
            raise NotSplittable(f"the loop body breaks too (line {inside[0]}): as a piece it would break again")
        if any(has_return(s) for s in body) or _leaves_loop(body):
            raise NotSplittable(f"the loop in {name} returns, breaks or continues")
        if m.findall(loop.body, m.FunctionDef() | m.ClassDef()):
            raise NotSplittable(f"the loop in {name} defines a function or class")
        if all(is_trivial(s) for s in body):
            raise NotSplittable(f"the loop in {name} computes nothing to compile")
        local = set(self.params) | set(self.binders)
        exposed: set[str] = set()
        definite: set[str] = set()
        for statement in body:
            exposed |= (self._names_at(self._reads_at, statement) & local) - definite
            exposed |= {a.target.value for a in m.findall(statement, m.AugAssign(target=m.Name()))} - definite
            definite |= _definite_binds(statement)
        may = set().union(*(self._names_at(self._binds_at, s) for s in body))
        if self.globals & (exposed | may):
            raise NotSplittable(f"the loop in {name} reads or rebinds a global")
        head = range(self.prologue, index)
        before = set(self.params) | set().union(*(self.definite[i] for i in head))
        loop_variables = _target_names(loop.target)
        unsure = exposed - loop_variables - before
        if unsure:
            raise NotSplittable(f"cannot prove {', '.join(self._sorted(unsure))} is bound before the loop")
        read_after = self.exposed(range(index + 1, len(self.statements)))
        outputs = may & (read_after | exposed)
        # A value the body may leave unbound is passed in too (it was bound before the loop), so
        # the piece always has a value to return.
        inputs = exposed | (outputs - definite)
        return LoopBody(statements=body, inputs=self._sorted(inputs), outputs=self._sorted(outputs))

    def _names_at(self, names_at: list[tuple[int, str]], node: cst.CSTNode) -> set[str]:
        ids = _subtree_ids(node)
        return {name for node_id, name in names_at if node_id in ids}

    def _check_closures(self, head: list[int], index: int, tail: list[int]) -> None:
        """A nested function shares cells with its frame: every local it reads must be bound in the
        same piece as the function (or never rebound), or the cells would diverge."""
        segment = {i: 0 for i in head} | {index: 1} | {i: 2 for i in tail}
        for where, local in self.closures:
            if any(segment.get(i) != segment.get(where) for i in self.binders.get(local, ())):
                raise NotSplittable(f"a nested function reads {local}, which is bound in another piece")


def _plain(expression: cst.BaseExpression | None) -> bool:
    """A value read without computing anything a compiler could speed up: a name, a constant, an
    attribute or constant subscript of one, or a tuple or list of those."""
    if expression is None or isinstance(expression, (cst.Name, cst.BaseNumber, cst.BaseString, cst.Ellipsis)):
        return True
    if isinstance(expression, cst.Attribute):
        return _plain(expression.value)
    if isinstance(expression, cst.Subscript):
        return _plain(expression.value) and all(
            isinstance(e.slice, cst.Index) and isinstance(e.slice.value, (cst.BaseNumber, cst.BaseString))
            for e in expression.slice
        )
    if isinstance(expression, (cst.Tuple, cst.List)):
        return all(isinstance(e, cst.Element) and _plain(e.value) for e in expression.elements)
    return False


def is_trivial(statement: cst.BaseStatement) -> bool:
    """``pass``, or a return, assignment or expression of plain values only (names, constants,
    attribute reads, constant subscripts, tuple packing): no operation a compiler could speed up,
    so a piece made of such statements would compile nothing."""
    if not isinstance(statement, cst.SimpleStatementLine):
        return False
    return all(
        isinstance(item, cst.Pass)
        or (isinstance(item, (cst.Return, cst.Expr)) and _plain(item.value))
        or (
            isinstance(item, cst.Assign)
            and _plain(item.value)
            and all(isinstance(t.target, (cst.Name, cst.Tuple)) and _plain(t.target) for t in item.targets)
        )
        for item in statement.body
    )


def has_return(node: cst.CSTNode) -> bool:
    """A ``return`` of the enclosing function (those of nested functions do not count)."""

    class Finder(cst.CSTVisitor):
        found = False

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False

        def visit_Return(self, node: cst.Return) -> None:
            self.found = True

    finder = Finder()
    node.visit(finder)
    return finder.found


def _first_seen(function: cst.FunctionDef) -> dict[str, int]:
    order: dict[str, int] = {}
    for node in m.findall(function, m.Name()):
        order.setdefault(node.value, len(order))
    return order


# --- building the rewrite ----------------------------------------------------------------------


def blank_lines(node: cst.BaseStatement) -> list[cst.EmptyLine]:
    return [line for line in getattr(node, "leading_lines", ()) if line.comment is None]


def _without_leading_blanks(statement: cst.BaseStatement) -> cst.BaseStatement:
    lines = list(statement.leading_lines)
    while lines and lines[0].comment is None:
        lines.pop(0)
    return statement.with_changes(leading_lines=lines)


def compiled_piece(
    name: str,
    params: Sequence[str],
    body: Sequence[cst.BaseStatement],
    returns: Sequence[str] = (),
    options: Sequence[cst.Arg] = (),
) -> cst.FunctionDef:
    """``@torch.compile(fullgraph=True) def name(params): body; return returns``; ``options`` are
    keyword arguments of torch.compile to pass as well (the user's, when the function was compiled
    by a decorator)."""
    decorator = cst.parse_expression(_COMPILE_DECORATOR)
    if options:
        fullgraph = decorator.args[0].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        decorator = decorator.with_changes(
            args=[*(a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in options), fullgraph]
        )
    statements = [_without_leading_blanks(body[0]), *body[1:]] if body else []
    if returns:
        statements.append(cst.parse_statement(f"return {', '.join(returns)}\n"))
    return cst.FunctionDef(
        name=cst.Name(name),
        params=cst.Parameters(params=[cst.Param(cst.Name(p)) for p in params]),
        body=cst.IndentedBlock(body=statements),
        decorators=[cst.Decorator(decorator)],
        leading_lines=[cst.EmptyLine(), cst.EmptyLine()],
    )


def piece_call(
    name: str,
    args: Sequence[str],
    outputs: Sequence[str] = (),
    returns: bool = False,
    like: cst.BaseStatement | None = None,
) -> cst.SimpleStatementLine:
    """``outputs = name(args)``, ``return name(args)`` or ``name(args)``, with ``like``'s blank lines."""
    call = f"{name}({', '.join(args)})"
    if returns:
        text = f"return {call}"
    elif outputs:
        text = f"{', '.join(outputs)} = {call}"
    else:
        text = call
    statement = cst.parse_statement(text + "\n")
    return statement.with_changes(leading_lines=blank_lines(like) if like is not None else [])


def as_orchestrator(
    function: cst.FunctionDef, body: Sequence[cst.BaseStatement], compiled_by: cst.Decorator | None = None
) -> cst.FunctionDef:
    """The function with this body, running eagerly: the decorator that compiled it (``compiled_by``,
    else a ``torch.compile`` one) becomes ``torch.compiler.disable`` (nested orchestrators work; an
    orchestrator left under torch.compile would break the graph, GB0098); otherwise the decorator is
    added innermost, so ``staticmethod`` or ``torch.no_grad()`` above it still wrap the function."""
    disable = cst.Decorator(cst.parse_expression(DISABLE))
    names = _decorator_names(function)
    at = next((i for i, d in enumerate(function.decorators) if d is compiled_by), None)
    if at is None and COMPILE in names:
        at = names.index(COMPILE)
    if at is not None:
        decorators = [
            *function.decorators[:at],
            disable.with_changes(leading_lines=function.decorators[at].leading_lines),
            *function.decorators[at + 1 :],
        ]
    else:
        decorators = [*function.decorators, disable]
    return function.with_changes(decorators=decorators, body=function.body.with_changes(body=list(body)))


_NO_SPACE_EQUAL = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))


def _is_compile(names: dict, expression: cst.BaseExpression) -> bool:
    found = names.get(expression, set())
    return any(q.name == COMPILE for q in (found() if callable(found) else found))  # resolved lazily by LibCST


def compile_decorator(module: cst.Module, function: cst.FunctionDef) -> cst.Decorator | None:
    """The decorator compiling ``function``: ``torch.compile`` in any spelling the module's imports
    allow (``@t.compile``, ``from torch import compile``), called with options or not."""
    names = MetadataWrapper(module, unsafe_skip_copy=True).resolve(QualifiedNameProvider)
    for decorator in function.decorators:
        expression = decorator.decorator
        if isinstance(expression, cst.Call):
            expression = expression.func
        if _is_compile(names, expression):
            return decorator
    return None


def piece_options(
    module: cst.Module, function: cst.FunctionDef, compiled_by: cst.Decorator | None, defaults: PieceOptions = ()
) -> list[cst.Arg]:
    """The keyword options of ``torch.compile`` for the pieces made of ``function``: the ones it is
    compiled with (its decorator, else a ``torch.compile(function, ...)`` call in the module), else
    ``defaults`` (--piece-options, [tool.breakfix] piece-options). Every piece is compiled
    ``fullgraph=True``, so that option is not carried."""
    if compiled_by is not None:
        call = compiled_by.decorator if isinstance(compiled_by.decorator, cst.Call) else None
    else:
        names = MetadataWrapper(module, unsafe_skip_copy=True).resolve(QualifiedNameProvider)
        call = next(
            (
                c
                for c in m.findall(
                    module, m.Call(args=[m.Arg(value=m.Name(function.name.value), keyword=None), m.ZeroOrMore()])
                )
                if _is_compile(names, c.func)
            ),
            None,
        )
        if call is None:
            return [
                cst.Arg(cst.parse_expression(value), keyword=cst.Name(key), equal=_NO_SPACE_EQUAL)
                for key, value in defaults
            ]
    return [arg for arg in call.args if arg.keyword is not None and arg.keyword.value != "fullgraph"] if call else []


def temporary_name(number: int) -> str:
    """A placeholder for a new piece; ``install`` gives it its final name."""
    return f"{_TEMPORARY}{number}"


@dataclass(frozen=True)
class PieceCall:
    """The one statement of an orchestrator that calls a piece: where a piece is re-split or edited."""

    orchestrator: FunctionSite
    index: int  # of the calling statement in the orchestrator's body
    call: cst.Call


def single_caller(module: cst.Module, piece: cst.FunctionDef) -> PieceCall | None:
    """The orchestrator statement calling ``piece``, when it is the only reference to it in the
    module and the call is the whole value of a top-level statement (``return piece(...)``,
    ``a, b = piece(...)`` or ``piece(...)``) with positional arguments only."""
    name = piece.name.value
    references = [n for n in m.findall(module, m.Name(name)) if n is not piece.name]
    if len(references) != 1:
        return None
    call_shape = m.Call(func=m.Name(name), args=[m.ZeroOrMore(m.Arg(keyword=None, star=""))])
    for site in _all_functions(module):
        if not is_orchestrator(site.function) or not isinstance(site.function.body, cst.IndentedBlock):
            continue
        for index, statement in enumerate(site.function.body.body):
            if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
                continue
            small = statement.body[0]
            value = small.value if isinstance(small, (cst.Return, cst.Expr, cst.Assign)) else None
            if value is not None and m.matches(value, call_shape):
                return PieceCall(site, index, value)
    return None


def _all_functions(module: cst.Module) -> list[FunctionSite]:
    sites = []
    for statement in module.body:
        if isinstance(statement, cst.FunctionDef):
            sites.append(FunctionSite(statement, None, statement))
        elif isinstance(statement, cst.ClassDef):
            sites += [
                FunctionSite(f, statement, statement) for f in statement.body.body if isinstance(f, cst.FunctionDef)
            ]
    return sites


def new_orchestrators(path: Path, before: str, after: str) -> list[EagerCallers]:
    """The functions of ``after`` that run eagerly and call compiled pieces (``@torch.compiler.disable``)
    where ``before`` had none of that name: each caller of one, eager or compiled, now runs its pieces."""
    was_eager = {site.qualname for site in _all_functions(cst.parse_module(before)) if is_orchestrator(site.function)}
    module = cst.parse_module(after)
    pieces = {site.function.name.value for site in _all_functions(module) if is_compiled_piece(site.function)}
    return [
        EagerCallers(
            path,
            site.qualname,
            len(
                {
                    call.func.value
                    for call in m.findall(site.function, m.Call(func=m.Name()))
                    if call.func.value in pieces
                }
            ),
        )
        for site in _all_functions(module)
        if is_orchestrator(site.function) and site.qualname not in was_eager
    ]


def eager_original_lines(before: str, after: str) -> set[int]:
    """Lines of ``before`` whose code ``after`` runs eagerly: the statements its new orchestrators
    kept as written (matched line by line, by text, within the function of the same name)."""
    was_eager = {site.qualname for site in _all_functions(cst.parse_module(before)) if is_orchestrator(site.function)}
    after_module = cst.parse_module(after)
    kept: dict[str, set[str]] = {}
    for site in _all_functions(after_module):
        if is_orchestrator(site.function) and site.qualname not in was_eager:
            code = "".join(after_module.code_for_node(statement) for statement in site.function.body.body)
            kept[site.qualname] = {
                line.strip() for line in code.splitlines() if line.strip() and not line.strip().startswith("#")
            }
    if not kept:
        return set()
    wrapper = MetadataWrapper(cst.parse_module(before))
    positions = wrapper.resolve(PositionProvider)
    source_lines = before.splitlines()
    lines: set[int] = set()
    for site in _all_functions(wrapper.module):
        if site.qualname in kept:
            span = positions[site.function.body]
            lines |= {
                number
                for number in range(span.start.line, span.end.line + 1)
                if number <= len(source_lines) and source_lines[number - 1].strip() in kept[site.qualname]
            }
    return lines


def _with_function(site: FunctionSite, function: cst.FunctionDef) -> cst.BaseStatement:
    """The module-level statement of ``site`` with its function replaced."""
    if site.owner is None:
        return function
    body = [function if item is site.function else item for item in site.owner.body.body]
    return site.owner.with_changes(body=site.owner.body.with_changes(body=body))


class _Rename(cst.CSTTransformer):
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        return updated.with_changes(value=self.names.get(updated.value, updated.value))


def install(
    module: cst.Module,
    site: FunctionSite,
    orchestrator: cst.FunctionDef,
    pieces: dict[str, cst.FunctionDef],
    removed: Sequence[str] = (),
) -> cst.Module:
    """Put ``orchestrator`` in place of ``site.function`` and its pieces right after ``site.top``.

    ``pieces`` maps a temporary name (or an existing piece's name, to replace it) to its
    definition; ``removed`` are pieces the rewrite dissolved. The pieces the orchestrator calls are
    then named ``_<base>_piece_<n>`` in call order and placed in that order, so a function split
    in several rounds reads as if it had been split at once.
    """
    existing = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef) and is_compiled_piece(s)}
    available = {**existing, **pieces}
    order: list[str] = []
    for call in m.findall(orchestrator.body, m.Call(func=m.Name())):
        name = call.func.value
        if name in available and name not in order and name not in removed:
            order.append(name)
    referenced_once = {
        name
        for name in order
        if name in pieces
        or (
            re.fullmatch(r"_\w+_piece(_\d+)?", name)
            and len([n for n in m.findall(module, m.Name(name)) if n is not existing[name].name]) == 1
        )
    }
    owned = [name for name in order if name in referenced_once]
    rename = _final_names(module, site.base_name, owned, [*owned, *removed])
    orchestrator = orchestrator.visit(_Rename(rename))
    placed = [
        available[name].with_changes(
            name=cst.Name(rename.get(name, name)), leading_lines=[cst.EmptyLine(), cst.EmptyLine()]
        )
        for name in owned
    ]
    dropped = set(owned) | set(removed)
    body: list[cst.BaseStatement] = []
    for statement in module.body:
        if statement is site.top:
            body.append(_with_function(site, orchestrator))
            body += placed
        elif not (isinstance(statement, cst.FunctionDef) and statement.name.value in dropped):
            body.append(statement)
    return module.with_changes(body=body)


def _final_names(module: cst.Module, base: str, owned: list[str], replaced: list[str]) -> dict[str, str]:
    """``_<base>_piece`` for a single piece, ``_<base>_piece_<n>`` for several; names taken by
    anything but the pieces being renamed or removed are avoided by numbering the base
    (``_f2_piece_1``)."""
    taken = {n.value for n in m.findall(module, m.Name())} - set(replaced)
    for attempt in range(1, 100):
        stem = f"_{base}{attempt if attempt > 1 else ''}_piece"
        names = [stem] if len(owned) == 1 else [f"{stem}_{i}" for i in range(1, len(owned) + 1)]
        if not taken & set(names):
            return dict(zip(owned, names))
    raise NotSplittable(f"no free name for the pieces of {base}")
