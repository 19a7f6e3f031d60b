"""Does a variant keep its fixture's meaning? Both run eagerly, in this one process, on the same seeded inputs.

    python tests/variants/eager.py PAIRS.json

PAIRS.json is a list of ``{"id", "fixture", "variant", "fixture_target", "variant_target"}`` (project
folders and qualnames). For each pair the target of each folder is imported (its folder first on
sys.path and the current directory, as the CLI does), called on ``inputs.py:example_inputs()``
after seeding torch, numpy and random with 0, and the outputs (``torch.testing.assert_close``) and
stdout compared. Prints one JSON object: id -> "same", or what differs, or the error.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import random
import sys
import traceback

import numpy as np
import torch

PROJECT_MODULES = ("before", "inputs", "steps")


def _run(folder: str, target: str):
    for name in PROJECT_MODULES:
        sys.modules.pop(name, None)
    sys.path.insert(0, folder)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        torch.manual_seed(0)
        np.random.seed(0)
        random.seed(0)
        inputs = importlib.import_module("inputs")
        before = importlib.import_module("before")
        args = inputs.example_inputs()
        function = before
        for part in target.split("."):
            function = getattr(function, part)
        # A target under the user's own torch.compile runs as written, eagerly (as breakfix runs it).
        function = getattr(function, "_torchdynamo_orig_callable", function)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            result = function(*args)
        return result, out.getvalue()
    finally:
        os.chdir(cwd)
        sys.path.remove(folder)


def main(path: str) -> int:
    verdicts = {}
    for pair in json.loads(open(path).read()):
        try:
            expected, expected_out = _run(pair["fixture"], pair["fixture_target"])
            actual, actual_out = _run(pair["variant"], pair["variant_target"])
            torch.testing.assert_close(actual, expected)
            verdicts[pair["id"]] = "same" if actual_out == expected_out else f"stdout differs: {actual_out[:200]!r}"
        except AssertionError as e:
            verdicts[pair["id"]] = f"outputs differ: {str(e).splitlines()[0]}"
        except Exception:  # noqa: BLE001 (reported: the variant or its fixture raised)
            verdicts[pair["id"]] = "raised: " + traceback.format_exc().strip().splitlines()[-1]
    print(json.dumps(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
