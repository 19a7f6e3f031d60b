"""Break collection: every break ``torch.compile(fullgraph=True)`` would hit, one per innermost
project site, from dynamo's graph-break log, ``torch._dynamo.explain`` and a ``fullgraph=True`` compile.

Runs in the worker and, for ``breakfix.testing``, in the user's own process.
"""

from __future__ import annotations

import inspect
import linecache
import os
import re
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, NamedTuple

from breakfix.project import is_project_file
from breakfix.types import DATA_DEPENDENT_GUARD, TENSOR_ASSERT
from breakfix.worker import torch_compat
from breakfix.worker.coverage import COUNTER
from breakfix.worker.sandbox import SEEDS, sandboxed_call, seed_all


def _char_col(filename: str, lineno: int, byte_col: int | None) -> int | None:
    """FrameSummary columns are UTF-8 byte offsets; LibCST wants characters."""
    if byte_col is None:
        return None
    line = linecache.getline(filename, lineno)
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def _frame(summary: Any) -> dict:
    filename = os.path.realpath(summary.filename) if os.path.exists(summary.filename) else summary.filename
    return {
        "filename": filename,
        "lineno": summary.lineno or 0,
        "name": summary.name,
        "colno": _char_col(summary.filename, summary.lineno, getattr(summary, "colno", None)),
        "end_colno": _char_col(summary.filename, summary.lineno, getattr(summary, "end_colno", None)),
        "line": (linecache.getline(summary.filename, summary.lineno or 0) or "").strip(),
    }


def _parse_message(message: str) -> tuple[str, str, list[str], str | None]:
    """(Gb_type, explanation, hints, GB id) from an Unsupported message."""
    lines = message.splitlines()
    gb_type = lines[0].strip() if lines else ""
    explanation = next((ln.split("Explanation:", 1)[1].strip() for ln in lines if "Explanation:" in ln), "")
    hints = [ln.split("Hint:", 1)[1].strip() for ln in lines if ln.strip().startswith("Hint:")]
    gb_id = None
    marker = "/gb/gb"
    if marker in message:
        digits = message.split(marker, 1)[1][:4]
        if digits.isdigit():
            gb_id = f"GB{digits}"
    return gb_type, explanation, hints, gb_id


