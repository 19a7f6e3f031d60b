"""Runtime facts the codemods need (worker side; imports torch).

Today one kind: what it takes to turn a project helper into a ``torch.library.custom_op``
(BF202). A custom op is opaque to the compiler, so the compiler learns its outputs' metadata only
from a fake kernel; a wrong fake is a silently wrong graph. The fake is therefore *derived*, never
guessed: the helper's arguments are captured during an eager run of the target, the helper is run
again on them and on copies with one size, one int or one floating dtype changed, and every output
size is fitted to a constant, an input size, an int argument, or a sum or difference of two of
those (plus a constant). A fit must explain every run; the rendered fake is then checked against
every run and by ``torch.library.opcheck`` on a scratch op. Whatever fails is reported as
``OpaqueOpFact(rejected=why)``, and the codemod skips.

The other kind: what each argument of a print or log call at a break held when the line ran
(``BreakFacts.values``), so BF501 decides from the measured type instead of refusing on "may be
a tensor". Only arguments made of names, attributes, subscripts and constants are read (reading
them runs no user code but properties); each time the line runs adds the kinds it saw.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import itertools
import os
import sys
import tempfile
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from breakfix.types import BreakFacts, OpaqueOpFact, ValueKind

MAX_CALLS = 4  # captured calls of the helper used as base samples
MAX_SEQUENCE = 16  # int-sequence elements turned into atoms and perturbed
_DTYPE_FLIP = {
    torch.float32: torch.float64,
    torch.float64: torch.float32,
    torch.float16: torch.float32,
    torch.bfloat16: torch.float32,
}
_ANNOTATIONS: dict[str, Any] = {
    "torch.Tensor": torch.Tensor,
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "Sequence[int]": Sequence[int],
}


class Rejected(Exception):
    """The helper cannot become a custom op with a derived fake; the message says why."""


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
    """BF202's facts per break site whose innermost project frame is a helper's."""
    helpers: dict[str, types.FunctionType | Rejected] = {}
    for brk in breaks:
        project = brk["project_stack"]
        if len(project) < 2:
            continue  # the break is in the compiled function itself: no helper to make opaque
        site = project[-1]
        try:
            helpers[f"{site['filename']}:{site['lineno']}"] = helper_at(site["filename"], site["lineno"])
        except Rejected as e:
            helpers[f"{site['filename']}:{site['lineno']}"] = e
    found = list({h.__code__: h for h in helpers.values() if not isinstance(h, Rejected)}.values())
    if not found:
        return {key: OpaqueOpFact(rejected=str(e)) for key, e in helpers.items()}
    try:
        calls = capture_calls(fn, make_inputs, found, seed_all)
    except Rejected as e:
        return {key: OpaqueOpFact(rejected=str(e)) for key in helpers}
    derived: dict[types.CodeType, OpaqueOpFact] = {}
    for helper in found:
        try:
            derived[helper.__code__] = opaque_op_facts(helper, calls[helper.__code__], seed_all)
        except Rejected as e:
            derived[helper.__code__] = OpaqueOpFact(rejected=str(e))
    return {
        key: OpaqueOpFact(rejected=str(h)) if isinstance(h, Rejected) else derived[h.__code__]
        for key, h in helpers.items()
    }


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


def _reported_expressions(filename: str, lineno: int) -> tuple[int, list[str]]:
    """(the first line of the statement holding the print or log call at ``lineno``, the readable
    expressions it formats), or (0, []) when there is none."""
    try:
        tree = ast.parse(Path(filename).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
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
        found = [ast.unparse(e) for c in calls for e in _argument_expressions(c) if _readable(e)]
        return statement.lineno, list(dict.fromkeys(found))
    return 0, []


def kind_of(value: Any) -> ValueKind:
    if isinstance(value, torch.Tensor):
        if type(value) is not torch.Tensor:
            return ValueKind.TENSOR_SUBCLASS
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
    eager run of the target."""
    watched: dict[tuple[str, int], tuple[str, list[tuple[str, types.CodeType]]]] = {}
    for brk in breaks:
        site = brk["project_stack"][-1]
        first, expressions = _reported_expressions(site["filename"], site["lineno"])
        if expressions:
            compiled = [(e, compile(e, site["filename"], "eval")) for e in expressions]
            watched[(os.path.realpath(site["filename"]), first)] = (f"{site['filename']}:{site['lineno']}", compiled)
    if not watched:
        return {}
    files = {filename for filename, _ in watched}
    seen: dict[str, dict[str, list[ValueKind]]] = {key: {} for key, _ in watched.values()}

    def local(frame: types.FrameType, event: str, arg: Any) -> Any:
        entry = watched.get((os.path.realpath(frame.f_code.co_filename), frame.f_lineno)) if event == "line" else None
        if entry is not None:
            key, compiled = entry
            for text, code in compiled:
                try:
                    # Names, attributes, subscripts and constants only (_readable): no user code runs.
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
    with _quiet(), torch.compiler.set_stance("force_eager"):
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


