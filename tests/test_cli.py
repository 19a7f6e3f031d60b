"""The command line as users run it: exit codes, one-line errors, --json, and files left alone.

Every run is a real ``python -m breakfix`` subprocess in a temporary project, with real torch
workers. A ``breakfix run`` costs several seconds, so one run serves as many checks as it can.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    BREAKING_LIBRARY,
    HELPER_BREAK,
    HELPER_BREAK_FIXED,
    alive,
    assert_error,
    breakfix,
    documented_keys,
    interruptible,
    make_project,
    snapshot,
)

# One break BF201 fixes (a pure helper) and one nothing may fix: the other helper records every
# call in a global, which nonstrict_trace would silently drop at runtime.
FIXABLE_AND_UNFIXABLE = """\
import torch

calls = []


def pure(x):
    y = x.sin()
    torch._dynamo.graph_break()
    return y.cos()


def impure(x):
    calls.append(x.shape[0])
    if x.shape[0] > 2:
        y = x * 2
    torch._dynamo.graph_break("logged")
    return y  # may be unbound, as far as a split can tell: no split of impure is sound


def f(x):
    return impure(pure(x + 1))


def example_inputs():
    return (torch.randn(4),)
"""

# Targets for the exit-2 cases, all in one module; the error cases below pick one by qualname.
ERRORS = """\
import os
import subprocess
import sys
import time

import torch

NOT_CALLABLE = 3


def ok(x):
    return x + 1


def raises(x):
    raise ValueError("boom\\nsecond line of the message")


def exits(x):
    os._exit(3)


def segfaults(x):
    import ctypes

    ctypes.string_at(0)  # reads address 0
    return x


def calls_exit(x):
    sys.exit(4)


def reads_stdin(x):
    return x * float(input())


def unpicklable(x):
    return lambda: x


def sleeps(x):
    # The worker, and a process it started, must both be gone after a timeout.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    with open(os.environ["BREAKFIX_TEST_PIDS"], "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(300)
    return x


def inputs_raise():
    raise RuntimeError("no inputs today\\nsecond line of the message")


def inputs_list():
    return [torch.randn(2)]


def example_inputs():
    return (torch.randn(2),)
"""


# --- exit 0 and 1 ----------------------------------------------------------------------------------


@pytest.mark.torch
def test_no_break_exits_0_and_writes_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": ERRORS})
    before = snapshot(project)
    result = breakfix(project, "m.py:ok", "--json")
    assert result.code == 0, result.stderr
    assert result.stderr == ""  # --json is quiet: no progress
    doc = result.json()
    assert (doc["exit_code"], doc["remaining"], doc["breaks"], doc["changes"]) == (0, 0, [], [])
    assert snapshot(project) == before


@pytest.mark.torch
def test_dry_run_then_apply_then_rerun(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": HELPER_BREAK})
    before = snapshot(project)

    dry = breakfix(project, "m.py:f")
    assert dry.code == 1, dry.stderr
    assert snapshot(project) == before
    assert "--- a/m.py\n+++ b/m.py\n" in dry.stdout
    assert "+    return torch._dynamo.nonstrict_trace(g)(x + 1) * 2\n" in dry.stdout
    assert all(line.startswith("breakfix: ") for line in dry.stderr.splitlines())

    applied = breakfix(project, "m.py:f", "--apply", "--json")
    assert applied.code == 0, applied.stderr
    assert (project / "m.py").read_text() == HELPER_BREAK_FIXED
    assert set(snapshot(project)) == set(before)  # no staged or bytecode files left behind
    doc = applied.json()
    assert (doc["applied"], doc["verified"], doc["exit_code"], doc["remaining"]) == (True, True, 0, 0)
    assert set(doc) == documented_keys("Top level")
    [brk] = doc["breaks"]
    assert set(brk) == documented_keys("Break")
    assert (brk["gb_id"], brk["gb_type"]) == ("GB0025", "Call to `torch._dynamo.graph_break()`")
    assert (brk["file"], brk["line"], brk["function"]) == ("m.py", 6, "g")
    assert (brk["status"], brk["verified"]) == ("fixed", True)
    assert set(brk["fix"]) == documented_keys("Fix")
    assert (brk["fix"]["code"], brk["fix"]["applicability"]) == ("BF201", "safe")
    assert set(brk["verification"]) == documented_keys("Verification")
    # HELPER_BREAK's input is one tensor of 4: a batch of 1 and an odd 5 are derived from it.
    assert brk["verification"] == {"calls": 10, "derived_inputs": 2, "recompiles": []}
    assert all(set(frame) == documented_keys("Frame") for frame in brk["user_stack"])
    assert all(set(attempt) == documented_keys("Attempt") for attempt in brk["attempts"])
    [change] = doc["changes"]
    assert set(change) == documented_keys("Change")
    assert change["file"] == "m.py"
    assert change["diff"] in dry.stdout  # the dry run showed exactly what was written

    written = snapshot(project)
    again = breakfix(project, "m.py:f", "--apply")
    assert again.code == 0, again.stderr
    assert "no graph breaks" in again.stdout
    assert snapshot(project) == written


@pytest.mark.torch
def test_unfixable_break_writes_nothing(tmp_path: Path) -> None:
    """All or nothing: a verified fix for one break is not written while another break remains."""
    project = make_project(tmp_path, {"m.py": FIXABLE_AND_UNFIXABLE})
    before = snapshot(project)
    result = breakfix(project, "m.py:f", "--apply", "--json")
    assert result.code == 1, result.stderr
    assert snapshot(project) == before
    doc = result.json()
    assert (doc["applied"], doc["verified"], doc["exit_code"]) == (False, False, 1)
    assert doc["remaining"] >= 1
    by_function = {brk["function"]: brk for brk in doc["breaks"]}
    assert by_function["impure"]["status"] == "unfixable"
    assert by_function["impure"]["fix"] is None and by_function["impure"]["why"]
    assert by_function["pure"]["status"] == "proposed"
    assert by_function["pure"]["verified"] is False  # matches eager, but fullgraph still fails
    assert [c["file"] for c in doc["changes"]] == ["m.py"]  # shown, not written


TWO_HELPERS = """\
import torch


