"""Parent side of verification: a fresh worker checks a rewrite against the eager reference."""

from __future__ import annotations

from breakfix.errors import BreakfixError
from breakfix.locator import RunOptions
from breakfix.types import CheckResult, GraphBreak
from breakfix.workers import run_worker


def check(options: RunOptions, overlay: dict[str, str], reference: str) -> CheckResult:
    request = {"mode": "check", "target": options.target, "inputs": options.inputs, "root": str(options.root),
               "overlay": overlay, "reference": reference, "backend": options.backend,
               "rtol": options.rtol, "atol": options.atol}
    try:
        result = run_worker(request, options.timeout)
    except BreakfixError as e:
        # A rewrite that hangs, dies or no longer imports is a failed candidate, not a user error.
        return CheckResult(ok=False, fullgraph=False, reason=str(e))
    result["breaks"] = [GraphBreak.from_json(b) for b in result.get("breaks", [])]
    return CheckResult(**result)


def repeat(options: RunOptions, reference: str) -> str:
    """How a second eager run of the original target differs from the reference ('' if it does not)."""
    request = {"mode": "repeat", "target": options.target, "inputs": options.inputs, "root": str(options.root),
               "overlay": {}, "reference": reference, "rtol": options.rtol, "atol": options.atol}
    return run_worker(request, options.timeout)["difference"]
