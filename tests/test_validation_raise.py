"""BF604 end to end: validations rewritten by a real ``breakfix run --unsafe-fixes --apply``, then
called with failing inputs in eager and compiled code (real torch, aot_eager) to pin what the fix
keeps (eager: the same exception and message) and what its docstring says changes (compiled: a
RuntimeError, earlier input updates skipped)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import breakfix, make_project

VALIDATIONS = """\
import torch


def validate(x, k):
    k.add_(1)  # an in-place update of an input before the checks
    limit = 50
    if (x < 0).any():
        raise ValueError("negative input")
    if (x > 100).any():
        raise TypeError("too large")
    if (x == 0).all():
        raise IndexError
    if x.isnan().any():
        raise NotImplementedError("nan input")
    if x.sum().item() > limit: raise RuntimeError(f"sum over {limit}")
    return x.sqrt() * k


def example_inputs():
    return torch.rand(8), torch.tensor(3.0)
"""

# Calls the original and the rewrite on inputs passing and failing each check; prints one JSON line.
CALL_BOTH = """\
import json
import torch
import original, rewritten

torch._dynamo.config.capture_scalar_outputs = True
compiled = torch.compile(rewritten.validate, backend="aot_eager", fullgraph=True)
cases = {"pass": [1.0, 4.0], "ValueError": [-1.0, 4.0], "TypeError": [200.0, 4.0], "IndexError": [0.0, 0.0],
         "NotImplementedError": [float("nan"), 1.0], "RuntimeError": [30.0, 30.0]}


def outcome(fn, values):
    k = torch.tensor(3.0)
    try:
        result = fn(torch.tensor(values), k).tolist()
    except Exception as e:
        return {"type": type(e).__name__, "str": str(e), "args": list(e.args), "k": k.item()}
    return {"result": result, "k": k.item()}


print(json.dumps({name: {"original": outcome(original.validate, values), "eager": outcome(rewritten.validate, values),
                         "compiled": outcome(compiled, values)} for name, values in cases.items()}))
"""


@pytest.mark.torch
def test_failing_checks_raise_as_before_in_eager_and_as_documented_compiled(tmp_path) -> None:
    project = make_project(tmp_path, {"validations.py": VALIDATIONS, "original.py": VALIDATIONS})
    run = breakfix(
        project,
        "validations.py:validate",
        "--inputs",
        "validations.py:example_inputs",
        "--unsafe-fixes",
        "--apply",
        "--json",
    )
    assert run.code == 0, run.stderr[-2000:]
    report = run.json()
    assert report["applied"] and report["verified"]
    assert {(b["line"], b["fix"]["code"]) for b in report["breaks"]} == {
        (7, "BF604"),
        (9, "BF604"),
        (11, "BF604"),
        (13, "BF604"),
        (15, "BF604"),
    }
    rewritten = (project / "validations.py").read_text()
    assert "raise" not in rewritten and rewritten.count("torch._check") == 5
    (project / "rewritten.py").write_text(rewritten)
    (project / "call_both.py").write_text(CALL_BOTH)
    process = subprocess.run([sys.executable, "call_both.py"], cwd=project, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-2000:]
    outcomes = json.loads(process.stdout.splitlines()[-1])

    passing = outcomes.pop("pass")
    assert passing["original"] == passing["eager"] == passing["compiled"]
    assert passing["original"]["k"] == 4.0
    for raised, seen in outcomes.items():
        original, eager, compiled = seen["original"], seen["eager"], seen["compiled"]
        assert original["type"] == raised, (raised, original)
        # Eager: the same class and text, after the same earlier update of k.
        assert (eager["type"], eager["str"], eager["k"]) == (original["type"], original["str"], 4.0), raised
        # `raise IndexError` has no message; the check raises IndexError(""): same text, args ("",).
        assert eager["args"] == (original["args"] or [""]), raised
        # Compiled: a runtime assertion, RuntimeError whatever the class, and k's update is not applied.
        assert (compiled["type"], compiled["k"]) == ("RuntimeError", 3.0), (raised, compiled)
    assert [outcomes[c]["compiled"]["str"] for c in ("ValueError", "TypeError", "NotImplementedError")] == [
        "negative input",
        "too large",
        "nan input",
    ]
    assert outcomes["IndexError"]["compiled"]["str"] == "Assertion is failed"
    assert outcomes["RuntimeError"]["eager"]["str"] == "sum over 50"
    assert outcomes["RuntimeError"]["compiled"]["str"].startswith("Runtime assertion failed for expression")
