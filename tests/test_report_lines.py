"""The report shows each break once, at a line of the file as the user has it on disk, even when it
was located in a rewrite (a split moves code into compiled pieces further down the file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from breakfix.engine import disk_line, one_report_per_site
from breakfix.types import BreakReport, Frame, GraphBreak, Status

TWO_BREAKS = """\
import torch


def f(x):
    y = x * 2
    torch._dynamo.graph_break()
    z = y + 1
    print("z", z.sum())
    return z * 3


def example_inputs():
    return (torch.randn(4),)
"""

# What BF301's split of the first break makes of it: the print now sits at line 20, in a piece.
SPLIT = """\
import torch


@torch.compiler.disable
def f(x):
    y = _f_piece_1(x)
    torch._dynamo.graph_break()
    z = _f_piece_2(y)
    return _f_piece_3(z)


@torch.compile(fullgraph=True)
def _f_piece_1(x):
    y = x * 2
    return y


@torch.compile(fullgraph=True)
def _f_piece_3(z):
    print("z", z.sum())
    return z * 3


def example_inputs():
    return (torch.randn(4),)
"""


def test_a_line_moved_into_a_piece_maps_to_its_line_on_disk() -> None:
    assert SPLIT.splitlines()[19].strip() == 'print("z", z.sum())'
    assert disk_line(SPLIT, TWO_BREAKS, 20) == 8
    assert disk_line(SPLIT, TWO_BREAKS, 24) == 12  # untouched code below the rewrite
    assert disk_line(SPLIT, TWO_BREAKS, 1) == 1
    assert 1 <= disk_line(SPLIT, TWO_BREAKS, 6) <= len(TWO_BREAKS.splitlines())  # a line the rewrite wrote


def _report(lineno: int, status: Status, name: str = "f") -> BreakReport:
    frame = Frame("/p/two.py", lineno, name, line='print("z", z.sum())')
    return BreakReport(
        GraphBreak("Failed to trace builtin operator", "GB0059", "", "", [], [frame], [frame]), 1, status
    )


def test_one_report_per_site_keeps_the_fix_over_gone() -> None:
    first = _report(6, Status.PROPOSED)
    gone, fixed = (
        _report(8, Status.RESOLVED, "torch_dynamo_resume_in_f_at_6"),
        _report(8, Status.PROPOSED, "_f_piece_3"),
    )
    assert one_report_per_site([first, gone, fixed]) == [first, fixed]


@pytest.mark.torch
def test_two_breaks_where_the_first_fix_adds_lines(tmp_path: Path) -> None:
    (tmp_path / "two.py").write_text(TWO_BREAKS)
    result = subprocess.run(
        [sys.executable, "-m", "breakfix", "run", "two.py:f", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1, result.stderr
    breaks = json.loads(result.stdout)["breaks"]
    sites = [(b["file"], b["line"]) for b in breaks]
    assert sites == [("two.py", 6), ("two.py", 8)], sites  # each once, inside the 13-line file
    assert all(b["user_stack"][-1]["line"] <= 13 for b in breaks)
