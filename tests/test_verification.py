"""Verification beyond the example: many calls with state carried, recompiles, derived inputs of
other sizes, and BF202 fakes that hold at every rank the helper takes (issue 13).

Each test runs the real command line on a small program whose earlier "verified" rewrite broke the
user's code after it was written, and checks that the rewrite is now refused, or that it works
where the earlier one did not.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import breakfix, make_project, snapshot

from breakfix.worker.compare import compare_call
from breakfix.worker.derived import MAX_TRIED, derived_input, size_changes
from breakfix.worker.sandbox import record_call, seed_all

# BF301 used to split this: the counter update went into a compiled piece, which guards on
# `self.calls == N`, recompiles on every call and fails on the 9th (FailOnRecompileLimitHit).
COUNTER = """\
import torch


class Counter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.calls = 0
        self.history = []

    def forward(self, x):
        self.calls += 1
        y = self.lin(x)
        print("step", self.calls)
        self.history.append(y.sum().item())
        return y.relu()


def example_inputs():
    return (Counter(), torch.randn(2, 4))
"""

FIFTY_CALLS = """\
import torch
import m

model, x = m.example_inputs()
forward = m.Counter.forward  # a split makes it an eager orchestrator of compiled pieces
if not getattr(forward, "_torchdynamo_disable", False):
    forward = torch.compile(forward, fullgraph=True, backend="aot_eager")
for _ in range(50):
    forward(model, x)
print("calls", model.calls)
"""


@pytest.mark.torch
def test_a_split_that_recompiles_on_every_call_is_refused_or_runs_50_calls(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": COUNTER})
    result = breakfix(project, "m.py:Counter.forward", "--apply", "--json")
    [brk] = result.json()["breaks"]
    if brk["status"] == "fixed":
        ran = subprocess.run(
            [sys.executable, "-c", FIFTY_CALLS], cwd=project, capture_output=True, text=True, timeout=600
        )
        assert ran.returncode == 0 and "calls 50" in ran.stdout, ran.stderr[-2000:]
        return
    before = snapshot(project)
    assert result.code == 1 and snapshot(project) == before
    [split] = [a for a in brk["attempts"] if a["code"] == "BF301"]
    assert not split["verified"]
    assert re.search(
        r"recompiles on every call \(guard on `self\.calls == \d+`\) and hits the recompile limit on "
        r"call \d+",
        split["reason"],
    ), split["reason"]


# A module that warms up on its first call: compiled, its second call recompiles once on
# `self.ready == False`, the original's as well. A rewrite may recompile where the original does.
WARMUP = """\
import torch


def g(x):
    y = x.sin()
    torch._dynamo.graph_break()
    return y.cos()


