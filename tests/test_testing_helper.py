"""`breakfix.testing.assert_no_graph_breaks` (in this process, as a user's test suite calls it) and
`breakfix run --emit-test` (real `python -m breakfix` and `pytest` subprocesses)."""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HELPER_BREAK

from breakfix import locator, verifier

SRC = Path(__file__).resolve().parents[1] / "src"

# HELPER_BREAK (a graph_break() in a pure helper, fixed by BF201) plus a clean function and a loop.
MODULE = (
    HELPER_BREAK
    + """

def clean(x):
    return x.sin() * 2


def looped(x, n):
    for _ in range(n):
        x = x + 1
        torch._dynamo.graph_break()
    return x
"""
)

FIXED = MODULE.replace("    return g(x + 1) * 2", "    return torch._dynamo.nonstrict_trace(g)(x + 1) * 2")
BREAK_LINE = MODULE.splitlines().index("    torch._dynamo.graph_break()") + 1


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(SRC))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A project holding MODULE as mod.py, imported as a user's test would, with the cwd its root."""
    (tmp_path / "mod.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("mod", tmp_path / "mod.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mod", module)
    spec.loader.exec_module(module)
    return module


def _no_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a worker process was started")

    # The modules that start workers (imported above, so they are patched where they are bound).
    monkeypatch.setattr(locator, "run_worker", refuse)
    monkeypatch.setattr(verifier, "run_worker", refuse)


@pytest.mark.torch
def test_passes_without_breaks_cheaply_and_leaves_rng_state_alone(project, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from breakfix.testing import assert_no_graph_breaks

    _no_workers(monkeypatch)  # no break: no worker, no engine
    x = torch.randn(4)
    random.seed(7)
    torch.manual_seed(7)
    expected = (random.random(), torch.rand(1))
    random.seed(7)
    torch.manual_seed(7)
    assert_no_graph_breaks(project.clean, x)
    assert (random.random(), torch.rand(1)) == expected


@pytest.mark.torch
def test_failure_lists_each_break_and_the_verified_diff(project) -> None:
    import torch

    from breakfix.testing import assert_no_graph_breaks

    with pytest.raises(AssertionError) as failure:
        assert_no_graph_breaks(project.f, torch.randn(4))
    message = str(failure.value)
    path = os.path.realpath("mod.py")
    assert f"{path}:{BREAK_LINE}: GB0025 Call to `torch._dynamo.graph_break()`" in message
    assert "breakfix has a verified fix" in message
    assert "-    return g(x + 1) * 2\n+    return torch._dynamo.nonstrict_trace(g)(x + 1) * 2" in message
    assert Path("mod.py").read_text() == MODULE  # shown, never written


@pytest.mark.torch
def test_break_in_a_loop_is_found_and_keyword_arguments_get_no_fix(project, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from breakfix.testing import assert_no_graph_breaks

    _no_workers(monkeypatch)  # workers take positional arguments only: no engine run for kwargs
    with pytest.raises(AssertionError) as failure:
        assert_no_graph_breaks(project.looped, torch.randn(4), n=2)  # explain alone misses this one
    message = str(failure.value)
    loop_break = MODULE.splitlines().index("        torch._dynamo.graph_break()") + 1
    assert f"mod.py:{loop_break}: GB0025" in message
    assert "No fix offered: breakfix's workers pass positional arguments only" in message


def test_emit_test_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(MODULE)
    existing = tmp_path / "test_mod.py"
    existing.write_text("# mine\n")
    result = subprocess.run(
        [sys.executable, "-m", "breakfix", "run", "mod.py:f", "--emit-test", "test_mod.py"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "breakfix: error: Invalid value for --emit-test: test_mod.py exists; not overwriting it"
    ]
    assert existing.read_text() == "# mine\n" and (tmp_path / "mod.py").read_text() == MODULE


@pytest.mark.torch
def test_emitted_test_passes_after_apply_and_fails_when_the_break_returns(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(MODULE)
    (tmp_path / "tests").mkdir()
    emitted = tmp_path / "tests" / "test_regression.py"

    def breakfix(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "breakfix", "run", "mod.py:f", *args],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )

    def pytest_emitted() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(emitted)],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )

    dry = breakfix("--emit-test", str(emitted))  # a fix is proposed, the break is still on disk
    assert dry.returncode == 1 and not emitted.exists()
    assert "not writing" in dry.stderr

    applied = breakfix("--apply", "--emit-test", str(emitted))
    assert applied.returncode == 0, applied.stderr
    assert (tmp_path / "mod.py").read_text() == FIXED
    passing = pytest_emitted()
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "1 passed" in passing.stdout

    (tmp_path / "mod.py").write_text(MODULE)  # the fix is reverted: the break is back
    failing = pytest_emitted()
    assert failing.returncode == 1
    assert f"mod.py:{BREAK_LINE}: GB0025" in failing.stdout
    assert "+    return torch._dynamo.nonstrict_trace(g)(x + 1) * 2" in failing.stdout


def test_emitted_test_imports_by_spec_relative_to_its_own_location(tmp_path: Path) -> None:
    from breakfix.testing import regression_test_source

    root = tmp_path / "project"
    source = regression_test_source(
        "pkg.model:Net.forward",
        f"{root}/pkg/inputs.py:make",
        root,
        root / "tests" / "test_net.py",
        "breakfix run pkg.model:Net.forward --apply",
    )
    compile(source, "test_net.py", "exec")
    assert "sys.path.insert(0, str(Path(__file__).resolve().parent / '..'))" in source
    assert "import pkg.model as target_module" in source and "import pkg.inputs as inputs_module" in source
    assert "    args = inputs_module.make()\n    assert_no_graph_breaks(target_module.Net.forward, *args)" in source
    elsewhere = regression_test_source(f"{tmp_path}/lib/m.py:f", None, root, root / "test_m.py", "breakfix run")
    assert "sys.path.insert(0, str(Path(__file__).resolve().parent / '../lib'))" in elsewhere
    assert "import m as target_module" in elsewhere
    assert 'args = getattr(target_module, "example_inputs", tuple)()' in elsewhere
