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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import libcst as cst
import libcst.matchers as m
from libcst.helpers import get_full_name_for_node
from libcst.metadata import (
    MetadataWrapper,
    PositionProvider,
    QualifiedNameProvider,
)

from breakfix.codemods._base import FixRequest, definitions_at
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
    chain = definitions_at(module, line)
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


def _decorator_name(decorator: cst.Decorator) -> str:
    """``torch.compile`` for ``@torch.compile`` and ``@torch.compile(fullgraph=True)``."""
    expression = decorator.decorator
    if isinstance(expression, cst.Call):
        expression = expression.func
    return get_full_name_for_node(expression) or ""


def _decorator_names(function: cst.FunctionDef) -> list[str]:
    return [_decorator_name(decorator) for decorator in function.decorators]


def disables(decorator: cst.Decorator) -> bool:
    """``@torch.compiler.disable`` or ``@torch._dynamo.disable``, with or without arguments."""
    return _decorator_name(decorator) in _DISABLE_NAMES


def is_compiled_piece(function: cst.FunctionDef) -> bool:
    return COMPILE in _decorator_names(function)


def is_orchestrator(function: cst.FunctionDef) -> bool:
    return any(name in _DISABLE_NAMES for name in _decorator_names(function))


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
