"""Iterators passed into compiled code (recipe 1 of the fullgraph chapter)."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import BuiltinScope, MetadataWrapper, ParentNodeProvider, PositionProvider, ScopeProvider

from breakfix.codemods._base import BreakfixCodemod, FixRequest, parameter_names
from breakfix.codemods._flow import has_return, inside
from breakfix.codemods._orchestration import (
    FunctionSite,
    NotSplittable,
    PieceCall,
    as_orchestrator,
    check_movable,
    compile_decorator,
    compiled_function,
    compiled_piece,
    docstring,
    function_site,
    install,
    is_compiled_piece,
    piece_call,
    piece_options,
    single_caller,
    temporary_name,
)
from breakfix.piece_options import PieceOptions
from breakfix.types import Applicability

PIECE = temporary_name(1)
LAZY_CHANGE = "consumes the whole iterator before the call (the original consumed it lazily)"
# Ancestors under which an expression may not run, or may run several times.
_CONDITIONAL = (
    cst.If,
    cst.For,
    cst.While,
    cst.Try,
    cst.TryStar,
    cst.Match,
    cst.IfExp,
    cst.BooleanOperation,
    cst.Lambda,
    cst.FunctionDef,
    cst.ListComp,
    cst.SetComp,
    cst.DictComp,
    cst.GeneratorExp,
)


@dataclass(frozen=True)
class Consumption:
    """How the orchestrator hands the iterator's items to the compiled piece."""

    template: str  # Python source, "{}" standing for the iterator
    exact: bool  # takes exactly the items the original took: the caller's iterator ends up the same
    needs_itertools: bool = False
    needs_iter: bool = True  # the body steps it (next, zip, ...); a plain `for` over a list needs no iter()

    def of(self, iterator: str) -> str:
        return self.template.format(iterator)


class IteratorInput(BreakfixCodemod):
    """Pass an iterator argument to the compiled code as a list; the compiled code calls ``iter()``.

    ## What it fixes
    ``next(xs)`` (GB4347, "Missing tp_iternext") or ``for x in xs`` (GB0811, "missing tp_iter")
    on an iterator that is an argument of the compiled function, such as ``f(iter(tensors))``.

    ## Why it breaks
    Dynamo cannot step an iterator created outside the compiled region: it does not own its
    state. It can step one it creates itself over a list, so the compiled code takes a list and
    calls ``iter()`` on it. The function callers see keeps its signature: it becomes an eager
    orchestrator (``@torch.compiler.disable``) that takes from the iterator exactly the items the
    original consumed and calls the compiled piece with them.

    ## Example
    ```python
    def f(xs):
        a = next(xs)
        b = next(xs)
        return a + b
    ```
    becomes
    ```python
    @torch.compiler.disable
    def f(xs):
        return _f_piece(list(itertools.islice(xs, 2)))


    @torch.compile(fullgraph=True)
    def _f_piece(xs):
        xs = iter(xs)
        a = next(xs)
        b = next(xs)
        return a + b
    ```
    A ``for`` loop over the iterator that always runs to the end gets ``list(xs)``.

    ## Fix safety
    Safe when breakfix can count what the original consumed: a fixed number of ``next()`` calls
    that always run (none in a loop, a branch or after an early ``return``), or a ``for`` loop over
    the iterator with no ``break`` or ``return`` inside it. Otherwise the fix is unsafe: the
    orchestrator drains the whole iterator before the call, so the caller's iterator is left
    empty where the original left items in it, and an infinite iterator never returns. In both
    cases the items are taken before the compiled code runs: a generator whose items depend on
    what the function does between two ``next()`` calls would yield different items.
    """

    CODE = "BF101"
    FIX_TITLE = "Pass the iterator as a list and call iter() inside the compiled code"
    REQUIRES = ("torch.compile", "torch.compiler.disable")
    GB_IDS = frozenset({"GB4347", "GB0811"})
    GB_TYPES = frozenset({"Missing tp_iternext", "missing tp_iter"})
    APPLICABILITY = Applicability.SAFE

    @classmethod
    def file_to_edit(cls, request: FixRequest) -> str:
        return request.brk.project_stack[0].filename

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        stack = self.request.brk.user_stack
        if len(stack) > 1:
            raise self.skip("the iterator is stepped in a helper, not in the compiled function")
        try:
            compiled_function(tree, self.request)
            result, consumption = pass_as_list(tree, stack[0].lineno, self.request.piece_options)
        except NotSplittable as e:
            raise self.skip(str(e)) from e
        if not consumption.exact:
            self.applicability, self.changes = Applicability.UNSAFE, LAZY_CHANGE
        AddImportsVisitor.add_needed_import(self.context, "torch")
        if consumption.needs_itertools:
            AddImportsVisitor.add_needed_import(self.context, "itertools")
        return result


def pass_as_list(module: cst.Module, line: int, defaults: PieceOptions = ()) -> tuple[cst.Module, Consumption]:
    """Make the function spanning ``line`` take the iterator it steps there as a list."""
    site = function_site(module, line)
    check_movable(site.function)
    param = iterator_parameter(module, site.function, line)
    consumption = consumption_of(module, site.function, param)
    params = parameter_names(site.function)
    statements = list(site.function.body.body)
    doc = docstring(site.function)
    stepping = [cst.parse_statement(f"{param} = iter({param})\n")] if consumption.needs_iter else []
    caller = single_caller(module, site.function) if is_compiled_piece(site.function) else None
    if caller is not None:
        return _edit_caller(module, site, caller, param, consumption, stepping), consumption
    args = [consumption.of(param) if p == param else p for p in params]
    body = [*stepping, *statements[len(doc) :]]
    compiled_by = compile_decorator(module, site.function)  # the user's, in any spelling: it must not stay
    orchestrator = as_orchestrator(site.function, [*doc, piece_call(PIECE, args, returns=True)], compiled_by)
    piece = compiled_piece(PIECE, params, body, options=piece_options(module, site.function, compiled_by, defaults))
    return install(module, site, orchestrator, {PIECE: piece}), consumption


