"""Runtime facts the codemods need (worker side; imports torch).

Today one kind: what it takes to turn a project helper into a ``torch.library.custom_op``
(BF202). A custom op is opaque to the compiler, so the compiler learns its outputs' metadata only
from a fake kernel; a wrong fake is a silently wrong graph. The fake is therefore *derived*, never
guessed: the helper's arguments are captured during an eager run of the target, and
``breakfix.worker.fakes`` derives the fake from runs on them and checks it. Whatever fails is reported as
``OpaqueOpFact(rejected=why)``, and the codemod skips.

The other kind: what each argument of a print or log call at a break held when the line ran
(``BreakFacts.values``), so BF501 decides from the measured type instead of refusing on "may be
a tensor". Only arguments made of names, attributes, subscripts and constants are read (reading
them runs no user code but properties); each time the line runs adds the kinds it saw. At a
data-dependent guard, the same is measured for every subscript ``x[i]`` of the function holding
the break, both ``x`` and ``i``, so BF703 knows which index is a 0-d integer tensor.
"""

from __future__ import annotations

import ast
import inspect
import os
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from breakfix.types import DATA_DEPENDENT_GUARD, BreakFacts, OpaqueOpFact, ValueKind
from breakfix.worker.fakes import (
    Rejected,
    annotation_of,
    check_fake,
    copy_value,
    derive_fake,
    differentiable,
    fake_return,
    memory_order,
    perturbations,
    quiet,
    run_helper,
)

MAX_CALLS = 4  # captured calls of the helper used as base samples


def collect_facts(
    fn: Callable, make_inputs: Callable[[], tuple], breaks: list[dict], seed_all: Callable
) -> dict[str, BreakFacts]:
    """Facts per break site ("file:line" of the innermost project frame)."""
    opaque = opaque_facts(fn, make_inputs, breaks, seed_all)
    values = value_facts(fn, make_inputs, breaks, seed_all)
    return {
        key: BreakFacts(opaque_op=opaque.get(key), values=values.get(key, {}))
        for key in dict.fromkeys([*opaque, *values])
    }


def opaque_facts(
    fn: Callable, make_inputs: Callable[[], tuple], breaks: list[dict], seed_all: Callable
) -> dict[str, OpaqueOpFact]:
    """BF202's facts per break site whose innermost project frame is a helper's. The helper made
    opaque is the innermost function of the break's project stack, below the compiled function,
    that can be one: the break may be in a function it calls that cannot (a method, or one that
    returns an ndarray), and the custom op runs that call eagerly too. When none can, the reason
    is the innermost one's."""
    candidates: dict[str, list[types.FunctionType | Rejected]] = {}
    for brk in breaks:
        project = brk["project_stack"]
        if len(project) < 2:
            continue  # the break is in the compiled function itself: no helper to make opaque
        site = project[-1]
        found: list[types.FunctionType | Rejected] = []
        for frame in reversed(project[1:]):
            try:
                found.append(helper_at(frame["filename"], frame["lineno"]))
            except Rejected as e:
                found.append(e)
        candidates[f"{site['filename']}:{site['lineno']}"] = found
    helpers = list(
        {h.__code__: h for found in candidates.values() for h in found if not isinstance(h, Rejected)}.values()
    )
    if not helpers:
        return {key: OpaqueOpFact(rejected=str(found[0])) for key, found in candidates.items()}
    try:
        calls = capture_calls(fn, make_inputs, helpers, seed_all)
    except Rejected as e:
        return {key: OpaqueOpFact(rejected=str(e)) for key in candidates}
    derived: dict[types.CodeType, OpaqueOpFact] = {}

    def fact_of(helper: types.FunctionType | Rejected) -> OpaqueOpFact:
        if isinstance(helper, Rejected):
            return OpaqueOpFact(rejected=str(helper))
        if helper.__code__ not in derived:
            try:
                derived[helper.__code__] = opaque_op_facts(helper, calls[helper.__code__], seed_all)
            except Rejected as e:
                derived[helper.__code__] = OpaqueOpFact(rejected=str(e))
        return derived[helper.__code__]

    chosen: dict[str, OpaqueOpFact] = {}
    for key, found in candidates.items():
        # Lazily: an outer helper is derived only when the inner ones cannot be ops (a derivation reruns it).
        facts = (fact_of(helper) for helper in found)
        chosen[key] = next((fact for fact in facts if not fact.rejected), None) or fact_of(found[0])
    return chosen


