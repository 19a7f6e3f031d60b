"""Parent side of locating: ask a worker for every break ``fullgraph=True`` would hit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from breakfix.codemods import REQUIRED_APIS
from breakfix.types import GraphBreak, LocateResult
from breakfix.workers import run_worker


@dataclass(frozen=True)
class RunOptions:
    target: str
    inputs: str | None
    root: Path
    backend: str
    timeout: float
    rtol: float | None = None
    atol: float | None = None


def locate(options: RunOptions, overlay: dict[str, str], reference: str | None) -> LocateResult:
    """Locate the breaks in the code as on disk with ``overlay`` applied.

    With ``reference`` (a path), the worker also records the eager reference run there. The worker
    also reports which of the APIs the codemods rely on its torch lacks.
    """
    result = run_worker(
        {"mode": "locate", "target": options.target, "inputs": options.inputs, "root": str(options.root),
         "overlay": overlay, "reference": reference, "backend": options.backend, "apis": REQUIRED_APIS},
        options.timeout)
    result["breaks"] = [GraphBreak.from_json(b) for b in result["breaks"]]
    result["missing_apis"] = tuple(result["missing_apis"])
    return LocateResult(**result)
