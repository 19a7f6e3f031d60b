"""The installed package works without the source tree: the wheel is built, installed into a fresh venv
and run as users run it (``breakfix explain``, ``breakfix check``) from a folder outside the checkout.

The fresh venv gets the wheel alone (``--no-deps``); its dependencies (torch, libcst, click, rich)
come from this interpreter's site-packages through a ``.pth`` file, which adds the folder to
``sys.path`` without processing its ``.pth`` files, so the checkout's editable install stays out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from breakfix import docs

REPO = Path(__file__).resolve().parents[1]

COMPILED_PRINT = """\
import torch


@torch.compile
def f(x):
    print("step")
    return x.sin()
"""


def _build_wheel(tmp_path: Path) -> Path:
    """``pip wheel`` on a copy of the sources, so the build leaves nothing in the checkout."""
    source = tmp_path / "source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path / "dist"),
        ],
        check=True,
        timeout=600,
    )
    (wheel,) = (tmp_path / "dist").glob("breakfix-*.whl")
    return wheel


def _fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        check=True,
        timeout=600,
    )
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "_breakfix_test_dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    return env_dir


@pytest.mark.slow
def test_the_installed_wheel_explains_and_checks_outside_the_checkout(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert {"breakfix/cli.py", "breakfix/docs.py", "breakfix/py.typed"} <= set(names)
    assert not [n for n in names if n.endswith(("fuzzing.py", "gen_docs.py", "fixture_spec.py"))], names

    env_dir = _fresh_venv(tmp_path, wheel)
    work = tmp_path / "work"
    work.mkdir()
    (work / "model.py").write_text(COMPILED_PRINT)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | {"COLUMNS": "200"}

    def breakfix(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [env_dir / "bin" / "breakfix", *args], cwd=work, capture_output=True, text=True, env=env, timeout=300
        )

    where = subprocess.run(
        [env_dir / "bin" / "python", "-c", "import breakfix; print(breakfix.__file__)"],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert Path(where).is_relative_to(env_dir), where

    explained = breakfix("explain", "BF201")
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout == docs.explain("BF201")

    checked = breakfix("check", "model.py", "--format", "json")
    assert checked.returncode == 1, checked.stderr
    findings = [
        (f["file"], f["line"], f["code"], f["gb_id"], f["gb_type"]) for f in json.loads(checked.stdout)["findings"]
    ]
    # The Gb_type comes from torch's registry file, found from the installed package.
    assert findings == [("model.py", 6, "BF501", "GB0059", docs.gb_type_of("GB0059"))]
