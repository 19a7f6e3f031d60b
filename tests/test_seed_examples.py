"""The seed chapter's examples, run exactly as the issue's acceptance check says:
``breakfix run FILE.py:f --inputs FILE.py:example_inputs --apply`` fixes and verifies each one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# example file -> the codemod that fixes it (the chapter's strategy it illustrates)
SEED_EXAMPLES = {
    "iterator_input.py": "BF101",
    "graph_break_helper.py": "BF201",
    "crop.py": "BF202",
    "save_in_middle.py": "BF301",
}


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(SEED_EXAMPLES))
def test_seed_example_is_fixed_and_verified(name: str, tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / name, tmp_path / name)
    command = [sys.executable, "-m", "breakfix", "run", f"{name}:f", "--inputs", f"{name}:example_inputs", "--apply"]
    applied = subprocess.run([*command, "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert applied.returncode == 0, applied.stderr[-2000:]
    report = json.loads(applied.stdout)
    assert report["applied"] and report["verified"]
    assert {b["fix"]["code"] for b in report["breaks"] if b["status"] == "fixed"} == {SEED_EXAMPLES[name]}
    assert (tmp_path / name).read_text() != (EXAMPLES / name).read_text()
    # The fixed file must compile whole on its own, outside breakfix, and match the original.
    check = subprocess.run(
        [sys.executable, "-c", INDEPENDENT_CHECK, str(tmp_path / name), str(EXAMPLES / name)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert check.returncode == 0, check.stderr[-2000:]


INDEPENDENT_CHECK = """
import functools, importlib.util, sys, torch

# Compiled pieces say torch.compile(fullgraph=True), i.e. inductor: keep this check on aot_eager.
torch.compile = functools.partial(torch.compile, backend="aot_eager")


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixed, original = load(sys.argv[1], "fixed"), load(sys.argv[2], "original")
torch.manual_seed(0)
expected = original.f(*original.example_inputs())
orchestrator = getattr(fixed.f, "_torchdynamo_disable", False)
compiled = fixed.f if orchestrator else torch.compile(fixed.f, fullgraph=True)
torch.manual_seed(0)
torch.testing.assert_close(compiled(*fixed.example_inputs()), expected)
"""
