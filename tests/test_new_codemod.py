"""scripts/new_codemod.py on a copy of the source tree: the class it scaffolds is registered before the
catch-alls, documented with the headings the docs need, and its fixtures follow the fixture format."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

INSPECT = """\
import sys
sys.path.insert(0, "scripts")
from fixture_spec import cases_of
from breakfix import docs
from breakfix.codemods import BY_CODE, REGISTRY
codemod = BY_CODE[sys.argv[1]]
first_catch_all = next(i for i, c in enumerate(REGISTRY) if c.CATCH_ALL)
assert REGISTRY.index(codemod) == first_catch_all - 1, [c.__name__ for c in REGISTRY]
page = docs.codemod_page(codemod)
assert all(f"\\n## {h}\\n" in page for h in ("What it fixes", "Why it breaks", "Example", "Fix safety")), page
print(codemod.__module__, codemod.__name__, sorted((c.id, c.kind, c.exit_code) for c in cases_of(sys.argv[1])))
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for folder in ("src", "scripts", "fixtures"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return tmp_path


def _run(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(tree / "src")},
    )


@pytest.mark.parametrize("family", ["side_effects", "new_family", "control_flow"])
def test_the_scaffold_is_registered_documented_and_has_both_fixtures(tree: Path, family: str) -> None:
    made = _run(tree, "scripts/new_codemod.py", family, "BF599", "NewPattern")
    assert made.returncode == 0, made.stderr
    inspected = _run(tree, "-c", INSPECT, "BF599")
    assert inspected.returncode == 0, inspected.stderr
    assert inspected.stdout.split(" ", 2) == [
        f"breakfix.codemods.{family}" + (".new_pattern" if family == "control_flow" else ""),  # a family package
        "NewPattern",
        "[('BF599_negative', 'negative', 1), ('BF599_positive', 'positive', 0)]\n",
    ]


def test_a_taken_code_is_one_line_exit_2_and_writes_nothing(tree: Path) -> None:
    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    made = _run(tree, "scripts/new_codemod.py", "side_effects", "BF501", "NewPattern")
    assert made.returncode == 2 and made.stderr.startswith("new_codemod: error: code 'BF501'")
    assert len(made.stderr.splitlines()) == 1
    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file() and "__pycache__" not in p.parts} == before
