"""Iterators passed into compiled code (recipe 1 of the fullgraph chapter)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import BuiltinScope, MetadataWrapper, ParentNodeProvider, PositionProvider, ScopeProvider

from breakfix.codemods._base import BreakfixCodemod, FixRequest, function_at, parameter_names
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
    reads_parameters: bool = False  # the count is an expression of the function's parameters

    def of(self, iterator: str) -> str:
        return self.template.format(iterator)


class IteratorInput(BreakfixCodemod):
    """Pass an iterator argument to the compiled code as a list; the compiled code calls ``iter()``.

    ## What it fixes
    ``next(xs)`` (GB4347, "Missing tp_iternext") or ``for x in xs`` (GB0811, "missing tp_iter")
    on an iterator that is an argument of the compiled function, such as ``f(iter(tensors))``,
    whether the compiled function steps it itself or passes it on to a project function that
    steps it: a helper in the same or another file, a method, a child module's ``forward``, 1 to 3
    calls deep (positionally or by keyword).

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
    that always run (none in a branch or after an early ``return``; in a loop only when it is a
    ``for`` over ``range(...)`` of parameters the function never rebinds, with no ``break``,
    ``continue`` or ``else``: the orchestrator then takes ``len(range(...))`` items per step), or a
    ``for`` loop over the iterator with no ``break`` or ``return`` inside it; a call of a helper the iterator is
    passed to counts what the helper takes by the same rules, when the call always runs. A helper
    that does anything else with it (keeps it, returns it, passes it to library code), a call that
    unpacks arguments (``*args``), or library frames between the compiled function and the one
    that steps it make the count unknown. Otherwise the fix is unsafe: the
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
        if stack[-len(self.request.brk.project_stack) :] != self.request.brk.project_stack or len(
            self.request.brk.project_stack
        ) != len(stack):
            raise self.skip("the iterator is stepped in library code, whose consumption is not read")
        helpers = []
        for caller, frame in zip(stack, stack[1:]):
            module = self.parse_file(frame.filename)
            function = function_at(module, frame.lineno)
            if function is None:
                raise self.skip(f"line {frame.lineno} of {frame.filename} is not in a function")
            helpers.append(Helper(module, function, caller.lineno))
        try:
            compiled_function(tree, self.request)
            result, consumption = pass_as_list(tree, stack[0].lineno, self.request.piece_options, tuple(helpers))
        except NotSplittable as e:
            raise self.skip(str(e)) from e
        if not consumption.exact:
            self.applicability, self.changes = Applicability.UNSAFE, LAZY_CHANGE
        AddImportsVisitor.add_needed_import(self.context, "torch")
        if consumption.needs_itertools:
            AddImportsVisitor.add_needed_import(self.context, "itertools")
        return result


@dataclass(frozen=True)
class Helper:
    """A project function on the break's stack below the compiled one: each calls the next, the
    last steps the iterator."""

    module: cst.Module
    function: cst.FunctionDef
    called_at: int  # the line of its caller (the previous helper, or the compiled function) that calls it


def pass_as_list(
    module: cst.Module, line: int, defaults: PieceOptions = (), helpers: tuple[Helper, ...] = ()
) -> tuple[cst.Module, Consumption]:
    """Make the function spanning ``line`` take the iterator it steps there, or passes on there to
    ``helpers[0]`` (which steps it or passes it on to ``helpers[1]``, ...), as a list."""
    site = function_site(module, line)
    check_movable(site.function)
    param = iterator_parameter(module, site.function, line, helpers)
    consumption = consumption_of(module, site.function, param, helpers)
    params = parameter_names(site.function)
    statements = list(site.function.body.body)
    doc = docstring(site.function)
    stepping = [cst.parse_statement(f"{param} = iter({param})\n")] if consumption.needs_iter else []
    caller = single_caller(module, site.function) if is_compiled_piece(site.function) else None
    if caller is not None:
        if consumption.reads_parameters:
            raise NotSplittable("the number of items taken depends on arguments the orchestrator passes as expressions")
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


def iterator_parameter(
    module: cst.Module, function: cst.FunctionDef, line: int, helpers: tuple[Helper, ...] = ()
) -> str:
    """The parameter stepped on ``line``: ``next(p)`` or ``for ... in p``; or, when the iterator
    is stepped in ``helpers``, the parameter passed on there to the one that steps it."""
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    params = set(parameter_names(function))
    found = set()
    for call in _calls_of(module, function, helpers[0]) if helpers else ():
        if positions[call].start.line <= line <= positions[call].end.line:
            found |= {
                a.value.value
                for a in call.args
                if isinstance(a.value, cst.Name)
                and a.value.value in params
                and _steps(helpers, _parameter_passed(call, a, helpers[0].function))
            }
    stepped = m.Call(func=m.Name("next"), args=[m.Arg(value=m.Name()), m.ZeroOrMore()]) | m.For(iter=m.Name())
    for node in m.findall(function.body, stepped) if not helpers else ():
        name = node.args[0].value.value if isinstance(node, cst.Call) else node.iter.value
        if positions[node].start.line == line and name in params:
            found.add(name)
    if len(found) != 1:
        raise NotSplittable(f"cannot tell which parameter is the iterator stepped on line {line}")
    return found.pop()


