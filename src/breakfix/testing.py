"""Test helpers for library authors: assert that a function compiles with ``fullgraph=True``.

``assert_no_graph_breaks`` runs in the caller's own process (it is meant for the user's test suite),
with the same break collection the worker uses: ``torch._dynamo.explain``, dynamo's graph-break log
(which sees the breaks explain misses, e.g. inside loops) and a ``fullgraph=True`` compile. Only
when it finds a break does it pay for breakfix's pipeline, which runs in worker processes: the
arguments reach the workers through a file written with ``torch.save``, so the failure message can
show the verified fix.
"""

from __future__ import annotations

import copy
import inspect
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from breakfix.types import GraphBreak

BACKEND = "aot_eager"  # breakfix's default verification backend; never inductor in a test suite

_SAVED_INPUTS = """\
import torch


def saved_inputs():
    return tuple(torch.load({path!r}, weights_only=False))
"""


def assert_no_graph_breaks(fn: Callable, /, *args: Any, **kwargs: Any) -> None:
    """Fail unless ``fn(*args, **kwargs)`` compiles with ``torch.compile(fullgraph=True)``.

    ``fn`` runs twice, under ``torch._dynamo.explain`` and under a ``fullgraph=True`` compile on
    ``aot_eager``, each time with a deep copy of the arguments when they can be copied. The caller's RNG state and dynamo configuration are left as they were; compiled
    code caches are reset (as ``torch._dynamo.explain`` does).

    On failure the message lists every break as ``file:line: GB id Gb_type``; when breakfix can
    fix them with a verified rewrite, it shows the diff (the fix is computed in worker processes
    and never written).
    """
    function, call_args = _callable_and_args(fn, args)
    breaks = find_graph_breaks(fn, *args, **kwargs)
    if not breaks:
        return
    name = getattr(function, "__qualname__", repr(function))
    lines = [f"{name} has {len(breaks)} graph break(s) under torch.compile(fullgraph=True):"]
    lines += [f"  {b.site.filename}:{b.site.lineno}: {b.gb_id or '-'} {b.gb_type}" for b in breaks]
    lines.append(_verified_fix(function, call_args, kwargs))
    raise AssertionError("\n".join(lines))


def find_graph_breaks(fn: Callable, /, *args: Any, **kwargs: Any) -> list[GraphBreak]:
    """Every break ``fullgraph=True`` would hit in ``fn(*args, **kwargs)``, one per innermost site."""
    from breakfix.worker import torch_compat
    from breakfix.worker.breaks import collect_breaks
    from breakfix.worker.sandbox import rng_preserved

    function, _ = _callable_and_args(fn, args)
    runnable = torch_compat.as_written(fn)
    target: Callable = runnable if not kwargs else (lambda *a: runnable(*a, **kwargs))

    def make_inputs() -> tuple:
        try:
            return copy.deepcopy(args)
        except Exception:  # generators, open files: the caller's own objects are used as they are
            return args

    code = getattr(_definition(function), "__code__", None)
    root = _project_root(code.co_filename if code else os.getcwd())
    with rng_preserved(), torch_compat.fullgraph_config():
        found = collect_breaks(target, make_inputs, torch_compat.is_orchestrator(function), root, BACKEND).breaks
    return [GraphBreak.from_json(b) for b in found]


def _callable_and_args(fn: Callable, args: tuple) -> tuple[Callable, tuple]:
    """The plain function breakfix can target by ``file:qualname``, and its positional arguments
    (a method's instance, or a module called as ``module(x)``, comes first, as ``--inputs`` gives it)."""
    import torch

    from breakfix.worker.torch_compat import as_written

    if isinstance(fn, torch.nn.Module):
        return type(fn).forward, (fn, *args)
    fn = as_written(fn)
    if inspect.ismethod(fn):
        return fn.__func__, (fn.__self__, *args)
    return fn, args


def _definition(function: Callable) -> Callable:
    """The ``def`` itself: an orchestrator's ``torch.compiler.disable`` wrapper is code in torch."""
    from breakfix.worker.torch_compat import original_callable

    return original_callable(function)


def _project_root(source_file: str) -> Path:
    """The current directory when it holds the function's file (a test run from the project root),
    else the file's own directory: breaks are reported, and fixed, inside it."""
    cwd, path = Path(os.getcwd()).resolve(), Path(source_file).resolve()
    return cwd if path.is_relative_to(cwd) else path.parent