# --- what the arguments of a print or log call held ------------------------------------------------


_LOG_METHODS = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "log", "warning_once"}
)


def _reported_call(call: ast.Call) -> bool:
    """``print(...)``, ``<logger>.info(...)`` and friends, ``warnings.warn(...)``."""
    func = call.func
    return (isinstance(func, ast.Name) and func.id == "print") or (
        isinstance(func, ast.Attribute) and func.attr in _LOG_METHODS
    )


def _readable(node: ast.expr) -> bool:
    """Names, attributes, subscripts by constants or names, and constants: reading them calls nothing."""
    if isinstance(node, (ast.Name, ast.Constant)):
        return True
    if isinstance(node, ast.Attribute):
        return _readable(node.value)
    if isinstance(node, ast.Subscript):
        return _readable(node.value) and _readable(node.slice)
    return False


def _shape_query(node: ast.expr) -> ast.expr | None:
    """The readable operand of a question about a shape (``tuple(x.shape)``, ``list(x.size())``,
    ``len(x)``, ``x.size()``, ``x.size(1)``, ``x.dim()``, ``x.numel()``), else None. Evaluated on a
    tensor, a ``torch.Size``, a list or a tuple only, it runs no user code."""
    if isinstance(node, ast.Call) and not node.keywords:
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("tuple", "list", "len") and len(node.args) == 1:
            inner = node.args[0]
            return _shape_query(inner) if isinstance(inner, ast.Call) else inner if _readable(inner) else None
        if isinstance(func, ast.Attribute) and func.attr in ("size", "dim", "numel", "ndimension"):
            constant_args = all(isinstance(a, ast.Constant) and type(a.value) is int for a in node.args)
            return func.value if _readable(func.value) and constant_args and len(node.args) <= 1 else None
    return None


