"""BF303 through the real command line: a break inside a library outside the project root is kept
eager at the project's call site, in the file that makes the call, and the split climbs to the target.

The library is a hand-written stand-in for transformers' HybridCache (a cache whose constructor
branches on a tensor it builds), installed in a site-packages folder outside ``--root``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import breakfix, make_project

LIBRARY = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "io_split"
    / "BF303_library_constructor"
    / "site-packages"
    / "cachelib.py"
)

MODEL = """\
import torch
from torch import nn

import cachelib


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.layer = nn.Linear(8, 8)

    def forward(self, ids):
        h = self.embed(ids)
        cache = cachelib.Cache(2, ids.shape[0], ids.shape[1], 8)
        h = torch.relu(self.layer(h))
        return h + cache.update(0, h).mean()
"""

MAIN = """\
import torch

import model


def example_inputs():
    torch.manual_seed(0)
    return (model.Decoder(), torch.randint(0, 10, (2, 6)))


def f(decoder, ids):
    return decoder(ids).softmax(-1)
"""


@pytest.mark.torch
def test_a_library_constructor_that_branches_on_a_tensor_is_kept_eager_at_its_call_site(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    library = site / "cachelib.py"
    library.write_text(LIBRARY.read_text())
    project = make_project(tmp_path, {"model.py": MODEL, "main.py": MAIN})
    pythonpath = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))

    result = breakfix(
        project, "main.py:f", "--inputs", "main.py:example_inputs", "--apply", "--json", env={"PYTHONPATH": pythonpath}
    )
    assert result.code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["verified"] and report["applied"]
    fixes = [(b["gb_id"], b["file"], b["fix"]["code"]) for b in report["breaks"]]
    # The library break is answered in model.py, where the project calls the library; the
    # target's call of the now eager Decoder.forward is answered in main.py.
    assert fixes[0] == ("GB0170", "model.py", "BF303")
    assert fixes[-1][1:] == ("main.py", "BF301")
    assert library.read_text() == LIBRARY.read_text()

    written = (project / "model.py").read_text()
    assert (
        "    @torch.compiler.disable\n    def forward(self, ids):\n        h = _forward_piece_1(self, ids)\n"
        "        cache = cachelib.Cache(2, ids.shape[0], ids.shape[1], 8)\n" in written
    )
    assert "@torch.compiler.disable\ndef f(decoder, ids):\n" in (project / "main.py").read_text()

    # In a fresh process, as a user runs it (on aot_eager): the eager target runs compiled pieces,
    # each with fullgraph=True, and returns what the original returns.
    run = (
        "import functools, sys, torch\n"
        "compile = torch.compile\n"
        "torch.compile = lambda fn=None, **kw: compile(fn, **{**kw, 'backend': 'aot_eager'}) if fn is not None \\\n"
        "    else functools.partial(torch.compile, **kw)\n"
        "import main\n"
        "from torch._dynamo.utils import counters\n"
        "torch.save(main.f(*main.example_inputs()), 'out.pt')\n"
        "print(counters['stats']['unique_graphs'])\n"
    )
    env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONDONTWRITEBYTECODE": "1"}
    (tmp_path / "original").mkdir()
    original = make_project(tmp_path / "original", {"model.py": MODEL, "main.py": MAIN})
    graphs = {}
    for folder in (project, original):
        done = subprocess.run(
            [sys.executable, "-c", run], cwd=folder, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
        graphs[folder] = int(done.stdout.split()[-1])
    assert graphs[project] >= 2 and graphs[original] == 0
    torch.testing.assert_close(torch.load(project / "out.pt"), torch.load(original / "out.pt"))