class Warmup(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ready = False

    def forward(self, x):
        scale = 2.0 if self.ready else 1.0
        self.ready = True
        return g(x) * scale


def example_inputs():
    return (Warmup(), torch.randn(4))
"""


@pytest.mark.torch
def test_a_recompile_the_original_makes_too_is_accepted_and_reported(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": WARMUP})
    result = breakfix(project, "m.py:Warmup.forward", "--json")
    [brk] = result.json()["breaks"]
    assert (brk["status"], brk["fix"]["code"]) == ("proposed", "BF201"), brk
    assert brk["verification"] == {"calls": 10, "derived_inputs": 2, "recompiles": ["self.ready == False"]}


# BF202 used to derive `arr.new_empty((arr.shape[0], arr.shape[1]), ...)` from the one 2-D example:
# a 1-D input raised IndexError, a 3-D one TorchRuntimeError. np.isin takes every rank (and has no
# traced form: torch._numpy lacks it).
ON_GRID = """\
import numpy as np
import torch


def on_grid(arr):
    grid = np.linspace(-1.0, 1.0, 9)
    return torch.from_numpy(np.isin(np.round(arr.numpy() * 4) / 4, grid))


def encode(x):
    return on_grid(x * 0.5)


def f(x):
    y = x.sin()
    return encode(y) + 1


def example_inputs():
    return (torch.randn(3, 4),)
"""

EVERY_RANK = """\
import numpy as np
import torch
import m

compiled = torch.compile(m.f, fullgraph=True, backend="aot_eager")
for shape in [(7,), (3, 4), (2, 5, 6), (5, 3)]:
    x = torch.randn(shape)
    values = np.round(np.sin(x.numpy()) * 0.5 * 4) / 4
    expected = torch.from_numpy(np.isin(values, np.linspace(-1.0, 1.0, 9))) + 1
    torch.testing.assert_close(compiled(x), expected)
print("every rank")
"""


@pytest.mark.torch
def test_an_opaque_op_fake_holds_for_1d_2d_and_3d_inputs(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": ON_GRID})
    result = breakfix(project, "m.py:f", "--apply", "--json")
    [brk] = result.json()["breaks"]
    assert (brk["status"], brk["fix"]["code"]) == ("fixed", "BF202"), brk
    assert "return arr.new_empty(arr.shape, dtype=torch.bool)" in (project / "m.py").read_text()
    ran = subprocess.run([sys.executable, "-c", EVERY_RANK], cwd=project, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0 and "every rank" in ran.stdout, ran.stderr[-2000:]


# Compiled at any size but the example's, the rewrite computes something else: the example alone
# cannot tell, a derived input can.
EXAMPLE_SHAPE_ONLY = """\
import torch


def g(x):
    y = x.sin()
    torch._dynamo.graph_break()
    return y.cos()


def f(x):
    scale = 3 if torch.compiler.is_compiling() and x.shape[0] != 4 else 2
    return g(x + 1) * scale


def example_inputs():
    return (torch.randn(4),)
"""


@pytest.mark.torch
def test_a_rewrite_that_matches_only_at_the_example_shape_is_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": EXAMPLE_SHAPE_ONLY})
    before = snapshot(project)
    result = breakfix(project, "m.py:f", "--apply", "--json")
    assert result.code == 1 and snapshot(project) == before, result.stderr
    [brk] = result.json()["breaks"]
    assert brk["status"] == "unfixable"
    reasons = [a["reason"] for a in brk["attempts"] if a["code"] == "BF201"]
    assert reasons and reasons[0].startswith("derived input 1 (size 4 -> 1): outputs differ"), reasons
    # On the example inputs alone the same rewrite matches: the derived inputs are what refuse it.
    alone = breakfix(project, "m.py:f", "--no-derived-inputs", "--json")
    [brk] = alone.json()["breaks"]
    assert (brk["status"], brk["fix"]["code"]) == ("proposed", "BF201"), brk
    assert brk["verification"] == {"calls": 10, "derived_inputs": 0, "recompiles": []}


@pytest.mark.torch
def test_derived_inputs_change_shared_sizes_together_and_are_the_same_in_every_process() -> None:
    def make_inputs() -> tuple:
        mask = torch.ones(2, dtype=torch.bool)
        return (torch.randn(2, 3), [torch.arange(2)], {"mask": mask}, torch.nn.Linear(3, 3), 5)

    assert size_changes(make_inputs()) == [(2, 1), (2, 3), (3, 1), (3, 5)]
    changes, (x, [index], options, module, n) = derived_input(make_inputs, seed_all, 0)
    assert changes == "size 2 -> 1"
    assert (x.shape, index.shape, options["mask"].shape) == ((1, 3), (1,), (1,))
    assert index.dtype == torch.int64 and 0 <= int(index.min()) and int(index.max()) <= 1  # the example's range
    assert options["mask"].dtype == torch.bool and isinstance(module, torch.nn.Linear) and n == 5
    _, again = derived_input(make_inputs, seed_all, 0)
    torch.testing.assert_close(again[0], x)  # re-derived from the seed, never pickled
    assert derived_input(make_inputs, seed_all, MAX_TRIED) is None


# Big enough that torch runs the softmax on its OpenMP pool: the derived inputs are tried in a
# process forked after the example's calls started that pool, where the op used to wait forever.
PARALLEL_OP = """\
import torch


def f(x):
    y = x.softmax(dim=-1)
    print("rows", y.shape[0])
    return y * 2


def example_inputs():
    return (torch.randn(512, 1024),)
"""


@pytest.mark.torch
def test_derived_inputs_of_a_target_running_parallel_ops_are_tried_without_hanging(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": PARALLEL_OP})
    result = breakfix(project, "m.py:f", "--apply", "--json", "--timeout", "120")
    assert result.code == 0, result.stderr
    [brk] = result.json()["breaks"]
    assert brk["status"] == "fixed" and brk["verification"]["derived_inputs"] > 0, brk


# Compiles at the example's sizes; at the next batch size dynamo makes the sizes dynamic, and
# torch.randn given generator=None rejects them (torch 2.13).
SECOND_SIZE_ONLY = """\
import torch


def f(x, generator=None):
    return x + torch.randn(x.shape, generator=generator)


def example_inputs():
    return (torch.randn(3, 4),)
"""


@pytest.mark.torch
def test_a_break_only_at_another_size_is_located_not_reported_as_compiling(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": SECOND_SIZE_ONLY})
    # On the example inputs alone nothing breaks: the old claim, "compiles with fullgraph=True".
    alone = breakfix(project, "m.py:f", "--no-derived-inputs", "--json")
    assert alone.code == 0 and alone.json()["breaks"] == [], alone.stdout
    result = breakfix(project, "m.py:f", "--json")
    [brk] = result.json()["breaks"]
    assert (brk["gb_id"], brk["line"]) == ("GB4315", 5), brk
    assert (brk["status"], brk["fix"]["code"], brk["verified"]) == ("proposed", "BF901", True), brk


def test_a_copy_where_the_original_handed_back_an_input_is_told_apart() -> None:
    """A caller that updates a returned tensor in place changes the input it shares memory with: a
    rewrite that returns a copy there (or shares where the original did not) is a mismatch."""
    x = torch.ones(3)
    model = torch.nn.Linear(3, 3)
    handed_back = record_call(lambda m, t: (t.view(3), m.weight.sum()), (model, x), user_errors=True)
    assert handed_back["shares_memory"] == [("output[0]", "args[1]")]
    copied = record_call(lambda m, t: (t.clone(), m.weight.sum()), (model, x), user_errors=True)
    assert "outputs share memory with inputs differently" in compare_call(handed_back, copied, None, None)
    weight = record_call(lambda m, t: (t.clone(), m.weight), (model, x), user_errors=True)
    assert weight["shares_memory"] == [("output[1]", "args[0].weight")]
    again = record_call(lambda m, t: (t.reshape(3), m.weight.sum()), (model, x), user_errors=True)
    assert compare_call(handed_back, again, None, None) == ""


def test_two_elements_of_one_storage_share_no_memory() -> None:
    table = torch.arange(10.0)
    other = record_call(lambda t: table[5], (table[3],), user_errors=True)
    assert other["shares_memory"] == []
    same = record_call(lambda t: table[3], (table[3],), user_errors=True)
    assert same["shares_memory"] == [("output", "args[0]")]