# --- capturing and replaying calls ---------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[list[str]]:
    """Run user code with its output swallowed and its relative writes in a scratch directory;
    the yielded list receives the side effects seen (printing, files written)."""
    old_cwd = os.getcwd()
    effects: list[str] = []
    stdout = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="breakfix-facts-") as cwd:
        os.chdir(cwd)
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
                yield effects
        finally:
            os.chdir(old_cwd)
            effects += ["prints"] if stdout.getvalue() else []
            effects += [f"writes {p.name}" for p in sorted(Path(cwd).rglob("*")) if p.is_file()]


def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, list):
        return list(value)
    return value


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
            call = Call({n: _copy(frame.f_locals[n]) for n in names[code]})
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
    with _quiet(), torch.compiler.set_stance("force_eager"):
        sys.setprofile(profile)
        try:
            fn(*inputs)
        except Exception as e:
            raise Rejected(f"the target raised while its helpers' arguments were captured: {type(e).__name__}") from e
        finally:
            sys.setprofile(previous)
    return calls


def annotation_of(value: Any) -> str | None:
    """The custom-op annotation for an argument value, or None when a custom op cannot take it."""
    if isinstance(value, torch.Tensor):
        return "torch.Tensor"
    if isinstance(value, bool):
        return "bool"
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind.__name__
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return "Sequence[int]"
    return None