def _verified_fix(function: Callable, call_args: tuple, kwargs: dict) -> str:
    """breakfix's verified rewrite for these breaks as a diff, or one line saying why there is none."""
    from breakfix.diffing import unified_diff
    from breakfix.engine import Engine
    from breakfix.errors import BreakfixError
    from breakfix.locator import RunOptions

    qualname = getattr(function, "__qualname__", "")
    code = getattr(_definition(function), "__code__", None)
    if code is None or "<" in qualname:
        return f"No fix offered: {qualname or function!r} is not a module-level function or method a worker can import."
    if kwargs:
        return "No fix offered: breakfix's workers pass positional arguments only; call fn without keyword arguments to see one."
    root = _project_root(code.co_filename)
    target = f"{code.co_filename}:{qualname}"
    with tempfile.TemporaryDirectory(prefix="breakfix-inputs-") as tmp:
        saved = Path(tmp, "arguments.pt")
        try:
            import torch

            torch.save(list(call_args), saved)
        except Exception as e:  # pickling: any user object may refuse
            return f"No fix offered: the arguments cannot be saved for a worker process ({type(e).__name__}: {e})."
        inputs_file = Path(tmp, "breakfix_saved_inputs.py")
        inputs_file.write_text(_SAVED_INPUTS.format(path=str(saved)))
        options = RunOptions(
            target=target, inputs=f"{inputs_file}:saved_inputs", root=root, backend=BACKEND, timeout=300
        )
        try:
            report = Engine(options, unsafe_fixes=False, max_rounds=5, progress=lambda message: None).run(apply=False)
        except BreakfixError as e:
            return f"No fix offered: {e}."
    if report.verified and report.changes:
        diffs = "".join(unified_diff(str(c.path), c.before, c.after, str(root)) for c in report.changes)
        command = f"breakfix run {os.path.relpath(code.co_filename, root)}:{qualname} --inputs ... --apply"
        return f"breakfix has a verified fix (`{command}` writes it):\n{diffs}"
    why = "; ".join(sorted({r.why for r in report.breaks if r.why})) or "no codemod answers these breaks"
    return f"breakfix has no verified fix: {why}"


def regression_test_source(target: str, inputs: str | None, root: Path, test_path: Path, command: str) -> str:
    """A pytest file that fails when ``target`` (a ``TargetSpec``, file paths absolute) gets a graph
    break again: it imports the target and the inputs callable by spec (``example_inputs`` of the
    target's module when there is no ``--inputs``, as ``breakfix run`` does) and asserts zero breaks.
    Import paths are written relative to the test file, so the test moves with the project."""
    from breakfix.types import TargetSpec

    search_paths: list[Path] = [root]

    def module_name(spec: TargetSpec) -> str:
        if not spec.is_file:
            return spec.location
        path = Path(spec.location).resolve()
        if path.is_relative_to(root):
            return ".".join(path.with_suffix("").relative_to(root).parts).removesuffix(".__init__")
        search_paths.append(path.parent)
        return path.stem

    target_spec = TargetSpec.parse(target)
    target_module = module_name(target_spec)
    lines = [
        f'"""Written by `{command}`: `{target_spec.qualname}` must keep compiling with',
        'torch.compile(fullgraph=True). Rerun breakfix on it if this test fails."""',
        "",
        "import sys",
        "from pathlib import Path",
        "",
        "import torch",
        "",
        "from breakfix.testing import assert_no_graph_breaks",
        "",
    ]
    if inputs is not None:
        inputs_spec = TargetSpec.parse(inputs)
        inputs_module = module_name(inputs_spec)
    here = test_path.resolve().parent
    for path in dict.fromkeys(search_paths):
        lines.append(f"sys.path.insert(0, str(Path(__file__).resolve().parent / {os.path.relpath(path, here)!r}))")
    lines += ["", f"import {target_module} as target_module  # noqa: E402"]
    if inputs is None:
        make_inputs = 'getattr(target_module, "example_inputs", tuple)'
    else:
        lines.append(f"import {inputs_module} as inputs_module  # noqa: E402")
        make_inputs = f"inputs_module.{inputs_spec.qualname}"
    name = target_spec.qualname.replace(".", "_")
    lines += [
        "",
        "",
        f"def test_{name}_has_no_graph_breaks():",
        "    torch.manual_seed(0)  # the seed breakfix made its reference call with",
        f"    args = {make_inputs}()",
        f"    assert_no_graph_breaks(target_module.{target_spec.qualname}, *args)",
        "",
    ]
    return "\n".join(lines)
