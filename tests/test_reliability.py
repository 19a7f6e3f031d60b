"""Trust under hostile input: what users' code and files can do to a run, through the real command line.

Each test is one row (or several) of the matrix in docs/reliability.md: a real ``python -m breakfix``
subprocess in a temporary project, checking the exit code, the one-line message and that files
that must not change stay byte-identical. The exit-2 rows of the matrix are in test_cli.py.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import BREAKING_LIBRARY, HELPER_BREAK, breakfix, interruptible, make_project, snapshot

from breakfix.worker.compare import differ

REPO = Path(__file__).resolve().parents[1]
RELIABILITY_DOC = REPO / "docs" / "reliability.md"

# --- outputs that are not one tensor ---------------------------------------------------------------

OUTPUTS = """\
import dataclasses

import torch


@dataclasses.dataclass
class Out:
    y: torch.Tensor
    label: str
    count: int
    nothing: None


def g(x):
    y = x.sin()
    torch._dynamo.graph_break()
    return y.cos()


def nested(x):
    y = g(x + 1)
    special = torch.tensor([float("nan"), float("inf"), -float("inf")]) * x.abs().sum()
    return {"out": Out(y, "a", 3, None), "pairs": (y, (y * 2, "s", None)), "special": special, "n": 7}


def flips(x):
    # Compiled, is_compiling() is True: a rewrite that compiles this line changes the label.
    label = "compiled" if torch.compiler.is_compiling() else "eager"
    return {"out": Out(g(x + 1), label, 3, None)}


def example_inputs():
    return (torch.randn(4),)
"""


@pytest.mark.torch
def test_nested_outputs_with_nan_and_inf_are_compared_and_written(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": OUTPUTS})
    result = breakfix(project, "m.py:nested", "--apply")
    assert result.code == 0, result.stdout + result.stderr
    assert "torch._dynamo.nonstrict_trace(g)(x + 1)" in (project / "m.py").read_text()
    # A deterministic target whose fix matches pays no extra worker for the nondeterminism check.
    assert "repeats its own results" not in result.stderr


@pytest.mark.torch
def test_a_rewrite_that_changes_a_string_in_a_dataclass_is_rejected(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": OUTPUTS})
    before = snapshot(project)
    result = breakfix(project, "m.py:flips", "--apply", "--json")
    assert result.code == 1, result.stderr
    assert snapshot(project) == before
    [brk] = result.json()["breaks"]
    assert brk["status"] == "unfixable"
    reasons = [attempt["reason"] for attempt in brk["attempts"]]
    # Not "cannot verify" (exit 2): after the mismatch, a second eager run matched the reference.
    assert "call 1: outputs['out'].label differ: expected 'eager', got 'compiled'" in reasons, reasons


@dataclasses.dataclass
class Point:
    where: torch.Tensor
    name: str


NAN = float("nan")


@pytest.mark.parametrize(
    ("expected", "actual", "difference"),
    [
        ({"a": (1, "s", None)}, {"a": (1, "s", None)}, ""),
        (Point(torch.tensor([NAN, 1.0]), "p"), Point(torch.tensor([NAN, 1.0]), "p"), ""),
        (torch.tensor([float("inf")]), torch.tensor([float("inf")]), ""),
        ({"a": (1, "s", None)}, {"a": (1, "t", None)}, "x['a'][1] differ: expected 's', got 't'"),
        ({"a": (1, "s", None)}, {"a": (1, "s", 0)}, "x['a'][2] differ: None mismatch: 0 is not None"),
        ({"a": 1}, {"a": 2}, "x['a'] differ: Scalars are not equal"),
        ({"a": 1}, {"b": 1}, "x differ: expected keys ['a'], got ['b']"),
        ((1, 2), [1, 2], "x differ: expected tuple of 2, got [1, 2]"),
        (Point(torch.tensor([1.0]), "p"), Point(torch.tensor([1.0]), "q"), "x.name differ: expected 'p', got 'q'"),
        (
            Point(torch.tensor([NAN]), "p"),
            Point(torch.tensor([0.0]), "p"),
            "x.where differ: Tensor-likes are not close",
        ),
        (torch.tensor([float("inf")]), torch.tensor([-float("inf")]), "x differ: Tensor-likes are not close"),
    ],
)
def test_outputs_are_compared_element_by_element(expected: object, actual: object, difference: str) -> None:
    found = differ(actual, expected, "x", None, None)
    assert found.startswith(difference) if difference else found == ""


# --- nondeterminism ---------------------------------------------------------------------------------

# HELPER_BREAK with inputs from a generator seeded by the OS: torch, numpy and random seeds do not reach it.
UNSEEDED = "import numpy as np\n" + HELPER_BREAK.replace(
    "    return (torch.randn(4),)", "    return (torch.from_numpy(np.random.default_rng().standard_normal(4)),)"
)


@pytest.mark.torch
def test_a_nondeterministic_target_cannot_be_verified_and_is_not_written(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": UNSEEDED})
    before = snapshot(project)
    result = breakfix(project, "m.py:f", "--apply")
    assert result.code == 2, result.stdout + result.stderr
    assert re.fullmatch(
        r"breakfix: error: cannot verify: the target is nondeterministic \(two eager runs with the "
        r"same seeds differ: call 1: outputs differ: .*\)",
        result.error_line(),
    ), result.stderr
    assert snapshot(project) == before


# --- output floods and stdin -------------------------------------------------------------------------

LOUD = """\
import sys

