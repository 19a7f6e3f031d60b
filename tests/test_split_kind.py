"""A split is a fix only when it compiles the work, and every report says which kind of fix it is.

Through the real command line: the target calls a model whose forward writes a checkpoint in its
middle (an untraceable call only a split answers). A split that keeps the model call eager and
compiles what is left of the target compiles almost nothing (coverage far below 0.9): it is refused
and nothing is written. A split of the model's own forward around the write compiles the work.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import breakfix, make_project, snapshot

MODEL = """\
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Output:
    logits: torch.Tensor


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 8)
        self.c = nn.Linear(8, 4)

    def forward(self, x):
        h = torch.relu(self.a(x))
        h = torch.tanh(self.b(h)) + h
        torch.save(h, "activations.pt")
        h = torch.sigmoid(self.c(h)) * 2 - 1
        return Output(logits=h.softmax(-1))
"""

TARGET = """\
import torch

import model


def example_inputs():
    torch.manual_seed(0)
    return (model.Model(), torch.randn(3, 8))


def forward(net, x):
    with torch.no_grad():
        out = net(x)
    return out.logits{tail}
"""

# A print in the middle of a block of work, of a value BF501 cannot print inside a graph (a file
# write follows it in the same statement block): only a split answers it.
BLOCK = """\
import torch


def example_inputs():
    torch.manual_seed(0)
    return (torch.randn(4, 8), torch.randn(8, 8))


def step(x, w):
    h = torch.relu(x @ w)
    h = h * h.sigmoid() + 1
    total = h.sum(dim=0)
    torch.save(total, "total.pt")
    out = torch.tanh(h @ w.T) + total.mean()
    return out.softmax(-1) * 3
