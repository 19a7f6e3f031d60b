"""Several targets in one ``breakfix run``: arguments or ``[tool.breakfix] targets``, ``-j``, the
worst exit code, the ``results`` JSON document. Real ``python -m breakfix`` subprocesses."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import HELPER_BREAK, HELPER_BREAK_FIXED, breakfix, documented_keys, make_project, snapshot

# Two targets in one file, each with its own fixable break: their rewrites must both land.
TWO_IN_ONE_FILE = """\
import torch


def g1(x):
    torch._dynamo.graph_break()
    return x.sin()


def g2(x):
    torch._dynamo.graph_break()
    return x.cos()


def f1(x):
    return g1(x + 1)


def f2(x):
    return g2(x - 1)


def example_inputs():
    return (torch.randn(4),)
"""

INPUTS = """\
import torch


def batch():
    return (torch.ones(2),)


def double(x):  # needs the inputs above: the module has no example_inputs
    return x * 2
"""


@pytest.mark.torch
def test_several_targets_in_parallel_json_and_worst_exit_code(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"one.py": TWO_IN_ONE_FILE, "m.py": HELPER_BREAK})
    result = breakfix(project, "one.py:f1", "m.py:f", "one.py:f2", "m.py:missing", "-j", "2", "--apply", "--json")
    assert result.code == 2, result.stderr  # the worst of 0, 0, 0 and 2
    assert result.stderr == ""
    doc = result.json()
    assert set(doc) == documented_keys("Several targets")
    assert doc["exit_code"] == 2
    assert [r["target"] for r in doc["results"]] == ["one.py:f1", "m.py:f", "one.py:f2", "m.py:missing"]
    *fixed, error = doc["results"]
    assert [(r["applied"], r["exit_code"]) for r in fixed] == [(True, 0)] * 3
    assert all(set(r) == documented_keys("Top level") for r in fixed)
    assert set(error) == documented_keys("Error") | {"target"} and "'missing' not found" in error["error"]
    assert (project / "m.py").read_text() == HELPER_BREAK_FIXED
    both = (project / "one.py").read_text()
    assert "return torch._dynamo.nonstrict_trace(g1)(x + 1)" in both
    assert "return torch._dynamo.nonstrict_trace(g2)(x - 1)" in both


@pytest.mark.torch
def test_targets_from_pyproject_with_inputs_and_plain_progress(tmp_path: Path) -> None:
    project = make_project(
        tmp_path,
        {
            "m.py": HELPER_BREAK,
            "inputs.py": INPUTS,
            "pyproject.toml": '[tool.breakfix]\ntargets = ["m.py:f", {target = "inputs.py:double", inputs = "inputs.py:batch"}]\n',
        },
    )
    before = snapshot(project)
    result = breakfix(project)  # dry run: no TARGET, so the project's list
    assert result.code == 1, result.stderr
    assert snapshot(project) == before
    lines = result.stderr.splitlines()
    assert all(line.startswith("breakfix: ") for line in lines), result.stderr  # not a terminal: plain lines
    assert any(line.startswith("breakfix: [1/2] ") for line in lines)
    assert any(line.startswith("breakfix: [2/2] ") for line in lines)
    assert "fix verified (dry run)" in result.stderr and "inputs.py:double: clean" in result.stderr
    assert "+    return torch._dynamo.nonstrict_trace(g)(x + 1) * 2\n" in result.stdout
    assert result.stdout.rstrip().endswith("2 targets: 1 fix verified (dry run), 1 clean")


def test_bad_target_list_is_one_line_error(tmp_path: Path) -> None:
    project = make_project(
        tmp_path, {"pyproject.toml": "[tool.breakfix]\ntargets = [{target = 'm.py:f', input = 'x'}]\n"}
    )
    result = breakfix(project)
    assert result.code == 2
    assert "each target is" in result.error_line()


SHARED = """\
import torch


def g(x):
    torch._dynamo.graph_break()
    return x.sin()


def h(x):
    return g(x) + 1
"""

USES_SHARED = """\
import torch

import shared


def f(x):
    return shared.h(x) * {factor}


def example_inputs():
    return (torch.ones(3),)
"""


@pytest.mark.torch
def test_targets_in_different_files_fixing_one_shared_file_do_not_collide(tmp_path: Path) -> None:
    # Both fixes rewrite shared.py the same way; whichever writes second finds the file changed,
    # runs again on the new file, and finds nothing left to fix.
    project = make_project(
        tmp_path, {"shared.py": SHARED, "a.py": USES_SHARED.format(factor=2), "b.py": USES_SHARED.format(factor=3)}
    )
    result = breakfix(project, "a.py:f", "b.py:f", "-j", "2", "--apply", "--json")
    assert result.code == 0, result.stderr
    assert [r["exit_code"] for r in result.json()["results"]] == [0, 0]
    assert sum(r["applied"] for r in result.json()["results"]) == 1
    assert (project / "shared.py").read_text() == SHARED.replace(
        "return g(x) + 1", "return torch._dynamo.nonstrict_trace(g)(x) + 1"
    )