import torch

sys.stdout.write("printed while importing\\n" * 2_000_000)  # 48 MB nobody reads


def chatty(x):
    y = x.sin()
    print("y" * 10_000_000)  # 10 MB captured per call, compared with the reference
    return y.cos()


def example_inputs():
    sys.stdout.write("z" * 20_000_000)
    sys.stderr.write("w" * 5_000_000)
    return (torch.randn(4),)
"""


@pytest.mark.torch
def test_megabytes_of_output_neither_block_nor_flood_the_terminal(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": LOUD})
    before = snapshot(project)
    result = breakfix(project, "m.py:chatty")
    assert result.code == 1, result.stderr[-2000:]
    # The 10 MB line goes through the graph's log operator (BF501), verified on the captured output.
    assert "_log_in_graph(" in result.stdout and "Dry run: the rewrite above is verified" in result.stdout
    assert len(result.stdout) < 20_000 and len(result.stderr) < 2_000, "the target's output reached the terminal"
    assert snapshot(project) == before


# --- files: encodings, modes, read-only, all or nothing, idempotence --------------------------------

MAIN = """\
import torch

import left
import right


def f(x):
    return left.f1(x) + right.f2(x)


def example_inputs():
    return (torch.randn(4),)
"""

# latin-1 by its coding cookie, CRLF, tabs, no trailing newline. LABEL's length is in the output,
# so a rewrite verified with the wrong decoding ("cafÃ©") would not match.
LEFT = (
    '# -*- coding: latin-1 -*-\r\nimport torch\r\n\r\nLABEL = "caf\u00e9"  # d\u00e9j\u00e0 vu\r\n\r\n\r\n'
    "def g(x):\r\n\ty = x.sin()\r\n\ttorch._dynamo.graph_break()\r\n\treturn y.cos()\r\n\r\n\r\n"
    "def f1(x):\r\n\treturn g(x) * len(LABEL)"
).encode("latin-1")
LEFT_FIXED = LEFT.replace(b"\treturn g(x) * len(LABEL)", b"\treturn torch._dynamo.nonstrict_trace(g)(x) * len(LABEL)")

# UTF-8 with a BOM, four-space indents.
RIGHT = (
    "\ufeffimport torch\n\n\ndef h(x):\n    y = x.cos()\n    torch._dynamo.graph_break()\n    return y.sin()\n\n\n"
    "def f2(x):\n    return h(x) - 1  # \u2264 one\n"
).encode("utf-8")
RIGHT_FIXED = RIGHT.replace(b"    return h(x) - 1", b"    return torch._dynamo.nonstrict_trace(h)(x) - 1")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.torch
def test_a_two_file_fix_keeps_encodings_newlines_and_modes_and_is_all_or_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"main.py": MAIN})
    left, right = project / "left.py", project / "right.py"
    left.write_bytes(LEFT)
    right.write_bytes(RIGHT)
    left.chmod(0o640)
    right.chmod(0o555)  # read-only, executable

    refused = breakfix(project, "main.py:f", "--apply")
    assert refused.code == 2, refused.stdout + refused.stderr
    assert re.fullmatch(r"breakfix: error: /\S+/right\.py is read-only; not written", refused.error_line())
    assert (left.read_bytes(), right.read_bytes()) == (LEFT, RIGHT), "one file of the fix written without the other"
    assert sorted(p.name for p in project.iterdir()) == ["left.py", "main.py", "right.py"]

    right.chmod(0o755)
    applied = breakfix(project, "main.py:f", "--apply")
    assert applied.code == 0, applied.stdout + applied.stderr
    assert left.read_bytes() == LEFT_FIXED
    assert right.read_bytes() == RIGHT_FIXED
    assert (_mode(left), _mode(right)) == (0o640, 0o755)
    assert sorted(p.name for p in project.iterdir()) == ["left.py", "main.py", "right.py"], "staged files left"

    written = snapshot(project)
    again = breakfix(project, "main.py:f", "--apply")
    assert again.code == 0, again.stdout + again.stderr
    assert "no graph breaks" in again.stdout
    assert snapshot(project) == written


USES_LIBRARIES = """\
import torch

