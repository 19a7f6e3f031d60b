"""The sweep's own check of a rewrite, in a fresh process (never imports breakfix).

    python check.py ROOT REFERENCE.pt RESULT.json

Imports ``target`` from ROOT (the temporary project holding the package's copy as breakfix left
it) and tries, in order:

1. whole graph: ``torch.compile(target, fullgraph=True, backend="aot_eager")`` must compile and
   its output must equal the reference (the original's eager output, saved by screen.py) under
   ``torch.testing.assert_close``;
2. split: if the whole graph does not compile, the target is run eagerly with every
   ``torch.compile`` forced onto aot_eager. Every ``torch.compile`` made from a file under ROOT
   must ask for ``fullgraph=True``, at least one graph must compile, no graph may break, and the
   output must equal the reference.

RESULT.json gets ``{"ok", "kind": "fullgraph" | "split" | null, "reason", ...}``.
"""

from __future__ import annotations

import json
import os
import random
import sys
import traceback
from pathlib import Path
from typing import Any, Callable


def seed_all(seed: int) -> None:
    import numpy
    import torch

    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)


def one_line(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {text}"[:300]


def gb_id(e: BaseException) -> str | None:
    text = str(e)
    marker = "/gb/gb"
    if marker in text and text.split(marker, 1)[1][:4].isdigit():
        return "GB" + text.split(marker, 1)[1][:4]
    return None


def comparable(value: Any, depth: int = 0) -> Any:
    """Tensors detached and cloned, containers rebuilt as plain lists and dicts."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (int, float, bool, str, type(None))):
        return value
    if depth < 6 and isinstance(value, (list, tuple)):
        return [comparable(v, depth + 1) for v in value]
    if depth < 6 and isinstance(value, dict):
        return {str(k): comparable(v, depth + 1) for k, v in value.items()}
    return f"<{type(value).__name__}>"


def run_once(fn: Callable, make_inputs: Callable[[], tuple]) -> Any:
    seed_all(0)
    args = make_inputs()
    seed_all(0)
    return comparable(fn(*args))


def same(actual: Any, expected: Any) -> str:
    import torch

    try:
        torch.testing.assert_close(actual, expected, equal_nan=True)
    except Exception as e:
        return " ".join(str(e).split())[:300] or type(e).__name__
    return ""


def check(root: str, reference_path: str) -> dict:
    import torch
    from torch._dynamo.utils import counters

    torch.set_num_threads(1)
    reference = torch.load(reference_path, weights_only=False)
    original_compile = torch.compile
    requested: list[bool] = []

    def compile_on_aot_eager(model: Any = None, **kwargs: Any) -> Any:
        if os.path.realpath(sys._getframe(1).f_code.co_filename).startswith(root + os.sep):
            requested.append(bool(kwargs.get("fullgraph", False)))
        kwargs["backend"] = "aot_eager"
        return original_compile(model, **kwargs) if model is not None else original_compile(**kwargs)

    # Patched before the import: a rewrite may compile its pieces when its module is imported.
    torch.compile = compile_on_aot_eager
    sys.path.insert(0, root)
    import target

    result: dict = {"ok": False, "kind": None}
    torch._dynamo.reset()
    counters.clear()
    if getattr(target.target, "_torchdynamo_disable", False):  # compiling it would just run it eagerly
        result["fullgraph_error"] = "the target is an eager orchestrator (torch.compiler.disable)"
    else:
        try:
            output = run_once(
                original_compile(target.target, fullgraph=True, backend="aot_eager"), target.example_inputs
            )
        except Exception as e:
            result["fullgraph_error"] = one_line(e)
        else:
            if not counters["stats"]["unique_graphs"]:
                return {**result, "reason": "torch.compile(fullgraph=True) ran, but compiled no graph"}
            difference = same(output, reference)
            return {**result, "ok": not difference, "kind": "fullgraph", "reason": difference}

    torch._dynamo.reset()
    counters.clear()
    try:
        output = run_once(target.target, target.example_inputs)
    except Exception as e:
        return {
            **result,
            "reason": f"neither compiles with fullgraph=True ({result['fullgraph_error']}) nor runs "
            f"as an orchestrator ({one_line(e)})",
        }
    graphs = int(counters["stats"]["unique_graphs"])
    breaks = sum(counters["graph_break"].values())
    result.update(graphs=graphs, pieces=len(requested), breaks=breaks)
    if not requested or not all(requested):
        return {
            **result,
            "reason": f"does not compile with fullgraph=True ({result['fullgraph_error']}) and is no "
            f"orchestrator of fullgraph pieces ({len(requested)} torch.compile calls, "
            f"{sum(requested)} with fullgraph=True)",
        }
    if graphs == 0:
        return {**result, "reason": "orchestrator, but no graph was compiled"}
    if breaks:
        return {**result, "reason": f"orchestrator, but {breaks} graph break(s) while running"}
    difference = same(output, reference)
    return {**result, "ok": not difference, "kind": "split", "reason": difference}


def main(argv: list[str]) -> int:
    root, reference_path, result_path = argv
    sys.dont_write_bytecode = True
    try:
        result = check(os.path.realpath(root), reference_path)
    except Exception as e:
        result = {"ok": False, "kind": None, "reason": one_line(e), "traceback": traceback.format_exc()[-2000:]}
    Path(result_path).write_text(json.dumps(result, default=str))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
