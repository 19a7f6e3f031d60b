"""Generated pieces are compiled with the target's own torch.compile options, else with
--piece-options / [tool.breakfix] piece-options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import libcst as cst
import pytest

from breakfix import piece_options
from breakfix.batch import project_piece_options
from breakfix.codemods.io_split import split_around
from breakfix.errors import ConfigError

BODY = """\
import torch


{decorator}def f(x):
    y = x * 2
    print(y.sum())
    return y + 1
{after}
"""


def _pieces(source: str, defaults: piece_options.PieceOptions = ()) -> list[str]:
    line = source.splitlines().index("    print(y.sum())") + 1
    code = split_around(cst.parse_module(source), line, defaults=defaults).code
    return [line.strip() for line in code.splitlines() if line.startswith("@torch.compile(")]


def test_pieces_inherit_the_options_of_a_torch_compile_call_on_the_target() -> None:
    source = BODY.format(decorator="", after='\nstep = torch.compile(f, mode="max-autotune", dynamic=False)\n')
    assert (
        _pieces(source, piece_options.parse("backend='eager'"))
        == ['@torch.compile(mode="max-autotune", dynamic=False, fullgraph=True)'] * 2
    )


def test_pieces_inherit_a_decorators_options_over_the_defaults() -> None:
    source = BODY.format(decorator='@torch.compile(backend="aot_eager", dynamic=True)\n', after="")
    assert (
        _pieces(source, piece_options.parse("mode='max-autotune'"))
        == ['@torch.compile(backend="aot_eager", dynamic=True, fullgraph=True)'] * 2
    )


def test_pieces_of_a_target_compiled_elsewhere_take_the_given_options() -> None:
    source = BODY.format(decorator="", after="")
    assert _pieces(source) == ["@torch.compile(fullgraph=True)"] * 2
    assert (
        _pieces(source, piece_options.parse('mode="reduce-overhead", dynamic=False'))
        == ["@torch.compile(mode='reduce-overhead', dynamic=False, fullgraph=True)"] * 2
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("fullgraph=False", "fullgraph"),
        ("mode=foo", "literal"),
        ("'x'", "keyword"),
        ("modes='a'", "not an option"),
        ("mode=", "expected keyword arguments"),
    ],
)
def test_bad_piece_options_are_refused(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        piece_options.parse(text)


def test_project_piece_options_come_from_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.breakfix]\npiece-options = {mode = "max-autotune", dynamic = false}\n'
    )
    assert project_piece_options(tmp_path) == (("mode", "'max-autotune'"), ("dynamic", "False"))
    (tmp_path / "pyproject.toml").write_text("[tool.breakfix]\npiece-options = {fullgraph = false}\n")
    with pytest.raises(ConfigError, match="fullgraph"):
        project_piece_options(tmp_path)


@pytest.mark.torch
def test_cli_pieces_use_pyproject_options_and_the_flag_overrides_them(tmp_path: Path) -> None:
    # Enough work on each side of the break that the split compiles most of it (--min-coverage).
    (tmp_path / "m.py").write_text(
        "import torch\n\n\ndef f(x):\n    y = x.sin().cos().exp().tanh() * 2\n    torch._dynamo.graph_break()\n"
        "    return (y + 1).sin().cos().exp().tanh()\n\n\ndef example_inputs():\n    return (torch.randn(3),)\n"
    )
    (tmp_path / "pyproject.toml").write_text("[tool.breakfix]\npiece-options = {dynamic = false}\n")

    def diff(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "breakfix", "run", "m.py:f", "--json", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 1, result.stderr
        document = json.loads(result.stdout)
        assert document["verified"], document
        return "".join(change["diff"] for change in document["changes"])

    assert "+@torch.compile(dynamic=False, fullgraph=True)" in diff()
    assert "+@torch.compile(mode='max-autotune', fullgraph=True)" in diff("--piece-options", "mode='max-autotune'")
