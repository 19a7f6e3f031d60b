"""Steady-state runtime of one target, eager and compiled, in this (fresh) process.

    python benchmarks/speed/payoff.py FILE.py QUALNAME [--backend inductor] [--calls 30] [--seconds 3]

A target that is an eager orchestrator (a fix split it into compiled pieces) is called as it is:
its pieces are compiled by their own decorators (inductor by default); its ``eager`` time then
already includes compiled pieces.

Prints one JSON object: ``eager`` and ``compiled`` median seconds per call over the timed calls,
``first_call`` (the compiled call that compiled), ``graphs`` (dynamo's unique graphs, with breaks
allowed); when the compiled call raises, ``compiled`` is null and ``error`` says what it raised. Each
call gets fresh ``example_inputs()``, made outside the timer; calls run with stdout
discarded and in a temporary working directory, since targets print and write files.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time


def _time_calls(fn, make_inputs, calls: int, seconds: float) -> list[float]:
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < calls and (len(times) < 5 or time.perf_counter() < deadline):
        args = make_inputs()
        started = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("qualname")
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    import torch
    from torch._dynamo.utils import counters

    torch.set_num_threads(1)  # two shared cores: one thread gives steadier numbers
    path = os.path.abspath(args.file)
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location("payoff_target", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["payoff_target"] = module
    spec.loader.exec_module(module)
    fn = module
    for part in args.qualname.split("."):
        fn = getattr(fn, part)
    make_inputs = module.example_inputs
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as cwd, open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        os.chdir(cwd)
        eager = _time_calls(fn, make_inputs, args.calls, args.seconds)
        # A fix that made the target an eager orchestrator (torch.compiler.disable) compiles its
        # pieces itself, with their own torch.compile(fullgraph=True): call it as it is.
        orchestrator = getattr(fn, "_torchdynamo_disable", False)
        compiled = fn if orchestrator else torch.compile(fn, backend=args.backend)
        counters.clear()
        started = time.perf_counter()
        try:
            compiled(*make_inputs())
        except Exception as e:  # torch.compile itself can fail on code that breaks (a result too)
            print(
                json.dumps(
                    {"eager": statistics.median(eager), "compiled": None, "error": f"{type(e).__name__}: {e}"[:200]}
                ),
                file=sys.__stdout__,
            )
            sys.__stdout__.flush()
            os._exit(0)
        first_call = time.perf_counter() - started
        _time_calls(compiled, make_inputs, args.warmup, 0)
        graphs = int(counters["stats"]["unique_graphs"])
        steady = _time_calls(compiled, make_inputs, args.calls, args.seconds)
    print(
        json.dumps(
            {
                "eager": statistics.median(eager),
                "compiled": statistics.median(steady),
                "orchestrator": bool(orchestrator),
                "first_call": first_call,
                "graphs": graphs,
                "calls": len(steady),
            }
        )
    )
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
