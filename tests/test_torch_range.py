"""breakfix on the torch the user has: versions, the APIs codemods rely on, and codemods that the
installed torch cannot run (not offered, and the report says why)."""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import breakfix, make_project

from breakfix.codemods import REGISTRY, REQUIRED_APIS
from breakfix.torch_apis import has_api, missing_apis, needs, unavailable


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "breakfix", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
        timeout=300,
    )


def test_version_names_breakfix_torch_and_python() -> None:
    result = _cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"breakfix {importlib.metadata.version('breakfix')} "
        f"(torch {importlib.metadata.version('torch')}, Python {platform.python_version()})\n"
    )


def test_has_api_resolves_attributes_and_submodules() -> None:
    assert has_api("torch.cond") and has_api("torch.library.custom_op")
    assert has_api("torch._dynamo.decorators")  # a submodule, imported on the way
    assert not has_api("torch.no_such_api") and not has_api("torch.library.no_such_api")
    assert not has_api("no_such_package.anything")
    assert missing_apis(["torch.no_such_api", "torch.cond", "torch.no_such_api"]) == ("torch.no_such_api",)


def test_unavailable_says_what_is_needed_and_what_the_user_has() -> None:
    assert unavailable("BF999", ["torch.no_such_api"], "2.9.1") == "BF999 needs torch.no_such_api; you have 2.9.1"
    assert unavailable("BF501", ["torch._higher_order_ops.print"], "2.9.1+cu128") == (
        "BF501 needs torch._higher_order_ops.print (torch >= 2.11); you have 2.9.1+cu128"
    )


def test_every_codemod_declares_apis_of_torch() -> None:
    assert all(api.startswith("torch.") for api in REQUIRED_APIS)
    assert {api for codemod in REGISTRY for api in codemod.REQUIRES} == set(REQUIRED_APIS)


def test_codemods_shows_availability_on_the_installed_torch() -> None:
    result = _cli("codemods")
    assert result.returncode == 0, result.stderr
    rows = {
        row.split("│")[1].strip(): row.split("│")[-2].strip()
        for row in result.stdout.splitlines()
        if row.startswith("│ BF")
    }
    assert list(rows) == [codemod.CODE for codemod in REGISTRY]
    for codemod in REGISTRY:
        lacking = [api for api in codemod.REQUIRES if not has_api(api)]
        assert rows[codemod.CODE] == ("yes" if not lacking else f"no: needs {needs(lacking)}")


# A project whose module removes nonstrict_trace from torch when imported, as a torch without it
# would be: BF201 (which writes it) must not be offered, and the report must say why.
WITHOUT_NONSTRICT_TRACE = """\
import torch
import torch._dynamo

del torch._dynamo.nonstrict_trace


def g(x):
    y = x.sin()
    torch._dynamo.graph_break()
    return y.cos()


def f(x):
    return g(x + 1) * 2


def example_inputs():
    return (torch.randn(4),)
"""


@pytest.mark.torch
def test_a_codemod_whose_api_is_missing_is_not_offered_and_the_report_says_so(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"m.py": WITHOUT_NONSTRICT_TRACE})
    result = breakfix(project, "m.py:f", "--json", "--verbose")
    report = result.json()
    attempts = [attempt for brk in report["breaks"] for attempt in brk["attempts"]]
    assert {
        "code": "BF201",
        "applicability": "safe",
        "verified": False,
        "reason": f"BF201 needs torch._dynamo.nonstrict_trace; you have {torch.__version__}",
    } in attempts
    assert all(brk["fix"] is None or brk["fix"]["code"] != "BF201" for brk in report["breaks"])
    assert "nonstrict_trace" not in "".join(change["diff"] for change in report["changes"])
    # --verbose: the torch that verified, and each private hook it lacks (none on 2.13).
    notes = [line for line in result.stderr.splitlines() if line.startswith("breakfix: m.py:f: ")]
    assert notes[0] == f"breakfix: m.py:f: verified on torch {torch.__version__}"
    lacking = {note.split(" lacks ", 1)[1].split(":")[0] for note in notes[1:]}
    from torch._dynamo import exc, symbolic_convert

    expected = {
        name
        for name, present in (
            (
                "InstructionTranslatorBase.log_graph_break",
                hasattr(symbolic_convert.InstructionTranslatorBase, "log_graph_break"),
            ),
            ("Unsupported.gb_type", "gb_type" in inspect.signature(exc.Unsupported).parameters),
            ("torch._dynamo.exc._load_gb_type_to_gb_id_map", hasattr(exc, "_load_gb_type_to_gb_id_map")),
        )
        if not present
    }
    assert lacking == expected
