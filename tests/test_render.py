"""The text report: plain rows through a pipe, and why each refused fix was refused."""

from __future__ import annotations

import pytest

from breakfix.codemods import REGISTRY
from breakfix.render import Renderer
from breakfix.types import Applicability, Attempt, BreakReport, Frame, GraphBreak, RunReport, Status

LONG_REASON = (
    "`epoch` may be a tensor, whose repr differs inside a graph, so the print cannot move into the "
    "compiled region without changing what it prints"
)


def _report(tmp_path) -> RunReport:
    site = Frame(str(tmp_path / "p02_logging_with_a_long_name.py"), 10, "f", line="print(loss)")
    brk = GraphBreak("Failed to trace builtin operator", "GB0059", "reason", "", [], [site], [site])
    item = BreakReport(
        brk=brk,
        round=1,
        status=Status.PROPOSED,
        fix_code="BF301",
        applicability=Applicability.SAFE,
        verified=True,
        attempts=[
            Attempt("BF501", Applicability.SAFE, False, LONG_REASON),
            Attempt("BF301", Applicability.SAFE, True, ""),
        ],
    )
    return RunReport(
        target="p02_logging_with_a_long_name.py:f",
        applied=False,
        breaks=[item],
        changes=[],
        rounds=1,
        verified=True,
        graph_count_before=2,
        graph_count_after=1,
        remaining=1,
    )


def test_piped_report_prints_one_plain_row_per_break(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    Renderer().report(_report(tmp_path), str(tmp_path))
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("p02_logging_with_a_long_name.py:10: "))
    assert "GB0059 Failed to trace builtin operator: BF301 (" in row and "safe, verified)" in row
    assert "─" not in out and "│" not in out  # no table borders through a pipe


def test_refused_fix_and_its_shortened_reason_appear_in_the_text_report(tmp_path, capsys) -> None:
    Renderer().report(_report(tmp_path), str(tmp_path))
    out = capsys.readouterr().out
    assert "BF501 refused: `epoch` may be a tensor, whose repr differs inside a graph" in out
    assert LONG_REASON not in out
    assert "--verbose" in out


def test_verbose_prints_the_whole_refusal_reason(tmp_path, capsys) -> None:
    Renderer(verbose=True).report(_report(tmp_path), str(tmp_path))
    assert f"BF501 refused: {LONG_REASON}" in capsys.readouterr().out


def test_the_last_resort_split_is_not_titled_as_an_io_fix() -> None:
    # It also answers `.item()` branches and any other break no specific fix verifies.
    split = next(c for c in REGISTRY if c.CODE == "BF301")
    assert split.CATCH_ALL and "I/O" not in split.FIX_TITLE
