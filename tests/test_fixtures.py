"""One parametrized harness over every fixture folder (format: fixtures/README.md).

text tier   the codemod alone (libcst, no torch) on the recorded break: before.py -> after.py
torch tier  the real CLI in a temporary copy (real workers, aot_eager): after.py on disk, exit code,
            the first located break as recorded, and the written rewrite compiles with fullgraph=True
gpu tier    the torch tier's rewrite run on CUDA (skipped without a GPU)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch
from fixture_spec import FIXTURES, Case, FixtureSpecError, RecordedBreak, all_cases
from libcst.codemod import TransformSuccess

from breakfix.codemods import BY_CODE, FixRequest
from breakfix.engine import apply_codemod
from breakfix.gb_ids import gb_id_of
from breakfix.torch_apis import missing_apis, unavailable
from breakfix.types import Applicability, BreakFacts

CASES = all_cases()


def test_the_readme_documents_every_key() -> None:
    documented = set(re.findall(r"^([a-z_]+) = ", (FIXTURES / "README.md").read_text(), re.M))
    declared = {f.name for f in fields(Case)} - {"folder", "breaks"} | {f.name for f in fields(RecordedBreak)}
    assert documented == declared


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (("unsafe_fixes = false", "unsafe_fix = true"), r"unknown key\(s\) \['unsafe_fix'\]"),
        (("library_frames = 0", "library_frame = 0"), r"\[\[breaks\]\] #1: unknown key\(s\) \['library_frame'\]"),
        (("exit_code = 0\n", ""), r"missing key\(s\) \['exit_code'\]"),
        (("exit_code = 0", "exit_code = true"), r"exit_code = True is not"),
        (('kind = "positive"', 'kind = "positve"'), r"kind = 'positve' is not"),
    ],
)
def test_a_case_with_a_wrong_key_is_refused(tmp_path: Path, change: tuple[str, str], error: str) -> None:
    text = (FIXTURES / "opaque_ops" / "BF202_numpy_helper" / "case.toml").read_text()
    assert change[0] in text
    (tmp_path / "case.toml").write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(FixtureSpecError, match=error):
        Case.read(tmp_path)


@pytest.mark.parametrize("case", [c for c in CASES if c.single_round], ids=lambda c: c.id)
def test_text_tier(case: Case) -> None:
    before = (case.folder / "before.py").read_text()
    expected = (case.folder / "after.py").read_text()
    codemod = BY_CODE[case.code]
    request = FixRequest(
        brk=case.break_at(case.folder),
        target_file=str((case.folder / "before.py").resolve()),
        target_qualname=case.target,
        facts=BreakFacts.from_json(case.breaks[0].facts_dict()),
    )
    path = codemod.file_to_edit(request)
    assert Path(path) == (case.folder / "before.py").resolve(), "fixtures keep the edited code in before.py"
    instance, result = apply_codemod(codemod, request, path, before)
    rewritten = isinstance(result, TransformSuccess) and result.code != before
    if case.positive:
        assert isinstance(result, TransformSuccess), getattr(result, "skip_description", result)
        assert result.code == expected
        assert (instance.applicability is Applicability.UNSAFE) == case.unsafe_fixes, (
            "a fix that needs --unsafe-fixes is declared unsafe, and only such a fix"
        )
        _, again = apply_codemod(codemod, request, path, result.code)
        assert not isinstance(again, TransformSuccess) or again.code == result.code, "a second pass must change nothing"
    elif case.unsafe_only:
        # Unless another codemod fixes the run: after.py is its rewrite, this codemod still changes nothing.
        assert before == expected or case.fixed_by, "a negative fixture's after.py equals its before.py"
        assert rewritten, "unsafe_only: the codemod rewrites this case (or the key is wrong: drop it)"
        assert instance.applicability is not Applicability.SAFE, (
            "unsafe_only: the rewrite must not be a safe fix (it would be written without --unsafe-fixes)"
        )
    else:
        # Unless another codemod fixes the run: after.py is its rewrite, this codemod still changes nothing.
        assert before == expected or case.fixed_by, "a negative fixture's after.py equals its before.py"
        assert not rewritten or case.refused_by == "verification", "the codemod must not rewrite a negative case"


def _run_cli(folder: Path, case: Case, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "breakfix",
        "run",
        f"before.py:{case.target}",
        "--inputs",
        "inputs.py:example_inputs",
        "--json",
        *extra,
    ]
    if case.unsafe_fixes:
        command.append("--unsafe-fixes")
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=900)


def _torch_tier_param(case: Case):
    """A case whose target ``breakfix run`` cannot take says why (``torch_tier_skip``): its
    rewrite is checked with real torch elsewhere."""
    reason = case.torch_tier_skip
    return pytest.param(case, id=case.id, marks=[pytest.mark.skip(reason=reason)] if reason else [])


@pytest.mark.torch
@pytest.mark.parametrize("case", [_torch_tier_param(c) for c in CASES])
def test_torch_tier(case: Case, tmp_path: Path) -> None:
    folder = tmp_path / case.id
    shutil.copytree(case.folder, folder, ignore=shutil.ignore_patterns("after.py", "case.toml", "__pycache__"))
    result = _run_cli(folder, case, "--apply")
    lacking = missing_apis(BY_CODE[case.code].REQUIRES)
    if lacking:
        # Not offered on this torch: the report must say so, and the fixture's rewrite cannot be expected.
        why = unavailable(case.code, lacking, torch.__version__)
        reasons = [a["reason"] for b in json.loads(result.stdout)["breaks"] for a in b["attempts"]]
        assert why in reasons, reasons
        pytest.skip(why)
    assert result.returncode == case.exit_code, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert (folder / "before.py").read_text() == (case.folder / "after.py").read_text()
    first = report["breaks"][0]
    recorded = case.break_at(folder)
    if first["gb_id"] == recorded.gb_id:
        assert first["gb_type"] == recorded.gb_type
    else:
        # Another torch words the break under another id: the one the codemods answer is the same.
        located = replace(recorded, gb_id=first["gb_id"], gb_type=first["gb_type"], explanation=first["explanation"])
        assert gb_id_of(located) == recorded.gb_id, (first["gb_id"], first["gb_type"])
    assert (first["file"], first["line"]) == (os.path.relpath(recorded.site.filename, folder), recorded.site.lineno)
    if case.positive:
        assert report["verified"] and report["applied"]
        rerun = _run_cli(folder, case, "--apply")
        assert rerun.returncode == 0 and json.loads(rerun.stdout)["changes"] == [], "a second run changes nothing"
    elif case.fixed_by:
        # A fix of the last resort (a split) or another family's: never the codemod under test.
        fixes = {b["fix"]["code"] for b in report["breaks"] if b["fix"]}
        assert report["applied"] and case.fixed_by in fixes and case.code not in fixes, fixes
    else:
        assert not report["applied"]


@pytest.mark.skipif(not os.environ.get("BREAKFIX_GPU"), reason="GPU tier: set BREAKFIX_GPU=1 on a CUDA machine")
@pytest.mark.parametrize("case", [c for c in CASES if c.positive], ids=lambda c: c.id)
def test_gpu_tier(case: Case, tmp_path: Path) -> None:
    folder = tmp_path / case.id
    shutil.copytree(case.folder, folder)
    shutil.copy(folder / "after.py", folder / "before.py")
    check = (
        "import torch, inputs, before\n"
        "args = [a.cuda() if hasattr(a, 'cuda') else a for a in inputs.example_inputs()]\n"
        f"fn = before.{case.target}\n"
        "compiled = fn if getattr(fn, '_torchdynamo_disable', False) else torch.compile(fn, fullgraph=True)\n"
        "torch.testing.assert_close(compiled(*args), fn(*args))\n"
    )
    subprocess.run([sys.executable, "-c", check], cwd=folder, check=True, timeout=900)
