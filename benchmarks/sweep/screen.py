"""Screen a source's candidates in its benchmark environment (never imports breakfix).

    python screen.py SOURCE OUT.jsonl REFDIR [--sample N] [--start K]

For each candidate of the stride sample (from the K-th on), try its target texts in order: the
first whose target runs eagerly twice with equal outputs is kept, and its eager output is saved as
the reference (REFDIR/<index>.pt). Then ``torch.compile(target, fullgraph=True,
backend="aot_eager")`` decides: a candidate that raises there is a sweep target. One JSON line per
candidate is appended to OUT.jsonl as soon as it is decided, so a crash or a hang loses one
candidate (run.py starts again after it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import targets
from check import gb_id, one_line, run_once, same

EAGER_SECONDS = 30
COMPILE_SECONDS = 180


class Timeout(Exception):
    pass


def _alarm(seconds: int):
    def raise_timeout(*_):
        raise Timeout(f"took over {seconds}s")

    signal.signal(signal.SIGALRM, raise_timeout)
    signal.alarm(seconds)


def load(text: str) -> types.ModuleType:
    module = types.ModuleType("target")
    exec(compile(text, "target.py", "exec"), module.__dict__)
    return module


def screen(candidate: targets.Candidate, reference: Path) -> dict:
    entry: dict = {"name": candidate.name, **candidate.notes}
    tried = []
    for profile, text in candidate.texts:
        try:
            _alarm(EAGER_SECONDS)
            module = load(text)
            first = run_once(module.target, module.example_inputs)
            second = run_once(module.target, module.example_inputs)
            signal.alarm(0)
        except Exception as e:
            signal.alarm(0)
            tried.append(f"{profile}: {one_line(e)}")
            continue
        if not _has_tensor(first):
            tried.append(f"{profile}: no tensor in the output")
            continue
        difference = same(second, first)
        if difference:
            entry.update(status="nondeterministic", profile=profile, text=text, error=difference)
            return entry
        entry.update(profile=profile, text=text)
        torch._dynamo.reset()
        started = time.perf_counter()
        try:
            _alarm(COMPILE_SECONDS)
            compiled = run_once(
                torch.compile(module.target, fullgraph=True, backend="aot_eager"), module.example_inputs
            )
            signal.alarm(0)
        except Timeout as e:
            entry.update(status="timeout", error=str(e))
            return entry
        except Exception as e:
            signal.alarm(0)
            torch.save(first, reference)
            entry.update(
                status="target",
                error=one_line(e),
                gb_id=gb_id(e),
                compile_seconds=round(time.perf_counter() - started, 1),
            )
            return entry
        difference = same(compiled, first)
        entry.update(status="compiles" if not difference else "compiles-differs", error=difference)
        return entry
    entry.update(status="not-runnable", error=" | ".join(tried)[:600])
    return entry


def _has_tensor(value) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_tensor(v) for v in value)
    if isinstance(value, dict):
        return any(_has_tensor(v) for v in value.values())
    return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", choices=sorted(targets.SOURCES))
    parser.add_argument("out")
    parser.add_argument("refdir")
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--only", help="only candidates whose name contains this (before sampling)")
    parser.add_argument("--list", action="store_true", help="only print how many candidates there are")
    args = parser.parse_args()
    torch.set_num_threads(1)
    everything = [c for c in targets.SOURCES[args.source]() if not args.only or args.only in c.name]
    sample = targets.stride_sample(everything, args.sample)
    if args.list:
        print(json.dumps({"enumerated": len(everything), "sampled": len(sample)}))
        return
    with open(args.out, "a") as out:
        for index in range(args.start, len(sample)):
            entry = screen(sample[index], Path(args.refdir) / f"{index}.pt")
            entry.update(index=index, enumerated=len(everything))
            out.write(json.dumps(entry) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
