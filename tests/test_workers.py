"""Worker jobs forked from zygotes still behave like fresh processes: through ``python -m breakfix``."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import breakfix, make_project, snapshot

# The reference run and the check see the module's state as a fresh import: if the check ran in
# the process (or a fork of the process) that recorded the reference, `calls` would already hold
# two entries and the outputs would differ.
# A global call count, kept in a tensor: one kept in a list (``len(calls)``) would be specialised
# and recompile on every call, and its rewrite refused for that.
MODULE_STATE = """\
import torch

calls = torch.zeros(())


def g(x):
    torch._dynamo.graph_break()
    return x.sin()


def f(x):
    calls.add_(1)
    return g(x) * calls


def example_inputs():
    return (torch.ones(3),)
"""

# Output that depends on the interpreter's str hash seed: the check must not share the reference's
# seed, or a rewrite of code that no fresh process reproduces would be verified.
HASH_ORDER = """\
import torch


def g(x):
    torch._dynamo.graph_break()
    return x.sin()


def f(x):
    return g(x) + hash("breakfix") % 2**20


def example_inputs():
    return (torch.ones(3),)
"""


@pytest.mark.torch
def test_no_module_state_leaks_from_the_reference_into_the_check(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": MODULE_STATE})
    result = breakfix(project, "m.py:f", "--apply", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["applied"]
    assert "torch._dynamo.nonstrict_trace(g)(x)" in (project / "m.py").read_text()


@pytest.mark.torch
def test_reference_and_check_do_not_share_a_hash_seed(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": HASH_ORDER})
    before = snapshot(project)
    result = breakfix(project, "m.py:f", "--apply", "--json")
    # With a shared seed the rewrite would match and be written; with its own seed the check
    # differs, and so does the fresh repeat of the original: the target is nondeterministic.
    assert result.code == 2, result.stderr
    assert "cannot verify: the target is nondeterministic" in result.json()["error"]
    assert snapshot(project) == before
