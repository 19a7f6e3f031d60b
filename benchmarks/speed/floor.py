"""The floor: the unavoidable cost of one fix, as the speed issue defines it.

One process imports torch, runs one ``torch._dynamo.explain`` of the original target, compiles the
already-fixed target once with ``fullgraph=True`` on the same backend and calls it. Nothing else:
no reference run, no comparison, no rewrite. It exits like any script does (interpreter teardown
included); ``--fast-exit`` skips the teardown with ``os._exit`` as breakfix's workers do.

    python benchmarks/speed/floor.py ORIGINAL.py FIXED.py QUALNAME [--backend aot_eager] [--fast-exit]

Both files must define ``example_inputs()``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _attribute(module, qualname: str):
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("original")
    parser.add_argument("fixed")
    parser.add_argument("qualname")
    parser.add_argument("--backend", default="aot_eager")
    parser.add_argument("--fast-exit", action="store_true")
    args = parser.parse_args()
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(args.original)))
    original = _load(args.original, "floor_original")
    torch._dynamo.explain(_attribute(original, args.qualname))(*original.example_inputs())
    torch._dynamo.reset()
    fixed = _load(args.fixed, "floor_fixed")
    torch.compile(_attribute(fixed, args.qualname), fullgraph=True, backend=args.backend)(*fixed.example_inputs())
    if args.fast_exit:
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