def _edit_caller(
    module: cst.Module,
    site: FunctionSite,
    caller: PieceCall,
    param: str,
    consumption: Consumption,
    stepping: list[cst.BaseStatement],
) -> cst.Module:
    """A compiled piece gets the list from the orchestrator that calls it (a function compiled
    otherwise, e.g. by the user's decorator, becomes an orchestrator itself)."""
    position = parameter_names(site.function).index(param)
    argument = caller.call.args[position]
    listed = cst.parse_expression(consumption.of(cst.Module([]).code_for_node(argument.value)))
    call = caller.call.with_changes(
        args=[a.with_changes(value=listed) if a is argument else a for a in caller.call.args]
    )
    orchestrator = caller.orchestrator.function.deep_replace(caller.call, call)
    piece = site.function.with_changes(body=site.function.body.with_changes(body=[*stepping, *site.function.body.body]))
    return install(module, caller.orchestrator, orchestrator, {site.function.name.value: piece})


def iterator_parameter(module: cst.Module, function: cst.FunctionDef, line: int) -> str:
    """The parameter stepped on ``line``: ``next(p)`` or ``for ... in p``."""
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    params = set(parameter_names(function))
    found = set()
    stepped = m.Call(func=m.Name("next"), args=[m.Arg(value=m.Name()), m.ZeroOrMore()]) | m.For(iter=m.Name())
    for node in m.findall(function.body, stepped):
        name = node.args[0].value.value if isinstance(node, cst.Call) else node.iter.value
        if positions[node].start.line == line and name in params:
            found.add(name)
    if len(found) != 1:
        raise NotSplittable(f"cannot tell which parameter is the iterator stepped on line {line}")
    return found.pop()


def consumption_of(module: cst.Module, function: cst.FunctionDef, param: str) -> Consumption:
    """How many items the function takes from the iterator ``param``, when that can be counted."""
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    scopes = wrapper.resolve(ScopeProvider)
    parents = wrapper.resolve(ParentNodeProvider)
    positions = wrapper.resolve(PositionProvider)
    scope = scopes[function.body.body[0]]
    uses = [
        access.node for access in scope.accesses[param] if any(isinstance(r.node, cst.Param) for r in access.referents)
    ]
    inner_scopes = {s for s in scopes.values() if s is not None and s is not scope and inside(s, scope)}
    uses += [a.node for s in inner_scopes for a in s.accesses[param] if any(r.scope is scope for r in a.referents)]
    rebinds = [a for a in scope.assignments[param] if not isinstance(a.node, cst.Param)]
    drain = Consumption("list({})", exact=False)
    if rebinds or not uses:
        return drain

    def ancestors(node: cst.CSTNode) -> list[cst.CSTNode]:
        chain = []
        while (node := parents[node]) is not function:
            chain.append(node)
        return chain

    def unconditional(node: cst.CSTNode) -> bool:
        return not any(
            isinstance(a, _CONDITIONAL) or isinstance(a, cst.Comparison) and len(a.comparisons) > 1
            for a in ancestors(node)
        )

    def returns_before(node: cst.CSTNode) -> bool:
        """A `return` that may run before ``node`` (one whose value holds ``node`` runs after it)."""
        start = positions[node].start
        return any(
            (positions[r].end.line, positions[r].end.column) <= (start.line, start.column)
            and not any(isinstance(a, cst.FunctionDef) for a in ancestors(r))
            for r in m.findall(function.body, m.Return())
        )

    next_is_builtin = all(isinstance(s, BuiltinScope) for s in _referent_scopes(scopes, function, "next"))
    steps, loops = [], []
    for use in uses:
        parent = parents[use]
        if (
            next_is_builtin
            and isinstance(parent, cst.Arg)
            and parents[parent].args[0] is parent
            and m.matches(parents[parent], m.Call(func=m.Name("next")))
        ):
            steps.append(parents[parent])
        elif isinstance(parent, cst.For) and parent.iter is use:
            loops.append(parent)
        else:
            return drain
    if any(unconditional(loop) and not returns_before(loop) and not _leaves_early(loop) for loop in loops):
        return Consumption("list({})", exact=True, needs_iter=bool(steps))
    steps.sort(key=lambda s: (positions[s].start.line, positions[s].start.column))
    if steps and not loops and all(unconditional(s) for s in steps) and not returns_before(steps[-1]):
        return Consumption(f"list(itertools.islice({{}}, {len(steps)}))", exact=True, needs_itertools=True)
    return drain


def _referent_scopes(scopes: dict, function: cst.FunctionDef, name: str) -> set:
    scope = scopes[function.body.body[0]]
    return {r.scope for access in scope.accesses[name] for r in access.referents}


def _leaves_early(loop: cst.For) -> bool:
    """A ``return`` inside the loop or a ``break`` of this loop (not of a loop nested in it)."""

    class Breaks(cst.CSTVisitor):
        found = False

        def visit_For(self, node: cst.For) -> bool:
            return False

        def visit_While(self, node: cst.While) -> bool:
            return False

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False

        def visit_Break(self, node: cst.Break) -> None:
            self.found = True

    finder = Breaks()
    loop.body.visit(finder)
    return finder.found or has_return(loop.body)
