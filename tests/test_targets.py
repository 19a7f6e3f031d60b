"""Target and --inputs specs are checked in the parent, before any worker starts, with "did you mean"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from breakfix.errors import TargetError
from breakfix.targets import check_spec

MODULE = """\
import torch
from torch import nn


class Model(nn.Module):
    def forward(self, x):
        return x


class Plain:
    def step(self, x):
        return x


def forward_step(x):
    return x.sin()


if torch.cuda.is_available():
    def on_gpu(x):
        return x
else:
    on_gpu = forward_step


def make_inputs():
    return (torch.randn(2),)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "m.py").write_text(MODULE)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text(MODULE)
    (tmp_path / "star.py").write_text("from m import *\n")
    return tmp_path


@pytest.mark.parametrize(
    "spec",
    [
        "m.py:forward_step",
        "m.py:Plain.step",
        "m.py:Model.forward",
        "m.py:on_gpu",
        "m.py:nn",
        "pkg.mod:make_inputs",
        "star.py:anything",
        "installed.module:f",
        "m.py:Model.inherited_from_nn_module",
    ],
)
def test_specs_that_may_resolve_pass(project: Path, spec: str) -> None:
    check_spec(spec, str(project), project)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("m.py:forward_stp", "'forward_stp' not found in 'm.py' (did you mean 'forward_step'?)"),
        ("m.py:Plain.stp", "'Plain.stp' not found in 'm.py:Plain' (did you mean 'Plain.step'?)"),
        ("pkg.mod:make_input", "'make_input' not found in 'pkg.mod' (did you mean 'make_inputs'?)"),
        ("m.py:zzz", "'zzz' not found in 'm.py'"),
        ("missing.py:f", "file 'missing.py' not found"),
    ],
)
def test_specs_that_name_nothing_fail_with_a_suggestion(project: Path, spec: str, message: str) -> None:
    with pytest.raises(TargetError) as e:
        check_spec(spec, str(project), project)
    assert str(e.value) == message


def test_inputs_spec_says_it_came_from_inputs(project: Path) -> None:
    with pytest.raises(
        TargetError,
        match=r"^--inputs m\.py:make_input: 'make_input' not found in 'm\.py' "
        r"\(did you mean 'make_inputs'\?\)$",
    ):
        check_spec("m.py:make_input", str(project), project, "--inputs")


def test_cli_reports_a_misspelled_qualname_without_a_worker(project: Path) -> None:
    # A torch that cannot be imported: a worker would fail; the parent's check answers first.
    (project / "shadow" / "torch").mkdir(parents=True)
    (project / "shadow" / "torch" / "__init__.py").write_text("raise ImportError('no torch for this test')\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(project / "shadow")}
    for args, expected in [
        (["m.py:forward_stp"], "did you mean 'forward_step'?"),
        (["m.py:forward_step", "--inputs", "m.py:make_input"], "--inputs m.py:make_input: "),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "breakfix", "run", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("breakfix: error: ") and expected in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.torch
def test_a_missing_sibling_import_suggests_cd_or_root(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "utils.py").write_text("def double(x):\n    return x * 2\n")
    (tmp_path / "sub" / "model.py").write_text(
        "import torch\nimport utils\n\n\ndef f(x):\n    return utils.double(x).sin()\n\n\n"
        "def example_inputs():\n    return (torch.randn(3),)\n"
    )
    before = {p: p.read_bytes() for p in (tmp_path / "sub").iterdir()}
    result = subprocess.run(
        [sys.executable, "-m", "breakfix", "run", "sub/model.py:f"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "No module named 'utils'" in result.stderr and "(cd sub) or pass --root sub" in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("breakfix: error: importing the target failed: ")
    # and the suggestion works: --root sub finds the sibling, as `python sub/model.py` does
    fixed = subprocess.run(
        [sys.executable, "-m", "breakfix", "run", "sub/model.py:f", "--root", "sub"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fixed.returncode == 0, fixed.stderr
    assert {p: p.read_bytes() for p in (tmp_path / "sub").iterdir()} == before
