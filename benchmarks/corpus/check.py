"""The corpus runner's own check, run in a fresh process per case (never imports breakfix).

    python check.py reference CASE_DIR QUALNAME STATE.pt RESULT.json
    python check.py check     CASE_DIR QUALNAME STATE.pt RESULT.json
    python check.py eager     CASE_DIR QUALNAME STATE.pt RESULT.json

``reference`` runs the original target eagerly (one call per seed, inputs made fresh and seeded
the same way each time) and records everything observable: outputs, stdout, files written in the
call's working directory, warnings and log records raised from the case's files, the state of the
arguments after the call (tensors, module state, gradients, optimizer state, iterator leftovers,
plain Python attributes) and the case modules' plain globals. It also records whether the
original compiles with ``fullgraph=True`` (every case is meant to break).

``check`` runs the rewritten target the way a user would after the fix: ``torch.compile(target,
fullgraph=True, backend="aot_eager")``, or, for an eager orchestrator (a target decorated with
``torch.compiler.disable``), the target itself with every ``torch.compile`` it creates forced onto
aot_eager; then each of those must ask for ``fullgraph=True`` and at least one graph must run.
Every call must match the reference.

``eager`` runs the target eagerly in this (other) process and compares: the corpus's own
ground-truth check (a fixable case must reproduce, an unfixable one usually does not).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import math
import os
import random
import sys
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

SEEDS = (0, 1)
PLAIN = (int, float, str, bool, type(None))


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


# --- observing a call -------------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self, case_dir: str) -> None:
        super().__init__(logging.NOTSET)
        self.case_dir = case_dir
        self.records: list[list[str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if os.path.realpath(record.pathname).startswith(self.case_dir):
            self.records.append([record.name, record.levelname, record.getMessage()])


@contextlib.contextmanager
def observed_call(case_dir: str):
    """Run one call in an empty working directory, capturing stdout, files, warnings and logs."""
    state: dict[str, Any] = {}
    stdout = io.StringIO()
    handler = _Records(case_dir)
    root = logging.getLogger()
    root.addHandler(handler)
    old_cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="corpus-call-") as cwd:
        os.chdir(cwd)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with contextlib.redirect_stdout(stdout):
                    yield state
        finally:
            os.chdir(old_cwd)
            root.removeHandler(handler)
            state["stdout"] = stdout.getvalue()
            state["files"] = {
                str(p.relative_to(cwd)): p.read_bytes() for p in sorted(Path(cwd).rglob("*")) if p.is_file()
            }
            state["warnings"] = [
                [w.category.__name__, str(w.message)]
                for w in caught
                if os.path.realpath(w.filename).startswith(case_dir)
            ]
            state["logs"] = handler.records


def snapshot(value: Any, depth: int = 0) -> Any:
    """A picklable, comparable picture of a value: ("kind", payload)."""
    import numpy
    import torch

    if depth > 6:
        return ("opaque", type(value).__name__)
    if isinstance(value, torch.Tensor):
        return ("tensor", value.detach().clone())
    if isinstance(value, numpy.ndarray):
        return ("tensor", torch.from_numpy(value.copy()))
    if isinstance(value, PLAIN):
        return ("plain", value)
    if isinstance(value, torch.nn.Module):
        return (
            "module",
            {
                "state": {k: v.detach().clone() for k, v in value.state_dict().items()},
                "grads": {k: None if p.grad is None else p.grad.detach().clone() for k, p in value.named_parameters()},
                "attrs": plain_attrs(value),
            },
        )
    if isinstance(value, torch.optim.Optimizer):
        state = value.state_dict()
        return ("optimizer", snapshot({"state": state["state"], "param_groups": state["param_groups"]}, depth + 1))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [snapshot(v, depth + 1) for v in value])
    if isinstance(value, dict):
        return ("dict", {repr(k): snapshot(v, depth + 1) for k, v in value.items()})
    if hasattr(value, "__next__") and iter(value) is value:
        return ("iterator leftovers", [snapshot(v, depth + 1) for v in value])
    return ("opaque", type(value).__name__)


def plain_attrs(obj: Any) -> dict:
    return {k: v for k, v in vars(obj).items() if not k.startswith("_") and isinstance(v, PLAIN)}


def plain_globals(case_dir: str) -> dict:
    """Plain module-level state of the case's own modules (counters, lists, dicts, tensors)."""
    import torch

    def plain(value: Any, depth: int = 0) -> bool:
        if isinstance(value, (*PLAIN, torch.Tensor)):
            return True
        if depth < 4 and isinstance(value, (list, tuple)):
            return all(plain(v, depth + 1) for v in value)
        if depth < 4 and isinstance(value, dict):
            return all(isinstance(k, PLAIN) and plain(v, depth + 1) for k, v in value.items())
        return False

    result = {}
    for name, module in sorted(sys.modules.items()):
        path = os.path.realpath(getattr(module, "__file__", "") or "")
        if path.startswith(case_dir + os.sep):
            result[name] = {k: snapshot(v) for k, v in vars(module).items() if not k.startswith("__") and plain(v)}
    return result


