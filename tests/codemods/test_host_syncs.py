"""BF703 decides from the kinds the worker measured, never from the code's look alone; BF704 sorts
by the tensors' values only, as sorted() does."""

from __future__ import annotations

import pytest
import torch
from codemod_harness import run_codemod
from libcst.codemod import TransformSkip, TransformSuccess

from breakfix.codemods.host_syncs import SORTED_HELPER_SOURCE
from breakfix.types import BreakFacts, ValueKind

SOURCE = """\
import torch


def f(table, t, x):
    a = table[t]
    return x * a
"""


def _facts(**kinds: ValueKind) -> BreakFacts:
    return BreakFacts(values={name: (kind,) for name, kind in kinds.items()})


def test_an_index_measured_as_a_0d_integer_tensor_becomes_a_one_element_index() -> None:
    result = run_codemod("BF703", SOURCE, 5, facts=_facts(table=ValueKind.TENSOR, t=ValueKind.INDEX_TENSOR))
    assert isinstance(result, TransformSuccess)
    assert "a = table[t.reshape(1)].squeeze(0)" in result.code


@pytest.mark.parametrize(
    "facts",
    [
        _facts(table=ValueKind.TENSOR, t=ValueKind.INT),  # a Python int indexes as it is
        _facts(table=ValueKind.TENSOR, t=ValueKind.TENSOR),  # a mask or a 1-d index
        _facts(table=ValueKind.TENSORS, t=ValueKind.INDEX_TENSOR),  # a list of tensors
        BreakFacts(),  # not measured
    ],
)
def test_what_was_not_measured_as_a_0d_index_into_a_tensor_is_left_alone(facts: BreakFacts) -> None:
    assert isinstance(run_codemod("BF703", SOURCE, 5, facts=facts), TransformSkip)


def test_an_element_updated_in_place_is_refused() -> None:
    source = SOURCE.replace("    return x * a", "    a.add_(x.sum())\n    return a")
    result = run_codemod("BF703", source, 5, facts=_facts(table=ValueKind.TENSOR, t=ValueKind.INDEX_TENSOR))
    assert isinstance(result, TransformSkip) and "a is updated in place" in result.skip_description


def test_a_name_bound_to_something_else_may_be_updated_in_place() -> None:
    # Only the name bound to the element read through the rewritten subscript holds a copy.
    source = SOURCE.replace("    a = table[t]\n", "    acc = torch.zeros(3)\n    acc.add_(x)\n    a = table[t]\n")
    result = run_codemod("BF703", source, 7, facts=_facts(table=ValueKind.TENSOR, t=ValueKind.INDEX_TENSOR))
    assert isinstance(result, TransformSuccess)
    assert "a = table[t.reshape(1)].squeeze(0)" in result.code


@pytest.mark.parametrize(
    ("call", "rewritten"),
    [
        ("sorted(losses)", "_sorted_tensors(losses)"),
        ("sorted(losses, reverse=True)", "_sorted_tensors(losses, descending=True)"),
        ("sorted(losses, reverse=False)", "_sorted_tensors(losses)"),
        ("sorted(losses, reverse=worst_first)", "_sorted_tensors(losses, descending=bool(worst_first))"),
        ("sorted(losses, key=lambda l: l.item())", "_sorted_tensors(losses)"),
        ("sorted(losses, key=float, reverse=True)", "_sorted_tensors(losses, descending=True)"),
        ("sorted(losses, key=lambda l: float(l))", "_sorted_tensors(losses)"),
        ("sorted(losses, key=torch.Tensor.item)", "_sorted_tensors(losses)"),
        ("sorted(losses, key=lambda l: -l.item())", None),
        ("sorted(losses, key=len)", None),
        ("sorted(losses, key=lambda l: other.item())", None),
        ("sorted(*groups)", None),
    ],
)
def test_sorted_over_tensors_becomes_a_stable_sort_only_by_the_values_themselves(
    call: str, rewritten: str | None
) -> None:
    source = f"import torch\n\ndef f(losses, worst_first, other, groups):\n    return {call}[:2]\n"
    result = run_codemod("BF704", source, 4)
    if rewritten is None:
        assert isinstance(result, TransformSkip), result
        return
    assert isinstance(result, TransformSuccess), result
    assert f"    return {rewritten}[:2]\n" in result.code


@pytest.mark.parametrize("descending", [False, True])
def test_the_sorted_tensors_helper_orders_as_sorted_does_ties_and_gradients_too(descending: bool) -> None:
    namespace: dict = {"torch": torch}
    exec(SORTED_HELPER_SOURCE, namespace)  # noqa: S102 (the helper the codemod writes)
    values = torch.tensor([1.0, 3.0, 1.0, 3.0, 2.0, -0.5], requires_grad=True)
    losses = list(values.unbind(0))
    ordered = namespace["_sorted_tensors"](losses, descending=descending)
    expected = sorted(losses, key=lambda t: t.item(), reverse=descending)
    assert [t.item() for t in ordered] == [t.item() for t in expected]
    (grad,) = torch.autograd.grad(sum(w * t for w, t in zip(range(1, 7), ordered)), values)
    (expected_grad,) = torch.autograd.grad(sum(w * t for w, t in zip(range(1, 7), expected)), values)
    assert torch.equal(grad, expected_grad)  # each weight reaches the element sorted() put there
    assert namespace["_sorted_tensors"]([], descending=descending) == []
