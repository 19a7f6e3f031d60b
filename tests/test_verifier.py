"""The verifier is what keeps the one rule: a rewrite that changes anything observable is rejected.

Each case checks a hand-made rewrite of one original against the original's eager reference,
through the real worker processes (torch, aot_eager).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from breakfix.locator import RunOptions, locate
from breakfix.verifier import check

ORIGINAL = """\
import logging
import warnings

import torch

log = logging.getLogger("demo")
# A library logger with its own handler, like transformers': the root never sees its records.
quiet = logging.getLogger("demo.library")
quiet.propagate = False


def f(x):
    y = x.sin()
    print("mean", round(float(y.mean()), 4))
    warnings.warn("careful")
    log.warning("norm %.3f", float(y.norm()))
    torch.save(y, "y.pt")
    quiet.warning("saved")
    return y * 2


def example_inputs():
    return (torch.randn(4),)
"""

# The original with its side effects kept eager: matches, and its pieces compile with fullgraph=True
# (a split: the target itself runs eagerly, so the check does not call it a fullgraph compile).
FAITHFUL = """\
import logging
import warnings

import torch

log = logging.getLogger("demo")
# A library logger with its own handler, like transformers': the root never sees its records.
quiet = logging.getLogger("demo.library")
quiet.propagate = False


@torch.compile(fullgraph=True)
def _sin(x):
    return x.sin()


@torch.compile(fullgraph=True)
def _double(y):
    return y * 2


@torch.compiler.disable
def f(x):
    y = _sin(x)
    print("mean", round(float(y.mean()), 4))
    warnings.warn("careful")
    log.warning("norm %.3f", float(y.norm()))
    torch.save(y, "y.pt")
    quiet.warning("saved")
    return _double(y)


def example_inputs():
    return (torch.randn(4),)
"""

WRONG = {
    "drops the print": (FAITHFUL.replace('    print("mean", round(float(y.mean()), 4))\n', ""), "stdout differs"),
    "drops the warning": (FAITHFUL.replace('    warnings.warn("careful")\n', ""), "warnings differ"),
    "drops the log line": (FAITHFUL.replace('    log.warning("norm %.3f", float(y.norm()))\n', ""), "logs differ"),
    "drops a record of a logger that does not propagate": (
        FAITHFUL.replace('    quiet.warning("saved")\n', ""),
        "logs differ",
    ),
    "does not write the file": (FAITHFUL.replace('    torch.save(y, "y.pt")\n', ""), "files written differ"),
    "writes other data": (
        FAITHFUL.replace('torch.save(y, "y.pt")', 'torch.save(y + 1e-3, "y.pt")'),
        "contents of written file",
    ),
    "changes the numbers": (FAITHFUL.replace("return y * 2", "return y * 2.001"), "outputs differ"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunOptions, str, str]:
    root = tmp_path_factory.mktemp("project")
    (root / "m.py").write_text(ORIGINAL)
    options = RunOptions(target=f"{root / 'm.py'}:f", inputs=None, root=root, backend="aot_eager", timeout=300)
    reference = str(root.parent / "reference.pt")
    found = locate(options, {}, reference)
    assert found.breaks, "the original breaks"
    return options, str(root / "m.py"), reference


@pytest.mark.torch
def test_a_faithful_rewrite_is_verified(project: tuple[RunOptions, str, str]) -> None:
    options, path, reference = project
    result = check(options, {path: FAITHFUL}, reference)
    assert result.ok and result.complete and result.split and not result.fullgraph, result.reason
    assert result.pieces == ["_double", "_sin"]
    assert Path(path).read_text() == ORIGINAL, "checking never writes"


@pytest.mark.torch
@pytest.mark.parametrize("case", sorted(WRONG))
def test_a_rewrite_that_changes_behaviour_is_rejected(project: tuple[RunOptions, str, str], case: str) -> None:
    options, path, reference = project
    source, why = WRONG[case]
    assert source != FAITHFUL
    result = check(options, {path: source}, reference)
    assert not result.ok and why in result.reason, result.reason