def run_calls(fn: Callable, make_inputs: Callable[[], tuple], case_dir: str) -> list[dict]:
    calls = []
    for seed in SEEDS:
        seed_all(seed)
        args = make_inputs()
        seed_all(seed)
        with observed_call(case_dir) as state:
            output = fn(*args)
        lazy = hasattr(output, "gi_frame")
        calls.append(
            {
                "output": ("generator", "a lazy generator: its work happens after the call")
                if lazy
                else snapshot(output),
                "stdout": state["stdout"],
                "files": state["files"],
                "warnings": state["warnings"],
                "logs": state["logs"],
                "args_after": snapshot(list(args)),
                "globals": plain_globals(case_dir),
            }
        )
    return calls


# --- comparing ---------------------------------------------------------------------------------


def compare(expected: Any, actual: Any, where: str) -> str:
    """First difference between two snapshots, or ""."""
    import torch

    if expected[0] != actual[0]:
        return f"{where}: expected {expected[0]}, got {actual[0]}"
    kind, want, got = expected[0], expected[1], actual[1]
    if kind == "opaque":
        return f"{where}: a {want} cannot be compared"
    if kind == "generator":
        return f"{where}: {want}"
    if kind == "tensor":
        if want.dtype != got.dtype or want.shape != got.shape:
            return f"{where}: expected {want.dtype}{tuple(want.shape)}, got {got.dtype}{tuple(got.shape)}"
        try:
            torch.testing.assert_close(got, want, equal_nan=True)
        except AssertionError as e:
            return f"{where}: values differ ({' '.join(str(e).split())[:160]})"
        return ""
    if kind == "plain":
        if isinstance(want, float) and isinstance(got, float) and not isinstance(want, bool):
            ok = math.isclose(want, got, rel_tol=1.3e-6, abs_tol=1e-5) or (math.isnan(want) and math.isnan(got))
            return "" if ok else f"{where}: {want!r} != {got!r}"
        return "" if (type(want) is type(got) and want == got) else f"{where}: {want!r} != {got!r}"
    if kind in ("list", "tuple", "iterator leftovers"):
        if len(want) != len(got):
            return f"{where}: {kind} of length {len(want)} != {len(got)}"
        return next((p for p in (compare(w, g, f"{where}[{i}]") for i, (w, g) in enumerate(zip(want, got))) if p), "")
    if kind in ("dict", "optimizer"):
        if kind == "optimizer":
            return compare(want, got, where)
        if set(want) != set(got):
            return f"{where}: keys {sorted(want)} != {sorted(got)}"
        return next((p for p in (compare(want[k], got[k], f"{where}[{k}]") for k in want) if p), "")
    if kind == "module":
        for part in ("state", "grads"):
            if set(want[part]) != set(got[part]):
                return f"{where}.{part}: keys differ"
            for name, tensor in want[part].items():
                other = got[part][name]
                if (tensor is None) != (other is None):
                    return f"{where}.{part}[{name}]: one is None"
                if tensor is not None:
                    problem = compare(("tensor", tensor), ("tensor", other), f"{where}.{part}[{name}]")
                    if problem:
                        return problem
        for name, value in want["attrs"].items():  # a rewrite may add attributes, not change them
            problem = compare(("plain", value), ("plain", got["attrs"].get(name, "<missing>")), f"{where}.{name}")
            if problem:
                return problem
        return ""
    return f"{where}: unknown snapshot kind {kind}"


def compare_files(want: dict, got: dict) -> str:
    import torch

    if set(want) != set(got):
        return f"files written: expected {sorted(want)}, got {sorted(got)}"
    for name, data in want.items():
        if data == got[name]:
            continue
        loaders = (
            lambda b: torch.load(io.BytesIO(b), weights_only=False),
            lambda b: __import__("numpy").load(io.BytesIO(b), allow_pickle=False),
            lambda b: json.loads(b.decode()),
        )
        for load in loaders:
            try:
                a, b = load(data), load(got[name])
            except Exception:
                continue
            problem = compare(snapshot(a), snapshot(b), f"file {name}")
            if not problem:
                break
            return problem
        else:
            return f"file {name}: contents differ"
    return ""


def compare_calls(reference: list[dict], calls: list[dict]) -> str:
    for number, (want, got) in enumerate(zip(reference, calls), start=1):
        where = f"call {number}"
        if want["stdout"] != got["stdout"]:
            return f"{where}: stdout differs: expected {want['stdout'][:120]!r}, got {got['stdout'][:120]!r}"
        for key in ("warnings", "logs"):
            if want[key] != got[key]:
                return f"{where}: {key} differ: expected {want[key]!r:.120}, got {got[key]!r:.120}"
        problem = (
            compare_files(want["files"], got["files"])
            or compare(want["output"], got["output"], f"{where}: output")
            or compare(want["args_after"], got["args_after"], f"{where}: arguments after the call")
        )
        if problem:
            return problem if problem.startswith("call") else f"{where}: {problem}"
        for module, names in want["globals"].items():
            for name, value in names.items():
                other = got["globals"].get(module, {}).get(name)
                problem = (
                    compare(value, other, f"{where}: global {module}.{name}")
                    if other
                    else f"{where}: global {module}.{name} is gone"
                )
                if problem:
                    return problem
    return ""


