"""Helpers for tests that run the command line as users do: a real ``python -m breakfix`` subprocess
in a temporary project, and what a run must leave behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

FAST_TIER_SKIPS = ("torch", "slow")  # `./scripts/test.sh --fast`: the text tier, without the fuzzer


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast", action="store_true", help=f"only the fast tier: deselect tests marked {' or '.join(FAST_TIER_SKIPS)}"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--fast"):
        return
    slow = [item for item in items if any(item.get_closest_marker(m) for m in FAST_TIER_SKIPS)]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]


SCHEMA_DOC = Path(__file__).resolve().parents[1] / "docs" / "json-schema.md"

# A target whose one break (a graph_break() in a pure helper) BF201 fixes, and that fix.
HELPER_BREAK = """\
import torch


def g(x):
    y = x.sin()
    torch._dynamo.graph_break()
    return y.cos()


def f(x):
    return g(x + 1) * 2


def example_inputs():
    return (torch.randn(4),)
"""

HELPER_BREAK_FIXED = HELPER_BREAK.replace(
    "    return g(x + 1) * 2", "    return torch._dynamo.nonstrict_trace(g)(x + 1) * 2"
)

# A library module (kept outside the project by the tests) whose function breaks.
BREAKING_LIBRARY = """\
import torch


def smooth(x):
    y = torch.tanh(x)
    torch._dynamo.graph_break()
    return y * 0.5
"""


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)

    def error_line(self) -> str:
        """The one error line: the last stderr line; everything before it is progress."""
        lines = self.stderr.splitlines()
        assert lines, "no error message on stderr"
        assert all(line.startswith("breakfix: ") for line in lines), self.stderr  # no traceback, no wrapping
        assert lines[-1].startswith("breakfix: error: "), self.stderr
        assert sum(line.startswith("breakfix: error:") for line in lines) == 1, self.stderr
        return lines[-1]


def breakfix(project: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    process = subprocess.run(
        [sys.executable, "-m", "breakfix", "run", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=600,
    )
    return Result(process.returncode, process.stdout, process.stderr)


def make_project(tmp_path: Path, files: dict[str, str]) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name, text in files.items():
        (project / name).write_text(text)
    return project


def snapshot(project: Path) -> dict[str, bytes]:
    """Every file under the project, by relative path: stray files (bytecode, temp files) show too."""
    return {str(p.relative_to(project)): p.read_bytes() for p in sorted(project.rglob("*")) if p.is_file()}


def documented_keys(section: str) -> set[str]:
    """The field names of the table under a heading of docs/json-schema.md (first column, `code`)."""
    text = SCHEMA_DOC.read_text()
    match = re.search(rf"^#+ {re.escape(section)}\n(.*?)(?=^#+ |\Z)", text, re.M | re.S)
    assert match, f"no section {section!r} in {SCHEMA_DOC}"
    return set(re.findall(r"^\| `([a-z_]+)` \|", match.group(1), re.M))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed process whose parent has not reaped it yet is a zombie: it runs nothing.
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] != "Z"


def assert_error(result: Result, expected: str, as_json: bool) -> None:
    """Exit 2 and one error line matching the regex ``expected`` (with --json: the error document)."""
    assert result.code == 2, (result.stdout, result.stderr)
    line = result.error_line()
    assert re.search(expected, line), line
    assert "second line" not in result.stderr
    if as_json:
        doc = result.json()
        assert set(doc) == documented_keys("Error")
        assert doc == {"version": 1, "error": line.removeprefix("breakfix: error: "), "exit_code": 2}
    else:
        assert result.stdout == ""


def interruptible() -> None:
    """``preexec_fn`` for a child the test will send SIGINT: a shell that starts the test run in the
    background ignores SIGINT, and the child would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
