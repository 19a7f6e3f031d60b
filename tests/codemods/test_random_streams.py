"""BF901: ``generator=`` reaches torch.randn/rand/randint only when it holds a generator."""

from __future__ import annotations

import pytest
from codemod_harness import line_of, run_codemod
from libcst.codemod import TransformSkip, TransformSuccess


def _rewrite(call: str) -> TransformSkip | TransformSuccess:
    source = f"import torch\n\n\ndef f(x, generator=None):\n    noise = {call}\n    return x + noise\n"
    result = run_codemod("BF901", source, line_of(source, "noise ="))
    assert isinstance(result, (TransformSkip, TransformSuccess)), result
    return result


@pytest.mark.parametrize(
    ("call", "becomes"),
    [
        ("torch.randn(x.shape, generator=None)", "torch.randn(x.shape)"),
        ("torch.randn(x.shape, generator=None, dtype=x.dtype)", "torch.randn(x.shape, dtype=x.dtype)"),
        ("torch.rand(x.shape, generator = None)", "torch.rand(x.shape)"),
        (
            "torch.randn(x.shape, generator=generator, dtype=x.dtype)",
            "torch.randn(x.shape, **_generator_kwargs(generator), dtype=x.dtype)",
        ),
        (
            "torch.randint(0, 5, x.shape, generator=generator)",
            "torch.randint(0, 5, x.shape, **_generator_kwargs(generator))",
        ),
    ],
)
def test_the_generator_keyword_is_left_out_when_none(call: str, becomes: str) -> None:
    result = _rewrite(call)
    assert isinstance(result, TransformSuccess)
    assert f"noise = {becomes}\n" in result.code
    assert ("def _generator_kwargs(generator):" in result.code) == ("_generator_kwargs(" in becomes)


@pytest.mark.parametrize(
    "call",
    [
        "torch.normal(0.0, 1.0, size=x.shape, generator=generator)",  # traces with dynamic sizes as it is
        "torch.randn(x.shape)",  # no generator keyword
        "make_noise(x.shape, generator=generator)",  # not a torch factory
    ],
)
def test_other_calls_are_left_alone(call: str) -> None:
    assert isinstance(_rewrite(call), TransformSkip)
