"""Parent side of locating: ask a worker for every break ``fullgraph=True`` would hit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from breakfix.codemods import REQUIRED_APIS
from breakfix.piece_options import PieceOptions
from breakfix.worker.pool import run_worker
from breakfix.worker.protocol import DEFAULT_CALLS, LocateRequest, LocateResult


@dataclass(frozen=True)
class RunOptions:
    target: str
    inputs: str | None
    root: Path
    backend: str
    timeout: float
    rtol: float | None = None
    atol: float | None = None
    min_coverage: float = 0.9  # a split must compile at least this share of the original's operations
    piece_options: PieceOptions = ()  # --piece-options or [tool.breakfix] piece-options
    calls: int = DEFAULT_CALLS  # calls on the same inputs each verification makes
    derived_inputs: bool = True  # verify on inputs of other sizes too


def locate(options: RunOptions, overlay: dict[str, str], reference: str | None) -> LocateResult:
    """Locate the breaks in the code as on disk with ``overlay`` applied.

    With ``reference`` (a path), the worker also records the eager reference run there. The worker
    also reports which of the APIs the codemods rely on its torch lacks.
    """
    request = LocateRequest(
        target=options.target,
        inputs=options.inputs,
        root=str(options.root),
        reference=reference,
        overlay=overlay,
        backend=options.backend,
        apis=REQUIRED_APIS,
        calls=options.calls,
        derived_inputs=options.derived_inputs,
    )
    return run_worker(request, options.timeout)