def _calls_of(module: cst.Module, caller: cst.FunctionDef, helper: Helper) -> list[cst.Call]:
    """The calls of ``helper`` in ``caller``: by its name (``f(...)``, ``obj.f(...)``), and for a
    child module's ``forward``, called through the module object, the call at the line the stack
    says it was called from."""
    name = helper.function.name.value
    calls = [cst.ensure_type(c, cst.Call) for c in m.findall(caller.body, m.Call(func=m.Name() | m.Attribute()))]
    by_name = [c for c in calls if m.matches(c.func, m.Name(name) | m.Attribute(attr=m.Name(name)))]
    if name != "forward" or by_name:
        return by_name
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    at_line = [
        c
        for c in calls
        if positions[c].start.line <= helper.called_at <= positions[c].end.line
        and not m.matches(c.func, m.Name("next"))
    ]
    return at_line if len(at_line) == 1 else []


def _steps(helpers: tuple[Helper, ...], param: str | None) -> bool:
    """Whether ``helpers[0]`` steps its parameter ``param`` (``next``, ``for``), or passes it on to
    ``helpers[1]``, which does."""
    if param is None:
        return False
    function = helpers[0].function
    stepped = m.Call(func=m.Name("next"), args=[m.Arg(value=m.Name(param)), m.ZeroOrMore()]) | m.For(iter=m.Name(param))
    if m.findall(function.body, stepped):
        return True
    return len(helpers) > 1 and any(
        _steps(helpers[1:], _parameter_passed(call, arg, helpers[1].function))
        for call in _calls_of(helpers[0].module, function, helpers[1])
        for arg in call.args
        if m.matches(arg.value, m.Name(param))
    )


def _parameter_passed(call: cst.Call, arg: cst.Arg, helper: cst.FunctionDef) -> str | None:
    """The parameter of ``helper`` that ``arg`` of ``call`` binds (None when unpacking makes that
    unknowable). A method called through an object (``obj.f(...)``, or a module object whose
    ``forward`` runs) binds ``self`` or ``cls`` itself."""
    params = [p.name.value for p in (*helper.params.posonly_params, *helper.params.params)]
    if any(a.star for a in call.args):
        return None
    if arg.keyword is not None:
        return arg.keyword.value
    through_object = not m.matches(call.func, m.Name(helper.name.value))
    bound = params[1:] if through_object and params[:1] in (["self"], ["cls"]) else params
    position = [a for a in call.args if a.keyword is None].index(arg)
    return bound[position] if position < len(bound) else None


def consumption_of(
    module: cst.Module, function: cst.FunctionDef, param: str, helpers: tuple[Helper, ...] = ()
) -> Consumption:
    """How many items the function takes from the iterator ``param``, when that can be counted."""
    items = _items_taken(module, function, param, helpers)
    if isinstance(items, _Everything):
        return Consumption("list({})", exact=True, needs_iter=items is not _ALL_BY_FOR)
    if isinstance(items, (int, str)):
        return Consumption(
            f"list(itertools.islice({{}}, {items}))",
            exact=True,
            needs_itertools=True,
            reads_parameters=isinstance(items, str),
        )
    return Consumption("list({})", exact=False)


class _Everything:
    """The function takes every item (a loop that runs to the end)."""


_ALL = _Everything()
_ALL_BY_FOR = _Everything()  # ... and only its own ``for`` loops step it: a list needs no iter()