# --- modes -------------------------------------------------------------------------------------


def load(case_dir: str, qualname: str) -> tuple[Callable, Callable[[], tuple]]:
    sys.path.insert(0, case_dir)
    module = importlib.import_module("main")
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part)
    inputs = module.example_inputs

    def make_inputs() -> tuple:
        args = inputs()
        if not isinstance(args, tuple):
            raise TypeError(f"example_inputs must return a tuple, got {type(args).__name__}")
        return args

    return target, make_inputs


def original_breaks(fn: Callable, make_inputs: Callable[[], tuple], case_dir: str) -> dict:
    """Does the original compile with fullgraph=True? Both seeds: a break may need the 2nd call."""
    import torch

    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    for seed in SEEDS:
        seed_all(seed)
        args = make_inputs()
        seed_all(seed)
        try:
            with observed_call(case_dir):
                output = compiled(*args)
                if hasattr(output, "__next__") and iter(output) is output:
                    list(output)
        except Exception as e:
            return {"breaks": True, "error": one_line(e), "gb_id": gb_id(e)}
    return {"breaks": False, "error": "", "gb_id": None}


def reference(case_dir: str, qualname: str, state_path: str) -> dict:
    import torch

    fn, make_inputs = load(case_dir, qualname)
    calls = run_calls(fn, make_inputs, case_dir)
    torch.save({"calls": calls}, state_path)
    return {"ok": True, "original": original_breaks(fn, make_inputs, case_dir)}


def check(case_dir: str, qualname: str, state_path: str) -> dict:
    import torch
    from torch._dynamo.utils import counters

    original_compile = torch.compile
    requested: list[bool] = []

    def compile_on_aot_eager(model: Any = None, **kwargs: Any) -> Any:
        if os.path.realpath(sys._getframe(1).f_code.co_filename).startswith(case_dir + os.sep):
            requested.append(bool(kwargs.get("fullgraph", False)))
        kwargs["backend"] = "aot_eager"  # inductor takes ~20 s per graph on CPU; aot_eager keeps DCE
        return original_compile(model, **kwargs) if model is not None else original_compile(**kwargs)

    config_before = torch._dynamo.config.get_config_copy()
    torch.compile = compile_on_aot_eager
    fn, make_inputs = load(case_dir, qualname)
    config_changed = sorted(k for k, v in torch._dynamo.config.get_config_copy().items() if config_before.get(k) != v)
    reference_calls = torch.load(state_path, weights_only=False)["calls"]
    orchestrator = bool(getattr(fn, "_torchdynamo_disable", False))
    counters.clear()
    runnable = fn if orchestrator else original_compile(fn, fullgraph=True, backend="aot_eager")
    result = {"ok": False, "orchestrator": orchestrator, "config_changed": config_changed}
    try:
        calls = run_calls(runnable, make_inputs, case_dir)
    except Exception as e:
        return {**result, "reason": f"the rewrite raised {one_line(e)}"}
    graphs = int(counters["stats"]["unique_graphs"])
    breaks = sum(counters["graph_break"].values())
    result.update(graphs=graphs, pieces=len(requested))
    if orchestrator and not requested:
        return {**result, "reason": "eager orchestrator without any torch.compile'd piece"}
    if orchestrator and not all(requested):
        return {**result, "reason": "a compiled piece does not ask for fullgraph=True"}
    if graphs == 0:
        return {**result, "reason": "no graph was compiled"}
    if breaks:
        return {**result, "reason": f"{breaks} graph break(s) while running"}
    problem = compare_calls(reference_calls, calls)
    return {**result, "ok": not problem, "reason": problem}


def eager(case_dir: str, qualname: str, state_path: str) -> dict:
    import torch

    fn, make_inputs = load(case_dir, qualname)
    calls = run_calls(fn, make_inputs, case_dir)
    problem = compare_calls(torch.load(state_path, weights_only=False)["calls"], calls)
    return {"ok": not problem, "reason": problem}


def main(argv: list[str]) -> int:
    mode, case_dir, qualname, state_path, result_path = argv
    case_dir = os.path.realpath(case_dir)
    sys.dont_write_bytecode = True
    try:
        result = {"reference": reference, "check": check, "eager": eager}[mode](case_dir, qualname, state_path)
    except Exception as e:
        result = {"ok": False, "reason": f"{one_line(e)}", "traceback": traceback.format_exc()[-2000:]}
    Path(result_path).write_text(json.dumps(result, default=str))
    sys.stdout.flush()
    os._exit(0)  # torch's threads can make interpreter teardown slow


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
