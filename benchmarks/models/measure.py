"""Measure one benchmark project in a fresh process (run with the transformers environment's python).

    python measure.py ROOT OUT.json [--save-reference REF.pt | --reference REF.pt]

Records, independently of breakfix's own worker:
- the eager output of ``target.forward`` (saved as the reference on the "before" side; compared
  with the reference on the "after" side),
- ``torch._dynamo.explain``'s graph and break counts, with dynamo's default config and with the
  config ``fullgraph=True`` implies (scalar and dynamic-shape capture on),
- every break dynamo logs (explain misses breaks inside loops), one per innermost site,
- whether ``torch.compile(fullgraph=True)`` succeeds on eager and aot_eager, and whether its
  outputs equal the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback
from pathlib import Path

import torch
import torch._dynamo
import torch._dynamo.config as dynamo_config
from torch._dynamo import symbolic_convert
from torch._dynamo.exc import _load_gb_type_to_gb_id_map

_TYPE_TO_ID = _load_gb_type_to_gb_id_map()
_LOOP = "graph break in loop"


def _gb_id(message: str, gb_type: str | None) -> str:
    if message.startswith("generic_jump"):
        return "GB0170"  # explain's short reason for a data-dependent jump, which dynamo raises as GB0170
    if "/gb/gb" in message:
        digits = message.split("/gb/gb", 1)[1][:4]
        if digits.isdigit():
            return f"GB{digits}"
    if gb_type and gb_type in _TYPE_TO_ID:
        return _TYPE_TO_ID[gb_type]
    if "data-dependent" in message.lower():
        return "data-dependent guard"
    return "?"


def _where(frame, root: str) -> dict:
    filename = os.path.realpath(frame.filename)
    inside = filename.startswith(root + os.sep)
    if inside:
        shown = os.path.relpath(filename, root)
    elif "site-packages" in filename:
        shown = filename.split("site-packages" + os.sep, 1)[1]
    else:
        shown = filename
    return {
        "file": shown,
        "line": frame.lineno,
        "function": frame.name,
        "text": (frame.line or "").strip()[:160],
        "in_project": inside,
    }


def _user_code_frames(message: str) -> list:
    """Frames of the "from user code:" section: internal errors carry no ``real_stack``."""
    if "from user code:" not in message:
        return []
    frames = []
    for match in re.finditer(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)', message.split("from user code:", 1)[1]):
        frames.append(traceback.FrameSummary(match[1], int(match[2]), match[3], line=match[4]))
    return frames


def _record(message: str, gb_type: str | None, stack: list, root: str) -> dict:
    first = (message.strip().splitlines() or [""])[0]
    gb_type = gb_type or first
    frames = [_where(f, root) for f in (stack or _user_code_frames(message))]
    project = [f for f in frames if f["in_project"]]
    gb_id = _gb_id(message, gb_type)
    if gb_id == "data-dependent guard":
        gb_type = "Could not guard on data-dependent expression (UserError, no GB id)"
    return {
        "gb_id": gb_id,
        "gb_type": gb_type,
        "message": first[:200],
        "site": project[-1] if project else None,
        "innermost": frames[-1] if frames else None,
    }


class _Hook:
    """Every graph break dynamo logs, one per (type, innermost site)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.sites: dict[tuple, dict] = {}
        self.events = 0

    def __enter__(self):
        self.original = symbolic_convert.InstructionTranslatorBase.log_graph_break
        hook = self

        def log_graph_break(translator, code_options, reason, exc):
            cause = exc
            if getattr(exc, "gb_type", None) == _LOOP and exc.__cause__ is not None:
                cause = exc.__cause__
            hook.add(str(cause), getattr(cause, "gb_type", None), getattr(exc, "real_stack", None) or [])
            return hook.original(translator, code_options, reason, exc)

        symbolic_convert.InstructionTranslatorBase.log_graph_break = log_graph_break
        return self

    def add(self, message: str, gb_type: str | None, stack: list) -> None:
        self.events += 1
        record = _record(message, gb_type, list(stack), self.root)
        inner = record["innermost"] or {}
        key = (record["gb_type"], inner.get("file"), inner.get("line"))
        self.sites.setdefault(key, record)

    def __exit__(self, *exc_info) -> None:
        symbolic_convert.InstructionTranslatorBase.log_graph_break = self.original


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"


def _close(actual, expected) -> str:
    try:
        torch.testing.assert_close(actual, expected)
    except AssertionError as e:
        return _one_line(e)
    return ""


def _explain(target, root: str, fullgraph_config: bool) -> dict:
    dynamo_config.capture_scalar_outputs = fullgraph_config
    dynamo_config.capture_dynamic_output_shape_ops = fullgraph_config
    torch._dynamo.reset()
    args = target.example_inputs()
    started = time.perf_counter()
    with _Hook(root) as hook:
        try:
            out = torch._dynamo.explain(target.forward)(*args)
        except Exception as e:
            return {
                "error": _one_line(e),
                "error_site": _record(str(e), getattr(e, "gb_type", None), getattr(e, "real_stack", None) or [], root),
                "seconds": round(time.perf_counter() - started, 1),
                "logged_events": hook.events,
                "logged_sites": list(hook.sites.values()),
            }
    reasons = [_record(r.reason, None, list(r.user_stack), root) for r in out.break_reasons]
    return {
        "graph_count": out.graph_count,
        "graph_break_count": out.graph_break_count,
        "break_reasons": reasons,
        "logged_events": hook.events,
        "logged_sites": list(hook.sites.values()),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _fullgraph(target, root: str, backend: str, reference) -> dict:
    dynamo_config.capture_scalar_outputs = False
    dynamo_config.capture_dynamic_output_shape_ops = False
    torch._dynamo.reset()
    args = target.example_inputs()
    started = time.perf_counter()
    try:
        output = torch.compile(target.forward, fullgraph=True, backend=backend)(*args)
    except Exception as e:
        stack = getattr(e, "real_stack", None) or []
        return {
            "ok": False,
            "error": _record(str(e), getattr(e, "gb_type", None), list(stack), root),
            "seconds": round(time.perf_counter() - started, 1),
        }
    problem = _close(output, reference)
    return {"ok": True, "equal": not problem, "difference": problem, "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("out")
    parser.add_argument("--save-reference")
    parser.add_argument("--reference")
    args = parser.parse_args()
    root = os.path.realpath(args.root)
    sys.path.insert(0, root)
    import target

    result: dict = {"torch": torch.__version__}
    import transformers

    result["transformers"] = transformers.__version__
    torch.manual_seed(0)
    eager = target.forward(*target.example_inputs())
    if args.save_reference:
        torch.save(eager, args.save_reference)
        reference = eager
    else:
        reference = torch.load(args.reference)
        problem = _close(eager, reference)
        result["eager_equal"] = {"equal": not problem, "difference": problem}
    result["explain_default"] = _explain(target, root, fullgraph_config=False)
    result["explain_fullgraph_config"] = _explain(target, root, fullgraph_config=True)
    result["fullgraph_eager"] = _fullgraph(target, root, "eager", reference)
    if result["fullgraph_eager"]["ok"]:
        result["fullgraph_aot_eager"] = _fullgraph(target, root, "aot_eager", reference)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
