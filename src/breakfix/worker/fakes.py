"""Deriving and checking the fake kernel of a helper that becomes a ``torch.library.custom_op``
(BF202; worker side, imports torch). The helper is run again on its captured arguments and on
copies with one size, one int or one floating dtype changed; every output size is fitted to a
constant, an input size, an int argument, or a sum or difference of two of those (plus a constant).
A fit must explain every run; the rendered fake is then checked against every run and by
``torch.library.opcheck`` on a scratch op. Whatever fails raises ``Rejected``."""

from __future__ import annotations

import contextlib
import inspect
import io
import itertools
import os
import tempfile
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

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


# --- capturing and replaying calls ---------------------------------------------------------------


@contextlib.contextmanager
def quiet() -> Iterator[list[str]]:
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


def copy_value(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, list):
        return list(value)
    return value


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


def run_helper(helper: Callable, args: dict[str, Any], seed_all: Callable) -> Run | None:
    """The helper on a copy of ``args``, or None when it raises (outside the helper's domain)."""
    given = {k: copy_value(v) for k, v in args.items()}
    seed_all(0)
    try:
        with quiet() as effects:
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


def differentiable(helper: Callable, args: dict[str, Any]) -> bool:
    """Whether gradients flow through the helper when its floating inputs require them (the
    example inputs may not: an inference run says nothing about training)."""
    given = {
        k: copy_value(v).requires_grad_() if isinstance(v, torch.Tensor) and v.is_floating_point() else copy_value(v)
        for k, v in args.items()
    }
    try:
        with quiet():
            outputs = _as_outputs(helper(**given))
    except Exception:
        return False  # e.g. ``.numpy()`` refuses a tensor that requires grad: never differentiable
    return any(o.requires_grad for o in outputs or ())


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
    # The fake takes the helper's parameters with the helper's defaults, as the rewrite writes it:
    # a call that leaves a parameter to its default reaches the fake without it.
    bare = signature.replace(
        parameters=[p.replace(annotation=p.empty, default=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty,
    )
    namespace: dict[str, Any] = {"torch": torch}
    exec(f"def _fake{bare}:\n    return {fake_return(outputs, returns)}\n", namespace)  # noqa: S102
    fake = namespace["_fake"]
    fake.__defaults__, fake.__kwdefaults__ = helper.__defaults__, helper.__kwdefaults__
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
        with quiet():
            for run in checked:
                torch.library.opcheck(op, (), {k: copy_value(v) for k, v in run.args.items()})
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise Rejected(f"torch.library.opcheck rejects the op: {first[:200]}") from e


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal strides on every dim of size > 1 (the others carry no meaning)."""
    return all(a.stride(d) == b.stride(d) for d in range(a.dim()) if a.shape[d] > 1)
