"""Which values flow where in one function: the names each top-level statement reads and binds,
and where a function can be cut into compiled pieces around an eager part (``Flow``, ``Cut``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m
from libcst.helpers import get_full_name_for_node
from libcst.metadata import (
    ClassScope,
    ComprehensionScope,
    FunctionScope,
    MetadataWrapper,
    PositionProvider,
    Scope,
    ScopeProvider,
)

from breakfix.codemods._base import parameter_names
from breakfix.codemods._orchestration import NotSplittable, check_movable, docstring

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
    # The head has a `return` inside a compound statement (`if not flag: return x`): piece 1 also
    # returns whether it returned, and what, and the orchestrator returns that value when it did.
    head_returns: bool
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
        if any(
            isinstance(self.statements[i], cst.SimpleStatementLine) and has_return(self.statements[i]) for i in head
        ):
            raise NotSplittable(f"{name} returns before the statement to keep eager, which never runs")
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
            head_returns=any(has_return(self.statements[i]) for i in head),
            prologue=self.statements[:start],
        )

    def header_loop(self, index: int, line: int) -> cst.For | None:
        """The ``for`` statement at ``index`` when ``line`` is in its header (the iteration broke,
        not its body): its body can be compiled while the loop itself runs eagerly."""
        loop = self.statements[index]
        if not isinstance(loop, cst.For) or not isinstance(loop.body, cst.IndentedBlock):
            return None
        return loop if line < self._positions[loop.body.body[0]].start.line else None

    def body_loop(self, index: int, line: int) -> cst.For | None:
        """The ``for`` statement at ``index`` when ``line`` is in its body (a statement of the body
        broke, not the iteration)."""
        loop = self.statements[index]
        if not isinstance(loop, cst.For) or not isinstance(loop.body, cst.IndentedBlock):
            return None
        return loop if line >= self._positions[loop.body.body[0]].start.line else None

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