import linkedlib
import sitelib


def f(x):
    a = sitelib.smooth(x)
    b = linkedlib.smooth(x)
    return a + b


def example_inputs():
    return (torch.randn(4),)
"""


@pytest.mark.torch
def test_site_packages_and_symlinks_out_of_the_root_are_never_written(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": USES_LIBRARIES})
    site = project / ".venv" / "lib" / "python3.11" / "site-packages"  # a venv inside the project
    site.mkdir(parents=True)
    (site / "sitelib.py").write_text(BREAKING_LIBRARY)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "linkedlib.py").write_text(BREAKING_LIBRARY)
    (project / "linkedlib.py").symlink_to(outside / "linkedlib.py")

    pythonpath = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    result = breakfix(project, "m.py:f", "--apply", env={"PYTHONPATH": pythonpath})
    assert result.code == 0, result.stdout + result.stderr
    text = (project / "m.py").read_text()
    assert "torch._dynamo.nonstrict_trace(sitelib.smooth)(x)" in text
    assert "torch._dynamo.nonstrict_trace(linkedlib.smooth)(x)" in text
    assert (site / "sitelib.py").read_text() == BREAKING_LIBRARY
    assert (outside / "linkedlib.py").read_text() == BREAKING_LIBRARY
    assert (project / "linkedlib.py").is_symlink()


@pytest.mark.torch
def test_a_file_edited_during_the_run_is_not_overwritten(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": HELPER_BREAK})
    process = subprocess.Popen(
        [sys.executable, "-m", "breakfix", "run", "m.py:f", "--apply"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    progress = []
    for line in process.stderr:  # the file has been read once a rewrite is being verified
        progress.append(line)
        if "verifying" in line:
            break
    edited = HELPER_BREAK + "# the user saved this while breakfix was verifying\n"
    (project / "m.py").write_text(edited)
    stdout, stderr = process.communicate(timeout=600)
    lines = "".join(progress + [stderr]).splitlines()
    assert process.returncode == 2, stdout + "\n".join(lines)
    assert re.fullmatch(r"breakfix: error: /\S+/m\.py changed on disk since it was analysed; not written", lines[-1])
    assert (project / "m.py").read_text() == edited


# --- Ctrl-C ------------------------------------------------------------------------------------------

WRITE_ALL = """\
import sys
from pathlib import Path

from breakfix import writer
from breakfix.types import FileChange

changes = [FileChange(Path(p), Path(p).read_text(), Path(p).read_text().replace("old", "new")) for p in sys.argv[1:]]
try:
    print("ready", flush=True)
    writer.write_all(changes)
    print("written", flush=True)
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_ctrl_c_while_writing_leaves_every_file_old_or_new(tmp_path: Path) -> None:
    """The one step of --apply that touches files, interrupted at many moments: 12 files of 2 MB each
    take long enough to write that SIGINT lands before, during and after the writing."""
    old, new = "# old\n" * 350_000, "# new\n" * 350_000
    outcomes = set()
    for attempt, delay in enumerate([0, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15]):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        paths = [folder / f"m{i}.py" for i in range(12)]
        for path in paths:
            path.write_text(old)
        child = subprocess.Popen(
            [sys.executable, "-c", WRITE_ALL, *map(str, paths)],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=interruptible,
        )
        assert child.stdout.readline() == "ready\n"
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        stdout, _ = child.communicate(timeout=60)
        states = {path.read_text() for path in paths}
        assert states in ({old}, {new}), "a file was half written, or the fix was written in part"
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in paths), "a staged file was left"
        outcomes.add((child.returncode, states == {new}, "written" in stdout))
    # Interrupted inside write_all: every file written, then the interrupt delivered (exit 130).
    assert (130, True, False) in outcomes, f"no interrupt landed while writing: make the files bigger {outcomes}"


# --- the matrix document ----------------------------------------------------------------------------


def test_every_test_the_reliability_matrix_names_exists() -> None:
    text = RELIABILITY_DOC.read_text()
    named = set(re.findall(r"`(tests/test_\w+\.py::test_\w+(?:\[[\w-]+\])?)`", text))
    files = sorted({node.partition("::")[0] for node in named})
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    missing = {node for node in named if node not in collected and not any(c.startswith(node + "[") for c in collected)}
    assert not missing, f"docs/reliability.md names tests that do not exist: {sorted(missing)}"
    matrix = text.split("## The matrix", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in matrix.splitlines() if line.startswith("| ") and not line.startswith("| bad input |")]
    assert all(re.search(r"`tests/", row) for row in rows), "a row of the matrix without its test"
    assert f"{len(rows)} kinds of bad input" in text, f"the figures say another number than the {len(rows)} rows"
