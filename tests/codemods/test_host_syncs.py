"""BF703 decides from the kinds the worker measured, never from the code's look alone."""

from __future__ import annotations

import pytest
from codemod_harness import run_codemod
from libcst.codemod import TransformSkip, TransformSuccess

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
