"""The README's quick start works as written on a fresh clone, and `./scripts/test.sh --fast` is the fast tier."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def quick_start() -> list[str]:
    """The commands of the README's first bash block, comments dropped."""
    block = re.search(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block, "the README has no bash block"
    return [line.split("#", 1)[0].strip() for line in block[1].splitlines() if line.split("#", 1)[0].strip()]


def test_quick_start_puts_breakfix_on_the_path_before_using_it() -> None:
    commands = quick_start()
    assert commands[0] == "./scripts/demo.sh"
    activated = False
    for command in commands:
        activated = activated or command in ("source .venv/bin/activate", ". .venv/bin/activate")
        words = [w for part in command.split("&&") for w in part.split()[:1]]
        assert activated or "breakfix" not in words, f"{command!r} runs breakfix before the venv is activated"
    assert any("breakfix run" in c for c in commands)


def test_quick_start_targets_exist() -> None:
    for command in quick_start():
        if "breakfix run" in command:
            target = command.split("breakfix run", 1)[1].split()[0]
            folder = REPO / (command.split("cd ", 1)[1].split()[0] if "cd " in command else ".")
            assert (folder / target.rpartition(":")[0]).is_file(), command


def test_fast_tier_leaves_out_torch_and_slow_tests() -> None:
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--fast",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_codemod_fuzz.py",
            "tests/test_verifier.py",
            "tests/test_render.py",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    ids = collected.stdout
    assert "test_codemods_never_corrupt_real_code" not in ids  # slow
    assert "test_verifier.py::test_a_faithful_rewrite_is_verified" not in ids  # torch
    assert "test_render.py::test_piped_report_prints_one_plain_row_per_break" in ids
    assert re.search(r"\d+ deselected", ids)


@pytest.mark.slow
@pytest.mark.torch
def test_quick_start_runs_as_written_on_a_fresh_clone(tmp_path: Path) -> None:
    """Every tracked file copied (a fresh clone of this tree), then the README's commands, in order, in one shell."""
    clone = tmp_path / "breakfix"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, clone / name)
    *setup, last = quick_start()
    # `breakfix run` exits 1 on a dry run that proposes a fix, as documented; anything else fails.
    script = "\n".join(["set -e", *setup, f"{last} || test $? -eq 1"])
    result = subprocess.run(["bash", "-c", script], cwd=clone, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "command not found" not in result.stderr
    assert "Dry run: the rewrite above is verified" in result.stdout