"""


def _project(tmp_path: Path, tail: str) -> Path:
    return make_project(tmp_path, {"model.py": MODEL, "target.py": TARGET.format(tail=tail)})


@pytest.mark.torch
@pytest.mark.parametrize("tail", ["", ".softmax(-1)"], ids=["attribute", "one-op"])
def test_a_split_that_keeps_the_model_call_eager_is_refused_and_the_model_is_split_instead(
    tmp_path: Path, tail: str
) -> None:
    project = _project(tmp_path, tail)
    result = breakfix(project, "target.py:forward", "--json")
    document = result.json()
    site = next(b for b in document["breaks"] if b["file"] == "model.py")
    target_split = next(a for a in site["attempts"] if a["code"] == "BF301")
    assert not target_split["verified"]
    if tail:
        # The split was made and measured: its one piece executes one operation of the model's dozen.
        assert "of the original's operations, below --min-coverage 0.9" in target_split["reason"], target_split
    else:
        # `return out.logits` alone would compile nothing: no such split is made.
        assert "nothing in forward is left to compile" in target_split["reason"], target_split
    # The split goes where the break is: the model's forward, around the write.
    assert site["status"] == "proposed" and site["fix"]["code"] == "BF303", site
    assert document["kind"] == "split" and document["coverage"] >= 0.9, document
    assert document["eager_callers"] == [{"file": "model.py", "function": "Model.forward", "pieces": 2}]
    text = breakfix(project, "target.py:forward")
    assert "model.py: Model.forward now runs eagerly and calls 2 compiled piece(s)" in text.stdout
    assert "did not take are not verified" in text.stdout


@pytest.mark.torch
def test_a_split_below_the_threshold_is_not_written(tmp_path: Path) -> None:
    project = _project(tmp_path, ".softmax(-1)")
    before = snapshot(project)
    # At a threshold no split reaches, the model's split (coverage 1) is refused too: nothing is written.
    result = breakfix(project, "target.py:forward", "--apply", "--json", "--min-coverage", "1.0")
    document = result.json()
    attempts = [a for b in document["breaks"] for a in b["attempts"] if a["code"] == "BF301"]
    assert any("below --min-coverage 1" in a["reason"] for a in attempts), attempts
    if not document["applied"]:
        assert result.code == 1 and snapshot(project) == before
    else:  # only a split compiling every operation may be written at 1.0
        assert document["coverage"] == 1.0


@pytest.mark.torch
def test_the_threshold_is_the_users_a_low_coverage_split_is_taken_when_allowed(tmp_path: Path) -> None:
    project = _project(tmp_path, ".softmax(-1)")
    document = breakfix(project, "target.py:forward", "--json", "--min-coverage", "0").json()
    assert document["verified"] and document["kind"] == "split"
    # BF301's split of the target is taken first: the model call stays eager as a whole.
    site = next(b for b in document["breaks"] if b["file"] == "model.py")
    assert site["fix"]["code"] == "BF301" and site["fix"]["kind"] == "split"
    assert 0 < document["coverage"] < 0.5 and site["fix"]["coverage"] == document["coverage"]


@pytest.mark.torch
def test_a_split_of_a_block_is_written_and_reported_as_a_split_with_its_coverage(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"block.py": BLOCK})
    result = breakfix(project, "block.py:step", "--apply")
    assert result.code == 0, result.stderr
    written = (project / "block.py").read_text()
    assert "@torch.compiler.disable\ndef step(x, w):" in written and written.count("@torch.compile(") == 2
    summary = result.stdout
    assert "as a split: block.py:step now runs eagerly and calls 2 compiled piece(s) covering" in summary
    assert "Call it eagerly; do not wrap it in torch.compile." in summary
    assert "fullgraph=True" not in summary.replace("@torch.compile(fullgraph=True)", "")
    assert "split 100%" in summary or "split 9" in summary  # the kind column

    # The written split runs eagerly as the report says, and matches the original.
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import torch, block\n"
                "x, w = block.example_inputs()\n"
                "out = block.step(x, w)\n"
                "assert out.shape == (4, 8)\n"
                "try:\n"
                "    torch.compile(block.step, fullgraph=True, backend='eager')(x, w)\n"
                "except Exception as e:\n"
                "    print('compiling the split fails:', type(e).__name__)\n"
            ),
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stderr
    assert "compiling the split fails" in check.stdout


@pytest.mark.torch
def test_json_carries_kind_and_coverage_for_every_fix(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"block.py": BLOCK})
    document = breakfix(project, "block.py:step", "--json").json()
    assert document["kind"] == "split" and document["coverage"] >= 0.9 and document["pieces"] == 2
    for brk in document["breaks"]:
        if brk["fix"] is not None:
            assert brk["fix"]["kind"] == "split" and brk["fix"]["coverage"] == document["coverage"]
    sarif = breakfix(project, "block.py:step", "--format", "sarif")
    assert "fixed by a split covering" in sarif.stdout and "fullgraph=True" not in sarif.stdout


HIDDEN = """\
import torch


def example_inputs():
    torch.manual_seed(0)
    return (torch.randn(4, 8),)


def report(h):
    torch.save(h, "h.pt")
    print("saved", h.shape)


def f(x):
    h = torch.relu(x) * 2
    h = h.sin() + 1
    report(h)
    return h.cos().sum(-1)
"""


@pytest.mark.torch
def test_a_break_hidden_by_a_split_is_kept_eager_never_resolved(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"hidden.py": HIDDEN})
    document = breakfix(project, "hidden.py:f", "--json").json()
    by_line = {b["line"]: b for b in document["breaks"]}
    # The write is kept eager by BF301 (the call of report stays eager); the print after it in
    # report was not fixed: its code just no longer runs compiled.
    assert by_line[10]["status"] == "proposed" and by_line[10]["fix"]["code"] == "BF301"
    assert by_line[11]["status"] == "kept-eager" and by_line[11]["fix"] is None
    assert by_line[11]["why"].startswith("kept eager by BF301")
    text = breakfix(project, "hidden.py:f")
    assert "kept eager by BF301" in text.stdout and "resolved" not in text.stdout