def _arithmetic_leaves(node: ast.expr) -> list[ast.expr] | None:
    """The readable operands of an arithmetic expression of them (``i + 1``, ``-k``, ``n - i - 1``),
    constants left out; None for any other expression. Evaluated on tensors and numbers only, it
    runs no user code."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)):
        left, right = _arithmetic_leaves(node.left), _arithmetic_leaves(node.right)
        return None if left is None or right is None else [*left, *right]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _arithmetic_leaves(node.operand)
    if isinstance(node, ast.Constant):
        return [] if isinstance(node.value, int) else None
    return [node] if _readable(node) else None


def _argument_expressions(call: ast.Call) -> Iterator[ast.expr]:
    """The values a print or log call formats: its arguments, an f-string's fields, a ``.format``
    call's arguments and a ``%`` operator's right side."""
    for arg in [*call.args, *(k.value for k in call.keywords)]:
        if isinstance(arg, ast.Starred):
            continue
        if isinstance(arg, ast.JoinedStr):
            yield from (v.value for v in arg.values if isinstance(v, ast.FormattedValue))
        elif isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "format":
            yield from (a for a in arg.args if not isinstance(a, ast.Starred))
        elif isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod):
            yield from (arg.right.elts if isinstance(arg.right, ast.Tuple) else [arg.right])
        else:
            yield arg


def source_of(filename: str) -> str:
    """The source the run executes for ``filename``: a rewrite's, served by the overlay's loader,
    when the module was imported from one; else the file's. The lines of a break are the lines of
    the code that ran."""
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        loader = getattr(module, "__loader__", None)
        if path and os.path.realpath(path) == os.path.realpath(filename) and hasattr(loader, "get_source"):
            source = loader.get_source(module.__name__)
            if source is not None:
                return source
    return Path(filename).read_text(encoding="utf-8")


def _reported_expressions(filename: str, lineno: int) -> tuple[int, list[str]]:
    """(the first line of the statement holding the print or log call at ``lineno``, the readable
    expressions it formats), or (0, []) when there is none."""
    try:
        tree = ast.parse(source_of(filename))
    except (OSError, SyntaxError, UnicodeDecodeError, ImportError):
        return 0, []
    for statement in ast.walk(tree):
        if not isinstance(statement, ast.stmt) or isinstance(
            statement,
            (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.While, ast.With, ast.Try),
        ):
            continue
        if not statement.lineno <= lineno <= (statement.end_lineno or statement.lineno):
            continue
        calls = [n for n in ast.walk(statement) if isinstance(n, ast.Call) and _reported_call(n)]
        found = [
            ast.unparse(e)
            for c in calls
            for e in _argument_expressions(c)
            if _readable(e) or _shape_query(e) is not None
        ]
        return statement.lineno, list(dict.fromkeys(found))
    return 0, []


def _subscript_expressions(filename: str, lineno: int) -> dict[int, list[str]]:
    """Per first line of each simple statement of the function spanning ``lineno``: the readable
    subscripts' values and single indexes it holds (``x[i]``: ``x`` and ``i``)."""
    try:
        tree = ast.parse(source_of(filename))
    except (OSError, SyntaxError, UnicodeDecodeError, ImportError):
        return {}
    functions = [
        f
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.lineno <= lineno <= (f.end_lineno or f.lineno)
    ]
    if not functions:
        return {}
    function = min(functions, key=lambda f: (f.end_lineno or f.lineno) - f.lineno)
    found: dict[int, list[str]] = {}
    for statement in ast.walk(function):
        if not isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr, ast.Return)):
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.Subscript) and not isinstance(node.slice, (ast.Slice, ast.Tuple)):
                if _readable(node.value) and (_readable(node.slice) or _arithmetic_leaves(node.slice)):
                    found.setdefault(statement.lineno, []).extend([ast.unparse(node.value), ast.unparse(node.slice)])
    return {line: list(dict.fromkeys(texts)) for line, texts in found.items()}


def _leaf_codes(text: str, filename: str) -> tuple[list[types.CodeType], tuple[type, ...]]:
    """The operands to check before ``text`` is evaluated (those of an arithmetic expression, the
    tensor of a shape query), and the types each must have for the evaluation to run no user code."""
    node = ast.parse(text, mode="eval").body
    queried = _shape_query(node)
    if queried is not None:
        return [compile(ast.Expression(queried), filename, "eval")], (torch.Tensor, torch.Size, list, tuple)
    leaves = [] if _readable(node) else (_arithmetic_leaves(node) or [])
    return [compile(ast.Expression(leaf), filename, "eval") for leaf in leaves], (torch.Tensor, int, bool)


def kind_of(value: Any) -> ValueKind:
    if isinstance(value, torch.Tensor):
        if type(value) is not torch.Tensor:
            return ValueKind.TENSOR_SUBCLASS
        if value.dim() == 0 and not value.is_floating_point() and not value.is_complex() and value.dtype != torch.bool:
            return ValueKind.INDEX_TENSOR
        return ValueKind.TENSOR_GRAD if value.requires_grad else ValueKind.TENSOR
    simple = {
        bool: ValueKind.BOOL,
        int: ValueKind.INT,
        float: ValueKind.FLOAT,
        str: ValueKind.STR,
        type(None): ValueKind.NONE,
        torch.dtype: ValueKind.DTYPE,
        torch.device: ValueKind.DEVICE,
    }
    if type(value) in simple:
        return simple[type(value)]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return ValueKind.TENSORS
    if isinstance(value, (list, tuple)) and all(type(v) is int for v in value):
        return ValueKind.INTS
    return ValueKind.MODULE if isinstance(value, torch.nn.Module) else ValueKind.OTHER


