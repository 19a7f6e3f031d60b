"""One parametrized harness over every fixture folder (format: fixtures/README.md).

text tier   the codemod alone (libcst, no torch) on the recorded break: before.py -> after.py
torch tier  the real CLI in a temporary copy (real workers, aot_eager): after.py on disk, exit code,
            the first located break as recorded, and the written rewrite compiles with fullgraph=True
gpu tier    the torch tier's rewrite run on CUDA (skipped without a GPU)
"""

from __future__ import annotations

import json
import linecache
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from libcst.codemod import CodemodContext, TransformSuccess, transform_module

from breakfix._toml import tomllib
from breakfix.codemods import BY_CODE, FixRequest
from breakfix.torch_apis import missing_apis, unavailable
from breakfix.types import Frame, GraphBreak

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LIBRARY_FILE = "/usr/lib/python3/site-packages/somelib/__init__.py"


@dataclass(frozen=True)
class Case:
    folder: Path
    spec: dict

    @property
    def id(self) -> str:
        return self.folder.name

    def break_at(self, folder: Path, index: int = 0) -> GraphBreak:
        """The recorded break, with frames pointing into ``folder``."""
        entry = self.spec["breaks"][index]
        frames = []
        for item in entry["stack"]:
            name, line, function = item.split(":")
            path = str((folder / name).resolve())
            frames.append(Frame(path, int(line), function, line=linecache.getline(path, int(line)).strip()))
        library = [Frame(LIBRARY_FILE, 1, "lib") for _ in range(entry.get("library_frames", 0))]
        return GraphBreak(gb_type=entry["gb_type"], gb_id=entry.get("gb_id"), reason=entry["gb_type"],
                          explanation="", hints=[], user_stack=frames + library, project_stack=frames)


def _cases() -> list[Case]:
    return [Case(p.parent, tomllib.loads(p.read_text())) for p in sorted(FIXTURES.glob("*/*/case.toml"))]


CASES = _cases()
SINGLE_ROUND = [c for c in CASES if len(c.spec["breaks"]) == 1 and not c.spec.get("multi_round")]


@pytest.mark.parametrize("case", SINGLE_ROUND, ids=lambda c: c.id)
def test_text_tier(case: Case) -> None:
    linecache.clearcache()
    before = (case.folder / "before.py").read_text()
    expected = (case.folder / "after.py").read_text()
    codemod = BY_CODE[case.spec["code"]]
    brk = case.break_at(case.folder)
    entry = case.spec["breaks"][0]
    request = FixRequest(brk=brk, target_file=str((case.folder / "before.py").resolve()),
                         target_qualname=case.spec["target"], facts=json.loads(entry.get("facts", "{}")))
    path = codemod.file_to_edit(request)
    assert Path(path) == (case.folder / "before.py").resolve(), "fixtures keep the edited code in before.py"
    result = transform_module(codemod(CodemodContext(filename=path), request), before)
    if case.spec["kind"] == "positive":
        assert isinstance(result, TransformSuccess), getattr(result, "skip_description", result)
        assert result.code == expected
        again = transform_module(codemod(CodemodContext(filename=path), request), result.code)
        assert not isinstance(again, TransformSuccess) or again.code == result.code, "a second pass must change nothing"
    else:
        assert before == expected, "a negative fixture's after.py equals its before.py"
        assert not isinstance(result, TransformSuccess) or result.code == before or case.spec.get("unsafe_only"), \
            "the codemod must not rewrite a negative case"


def _run_cli(folder: Path, case: Case, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "breakfix", "run", f"before.py:{case.spec['target']}",
               "--inputs", "inputs.py:example_inputs", "--json", *extra]
    if case.spec.get("unsafe_fixes"):
        command.append("--unsafe-fixes")
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=900)


def _torch_tier_param(case: Case):
    """A case whose target ``breakfix run`` cannot take says why (``torch_tier_skip``): its
    rewrite is checked with real torch elsewhere."""
    reason = case.spec.get("torch_tier_skip")
    return pytest.param(case, id=case.id, marks=[pytest.mark.skip(reason=reason)] if reason else [])


@pytest.mark.torch
@pytest.mark.parametrize("case", [_torch_tier_param(c) for c in CASES])
def test_torch_tier(case: Case, tmp_path: Path) -> None:
    folder = tmp_path / case.id
    shutil.copytree(case.folder, folder, ignore=shutil.ignore_patterns("after.py", "case.toml", "__pycache__"))
    result = _run_cli(folder, case, "--apply")
    lacking = missing_apis(BY_CODE[case.spec["code"]].REQUIRES)
    if lacking:
        # Not offered on this torch: the report must say so, and the fixture's rewrite cannot be expected.
        why = unavailable(case.spec["code"], lacking, torch.__version__)
        reasons = [a["reason"] for b in json.loads(result.stdout)["breaks"] for a in b["attempts"]]
        assert why in reasons, reasons
        pytest.skip(why)
    assert result.returncode == case.spec["exit_code"], result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert (folder / "before.py").read_text() == (case.folder / "after.py").read_text()
    first = report["breaks"][0]
    recorded = case.break_at(folder)
    assert (first["gb_id"], first["gb_type"]) == (recorded.gb_id, recorded.gb_type)
    assert (first["file"], first["line"]) == (os.path.relpath(recorded.site.filename, folder), recorded.site.lineno)
    if case.spec["kind"] == "positive":
        assert report["verified"] and report["applied"]
        rerun = _run_cli(folder, case, "--apply")
        assert rerun.returncode == 0 and json.loads(rerun.stdout)["changes"] == [], "a second run changes nothing"
    else:
        assert not report["applied"]


@pytest.mark.skipif(not os.environ.get("BREAKFIX_GPU"), reason="GPU tier: set BREAKFIX_GPU=1 on a CUDA machine")
@pytest.mark.parametrize("case", [c for c in CASES if c.spec["kind"] == "positive"], ids=lambda c: c.id)
def test_gpu_tier(case: Case, tmp_path: Path) -> None:
    folder = tmp_path / case.id
    shutil.copytree(case.folder, folder)
    shutil.copy(folder / "after.py", folder / "before.py")
    check = (
        "import torch, inputs, before\n"
        "args = [a.cuda() if hasattr(a, 'cuda') else a for a in inputs.example_inputs()]\n"
        f"fn = before.{case.spec['target']}\n"
        "compiled = fn if getattr(fn, '_torchdynamo_disable', False) else torch.compile(fn, fullgraph=True)\n"
        "torch.testing.assert_close(compiled(*args), fn(*args))\n"
    )
    subprocess.run([sys.executable, "-c", check], cwd=folder, check=True, timeout=900)
