"""The patterns ``breakfix check`` reports: calls and constructs that break on the installed torch,
each with its GB id, the codemod that answers it wherever it is, and examples a torch-tier test compiles."""

from __future__ import annotations

from dataclasses import dataclass

LOGGING_FUNCTIONS = ("debug", "info", "warning", "warn", "error", "critical", "exception", "log")


@dataclass(frozen=True)
class Pattern:
    """A construct that breaks under ``fullgraph=True`` on the installed torch.

    ``examples`` are modules defining ``f``; compiled with ``fullgraph=True`` and called with
    ``example_args`` each breaks with ``gb_id`` (tests/test_check.py, torch tier). ``fallback`` is
    the code a finding gets when no codemod rewrites its site."""

    slug: str
    gb_id: str | None
    message: str
    examples: tuple[str, ...]
    calls: frozenset[str] = frozenset()  # qualified names of the callables this pattern is about
    example_args: str = "torch.randn(3)"
    fallback: str = "BF301"
    gb_type: str = ""  # only for breaks without a GB id
    needs: str = ""  # a module the examples import that may be missing (tqdm)


def _example(imports: str, body: str) -> str:
    lines = "\n".join(f"    {line}" for line in body.splitlines())
    return f"{imports}\nimport torch\n\n\ndef f(x):\n{lines}\n"


