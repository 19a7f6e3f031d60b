"""Derived inputs: the example inputs with other sizes, to verify a rewrite beyond the one shape.

Each tensor argument (also inside lists, tuples and dicts; modules are left alone) gets new sizes:
dims that share a size across the arguments change together (a batch dim), to 1 and to an odd
size above the example's. The values are drawn with the example's dtype and range from a
generator seeded by the candidate's number, so the check worker re-derives the very tensors the
reference worker ran, without pickling them. Which candidates the original accepts is found by
running it eagerly (``modes.locate``); the reference keeps at most ``MAX_DERIVED`` of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_DERIVED = 4  # derived inputs kept in the reference
MAX_TRIED = 8  # candidates run eagerly to find the ones the original accepts
DERIVED_SEED = 2  # the seed the inputs of every candidate are made with


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


def derived_input(
    make_inputs: Callable[[], tuple], seed_all: Callable[[int], None], number: int
) -> tuple[str, tuple] | None:
    """Candidate ``number``: what it changes ("size 4 -> 1") and its arguments; None past the last."""
    import torch

    seed_all(DERIVED_SEED)
    args = make_inputs()
    changes = size_changes(args)
    if number >= len(changes):
        return None
    old, new = changes[number]
    generator = torch.Generator().manual_seed(DERIVED_SEED * 1000 + number)
    return f"size {old} -> {new}", _resized(args, old, new, generator)
