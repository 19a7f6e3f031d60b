"""Fast unit tests of the pieces between the worker and the CLI (no torch, no subprocess)."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import warnings
from pathlib import Path

import pytest

from breakfix import classifier, writer
from breakfix.codemods import BY_CODE
from breakfix.errors import WriteRefused
from breakfix.gb_ids import gb_id_of
from breakfix.project import is_project_file
from breakfix.types import BreakFacts, FileChange, Frame, GraphBreak, OpaqueOpFact, TargetSpec, ValueKind, Verification
from breakfix.worker import sandbox
from breakfix.worker.protocol import (
    CheckRequest,
    CheckResult,
    LocateRequest,
    LocateResult,
    RepeatRequest,
    RepeatResult,
    request_from_json,
)


def _break(gb_id: str | None, gb_type: str, reason: str = "") -> GraphBreak:
    frames = [Frame("/p/m.py", 3, "f"), Frame("/p/m.py", 9, "g")]
    return GraphBreak(
        gb_type=gb_type,
        gb_id=gb_id,
        reason=reason or gb_type,
        explanation="",
        hints=[],
        user_stack=frames,
        project_stack=frames,
    )


@pytest.mark.parametrize(
    "request_",
    [
        LocateRequest(
            target="m.py:f",
            inputs=None,
            root="/p",
            reference="/t/ref.pt",
            overlay={},
            backend="eager",
            apis=("torch.cond", "torch._higher_order_ops.print"),
            calls=3,
            derived_inputs=False,
        ),
        CheckRequest(
            target="pkg.m:C.f",
            inputs="m.py:inputs",
            root="/p",
            reference="/t/ref.pt",
            overlay={"/p/m.py": "x = 1\n"},
            backend="aot_eager",
            rtol=1e-3,
            atol=1e-5,
            calls=50,
        ),
        RepeatRequest(target="m.py:f", inputs=None, root="/p", reference="/t/ref.pt", overlay={}, calls=7),
    ],
    ids=lambda r: r.mode.value,
)
def test_every_request_survives_its_json_round_trip(request_) -> None:
    assert request_from_json(json.loads(json.dumps(request_.to_json()))) == request_


@pytest.mark.parametrize(
    "response",
    [
        LocateResult(
            breaks=[_break("GB0025", "Call to `torch._dynamo.graph_break()`")],
            graph_count=2,
            target_file="/p/m.py",
            target_qualname="f",
            facts={"/p/m.py:9": BreakFacts(OpaqueOpFact(rejected="no"), {"self.step": (ValueKind.INT,)})},
            torch_version="2.9.1+cu128",
            missing_apis=("torch._higher_order_ops.print",),
        ),
        CheckResult(ok=True, fullgraph=False, graph_count=3, breaks=[_break(None, "Unsupported")]),
        CheckResult(ok=True, fullgraph=True, graph_count=1, verification=Verification(10, 2, ("self.calls == 1",))),
        CheckResult(ok=False, fullgraph=True, reason="call 1: outputs differ", mismatch=True),
        RepeatResult(difference=""),
    ],
    ids=lambda r: type(r).__name__,
)
def test_every_response_survives_its_json_round_trip(response) -> None:
    assert type(response).from_json(json.loads(json.dumps(response.to_json()))) == response


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        ("/p/m.py", True),
        ("/p/pkg/sub/m.py", True),
        ("/elsewhere/m.py", False),
        ("/p/.venv/lib/python3.11/site-packages/lib.py", False),
        ("/p/usr/lib/python3/dist-packages/lib.py", False),
        ("<string>", False),
    ],
)
def test_one_rule_says_which_files_belong_to_the_project(path: str, inside: bool) -> None:
    assert is_project_file(path, "/p") is inside
    assert not is_project_file(str(Path(sandbox.__file__)), Path(sandbox.__file__).parents[3]), "breakfix's own code"


def test_classifier_uses_gb_ids() -> None:
    codes = [c.CODE for c in classifier.candidates(_break("GB0025", "Call to `torch._dynamo.graph_break()`"))]
    assert "BF201" in codes


def test_classifier_falls_back_to_reason_text_without_gb_ids() -> None:
    # A torch build without GB ids: the Gb_type wording is all there is.
    brk = _break(None, "Call to `torch._dynamo.graph_break()`", "Call to `torch._dynamo.graph_break()`\n ...")
    assert gb_id_of(brk) == "GB0025"
    assert BY_CODE["BF201"] in classifier.candidates(brk)


def test_classifier_narrows_the_broader_ids_of_other_torch_releases() -> None:
    # next() / for on an input iterator, as torch 2.9 (GB0156) and 2.14 (GB9493) word it: the
    # breaks of 2.13 (GB4347, GB0811) that BF101 answers first.
    worded = {
        (
            "GB0156",
            "Unsupported method call",
            "Dynamo does not know how to trace method `__next__` of class `list_iterator`",
        ): "GB4347",
        (
            "GB9493",
            "C-implemented special method without VariableTracker model",
            "'list_iterator' implements '__iter__' in C and Dynamo has no model for it.",
        ): "GB0811",
    }
    for (gb_id, gb_type, explanation), known in worded.items():
        brk = dataclasses.replace(_break(gb_id, gb_type), explanation=explanation)
        assert gb_id_of(brk) == known
        assert classifier.candidates(brk) == classifier.candidates(_break(known, "x"))
        assert classifier.candidates(brk)[0] is BY_CODE["BF101"]
    other = dataclasses.replace(
        _break("GB0156", "Unsupported method call"), explanation="method `tobytes` of class `ndarray`"
    )
    assert gb_id_of(other) == "GB0156"


def test_classifier_maps_an_id_a_newer_torch_introduced_to_the_known_one() -> None:
    # torch 2.14 reports numpy's sliding_window_view, called in a helper, as GB4818; 2.13 as GB0156,
    # which BF202 answers (the fixture BF202_numpy_helper on 2.14.1).
    brk = dataclasses.replace(
        _break("GB4818", "call to a callable object with no traceable __call__"),
        explanation="Dynamo could not trace a Python `__call__` method on this object.",
    )
    assert gb_id_of(brk) == "GB0156"
    assert BY_CODE["BF202"] in classifier.candidates(brk)


def test_classifier_orders_safe_first() -> None:
    breaks = [_break(g, "x") for c in BY_CODE.values() for g in c.GB_IDS]
    breaks += [_break(None, t) for c in BY_CODE.values() for t in c.GB_TYPES]
    for brk in breaks:
        levels = [c.APPLICABILITY.value for c in classifier.candidates(brk) if not c.CATCH_ALL]
        assert levels == sorted(levels, key=["safe", "unsafe", "display-only"].index)


def test_an_unsafe_fix_for_the_pattern_comes_before_the_safe_last_resort() -> None:
    # Without --unsafe-fixes the engine only reports it and tries the last resort next.
    codes = [c.CODE for c in classifier.candidates(_break(None, "Data-dependent guard"))]
    # BF303 last: the break is one frame below the compiled one (g called by f), where it may split.
    assert codes == ["BF601", "BF603", "BF703", "BF202", "BF602", "BF604", "BF302", "BF301", "BF303"]


def test_unknown_break_gets_only_the_last_resorts() -> None:
    candidates = classifier.candidates(_break("GB9999", "Something new"))
    assert candidates and all(c.CATCH_ALL for c in candidates)


def test_last_resorts_come_after_specific_fixes() -> None:
    codes = [c.CODE for c in classifier.candidates(_break("GB0025", "Call to `torch._dynamo.graph_break()`"))]
    assert codes.index("BF201") < codes.index("BF301")


@pytest.mark.parametrize("text", ["pkg.mod:f", "a/b.py:Model.forward", "b.py:f"])
def test_target_spec_parses(text: str) -> None:
    assert str(TargetSpec.parse(text)) == text


@pytest.mark.parametrize("text", ["pkg.mod", ":f", "a.py:", "a.py:1bad", "a.py:f-g"])
def test_target_spec_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        TargetSpec.parse(text)


ENCODED = {
    "latin1_cookie": "# -*- coding: latin-1 -*-\nname = 'café'\nx = 1\n".encode("latin-1"),
    "bom": "\ufeffname = 'ok'\nx = 1\n".encode("utf-8"),
    "crlf_tabs_no_newline": b"def f():\r\n\treturn 1\r\nx = 1",
}


@pytest.mark.parametrize("name", ENCODED)
def test_write_round_trips_bytes_outside_the_change(tmp_path: Path, name: str) -> None:
    path = tmp_path / "m.py"
    path.write_bytes(ENCODED[name])
    os.chmod(path, 0o640)
    before = writer.read_source(path)
    after = before.replace("x = 1", "x = 2")
    writer.write_all([FileChange(path, before, after)])
    assert path.read_bytes() == ENCODED[name].replace(b"x = 1", b"x = 2")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["m.py"], "no temporary file is left behind"


def test_write_refuses_a_file_changed_since_analysis(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 1\n")
    changes = [FileChange(a, "x = 1\n", "x = 2\n"), FileChange(b, "y = 0\n", "y = 2\n")]
    with pytest.raises(WriteRefused, match="changed on disk"):
        writer.write_all(changes)
    assert a.read_text() == "x = 1\n" and b.read_text() == "y = 1\n", "all files of a fix or none"


def test_write_refuses_a_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "a.py"
    path.write_text("x = 1\n")
    path.chmod(0o444)
    with pytest.raises(WriteRefused, match="read-only"):
        writer.write_all([FileChange(path, "x = 1\n", "x = 2\n")])
    assert path.read_text() == "x = 1\n"


@pytest.mark.torch
def test_warnings_of_torch_itself_are_not_compared_but_the_users_are() -> None:
    def raised(message: str, filename: str) -> warnings.WarningMessage:
        return warnings.WarningMessage(UserWarning(message), UserWarning, filename, 3)

    cpp = raised(
        "Using a non-tuple sequence for multidimensional indexing is deprecated (Triggered internally at "
        "python_variable_indexing.cpp:349.)",
        "/project/model.py",
    )
    assert sandbox._from_torch(cpp), "a C++ TORCH_WARN is attributed to the user's line but is torch's"
    assert not sandbox._from_torch(raised("loss is not finite", "/project/model.py"))


def test_the_progress_line_names_the_file_the_codemod_rewrites(tmp_path) -> None:
    from breakfix.engine import _place_in
    from breakfix.types import Frame, GraphBreak

    target, model = tmp_path / "target.py", tmp_path / "model.py"
    brk = GraphBreak(
        gb_type="t",
        gb_id=None,
        reason="",
        explanation="",
        hints=[],
        user_stack=[],
        project_stack=[Frame(str(target), 13, "forward"), Frame(str(model), 846, "forward")],
    )
    assert _place_in(str(model), brk, tmp_path) == "model.py:846"
    assert _place_in(str(target), brk, tmp_path) == "target.py:13"  # not the model's line 846
    assert _place_in(str(tmp_path / "other.py"), brk, tmp_path) == "other.py"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("boom\nstack line", "RuntimeError: boom"),
        (
            "This higher order operator doesn't work. Got graph break/error:\n\n"
            "Unsupported Tensor.item() call\n  Explanation: ...",
            "RuntimeError: This higher order operator doesn't work. Got graph break/error: Unsupported Tensor.item() call",
        ),
        ("", "RuntimeError"),
    ],
)
def test_a_reason_names_the_cause_a_header_line_introduces(message: str, expected: str) -> None:
    assert sandbox.one_line(RuntimeError(message)) == expected