PATTERNS: tuple[Pattern, ...] = (
    Pattern(
        "print",
        "GB0059",
        "print() in compiled code: dynamo cannot trace console output",
        (_example("", "print(x)\nreturn x + 1"),),
        frozenset({"builtins.print"}),
    ),
    Pattern(
        "builtin-io",
        "GB0059",
        "{name}() in compiled code: file and console I/O cannot be traced",
        (
            _example("", "open('/dev/null')\nreturn x + 1"),
            _example("", "input()\nreturn x + 1"),
            _example("", "breakpoint()\nreturn x + 1"),
        ),
        frozenset({"builtins.open", "builtins.input", "builtins.breakpoint"}),
    ),
    Pattern(
        "repr",
        "GB0569",
        "repr() of a tensor in compiled code cannot be traced",
        (_example("", "s = repr(x)\nreturn x + 1"),),
        frozenset({"builtins.repr"}),
    ),
    Pattern(
        "graph-break",
        "GB0025",
        "torch._dynamo.graph_break() stops the graph on purpose",
        (_example("", "y = x + 1\ntorch._dynamo.graph_break()\nreturn y"),),
        frozenset({"torch._dynamo.graph_break"}),
    ),
    Pattern(
        "torch-save",
        "GB0007",
        "{name}() writes a file; dynamo skips it, which breaks the graph",
        (_example("", "torch.save(x, 'saved.pt')\nreturn x + 1"),),
        frozenset({"torch.save"}),
    ),
    Pattern(
        "warnings",
        "GB0007",
        "warnings.warn() in compiled code: dynamo skips it, which breaks the graph",
        (_example("import warnings", "warnings.warn('w')\nreturn x + 1"),),
        frozenset({"warnings.warn"}),
    ),
    Pattern(
        "clock",
        "GB0007",
        "{name}() reads the clock; dynamo skips it, which breaks the graph",
        (
            _example("import time", "t = time.time()\nreturn x + t"),
            _example("import time", "t = time.perf_counter()\nreturn x + t"),
            _example("import time", "t = time.monotonic()\nreturn x + t"),
        ),
        frozenset({"time.time", "time.perf_counter", "time.monotonic"}),
    ),
    Pattern(
        "wall-date",
        "GB0156",
        "{name}() reads the date and time; dynamo cannot trace it",
        (
            _example("from datetime import datetime", "s = datetime.now()\nreturn x + 1"),
            _example("import datetime", "s = datetime.datetime.utcnow()\nreturn x + 1"),
            _example("from datetime import date", "s = date.today()\nreturn x + 1"),
        ),
        frozenset({"datetime.datetime.now", "datetime.datetime.utcnow", "datetime.date.today"}),
    ),
    Pattern(
        "host-state",
        "GB0007",
        "{name}() asks the operating system; dynamo skips it, which breaks the graph",
        (
            _example("import uuid", "s = uuid.uuid4()\nreturn x + 1"),
            _example("import os", "s = os.getpid()\nreturn x + 1"),
            _example("import tempfile", "fd, path = tempfile.mkstemp()\nreturn x + 1"),
            _example("import os", "os.close(os.dup(1))\nreturn x + 1"),
            _example("import os", "os.remove('breakfix-example-never-created')\nreturn x + 1"),
            _example("import os", "os.makedirs('made', exist_ok=True)\nreturn x + 1"),
            _example("import os", "seed = os.urandom(8)\nreturn x + 1"),
        ),
        frozenset(
            {"uuid.uuid4", "os.getpid", "tempfile.mkstemp", "os.close", "os.remove", "os.makedirs", "os.urandom"}
        ),
    ),
    Pattern(
        "skipped-stdlib",
        "GB0007",
        "{name}(): dynamo skips this function, which breaks the graph",
        (
            _example("import heapq", "top = heapq.nlargest(2, [3, 1, 2])\nreturn x + top[0]"),
            _example("import heapq", "top = heapq.nsmallest(2, [3, 1, 2])\nreturn x + top[0]"),
        ),
        frozenset({"heapq.nlargest", "heapq.nsmallest"}),
    ),
    Pattern(
        "path-io",
        "GB0007",
        "Path.{name}() reads or writes a file; dynamo skips it, which breaks the graph",
        (
            _example("from pathlib import Path", "text = Path(__file__).read_text()\nreturn x + len(text)"),
            _example("from pathlib import Path", "with Path(__file__).open() as f:\n    f.read()\nreturn x + 1"),
        ),
    ),
    Pattern(
        "untraceable-object",
        "GB0156",
        "{name}() makes an object dynamo cannot trace",
        (
            _example("import io", "buffer = io.BytesIO()\nreturn x + 1"),
            _example("import json", "s = json.dumps({'a': 1})\nreturn x + len(s)"),
        ),
        frozenset({"io.BytesIO", "json.dumps"}),
    ),
    Pattern(
        "opaque-generator",
        "GB0363",
        "{name}() creates an opaque object in the middle of compiled code",
        (_example("", "g = torch.Generator()\nreturn x + 1"),),
        frozenset({"torch.Generator"}),
    ),
    Pattern(
        "numpy-unsupported",
        "GB0294",
        "{name}() is a numpy function torch cannot trace",
        (
            _example("import numpy as np", "np.save('saved.npy', x.numpy())\nreturn x + 1"),
            _example(
                "import numpy as np",
                "y = np.interp(np.linspace(0, 1, 3), np.linspace(0, 1, 3), x.numpy())\nreturn x + torch.from_numpy(y)",
            ),
            _example("import numpy as np", "rng = np.random.default_rng()\nreturn x + 1"),
        ),
        frozenset({"numpy.save", "numpy.interp", "numpy.random.default_rng"}),
    ),
    Pattern(
        "numpy-ufunc-method",
        "GB0290",
        "{name}(): a numpy ufunc method torch cannot trace",
        (_example("import numpy as np", "np.add.at(np.zeros(3), np.array([0, 1]), 1)\nreturn x + 1"),),
    ),
    Pattern(
        "backward",
        "GB0123",
        "{name}() in compiled code: dynamo does not trace backward()",
        (_example("", "y = (x * 2).sum()\ny.backward()\nreturn y"),),
        example_args="torch.randn(3, requires_grad=True)",
    ),
    Pattern(
        "zero-grad",
        "GB0008",
        "{name}() is skipped by dynamo, which breaks the graph",
        (
            "import torch\n\nparam = torch.nn.Parameter(torch.randn(3))\noptimizer = torch.optim.SGD([param], lr=0.1)\n\n\n"
            "def f(x):\n    optimizer.zero_grad()\n    return x + 1\n",
        ),
    ),
    Pattern(
        "optimizer-step",
        "GB0025",
        "{name}(): the optimizer step breaks the graph on purpose",
        (
            "import torch\n\nparam = torch.nn.Parameter(torch.randn(3))\noptimizer = torch.optim.SGD([param], lr=0.1)\n\n\n"
            "def f(x):\n    optimizer.step()\n    return x + 1\n",
        ),
    ),
    Pattern(
        "inspect-signature",
        "GB0088",
        "{name}() raises inside dynamo: it cannot inspect a signature while tracing",
        (
            _example(
                "import inspect", "n = len(inspect.signature(torch.nn.functional.softmax).parameters)\nreturn x + n"
            ),
        ),
        frozenset({"inspect.signature"}),
    ),
    Pattern(
        "global-rng",
        "GB0007",
        "{name}() uses global random state; dynamo skips it, which breaks the graph",
        (_example("import random", "return x + random.random()"), _example("", "torch.manual_seed(0)\nreturn x + 1")),
        frozenset({"random.random", "torch.manual_seed"}),
    ),
    Pattern(
        "inspect",
        "GB0007",
        "{name}() inspects the interpreter stack; dynamo skips it",
        (_example("import inspect", "inspect.stack()\nreturn x + 1"),),
        frozenset({"inspect.stack"}),
    ),
    Pattern(
        "tqdm",
        "GB0007",
        "tqdm progress bars write to the console; dynamo skips them",
        (_example("from tqdm import tqdm", "for _ in tqdm(range(2)):\n    x = x + 1\nreturn x"),),
        frozenset({"tqdm.tqdm", "tqdm.auto.tqdm"}),
        needs="tqdm",
    ),
    Pattern(
        "logging-function",
        "GB4841",
        "{name}() in compiled code: logging cannot be traced",
        (
            _example("import logging", "logging.warning('w')\nreturn x + 1"),
            _example("import logging", "logging.info('i')\nreturn x + 1"),
        ),
        frozenset(f"logging.{name}" for name in LOGGING_FUNCTIONS),
    ),
    Pattern(
        "logger-method",
        "GB0291",
        "Logger.{name}() in compiled code: logging cannot be traced",
        (_example("import logging\nlogger = logging.getLogger('breakfix.example')", "logger.info('i')\nreturn x + 1"),),
    ),
    Pattern(
        "deepcopy",
        "GB4198",
        "copy.deepcopy() of a tensor cannot be traced",
        (_example("import copy", "y = copy.deepcopy(x)\nreturn y + 1"),),
        frozenset({"copy.deepcopy"}),
    ),
    Pattern(
        "copy",
        "GB0208",
        "copy.copy() of a tensor cannot be traced",
        (_example("import copy", "y = copy.copy(x)\nreturn y + 1"),),
        frozenset({"copy.copy"}),
    ),
    Pattern(
        "float-tolist",
        "GB0109",
        ".tolist() of a floating tensor cannot be traced (integer tensors compile)",
        (_example("", "y = x.tolist()\nreturn x + y[0]"),),
    ),
    Pattern(
        "data-dependent-branch",
        "GB0170",
        "Python `{name}` on a tensor's value: the branch depends on data dynamo does not know",
        (
            _example("", "if x.sum() > 0:\n    return x + 1\nreturn x - 1"),
            _example("", "if x.any():\n    return x + 1\nreturn x - 1"),
            _example("", "if torch.all(x > 0):\n    return x + 1\nreturn x - 1"),
            _example("", "while x.max() > 0:\n    x = x - 1\nreturn x"),
            _example("", "if x.mean() > 0:\n    return x + 1\nreturn x - 1"),
            _example("", "if x.min() > 0:\n    return x + 1\nreturn x - 1"),
            _example("", "if x.norm() > 0:\n    return x + 1\nreturn x - 1"),
            _example("", "if x.prod() > 0:\n    return x + 1\nreturn x - 1"),
            _example("", "return x + 1 if x.sum() > 0 else x - 1"),
            _example("", "if not torch.isfinite(x.sum()):\n    return x\nreturn x + 1"),
            _example("", "if x.isnan().any():\n    return x\nreturn x + 1"),
            _example("", "if torch.isinf(x.sum()):\n    return x\nreturn x + 1"),
        ),
    ),
    Pattern(
        "assert-message",
        "GB0170",
        "`assert` on a tensor's value with a computed message: dynamo must branch "
        "on the value to know whether to build the message",
        (
            _example("", "assert x.sum() > -100, f'bad {x}'\nreturn x + 1"),
            _example("", "assert torch.isfinite(x).all(), f'bad {x.shape}'\nreturn x + 1"),
        ),
    ),
    Pattern(
        "data-dependent-guard",
        None,
        "Python `{name}` on .item(): dynamo cannot guard on a data-dependent value",
        (_example("", "if x.sum().item() > 0:\n    return x + 1\nreturn x - 1"),),
        gb_type="Could not guard on data-dependent expression",
    ),
    Pattern(
        "iterator-next",
        "GB4347",
        "next() on the iterator parameter {name}: dynamo cannot step an iterator created outside the compiled code",
        ("import torch\n\n\ndef f(xs):\n    return next(xs) + 1\n",),
        example_args="iter([torch.randn(3)])",
        fallback="BF101",
    ),
    Pattern(
        "iterator-for",
        "GB0811",
        "for loop over the iterator parameter {name}: dynamo cannot step an iterator created outside the compiled code",
        (
            "from collections.abc import Iterator\n\nimport torch\n\n\n"
            "def f(xs: Iterator[torch.Tensor]):\n    y = 0\n    for x in xs:\n        y = y + x\n    return y\n",
        ),
        example_args="iter([torch.randn(3)])",
        fallback="BF101",
    ),
    Pattern(
        "generator",
        "GB0003",
        "the compiled function is a generator (yield): dynamo cannot compile one",
        (_example("", "yield x + 1"),),
    ),
    Pattern(
        "module-construction",
        "GB0264",
        "{name}() builds a module or parameter inside compiled code",
        (_example("", "m = torch.nn.Linear(3, 3)\nreturn m(x)"),),
    ),
    Pattern(
        "pil",
        "GB0007",
        "{name}(): dynamo skips PIL, which breaks the graph",
        (_example("import PIL.Image", "PIL.Image.new('RGB', (2, 2))\nreturn x + 1"),),
    ),
    Pattern(
        "disabled-call",
        "GB0098",
        "{name} is marked @torch.compiler.disable: calling it from compiled code breaks the graph",
        (
            "import torch\n\n\n@torch.compiler.disable\ndef g(x):\n    return x + 1\n\n\n"
            "def f(x):\n    return g(x) * 2\n",
        ),
    ),
)
BY_SLUG = {pattern.slug: pattern for pattern in PATTERNS}
BY_CALL = {name: pattern for pattern in PATTERNS for name in pattern.calls}
