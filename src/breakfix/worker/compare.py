"""Comparing a run with the eager reference: outputs, stdout, warnings, logs, files written and the
inputs' state after each call must all match."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

from breakfix.worker.sandbox import one_line


def differ(actual: Any, expected: Any, what: str, rtol: float | None, atol: float | None) -> str:
    """'' when ``actual`` matches ``expected``, else one line saying where they first differ.

    Containers and dataclasses are walked element by element, so a string, None or int nested
    anywhere is compared too; tensors and numbers are compared with ``assert_close`` (NaN equals
    NaN, infinities must match); anything else must be ``==``. Values that cannot be compared do
    not match: a rewrite is never taken as verified on a comparison that did not happen."""
    import torch

    if dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        if type(actual).__qualname__ != type(expected).__qualname__:
            return f"{what} differ: expected a {type(expected).__qualname__}, got {type(actual).__qualname__}"
        return next(
            (
                p
                for f in dataclasses.fields(expected)
                if (p := differ(getattr(actual, f.name), getattr(expected, f.name), f"{what}.{f.name}", rtol, atol))
            ),
            "",
        )
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or list(actual) != list(expected):
            keys = list(actual) if isinstance(actual, dict) else type(actual).__name__
            return f"{what} differ: expected keys {list(expected)!r:.80}, got {keys!r:.80}"
        return next((p for k in expected if (p := differ(actual[k], expected[k], f"{what}[{k!r}]", rtol, atol))), "")
    if isinstance(expected, (list, tuple)):
        if type(actual) is not type(expected) or len(actual) != len(expected):
            return f"{what} differ: expected {type(expected).__name__} of {len(expected)}, got {_short(actual)}"
        return next(
            (p for i, (a, e) in enumerate(zip(actual, expected)) if (p := differ(a, e, f"{what}[{i}]", rtol, atol))), ""
        )
    try:
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
        return ""
    except AssertionError as e:
        return f"{what} differ: {(str(e).strip().splitlines() or ['by assert_close'])[0]}"
    except Exception:
        pass  # not a tensor or number: compare as Python values
    try:
        equal = bool(actual == expected)
    except Exception as e:
        return f"{what} cannot be compared: {one_line(e)}"
    return "" if equal else f"{what} differ: expected {_short(expected)}, got {_short(actual)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def compare_call(expected: dict, actual: dict, rtol: float | None, atol: float | None) -> str:
    import torch

    if expected["stdout"] != actual["stdout"]:
        return f"stdout differs: expected {expected['stdout'][:80]!r}, got {actual['stdout'][:80]!r}"
    for kind in ("warnings", "logs"):
        if expected[kind] != actual[kind]:
            return f"{kind} differ: expected {expected[kind][:3]!r}, got {actual[kind][:3]!r}"
    if expected["shares_memory"] != actual["shares_memory"]:
        return (
            f"outputs share memory with inputs differently: expected {expected['shares_memory'][:3]!r}, "
            f"got {actual['shares_memory'][:3]!r}"
        )
    if set(expected["files"]) != set(actual["files"]):
        return f"files written differ: expected {sorted(expected['files'])}, got {sorted(actual['files'])}"
    for name, data in expected["files"].items():
        if data != actual["files"][name]:
            loaded = [torch.load(io.BytesIO(d), weights_only=False) for d in (data, actual["files"][name])]
            problem = differ(loaded[1], loaded[0], f"contents of written file {name!r}", rtol, atol)
            if problem:
                return problem
    return differ(actual["output"], expected["output"], "outputs", rtol, atol) or differ(
        actual["inputs_after"], expected["inputs_after"], "inputs after the call", rtol, atol
    )


def load_reference(path: str) -> dict:
    """The eager reference ``modes.locate`` saved: ``calls`` (``run_calls``' records) and
    ``derived`` (per derived input the original accepts: its ``number``, what it ``changes`` and
    its ``call``)."""
    import torch

    with open(path, "rb") as f:
        return torch.load(f, weights_only=False)


def first_mismatch(reference: list[dict], calls: list[dict], rtol: float | None, atol: float | None) -> str:
    """'' when every call matches its reference call, else "call N: " and where it first differs."""
    if len(calls) != len(reference):
        return f"made {len(calls)} calls, the reference {len(reference)}"
    for number, (expected, actual) in enumerate(zip(reference, calls), start=1):
        problem = compare_call(expected, actual, rtol, atol)
        if problem:
            return f"call {number}: {problem}"
    return ""