def value_facts(
    fn: Callable, make_inputs: Callable[[], tuple], breaks: list[dict], seed_all: Callable
) -> dict[str, dict[str, tuple[ValueKind, ...]]]:
    """Per break site holding a print or log call: the kinds each readable argument held, over one
    eager run of the target; at a data-dependent guard, also the kinds of the values and indexes
    of the readable subscripts of the function holding it."""
    watched: dict[
        tuple[str, int], list[tuple[str, list[tuple[str, types.CodeType, list[types.CodeType], tuple[type, ...]]]]]
    ] = {}
    for brk in breaks:
        site = brk["project_stack"][-1]
        key = f"{site['filename']}:{site['lineno']}"
        first, expressions = _reported_expressions(site["filename"], site["lineno"])
        lines = (
            _subscript_expressions(site["filename"], site["lineno"])
            if brk.get("gb_type") == DATA_DEPENDENT_GUARD
            else {}
        )
        if expressions:
            lines[first] = list(dict.fromkeys([*expressions, *lines.get(first, [])]))
        for line, texts in lines.items():
            compiled = [(e, compile(e, site["filename"], "eval"), *_leaf_codes(e, site["filename"])) for e in texts]
            watched.setdefault((os.path.realpath(site["filename"]), line), []).append((key, compiled))
    if not watched:
        return {}
    files = {filename for filename, _ in watched}
    seen: dict[str, dict[str, list[ValueKind]]] = {key: {} for entries in watched.values() for key, _ in entries}

    def local(frame: types.FrameType, event: str, arg: Any) -> Any:
        entries = watched.get((os.path.realpath(frame.f_code.co_filename), frame.f_lineno)) if event == "line" else None
        for key, compiled in entries or ():
            for text, code, leaves, safe_types in compiled:
                try:
                    # Names, attributes, subscripts and constants (_readable), arithmetic of them on
                    # tensors and numbers, and shape queries of tensors: no user code runs.
                    operands = [eval(leaf, frame.f_globals, frame.f_locals) for leaf in leaves]
                    if any(type(o) not in safe_types for o in operands):
                        continue
                    kind = kind_of(eval(code, frame.f_globals, frame.f_locals))
                except Exception:
                    continue
                kinds = seen[key].setdefault(text, [])
                if kind not in kinds:
                    kinds.append(kind)
        return local

    def calls(frame: types.FrameType, event: str, arg: Any) -> Any:
        return local if os.path.realpath(frame.f_code.co_filename) in files else None

    seed_all(0)
    inputs = make_inputs()
    seed_all(0)
    previous = sys.gettrace()
    with quiet(), torch.compiler.set_stance("force_eager"):
        sys.settrace(calls)
        try:
            fn(*inputs)
        except Exception:
            return {}
        finally:
            sys.settrace(previous)
    return {key: {text: tuple(kinds) for text, kinds in found.items()} for key, found in seen.items() if found}


# --- which function is the helper --------------------------------------------------------------


def _own_lines(code: types.CodeType) -> set[int]:
    return {line for _, _, line in code.co_lines() if line is not None}


def _nested_codes(code: types.CodeType) -> Iterator[types.CodeType]:
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield const
            yield from _nested_codes(const)


def helper_at(filename: str, lineno: int) -> types.FunctionType:
    """The module-level function of an imported module whose own code holds ``filename:lineno``."""
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or os.path.realpath(path) != filename:
            continue
        for name, value in vars(module).items():
            if not isinstance(value, types.FunctionType) or value.__name__ != name:
                continue
            if os.path.realpath(value.__code__.co_filename) != filename:
                continue
            if lineno in _own_lines(value.__code__):
                return value
            if any(lineno in _own_lines(c) for c in _nested_codes(value.__code__)):
                raise Rejected(
                    f"the break is in a function nested in {name}; only module-level functions become custom ops"
                )
        raise Rejected(f"line {lineno} is not in a module-level function (a method cannot become a custom op)")
    raise Rejected(f"{filename} was not imported by the run")


