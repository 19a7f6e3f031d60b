"""Parent side of verification: a fresh worker checks a rewrite against the eager reference."""

from __future__ import annotations

from breakfix.errors import BreakfixError
from breakfix.locator import RunOptions
from breakfix.worker.pool import run_worker
from breakfix.worker.protocol import CheckRequest, CheckResult, RecompilesRequest, RepeatRequest


def check(options: RunOptions, overlay: dict[str, str], reference: str) -> CheckResult:
    request = CheckRequest(
        target=options.target,
        inputs=options.inputs,
        root=str(options.root),
        reference=reference,
        overlay=overlay,
        backend=options.backend,
        rtol=options.rtol,
        atol=options.atol,
        calls=options.calls,
    )
    try:
        return run_worker(request, options.timeout)
    except BreakfixError as e:
        # A rewrite that hangs, dies or no longer imports is a failed candidate, not a user error.
        return CheckResult(ok=False, fullgraph=False, reason=str(e))


def repeat(options: RunOptions, reference: str) -> str:
    """How a second eager run of the original target differs from the reference ('' if it does not)."""
    request = RepeatRequest(
        target=options.target,
        inputs=options.inputs,
        root=str(options.root),
        reference=reference,
        overlay={},
        rtol=options.rtol,
        atol=options.atol,
        calls=options.calls,
    )
    return run_worker(request, options.timeout).difference


def original_recompiles(options: RunOptions) -> list[str]:
    """The guards the original target, compiled with breaks allowed, recompiles on over the calls
    a verification makes (after the first)."""
    request = RecompilesRequest(
        target=options.target,
        inputs=options.inputs,
        root=str(options.root),
        reference=None,
        overlay={},
        backend=options.backend,
        calls=options.calls,
    )
    return run_worker(request, options.timeout).guards
