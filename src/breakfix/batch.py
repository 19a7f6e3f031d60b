"""Several targets in one invocation: the project's target list, lanes, worker threads.

Each target gets its own :class:`~breakfix.engine.Engine`, run in a thread of this process (the
threads wait on worker processes; ``-j`` bounds how many targets are worked on at once). Targets in
the same file form one lane and run one after the other, so two rewrites of one file are never
built on the same original. A target whose rewrite touches a file another target has written
meanwhile is refused by the writer (changed on disk); it is run again once the parallel phase is
over, on the file as it is then. A target's error (it cannot be imported, a worker timed out) is
its outcome; the other targets go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from breakfix import piece_options
from breakfix.errors import BreakfixError, ConfigError, FileChangedOnDisk
from breakfix.piece_options import PieceOptions
from breakfix.types import RunReport, TargetSpec


@dataclass(frozen=True)
class TargetJob:
    target: str  # as typed on the command line or in pyproject.toml
    inputs: str | None
    base: str  # the folder relative file specs start from: the current one, or the root for pyproject.toml


@dataclass
class TargetOutcome:
    job: TargetJob
    report: RunReport | None
    error: BreakfixError | None
    seconds: float

    @property
    def exit_code(self) -> int:
        return self.error.exit_code if self.error else self.report.exit_code


class BatchEvents(Protocol):
    def started(self, job: TargetJob) -> None: ...
    def progress(self, job: TargetJob, message: str) -> None: ...
    def finished(self, outcome: TargetOutcome) -> None: ...


RunOne = Callable[[TargetJob, Callable[[str], None]], RunReport]


def _breakfix_table(root: Path) -> tuple[Path, dict]:
    """``[tool.breakfix]`` of the root's pyproject.toml ({} without one)."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return path, {}
    from breakfix._toml import tomllib

    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("breakfix", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from e


def project_piece_options(root: Path) -> PieceOptions:
    """``[tool.breakfix] piece-options``: compile options of new pieces when a target's are unknown."""
    path, table = _breakfix_table(root)
    if "piece-options" not in table:
        return ()
    try:
        return piece_options.from_table(table["piece-options"])
    except ValueError as e:
        raise ConfigError(f"{path}: [tool.breakfix] {e}") from None


def project_targets(root: Path) -> list[TargetJob]:
    """``[tool.breakfix] targets`` of the root's pyproject.toml: strings ``"file.py:qualname"``, or
    tables ``{target = "file.py:qualname", inputs = "file.py:fn"}``."""
    path, table = _breakfix_table(root)
    entries = table.get("targets", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: [tool.breakfix] targets must be a list")
    jobs = []
    for entry in entries:
        if isinstance(entry, str):
            entry = {"target": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("target"), str) or set(entry) - {"target", "inputs"}:
            raise ConfigError(
                f'{path}: each target is "file.py:qualname" or {{target = ..., inputs = ...}}, got {entry!r}'
            )
        for spec in (entry["target"], entry.get("inputs")):
            if spec is not None:
                try:
                    TargetSpec.parse(spec)
                except (ValueError, AttributeError) as e:
                    raise ConfigError(f"{path}: {e}") from None
        jobs.append(TargetJob(entry["target"], entry.get("inputs"), str(root)))
    return jobs


def run_all(jobs: list[TargetJob], run_one: RunOne, parallel: int, events: BatchEvents) -> list[TargetOutcome]:
    """Run every job; outcomes in the order of ``jobs``."""
    outcomes: dict[int, TargetOutcome] = {}
    retry: list[int] = []

    def attempt(index: int, may_retry: bool) -> None:
        job = jobs[index]
        events.started(job)
        start = time.monotonic()
        try:
            outcome = TargetOutcome(job, run_one(job, lambda message: events.progress(job, message)), None, 0.0)
        except FileChangedOnDisk as e:
            if may_retry:
                retry.append(index)
                events.progress(job, f"{e}; trying again after the others")
                return
            outcome = TargetOutcome(job, None, e, 0.0)
        except BreakfixError as e:
            outcome = TargetOutcome(job, None, e, 0.0)
        outcome.seconds = time.monotonic() - start
        outcomes[index] = outcome
        events.finished(outcome)

    lanes: dict[str, list[int]] = {}
    for index, job in enumerate(jobs):
        lanes.setdefault(TargetSpec.parse(job.target).absolute(job.base).location, []).append(index)

    def run_lane(indices: list[int]) -> None:
        for index in indices:
            attempt(index, may_retry=True)

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="breakfix-target") as pool:
        for future in [pool.submit(run_lane, indices) for indices in lanes.values()]:
            future.result()
    for index in sorted(retry):
        attempt(index, may_retry=False)
    return [outcomes[index] for index in range(len(jobs))]