@dataclass
class Call:
    """The helper's arguments by parameter name (tensors cloned at call time)."""

    args: dict[str, Any]
    output_requires_grad: bool = False


def capture_calls(
    fn: Callable, make_inputs: Callable[[], tuple], helpers: list[types.FunctionType], seed_all: Callable
) -> dict[types.CodeType, list[Call]]:
    """Each helper's calls during one eager run of the target (compiled pieces run eagerly too)."""
    names = {h.__code__: list(inspect.signature(h).parameters) for h in helpers}
    calls: dict[types.CodeType, list[Call]] = {code: [] for code in names}
    open_frames: dict[int, Call] = {}

    def profile(frame: types.FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if code not in names:
            return
        if event == "call" and len(calls[code]) < MAX_CALLS:
            call = Call({n: copy_value(frame.f_locals[n]) for n in names[code]})
            calls[code].append(call)
            open_frames[id(frame)] = call
        elif event == "return" and id(frame) in open_frames:
            outputs = arg if isinstance(arg, tuple) else (arg,)
            open_frames.pop(id(frame)).output_requires_grad = any(
                isinstance(o, torch.Tensor) and o.requires_grad for o in outputs
            )

    seed_all(0)
    inputs = make_inputs()
    seed_all(0)
    previous = sys.getprofile()
    with quiet(), torch.compiler.set_stance("force_eager"):
        sys.setprofile(profile)
        try:
            fn(*inputs)
        except Exception as e:
            raise Rejected(f"the target raised while its helpers' arguments were captured: {type(e).__name__}") from e
        finally:
            sys.setprofile(previous)
    return calls


# --- the whole derivation ----------------------------------------------------------------------


def op_name(helper: types.FunctionType) -> str:
    module = helper.__module__.replace(".", "_").strip("_") or "main"
    return f"breakfix::{module}_{helper.__name__}"


def opaque_op_facts(helper: types.FunctionType, calls: list[Call], seed_all: Callable) -> OpaqueOpFact:
    """What BF202 writes for ``helper``, derived from its captured ``calls``."""
    signature = inspect.signature(helper)
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY) for p in signature.parameters.values()):
        raise Rejected(f"{helper.__name__} takes *args, **kwargs or positional-only parameters")
    if not calls:
        raise Rejected(f"{helper.__name__} was not called during an eager run of the target")
    params = list(signature.parameters)
    annotations = {}
    for name in params:
        kinds = {annotation_of(c.args[name]) for c in calls}
        if None in kinds or len(kinds) != 1:
            shown = dict.fromkeys(type(c.args[name]).__name__ for c in calls)
            raise Rejected(f"parameter {name} is {' or '.join(shown)}: a custom op cannot take it")
        annotations[name] = kinds.pop()
    if any(c.output_requires_grad for c in calls) or differentiable(helper, calls[0].args):
        raise Rejected(
            f"{helper.__name__} is differentiable: a custom op without an autograd formula would cut the gradient"
        )
    base_runs = [run_helper(helper, c.args, seed_all) for c in calls]
    if None in base_runs:
        raise Rejected(f"{helper.__name__} raised when called again on its captured arguments")
    runs = base_runs + [r for c in calls for a in perturbations(c.args) if (r := run_helper(helper, a, seed_all))]
    wrap = "clone" if any(r.aliased for r in runs) else ""
    if not wrap and any(memory_order(o) is None for r in runs for o in r.outputs):
        wrap = "contiguous"  # not a permuted dense tensor: no new_empty fake can state its strides
    outputs = derive_fake(params, runs, wrap)
    returns = "torch.Tensor" if runs[0].single else f"tuple[{', '.join(['torch.Tensor'] * len(outputs))}]"
    check_fake(helper, signature, annotations, returns, outputs, wrap, runs, len(base_runs))
    return OpaqueOpFact(
        helper=helper.__name__,
        op_name=op_name(helper),
        annotations=annotations,
        returns=returns,
        fake=fake_return(outputs, returns),
        wrap=wrap,
        runs=len(runs),
    )
