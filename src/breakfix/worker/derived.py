"""Derived inputs: the example inputs with other sizes, and with other values of the Python
numbers they pass, to verify a rewrite beyond the one example.

Each tensor argument (also inside lists, tuples and dicts; modules are left alone) gets new sizes:
dims that share a size across the arguments change together (a batch dim), to 1 and to an odd
size above the example's. The values are drawn with the example's dtype and range from a
generator seeded by the candidate's number, so the check worker re-derives the very tensors the
reference worker ran, without pickling them. Which candidates the original accepts is found by
running it eagerly (``modes.locate``); the reference keeps at most ``MAX_DERIVED`` of them.

An int or float the target is passed (a step, a learning rate) gets ``NEW_VALUES`` new values in
a row, as a loop passes them: dynamo recompiles on the first new value and then takes the
number as a symbol, so a rewrite that recompiles on the second too guards on the value itself,
and a loop hits the recompile limit on its ninth value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_DERIVED = 4  # derived inputs of other sizes kept in the reference
MAX_TRIED = 8  # candidates of other sizes run eagerly to find the ones the original accepts
NEW_VALUES = 2  # new values in a row of each Python number argument
MAX_NUMBER_ARGUMENTS = 2  # Python number arguments given new values (the recompile limit is 8)
DERIVED_SEED = 2  # the seed the inputs of every candidate are made with


@dataclass(frozen=True)
class Candidate:
    """A derived input: what it changes ("size 4 -> 1", "argument 3: 0.1 -> 0.125"), its arguments,
    and the index of the Python number argument it gives a new value (None for a size change)."""

    changes: str
    args: tuple
    argument: int | None = None


def _tensors(value: Any) -> list:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def size_changes(args: tuple) -> list[tuple[int, int]]:
    """(old size, new size) per candidate: each size of the tensors, first seen first, to 1 and
    to an odd size above it."""
    sizes: list[int] = []
    for tensor in _tensors(args):
        sizes += [s for s in tensor.shape if s >= 1 and s not in sizes]
    changes = []
    for size in sizes:
        if size > 1:
            changes.append((size, 1))
        changes.append((size, size + 1 if size % 2 == 0 else size + 2))
    return changes[:MAX_TRIED]


def _like(tensor: Any, shape: list[int], generator: Any) -> Any:
    """A tensor of ``shape`` with ``tensor``'s dtype, device, grad flag and range of values."""
    import torch

    low, high = (tensor.min().item(), tensor.max().item()) if tensor.numel() else (0, 1)
    if tensor.dtype == torch.bool:
        values = torch.randint(0, 2, shape, generator=generator).bool()
    elif tensor.is_floating_point() or tensor.is_complex():
        low, high = (abs(low), abs(high)) if tensor.is_complex() else (low, high)
        values = (torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low) + low).to(tensor.dtype)
    else:
        values = torch.randint(int(low), int(high) + 1, shape, generator=generator).to(tensor.dtype)
    values = values.to(tensor.device)
    return values.requires_grad_() if tensor.requires_grad and values.is_floating_point() else values


def _resized(value: Any, old: int, new: int, generator: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        if old not in value.shape:
            return value
        return _like(value.detach(), [new if s == old else s for s in value.shape], generator)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_resized(v, old, new, generator) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_resized(v, old, new, generator) for v in value)
    if isinstance(value, dict):
        return {k: _resized(v, old, new, generator) for k, v in value.items()}
    return value


def number_changes(args: tuple) -> list[tuple[int, float, float]]:
    """(argument index, old value, new value) per candidate: ``NEW_VALUES`` new values in a row of
    each int or float argument (not a bool), for the first ``MAX_NUMBER_ARGUMENTS`` of them."""
    changes: list[tuple[int, float, float]] = []
    numbers = [i for i, a in enumerate(args) if isinstance(a, (int, float)) and not isinstance(a, bool)]
    for index in numbers[:MAX_NUMBER_ARGUMENTS]:
        old = args[index]
        for step in range(1, NEW_VALUES + 1):
            new = old + step if isinstance(old, int) else (old or 0.1) * (1 + step / 8)
            changes.append((index, old, new))
    return changes


def derived_input(make_inputs: Callable[[], tuple], seed_all: Callable[[int], None], number: int) -> Candidate | None:
    """Candidate ``number`` (sizes first, then Python number values); None past the last."""
    import torch

    seed_all(DERIVED_SEED)
    args = make_inputs()
    sizes = size_changes(args)
    if number < len(sizes):
        old, new = sizes[number]
        generator = torch.Generator().manual_seed(DERIVED_SEED * 1000 + number)
        return Candidate(f"size {old} -> {new}", _resized(args, old, new, generator))
    values = number_changes(args)
    if number - len(sizes) >= len(values):
        return None
    index, old_value, new_value = values[number - len(sizes)]
    changed = (*args[:index], new_value, *args[index + 1 :])
    return Candidate(f"argument {index + 1}: {old_value!r} -> {new_value!r}", changed, index)