def g1(x):
    y = x.sin()
    torch._dynamo.graph_break()
    return y + 1


def g2(x):
    y = x.cos()
    torch._dynamo.graph_break()
    return y * 2


def f(x):
    return g2(g1(x))


def example_inputs():
    return (torch.randn(4),)
"""


@pytest.mark.torch
def test_apply_fixes_two_breaks_with_the_same_text(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": TWO_HELPERS})
    result = breakfix(project, "m.py:f", "--apply")
    assert result.code == 0, result.stdout
    assert (project / "m.py").read_text().count("torch._dynamo.nonstrict_trace(") == 2


CALLS_LIBRARY = """\
import torch
import vendorlib


def f(x):
    return vendorlib.smooth(x.relu()) + 1


def example_inputs():
    return (torch.randn(4),)
"""


@pytest.mark.torch
def test_break_inside_a_library_is_fixed_at_the_project_call_site(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "vendorlib.py").write_text(BREAKING_LIBRARY)
    project = make_project(tmp_path, {"m.py": CALLS_LIBRARY})
    result = breakfix(project, "m.py:f", "--apply", "--json", env={"PYTHONPATH": str(vendor)})
    assert result.code == 0, result.stderr
    (brk,) = result.json()["breaks"]
    assert brk["file"] == "m.py" and brk["line"] == 6, "the site is the innermost frame inside the project"
    assert brk["user_stack"][-1]["file"].endswith("vendorlib.py"), "the stack still shows the library frame"
    assert "torch._dynamo.nonstrict_trace(vendorlib.smooth)(x.relu())" in (project / "m.py").read_text()
    assert (vendor / "vendorlib.py").read_text() == BREAKING_LIBRARY, "files outside --root are never written"


# --- exit 2 ----------------------------------------------------------------------------------------

ERROR_CASES = {
    # id: (target and options, a regex for the error line, run with --json)
    "unknown_module": (["nosuchmodule:f"], "module 'nosuchmodule' not found", False),
    "missing_file": (["missing.py:f"], "missing.py' not found", True),
    "missing_qualname": (["m.py:nope"], "'nope' not found", False),
    "not_callable": (["m.py:NOT_CALLABLE"], "is not callable", True),
    "syntax_error": (["syntax.py:f"], r"syntax error in /\S+/syntax\.py:1: ", False),
    "helper_syntax_error": (["uses_syntax.py:f"], r"syntax error in /\S+/syntax\.py:1: ", True),
    "import_raises": (["broken_import.py:f"], r"ImportError: cannot load this \(at /\S+/broken_import\.py:3\)$", True),
    "inputs_missing": (["m.py:ok", "--inputs", "m.py:nope"], "'nope' not found", False),
    "inputs_raise": (
        ["m.py:ok", "--inputs", "m.py:inputs_raise"],
        "inputs callable raised RuntimeError: no inputs today",
        True,
    ),
    "inputs_not_tuple": (
        ["m.py:ok", "--inputs", "m.py:inputs_list"],
        "must return a tuple of arguments, got list",
        False,
    ),
    # The user's bug, with the last frame of their traceback.
    "eager_raises": (["m.py:raises"], r"the target raised in eager mode: ValueError: boom \(at /\S+/m\.py:16\)$", True),
    "reads_stdin": (
        ["m.py:reads_stdin"],
        r"raised in eager mode: EOFError: EOF when reading a line \(at /\S+/m\.py:35\)$",
        False,
    ),
    "calls_sys_exit": (["m.py:calls_exit"], r"the target's code called sys\.exit\(4\) \(at /\S+/m\.py:31\)$", False),
    "os_exit": (["m.py:exits"], r"the worker process exited with code 3 before answering", False),
    "segfault": (
        ["m.py:segfaults"],
        r"the target crashed the worker process: SIGSEGV \(in segfaults at /\S+/m\.py:26\)$",
        True,
    ),
    "unpicklable_output": (["m.py:unpicklable"], r"cannot verify: the target's outputs cannot be pickled \(", False),
    # Breaks are only collected inside the root: a target outside it cannot be checked, so no "no breaks".
    "target_symlinked_out_of_root": (
        ["linked.py:ok"],
        r"the target is defined in /\S+/outside/elsewhere\.py, outside the project root",
        False,
    ),
}


def error_project(tmp_path: Path) -> Path:
    project = make_project(
        tmp_path,
        {
            "m.py": ERRORS,
            "syntax.py": "def f(x)\n    return x\n",
            "uses_syntax.py": "import syntax\n\n\ndef f(x):\n    return x\n",
            "broken_import.py": 'import torch\n\nraise ImportError("cannot load this\\nsecond line")\n\n\ndef f(x):\n    return x\n',
        },
    )
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "elsewhere.py").write_text(ERRORS)
    (project / "linked.py").symlink_to(tmp_path / "outside" / "elsewhere.py")
    return project


@pytest.mark.torch
@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_error_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    args, expected, as_json = ERROR_CASES[case]
    project = error_project(tmp_path)
    before = snapshot(project)
    result = breakfix(project, *args, *(["--json"] if as_json else []))
    assert_error(result, expected, as_json)
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["m.py"], "Invalid value for 'TARGET'"),
        (["m.py:1x", "--json"], "Invalid value for 'TARGET'"),
        (["m.py:ok", "--inputs", "inputs"], "Invalid value for '--inputs'"),
        (["--json", "m.py:ok", "--rtol", "1e-3"], "--rtol and --atol must be given together"),
        (["m.py:ok", "--timeout", "0"], "Invalid value for '--timeout'"),
        (["--json"], "Missing argument 'TARGET'"),
    ],
)
def test_usage_error_exits_2_with_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    project = error_project(tmp_path)
    before = snapshot(project)
    assert_error(breakfix(project, *args), expected, "--json" in args)
    assert snapshot(project) == before


@pytest.mark.torch
def test_timeout_kills_the_worker_and_its_children(tmp_path: Path) -> None:
    project = error_project(tmp_path)
    pids = tmp_path / "pids"  # outside the project, so the snapshot stays comparable
    before = snapshot(project)
    # Long enough for the worker to import torch and reach the target on a loaded machine.
    result = breakfix(project, "m.py:sleeps", "--timeout", "12", "--json", env={"BREAKFIX_TEST_PIDS": str(pids)})
    assert_error(result, "did not finish within --timeout 12s", as_json=True)
    assert snapshot(project) == before
    assert pids.exists(), "the target never ran: raise the timeout"
    worker, child = map(int, pids.read_text().split())
    deadline = time.monotonic() + 5
    while (alive(worker) or alive(child)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(worker) and not alive(child)


@pytest.mark.torch
def test_ctrl_c_during_a_run_stops_the_worker_and_writes_nothing(tmp_path: Path) -> None:
    """SIGINT reaches breakfix only (the worker leads its own session, out of the terminal's reach):
    breakfix must stop the worker and what it started, write nothing, and exit 130."""
    project = error_project(tmp_path)
    pids = tmp_path / "pids"
    before = snapshot(project)
    process = subprocess.Popen(
        [sys.executable, "-m", "breakfix", "run", "m.py:sleeps", "--apply"],
        cwd=project,
        env={**os.environ, "BREAKFIX_TEST_PIDS": str(pids)},
        preexec_fn=interruptible,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (pids.exists() and pids.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    worker, child = map(int, pids.read_text().split())
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert snapshot(project) == before
    deadline = time.monotonic() + 5
    while (alive(worker) or alive(child)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(worker) and not alive(child)