class BreakCollector:
    """Collects breaks from dynamo's graph-break logger, explain's reasons and fullgraph errors."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.by_site: dict[tuple[str, int], dict] = {}
        self._type_to_id, self._registry = torch_compat.gb_registry()

    def add(self, message: str, stack: list, gb_type: str | None = None) -> bool:
        """Record one break; False when its stack has no frame inside the project."""
        frames = [_frame(s) for s in stack]
        project = [f for f in frames if is_project_file(f["filename"], self.root)]
        if not project:
            return False
        parsed_type, explanation, hints, gb_id = _parse_message(message)
        if gb_type is None and gb_id is None and "data-dependent expression" in message:
            # A UserError logged as a break: its first line is advice ("Consider annotating..."), not a Gb_type.
            parsed_type = DATA_DEPENDENT_GUARD
        gb_type = gb_type or parsed_type
        gb_id = gb_id or self._type_to_id.get(gb_type)
        if gb_id and (not explanation or not hints):
            entry = (self._registry.get(gb_id) or [{}])[0]
            explanation = explanation or entry.get("Explanation", "")
            hints = hints or list(entry.get("Hints", []))
        record = {
            "gb_type": gb_type,
            "gb_id": gb_id,
            "reason": "\n".join(message.splitlines()[:3]),
            "explanation": explanation,
            "hints": hints,
            "user_stack": frames,
            "project_stack": project,
        }
        site = (project[-1]["filename"], project[-1]["lineno"])
        known = self.by_site.get(site)
        # One break per innermost site: keep the root cause over dynamo's "graph break in loop"
        # wrapper, then the longest stack (a nested break is reported once per enclosing frame).
        if (
            known is None
            or (known["gb_type"] == torch_compat.LOOP_WRAPPER and gb_type != torch_compat.LOOP_WRAPPER)
            or (known["gb_type"] == gb_type and len(frames) > len(known["user_stack"]))
        ):
            self.by_site[site] = record
        return True

    def add_logged(self, logged: torch_compat.LoggedBreak) -> None:
        """Record a break dynamo logged (the root cause, not dynamo's "graph break in loop" wrapper)."""
        self.add(logged.message, logged.stack, logged.gb_type)

    def add_exception(self, e: BaseException, compiled: Callable) -> None:
        """Record the error that stopped a fullgraph compile; never lose it, even without a stack."""
        # Where dynamo was tracing (the compiled frame first) beats the eager frames that called it:
        # an internal error in an orchestrator's piece is a break in the piece.
        stack = getattr(e, "real_stack", None) or _user_code_frames(str(e))
        if not stack:
            stack = [
                f
                for f in traceback.extract_tb(e.__traceback__)
                if is_project_file(os.path.realpath(f.filename), self.root)
            ]
        gb_type = torch_compat.gb_type_of(e)
        if gb_type is None and "data-dependent" in str(e).lower():
            gb_type = DATA_DEPENDENT_GUARD  # UserError from a guard on an unbacked symbol: no GB id
        if gb_type is None and isinstance(e, AssertionError) and str(e).startswith("Expected bool, got FakeTensor"):
            gb_type = TENSOR_ASSERT
        gb_type = gb_type or type(e).__name__  # a dynamo internal error: no Gb_type, no GB id
        message = str(e) if str(e).startswith(gb_type) else f"{gb_type}\n{e}"
        if not self.add(message, list(stack), gb_type):
            # Internal errors carry no user stack: pin the break on the compiled function itself,
            # so fullgraph's failure is never reported as "no graph breaks".
            function = inspect.unwrap(torch_compat.original_callable(compiled))
            code = getattr(function, "__code__", None) or type(function).__call__.__code__
            self.add(message, [traceback.FrameSummary(code.co_filename, code.co_firstlineno, code.co_name)], gb_type)


def revealed_break(e: BaseException, compiled: Callable, root: Path) -> list[dict]:
    """The break at the project line where dynamo failed while tracing (none when the error did not
    come from tracing project code)."""
    stack = getattr(e, "real_stack", None) or _user_code_frames(str(e))
    if not any(is_project_file(os.path.realpath(f.filename), str(root)) for f in stack):
        return []
    collector = BreakCollector(str(root))
    collector.add_exception(e, compiled)
    return list(collector.by_site.values())


def _user_code_frames(message: str) -> list[traceback.FrameSummary]:
    """The frames of the "from user code:" section dynamo appends to an error's message: an internal
    error (e.g. PendingUnbackedSymbolNotFound) carries its user stack only there."""
    _, marker, section = message.partition("\nfrom user code:\n")
    frames = []
    for line in section.splitlines() if marker else ():
        parsed = _FRAME_LINE.match(line)
        if parsed:
            filename, lineno, name = parsed.groups()
            line = linecache.getline(filename, int(lineno))
            frames.append(traceback.FrameSummary(filename, int(lineno), name, line=line))
    return frames


_FRAME_LINE = re.compile(r'\s*File "(.+)", line (\d+), in (\S+)$')


class CollectedBreaks(NamedTuple):
    breaks: list[dict]
    graph_count: int
    operations: int  # operations compiled graphs of project frames executed in the call (breaks allowed)
    operations_by_line: list[list]  # [file, line, count]: the same, by the line that wrote each (coverage.py)


def collect_breaks(
    fn: Callable,
    make_inputs: Callable[[], tuple],
    orchestrator: bool,
    root: Path,
    backend: str,
    resized_inputs: Sequence[Callable[[], tuple]] = (),
) -> CollectedBreaks:
    """Every break ``fullgraph=True`` would hit, one per innermost project site, the graph count and
    the operations compiled code executed. With ``resized_inputs`` (makers of inputs of other sizes
    the original accepts), a target that compiles on the example is called again on each: dynamo
    then makes the sizes dynamic (a size of 1 stays static), and some code that traced with the
    example's sizes breaks there, as on the user's second batch size.

    Also run in the user's own process by ``breakfix.testing``, where ``torch.compile`` is not
    redirected to the requested backend: the backend is passed explicitly."""
    import torch

    collector = BreakCollector(str(root))
    graph_count = 0
    COUNTER.reset()
    with (
        torch_compat.graph_break_logged(collector.add_logged),
        COUNTER.counting(),
        torch_compat.graph_runs_counted(COUNTER.wrap_compiled),
    ):
        torch._dynamo.reset()
        torch_compat.clear_counters()
        seed_all(SEEDS[0])
        args = make_inputs()
        with sandboxed_call():
            if orchestrator:
                # An eager orchestrator: its compiled pieces carry fullgraph=True and raise.
                try:
                    fn(*args)
                except Exception as e:
                    collector.add_exception(e, fn)
                graph_count = torch_compat.graph_count()
            else:
                # A dynamo internal error (np.asarray of a PIL image) would abort explain; the
                # fullgraph attempt below still reports it.
                try:
                    with torch_compat.errors_suppressed():
                        explained = torch._dynamo.explain(fn)(*args)
                except Exception as e:
                    # A compiled piece run by an eager orchestrator below the target compiles with
                    # fullgraph=True on its own and raises, explain or not.
                    collector.add_exception(e, fn)
                    graph_count = torch_compat.graph_count()
                else:
                    graph_count = explained.graph_count
                    for reason in explained.break_reasons:
                        collector.add(reason.reason, list(reason.user_stack))
    if not orchestrator:
        # fullgraph stops at the first break with its root cause, including the ones explain skips.
        torch._dynamo.reset()
        seed_all(SEEDS[0])
        args = make_inputs()
        with sandboxed_call():
            try:
                compiled = torch.compile(fn, fullgraph=True, backend=backend)
                compiled(*args)
                for resized in resized_inputs:
                    compiled(*resized())
            except Exception as e:
                collector.add_exception(e, fn)
    return CollectedBreaks(
        list(collector.by_site.values()),
        graph_count,
        COUNTER.total,
        [[file, line, count] for (file, line), count in sorted(COUNTER.executed_at.items())],
    )