def perturbations(args: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Copies of ``args`` with exactly one thing changed: a size, the rank (a leading dim added or
    taken away), an int, an int element, a dtype."""
    for name, value in args.items():
        if isinstance(value, torch.Tensor):
            yield {**args, name: value.unsqueeze(0).expand(3, *value.shape).clone()}
            if value.dim() and value.shape[0]:
                yield {**args, name: value[0].clone()}
            for dim, size in enumerate(value.shape):
                last = value.narrow(dim, size - 1, 1) if size else None
                if last is not None:
                    yield {**args, name: torch.cat([value, last], dim)}
                if size >= 2:
                    yield {**args, name: value.narrow(dim, 0, size - 1).clone()}
            if value.dtype in _DTYPE_FLIP:
                yield {**args, name: value.to(_DTYPE_FLIP[value.dtype])}
        elif isinstance(value, int) and not isinstance(value, bool):
            yield from ({**args, name: v} for v in _nudged(value))
        elif annotation_of(value) == "Sequence[int]":
            for index in range(min(len(value), MAX_SEQUENCE)):
                for v in _nudged(value[index]):
                    yield {**args, name: type(value)([*value[:index], v, *value[index + 1 :]])}


def _nudged(value: int) -> list[int]:
    """``value`` +- 1 without crossing zero: ``-1`` and ``0`` mean different things to an index."""
    return [v for v in (value + 1, value - 1) if (v < 0) == (value < 0)]


def atoms(args: dict[str, Any], from_the_end: bool = False) -> dict[str, int]:
    """Integers an output size may depend on, keyed by their source text in the fake; a tensor's
    sizes counted ``from_the_end`` (``x.shape[-1]``) mean the same dims whatever its rank."""
    found: dict[str, int] = {}
    for name, value in args.items():
        if isinstance(value, torch.Tensor):
            dims = range(-value.dim(), 0) if from_the_end else range(value.dim())
            found.update({f"{name}.shape[{d}]": int(value.shape[d]) for d in dims})
        elif isinstance(value, int) and not isinstance(value, bool):
            found[name] = value
        elif annotation_of(value) == "Sequence[int]":
            found.update({f"{name}[{i}]": v for i, v in enumerate(value[:MAX_SEQUENCE])})
    return found


# --- fitting -----------------------------------------------------------------------------------


Term = tuple[int, str]  # (+1 or -1, atom)


def _candidate_terms(names: list[str]) -> Iterator[tuple[Term, ...]]:
    """The linear forms tried, in order: one atom, none (a constant), minus one atom, two atoms."""
    yield from (((1, n),) for n in names)
    yield ()
    yield from (((-1, n),) for n in names)
    for a, b in itertools.combinations(names, 2):
        yield from (((1, a), (-1, b)), ((-1, a), (1, b)), ((1, a), (1, b)))


def _render(terms: tuple[Term, ...], constant: int) -> str:
    """``a + b - c + 1`` style: added atoms first, then subtracted ones, then the constant."""
    added = [n for sign, n in terms if sign > 0]
    subtracted = [n for sign, n in terms if sign < 0]
    if not added:
        text = str(constant) if constant or not subtracted else ""
        return "".join([text, *(f" - {n}" if text else f"-{n}" for n in subtracted)]) or "0"
    text = " + ".join(added) + "".join(f" - {n}" for n in subtracted)
    return f"{text} + {constant}" if constant > 0 else f"{text} - {-constant}" if constant < 0 else text


def fit_size(samples: list[tuple[dict[str, int], int]]) -> str | None:
    """Source text of one output size as a function of the atoms, explaining every sample, or None.

    When several forms explain every sample (an atom that no successful run varied), the plainest
    wins: atoms without an offset (``x.shape[0]``), then a constant, then atoms with an offset.
    """
    base_atoms, base_size = samples[0]
    names = [n for n in base_atoms if all(n in a for a, _ in samples)]
    fits: list[tuple[int, int, int, tuple[Term, ...], int]] = []
    for position, terms in enumerate(_candidate_terms(names)):
        constant = base_size - sum(sign * base_atoms[n] for sign, n in terms)
        if all(size == sum(sign * a[n] for sign, n in terms) + constant for a, size in samples):
            rank = 0 if terms and not constant else 1 if not terms else 2
            fits.append((rank, len(terms), position, terms, constant))
    if not fits:
        return None
    *_, terms, constant = min(fits, key=lambda f: f[:3])
    return _render(terms, constant)


def _as_outputs(value: Any) -> tuple[torch.Tensor, ...] | None:
    if isinstance(value, torch.Tensor):
        return (value,)
    if isinstance(value, tuple) and value and all(isinstance(v, torch.Tensor) for v in value):
        return value
    return None


def _shares_memory(tensors: Sequence[torch.Tensor], others: Sequence[torch.Tensor]) -> bool:
    """Whether a tensor's storage overlaps another's. Address ranges, not storage identity: a
    ``torch.from_numpy`` of a numpy view of an input is a new storage over the input's memory."""

    def span(t: torch.Tensor) -> tuple[int, int]:
        storage = t.untyped_storage()
        return storage.data_ptr(), storage.data_ptr() + storage.nbytes()

    spans = [span(t) for t in tensors if t.untyped_storage().nbytes()]
    return any(
        a < y and x < b
        for i, (a, b) in enumerate(spans)
        for (x, y) in [*spans[i + 1 :], *(span(o) for o in others if o.untyped_storage().nbytes())]
    )


def memory_order(t: torch.Tensor) -> list[int] | None:
    """The dims from outermost to innermost in memory, if ``t`` is a permuted contiguous tensor."""
    order = sorted(range(t.dim()), key=lambda d: (-t.stride(d), -t.shape[d]))
    return order if t.permute(order).is_contiguous() else None


@dataclass
class Run:
    args: dict[str, Any]
    outputs: tuple[torch.Tensor, ...]
    single: bool  # the helper returned a tensor, not a tuple
    aliased: bool  # an output shares memory with an argument or with another output


def _run(helper: Callable, args: dict[str, Any], seed_all: Callable) -> Run | None:
    """The helper on a copy of ``args``, or None when it raises (outside the helper's domain)."""
    given = {k: _copy(v) for k, v in args.items()}
    seed_all(0)
    try:
        with _quiet() as effects:
            value = helper(**given)
    except Exception:
        return None
    if effects:
        # A custom op's effects are invisible to the compiler (and dropped when its output is unused).
        raise Rejected(f"the helper has side effects: it {', '.join(effects)}")
    outputs = _as_outputs(value)
    if outputs is None:
        raise Rejected(f"the helper returns {type(value).__name__}, not a tensor or a tuple of tensors")
    aliased = _shares_memory(outputs, [v for v in given.values() if isinstance(v, torch.Tensor)])
    return Run(args, outputs, isinstance(value, torch.Tensor), aliased)


def derive_fake(params: list[str], runs: list[Run], wrap: str) -> list[str]:
    """One fake expression per output: sizes, dtype, device and layout fitted over every run."""
    count = len(runs[0].outputs)
    if any(len(r.outputs) != count or r.single != runs[0].single for r in runs):
        raise Rejected("the helper returns a different number of tensors for different inputs")
    ranks_vary = any(
        len({r.args[name].dim() for r in runs}) > 1
        for name in params
        if all(isinstance(r.args[name], torch.Tensor) for r in runs)
    )
    rendered = []
    for index in range(count):
        outs = [_wrapped(r.outputs[index], wrap) for r in runs]
        shaped = _any_rank_output(params, runs, outs) if ranks_vary else None
        if shaped:
            rendered.append(shaped)
            continue
        if len({o.dim() for o in outs}) != 1:
            raise Rejected(f"output {index} changes rank with the input ranks in a way no fake kernel states")
        sizes = []
        for dim in range(outs[0].dim()):
            size = fit_size([(atoms(r.args), int(o.shape[dim])) for r, o in zip(runs, outs)])
            if size is None:
                raise Rejected(f"no size rule explains output {index}, dim {dim} over {len(runs)} runs")
            sizes.append(size)
        order = memory_order(outs[0])
        if order is None or not all(o.permute(order).is_contiguous() for o in outs):
            raise Rejected(f"output {index} has a layout that changes with the input sizes")
        base = _base_tensor(params, runs, outs)
        rendered.append(_render_output(base, sizes, _dtype_rule(params, runs, outs), order))
    return rendered


def _any_rank_output(params: list[str], runs: list[Run], outs: list[torch.Tensor]) -> str | None:
    """A fake for an output whose rank follows a tensor parameter's, in terms of its sizes:
    ``x.new_empty(x.shape)``, ``x.new_empty(x.shape[:-1] + (k,))``, ``x.new_empty(x.shape[:-1])``
    (the input's sizes, all or all but the last one or two, then up to two fitted sizes); None if
    none fits."""
    if not all(memory_order(o) == list(range(o.dim())) for o in outs):
        return None  # only a contiguous output is allocated like this
    for name in params:
        inputs = [r.args[name] for r in runs]
        if not all(isinstance(t, torch.Tensor) and t.device == o.device for t, o in zip(inputs, outs)):
            continue
        for dropped in (0, 1, 2):
            kept = [t.dim() - dropped for t in inputs]
            added = {o.dim() - k for o, k in zip(outs, kept)}
            if min(kept) < 0 or len(added) != 1 or not 0 <= min(added) <= 2:
                continue
            if any(tuple(o.shape[:k]) != tuple(t.shape[:k]) for o, t, k in zip(outs, inputs, kept)):
                continue
            tail = [
                fit_size([(atoms(r.args, from_the_end=True), int(o.shape[k + j])) for r, o, k in zip(runs, outs, kept)])
                for j in range(min(added))
            ]
            if None in tail:
                continue
            shape = f"{name}.shape" if not dropped else f"{name}.shape[:-{dropped}]"
            if tail:
                shape += f" + ({tail[0]},)" if len(tail) == 1 else f" + ({', '.join(tail)})"
            dtype = _dtype_rule(params, runs, outs)
            return f"{name}.new_empty({shape}{'' if dtype == f'{name}.dtype' else f', dtype={dtype}'})"
    return None


def _wrapped(t: torch.Tensor, wrap: str) -> torch.Tensor:
    return t.clone() if wrap == "clone" else t.contiguous() if wrap == "contiguous" else t


def _base_tensor(params: list[str], runs: list[Run], outs: list[torch.Tensor]) -> str | None:
    """A tensor parameter on the output's device in every run (the fake allocates like it)."""
    for name in params:
        if all(isinstance(r.args[name], torch.Tensor) and r.args[name].device == o.device for r, o in zip(runs, outs)):
            return name
    if len({o.device for o in outs}) != 1 or next(iter(outs)).device.type != "cpu":
        raise Rejected("the output device is not the device of any tensor argument")
    return None


def _dtype_rule(params: list[str], runs: list[Run], outs: list[torch.Tensor]) -> str:
    """``x.dtype`` when the output followed a dtype change of ``x``, else the one observed dtype."""
    for name in params:
        values = [r.args[name] for r in runs]
        if not all(isinstance(v, torch.Tensor) for v in values) or len({v.dtype for v in values}) == 1:
            continue
        if all(v.dtype == o.dtype for v, o in zip(values, outs)):
            return f"{name}.dtype"
    dtypes = {o.dtype for o in outs}
    if len(dtypes) != 1:
        raise Rejected("the output dtype follows no input dtype and is not fixed")
    return str(dtypes.pop())


def _render_output(base: str | None, sizes: list[str], dtype: str, order: list[int]) -> str:
    """``base.new_empty(sizes in memory order, dtype=...)``, permuted back to the logical order."""
    in_memory = [sizes[d] for d in order]
    shape = f"({in_memory[0]},)" if len(in_memory) == 1 else f"({', '.join(in_memory)})"
    if base is None:
        text = f"torch.empty({shape}, dtype={dtype})"
    else:
        text = f"{base}.new_empty({shape}{'' if dtype == f'{base}.dtype' else f', dtype={dtype}'})"
    if order != sorted(order):
        text += f".permute({', '.join(str(order.index(d)) for d in range(len(order)))})"
    return text


def _differentiable(helper: Callable, args: dict[str, Any]) -> bool:
    """Whether gradients flow through the helper when its floating inputs require them (the
    example inputs may not: an inference run says nothing about training)."""
    given = {
        k: _copy(v).requires_grad_() if isinstance(v, torch.Tensor) and v.is_floating_point() else _copy(v)
        for k, v in args.items()
    }
    try:
        with _quiet():
            outputs = _as_outputs(helper(**given))
    except Exception:
        return False  # e.g. ``.numpy()`` refuses a tensor that requires grad: never differentiable
    return any(o.requires_grad for o in outputs or ())


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
    if any(c.output_requires_grad for c in calls) or _differentiable(helper, calls[0].args):
        raise Rejected(
            f"{helper.__name__} is differentiable: a custom op without an autograd formula would cut the gradient"
        )
    base_runs = [_run(helper, c.args, seed_all) for c in calls]
    if None in base_runs:
        raise Rejected(f"{helper.__name__} raised when called again on its captured arguments")
    runs = base_runs + [r for c in calls for a in perturbations(c.args) if (r := _run(helper, a, seed_all))]
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


# --- checking the fake ---------------------------------------------------------------------------


def fake_return(outputs: list[str], returns: str) -> str:
    """The expression the fake kernel returns, as the codemod writes it."""
    if returns == "torch.Tensor":
        return outputs[0]
    return f"({outputs[0]},)" if len(outputs) == 1 else ", ".join(outputs)


_scratch_ops = itertools.count()


def check_fake(
    helper: types.FunctionType,
    signature: inspect.Signature,
    annotations: dict[str, str],
    returns: str,
    outputs: list[str],
    wrap: str,
    runs: list[Run],
    base: int,
) -> None:
    """The rendered fake agrees with every run, and opcheck passes on a scratch op built like the
    rewrite for the ``base`` first runs (the captured calls) and for a run of every other
    combination of argument ranks."""
    params = list(signature.parameters)
    namespace: dict[str, Any] = {"torch": torch}
    exec(f"def _fake({', '.join(params)}):\n    return {fake_return(outputs, returns)}\n", namespace)  # noqa: S102
    fake = namespace["_fake"]
    for run in runs:
        produced = _as_outputs(fake(**run.args)) or ()
        for want, got in zip((_wrapped(o, wrap) for o in run.outputs), produced):
            if (want.shape, want.dtype, want.device) != (got.shape, got.dtype, got.device) or not _same_layout(
                want, got
            ):
                raise Rejected(
                    f"the derived fake gives {tuple(got.shape)} {got.dtype} where the helper "
                    f"gives {tuple(want.shape)} {want.dtype}"
                )

    def body(*args: Any, **kwargs: Any) -> Any:
        value = helper(*args, **kwargs)
        return tuple(_wrapped(v, wrap) for v in value) if isinstance(value, tuple) else _wrapped(value, wrap)

    body.__signature__ = signature.replace(  # the rewrite's signature: same defaults, derived annotations
        parameters=[p.replace(annotation=_ANNOTATIONS[annotations[p.name]]) for p in signature.parameters.values()],
        return_annotation=torch.Tensor if returns == "torch.Tensor" else tuple[(torch.Tensor,) * len(outputs)],
    )
    ranks = {}  # the first run of each combination of argument ranks: opcheck covers every rank seen
    for run in runs:
        ranks.setdefault(tuple(v.dim() for v in run.args.values() if isinstance(v, torch.Tensor)), run)
    checked = runs[:base] + [r for r in ranks.values() if not any(r is b for b in runs[:base])]
    try:
        op = torch.library.custom_op(f"breakfix_facts::op{next(_scratch_ops)}", mutates_args=())(body)
        op.register_fake(fake)
        with _quiet():
            for run in checked:
                torch.library.opcheck(op, (), {k: _copy(v) for k, v in run.args.items()})
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise Rejected(f"torch.library.opcheck rejects the op: {first[:200]}") from e


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal strides on every dim of size > 1 (the others carry no meaning)."""
    return all(a.stride(d) == b.stride(d) for d in range(a.dim()) if a.shape[d] > 1)