def _items_taken(
    module: cst.Module, function: cst.FunctionDef, param: str, helpers: tuple[Helper, ...], compiled: bool = True
) -> int | str | _Everything | None:
    """The number of items the function takes from ``param`` on every call, counting what the
    helper it passes it to takes (``helpers[0]``, in turn counting ``helpers[1:]``); _ALL when it
    always takes them all; None when that cannot be counted. In the compiled function itself
    (``compiled``), a step in a ``for`` loop over ``range(...)`` of its parameters counts as an
    expression the orchestrator evaluates: ``3 * len(range(num_steps))``."""
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
    if rebinds or not uses:
        return None

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

    def constant(name: str) -> bool:
        """A parameter of ``function`` it never rebinds: the orchestrator has its value (a global
        may be rebound by what the function calls)."""
        return (
            compiled
            and name in parameter_names(function)
            and all(isinstance(a.node, cst.Param) for a in scope.assignments[name])
        )

    def times(node: cst.CSTNode) -> str | None:
        """How many times ``node`` runs on every call: 1 outside loops and branches, the length
        of each ``range`` of parameters whose loop runs to the end around it; None otherwise."""
        factors = []
        for a in ancestors(node):
            if isinstance(a, cst.For) and m.matches(a.iter, m.Call(func=m.Name("range"))):
                args = cst.ensure_type(a.iter, cst.Call).args
                countable = (
                    all(not arg.keyword and not arg.star and _over(arg.value, constant) for arg in args)
                    and 1 <= len(args) <= 3
                )
                if not countable or a.orelse or _leaves_early(a) or _continues(a) or not range_is_builtin:
                    return None
                factors.append(f"len({cst.Module([]).code_for_node(a.iter)})")
            elif isinstance(a, _CONDITIONAL) or isinstance(a, cst.Comparison) and len(a.comparisons) > 1:
                return None
        return " * ".join(reversed(factors)) or "1"  # outermost loop first

    def returns_before(node: cst.CSTNode) -> bool:
        """A `return` that may run before ``node`` (one whose value holds ``node`` runs after it)."""
        start = positions[node].start
        return any(
            (positions[r].end.line, positions[r].end.column) <= (start.line, start.column)
            and not any(isinstance(a, cst.FunctionDef) for a in ancestors(r))
            for r in m.findall(function.body, m.Return())
        )

    next_is_builtin = all(isinstance(s, BuiltinScope) for s in _referent_scopes(scopes, function, "next"))
    range_is_builtin = all(isinstance(s, BuiltinScope) for s in _referent_scopes(scopes, function, "range"))
    steps: list[tuple[cst.CSTNode, int | str]] = []  # each call that takes a counted number of items
    loops: list[cst.CSTNode] = []  # each loop or call that takes every item
    for use in uses:
        parent = parents[use]
        call = parents[parent] if isinstance(parent, cst.Arg) else None
        if (
            next_is_builtin
            and isinstance(call, cst.Call)
            and call.args[0] is parent
            and m.matches(call, m.Call(func=m.Name("next")))
        ):
            steps.append((call, 1))
        elif isinstance(parent, cst.For) and parent.iter is use:
            loops.append(parent)
        elif helpers and isinstance(call, cst.Call) and call in _calls_of(module, function, helpers[0]):
            passed = _parameter_passed(call, cst.ensure_type(parent, cst.Arg), helpers[0].function)
            taken = (
                _items_taken(helpers[0].module, helpers[0].function, passed, helpers[1:], compiled=False)
                if passed is not None
                else None
            )
            if taken is None:
                return None
            if isinstance(taken, (int, str)):
                steps.append((call, taken))
            else:
                loops.append(call)
        else:
            return None
    if any(
        unconditional(loop) and not returns_before(loop) and not (isinstance(loop, cst.For) and _leaves_early(loop))
        for loop in loops
    ):
        return _ALL_BY_FOR if not steps and all(isinstance(loop, cst.For) for loop in loops) else _ALL
    steps.sort(key=lambda s: (positions[s[0]].start.line, positions[s[0]].start.column))
    if not steps or loops or returns_before(steps[-1][0]):
        return None
    terms = []
    for step, n in steps:
        t = times(step)
        if t is None:
            return None
        terms.append((n, t))
    return _total(terms)


def _total(terms: list[tuple[int | str, str]]) -> int | str:
    """The sum of ``n * t`` over ``terms``: an int when every term is a constant, else the Python
    expression of it (``n`` an int or an expression, ``t`` an expression, "1" outside loops)."""
    fixed, varying = 0, []
    for n, t in terms:
        if isinstance(n, int) and t == "1":
            fixed += n
        else:
            varying.append(" * ".join(p for p in (str(n) if isinstance(n, int) else f"({n})", t) if p != "1"))
    return " + ".join([*varying, str(fixed)] if fixed else varying) if varying else fixed


def _over(node: cst.BaseExpression, constant: Callable[[str], bool]) -> bool:
    """An integer expression of constants and the names ``constant`` accepts, with no call."""
    if isinstance(node, cst.Integer):
        return True
    if isinstance(node, cst.Name):
        return constant(node.value)
    if isinstance(node, cst.UnaryOperation):
        return _over(node.expression, constant)
    if isinstance(node, cst.BinaryOperation):
        return _over(node.left, constant) and _over(node.right, constant)
    return False


def _referent_scopes(scopes: dict, function: cst.FunctionDef, name: str) -> set:
    scope = scopes[function.body.body[0]]
    return {r.scope for access in scope.accesses[name] for r in access.referents}


def _leaves_early(loop: cst.For) -> bool:
    """A ``return`` inside the loop or a ``break`` of this loop (not of a loop nested in it)."""
    return _jumps(loop, cst.Break) or has_return(loop.body)


def _continues(loop: cst.For) -> bool:
    """A ``continue`` of this loop (not of a loop nested in it): the rest of its body may not run."""
    return _jumps(loop, cst.Continue)


def _jumps(loop: cst.For, kind: type[cst.Break] | type[cst.Continue]) -> bool:
    """A ``break`` or ``continue`` (``kind``) of this loop, not of a loop nested in it."""

    class Jumps(cst.CSTVisitor):
        found = False

        def on_visit(self, node: cst.CSTNode) -> bool:
            self.found |= isinstance(node, kind)
            return not isinstance(node, (cst.For, cst.While, cst.FunctionDef))

    finder = Jumps()
    loop.body.visit(finder)
    return finder.found
