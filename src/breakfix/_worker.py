"""The worker process: the only place that imports user code.

Run as ``python -m breakfix._worker REQUEST.json RESPONSE.json``. The parent (locator.py,
verifier.py) writes the request, waits with a timeout and reads the response; everything the
user's code prints goes to captured buffers or to this process's own stdout, never into the
protocol. Three modes:

``locate``  run the target eagerly (the reference: outputs, stdout, files, inputs' state after the
            call, over several seeded calls), then under ``torch._dynamo.explain`` with a hook on
            dynamo's graph-break logger (explain misses breaks inside loops and before the first
            tensor op), then once with ``fullgraph=True`` to get the break that stops it.
``check``   compile the (rewritten) target with ``fullgraph=True`` and compare every call with
            the reference; if breaks remain, compare with breaks allowed and locate them again.
``repeat``  run the original target eagerly again and compare it with the reference (is the
            target deterministic?).

Rewritten sources are served from an in-memory overlay by an import hook, so no file is written
before verification and no stale bytecode can be loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import io
import json
import linecache
import logging
import os
import pickle
import random
import re
import sys
import tempfile
import tokenize
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

from breakfix.torch_apis import missing_apis
from breakfix.types import DATA_DEPENDENT_GUARD, TENSOR_ASSERT

SEEDS = (0, 1)  # one seeded call per entry: the reference and the check make the same calls
_BREAKFIX_DIR = str(Path(__file__).resolve().parent)


class UserCodeError(Exception):
    """The user's target, module or inputs callable is at fault (reported, exit 2)."""


# --- loading user code -------------------------------------------------------------------------


class _OverlayLoader(importlib.machinery.SourceFileLoader):
    """Loads a module's source from the overlay and never reads or writes its bytecode."""

    def __init__(self, fullname: str, path: str, source: str) -> None:
        super().__init__(fullname, path)
        self._source = source

    def get_data(self, path: str) -> bytes:
        if os.path.abspath(path) == os.path.abspath(self.path):
            # Python decodes these bytes with the encoding the source declares (a latin-1 coding
            # cookie): encode in that one, or non-ASCII text would be verified as mojibake.
            declared, _ = tokenize.detect_encoding(io.BytesIO(self._source.encode("utf-8")).readline)
            return self._source.encode(declared)
        raise OSError(path)  # the .pyc: refuse, so the overlay is compiled from source

    def path_stats(self, path: str) -> dict:
        raise OSError(path)

    def set_data(self, *args: Any, **kwargs: Any) -> None:
        return None


class _OverlayFinder(importlib.abc.MetaPathFinder):
    def __init__(self, overlay: dict[str, str]) -> None:
        self.overlay = {os.path.realpath(p): s for p, s in overlay.items()}

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin:
            return None
        source = self.overlay.get(os.path.realpath(spec.origin))
        if source is None:
            return None
        loader = _OverlayLoader(fullname, spec.origin, source)
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=loader,
            submodule_search_locations=spec.submodule_search_locations,
        )


def _module_name_for(path: Path, root: Path) -> str:
    """Dotted name of a file under the root (``pkg/mod.py`` -> ``pkg.mod``), else its stem."""
    try:
        rel = path.with_suffix("").relative_to(root)
    except ValueError:
        return path.stem
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_location(location: str, root: Path, overlay: dict[str, str]) -> Any:
    is_file = location.endswith(".py") or os.sep in location or "/" in location
    if not is_file:
        try:
            return importlib.import_module(location)
        except ModuleNotFoundError as e:
            if e.name and location.startswith(e.name):
                raise UserCodeError(f"module {location!r} not found under {root}") from e
            raise
    path = Path(location)
    path = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not path.is_file():
        raise UserCodeError(f"file {location!r} not found")
    name = _module_name_for(path, root)
    if name in sys.modules and os.path.realpath(getattr(sys.modules[name], "__file__", "") or "") == str(path):
        return sys.modules[name]
    if name == path.stem:
        sys.path.insert(0, str(path.parent))
    source = overlay.get(str(path))
    loader = _OverlayLoader(name, str(path), source) if source is not None else None
    spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _resolve(spec: str, root: Path, overlay: dict[str, str]) -> tuple[Any, Callable, str]:
    location, _, qualname = spec.rpartition(":")
    module = _import_location(location, root, overlay)
    obj: Any = module
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise UserCodeError(f"{qualname!r} not found in {location!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserCodeError(f"{spec!r} is not callable")
    if not getattr(obj, "_torchdynamo_disable", False):
        # A function under @torch.compile is run as written: eagerly for the reference, compiled by
        # breakfix itself. (A torch.compiler.disable wrapper marks an orchestrator: it is kept.)
        obj = getattr(obj, "_torchdynamo_orig_callable", obj)
    return module, obj, os.path.realpath(module.__file__)


def _example_inputs(request: dict, module: Any, root: Path, overlay: dict[str, str]) -> Callable[[], tuple]:
    if request.get("inputs"):
        _, inputs_fn, _ = _resolve(request["inputs"], root, overlay)
    else:
        inputs_fn = getattr(module, "example_inputs", None) or (lambda: ())

    def make() -> tuple:
        try:
            args = inputs_fn()
        except Exception as e:
            raise UserCodeError(f"inputs callable raised {_one_line(e)}") from e
        if not isinstance(args, tuple):
            raise UserCodeError(f"inputs callable must return a tuple of arguments, got {type(args).__name__}")
        return args

    return make


# --- running it --------------------------------------------------------------------------------


def _seed_all(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    with contextlib.suppress(ImportError):
        import numpy

        numpy.random.seed(seed)


def _one_line(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


@contextlib.contextmanager
def _recording_logs():
    """Every log record any logger hands to its handlers, also from loggers that do not propagate
    to the root (transformers' do not): a rewrite must log the same records."""
    records: list[tuple[str, int, str]] = []
    call_handlers = logging.Logger.callHandlers

    def recording(logger: logging.Logger, record: logging.LogRecord) -> None:
        if not record.name.startswith("torch"):  # the compiler's own logs are not the user's
            records.append((record.name, record.levelno, record.getMessage()))
        call_handlers(logger, record)

    logging.Logger.callHandlers = recording
    try:
        yield records
    finally:
        logging.Logger.callHandlers = call_handlers


@contextlib.contextmanager
def _sandboxed_call():
    """Capture stdout, warnings and log records, and run in a fresh working directory so relative
    writes can be compared: a rewrite must keep every one of them."""
    buffer = io.StringIO()
    old_cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="breakfix-run-") as cwd, warnings.catch_warnings(record=True) as warned, \
            _recording_logs() as logs:
        os.chdir(cwd)
        state = {"stdout": buffer, "cwd": cwd, "files": {}, "warnings": warned, "logs": logs}
        try:
            with contextlib.redirect_stdout(buffer):
                yield state
        finally:
            state["files"] = {
                str(p.relative_to(cwd)): p.read_bytes() for p in sorted(Path(cwd).rglob("*")) if p.is_file()
            }
            os.chdir(old_cwd)


def _snapshot_inputs(args: tuple) -> list:
    """The observable state of the inputs after a call: tensors, module state, iterator leftovers."""
    import torch

    def snap(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.detach().clone()
        if isinstance(value, torch.nn.Module):
            return {k: v.detach().clone() for k, v in value.state_dict().items()}
        if isinstance(value, (list, tuple)):
            return [snap(v) for v in value]
        if isinstance(value, dict):
            return {k: snap(v) for k, v in value.items()}
        if hasattr(value, "__next__") and iter(value) is value:
            return {"iterator leftovers": list(value)}
        return None

    return [snap(a) for a in args]


def _run_calls(fn: Callable, make_inputs: Callable[[], tuple], user_errors: bool) -> list[dict]:
    """Call ``fn`` once per seed with freshly made inputs; record everything observable."""
    calls = []
    for seed in SEEDS:
        _seed_all(seed)
        args = make_inputs()
        _seed_all(seed)
        with _sandboxed_call() as state:
            try:
                output = fn(*args)
            except Exception as e:
                if user_errors:
                    raise UserCodeError(f"the target raised in eager mode: {_one_line(e)}{_last_user_frame(e)}") from e
                raise
        calls.append({"output": output, "stdout": state["stdout"].getvalue(), "files": state["files"],
                      "warnings": [(w.category.__name__, str(w.message)) for w in state["warnings"]
                                   if not _from_torch(w)],
                      "logs": state["logs"],
                      "inputs_after": _snapshot_inputs(args)})
    return calls


def _from_torch(warning: warnings.WarningMessage) -> bool:
    """Warnings torch raises itself are not the user's: those dynamo raises while tracing (from
    torch's Python files), and those of torch's C++ core ("Triggered internally at ..."), which
    are attributed to the user's line but which compiled code does not raise again."""
    import torch

    torch_dir = os.path.dirname(os.path.realpath(torch.__file__)) + os.sep
    from_cpp = "(Triggered internally at " in str(warning.message)
    return from_cpp or os.path.realpath(warning.filename).startswith(torch_dir)


def _last_user_frame(e: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith(_BREAKFIX_DIR)]
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


# --- locating breaks ---------------------------------------------------------------------------


def _char_col(filename: str, lineno: int, byte_col: int | None) -> int | None:
    """FrameSummary columns are UTF-8 byte offsets; LibCST wants characters."""
    if byte_col is None:
        return None
    line = linecache.getline(filename, lineno)
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def _frame(summary: Any) -> dict:
    filename = os.path.realpath(summary.filename) if os.path.exists(summary.filename) else summary.filename
    return {
        "filename": filename, "lineno": summary.lineno or 0, "name": summary.name,
        "colno": _char_col(summary.filename, summary.lineno, getattr(summary, "colno", None)),
        "end_colno": _char_col(summary.filename, summary.lineno, getattr(summary, "end_colno", None)),
        "line": (linecache.getline(summary.filename, summary.lineno or 0) or "").strip(),
    }


def _is_project_file(filename: str, root: str) -> bool:
    if not filename.startswith(root + os.sep) or filename.startswith(_BREAKFIX_DIR):
        return False
    return not any(part in ("site-packages", "dist-packages") for part in Path(filename).parts)


_LOOP_WRAPPER = "graph break in loop"


def _parse_message(message: str) -> tuple[str, str, list[str], str | None]:
    """(Gb_type, explanation, hints, GB id) from an Unsupported message."""
    lines = message.splitlines()
    gb_type = lines[0].strip() if lines else ""
    explanation = next((ln.split("Explanation:", 1)[1].strip() for ln in lines if "Explanation:" in ln), "")
    hints = [ln.split("Hint:", 1)[1].strip() for ln in lines if ln.strip().startswith("Hint:")]
    gb_id = None
    marker = "/gb/gb"
    if marker in message:
        digits = message.split(marker, 1)[1][:4]
        if digits.isdigit():
            gb_id = f"GB{digits}"
    return gb_type, explanation, hints, gb_id


class _BreakCollector:
    """Collects breaks from dynamo's graph-break logger, explain's reasons and fullgraph errors."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.by_site: dict[tuple[str, int], dict] = {}
        import torch._dynamo.exc as exc

        self._type_to_id = exc._load_gb_type_to_gb_id_map()
        registry_path = Path(exc.__file__).with_name("graph_break_registry.json")
        self._registry = json.loads(registry_path.read_text()) if registry_path.exists() else {}

    def add(self, message: str, stack: list, gb_type: str | None = None) -> bool:
        """Record one break; False when its stack has no frame inside the project."""
        frames = [_frame(s) for s in stack]
        project = [f for f in frames if _is_project_file(f["filename"], self.root)]
        if not project:
            return False
        parsed_type, explanation, hints, gb_id = _parse_message(message)
        if gb_type is None and gb_id is None and "data-dependent expression" in message:
            # A UserError logged as a break: its first line is advice ("Consider annotating..."), not a Gb_type.
            parsed_type = DATA_DEPENDENT_GUARD
        gb_type = gb_type or parsed_type
        gb_id = gb_id or self._type_to_id.get(gb_type)
        if gb_id and (not explanation or not hints):
            entry = (self._registry.get(gb_id) or [{}])[0]
            explanation = explanation or entry.get("Explanation", "")
            hints = hints or list(entry.get("Hints", []))
        record = {"gb_type": gb_type, "gb_id": gb_id, "reason": "\n".join(message.splitlines()[:3]),
                  "explanation": explanation, "hints": hints, "user_stack": frames, "project_stack": project}
        site = (project[-1]["filename"], project[-1]["lineno"])
        known = self.by_site.get(site)
        # One break per innermost site: keep the root cause over dynamo's "graph break in loop"
        # wrapper, then the longest stack (a nested break is reported once per enclosing frame).
        if known is None or (known["gb_type"] == _LOOP_WRAPPER and gb_type != _LOOP_WRAPPER) or (
            known["gb_type"] == gb_type and len(frames) > len(known["user_stack"])
        ):
            self.by_site[site] = record
        return True

    def add_exception(self, e: BaseException, compiled: Callable) -> None:
        """Record the error that stopped a fullgraph compile; never lose it, even without a stack."""
        # Where dynamo was tracing (the compiled frame first) beats the eager frames that called it:
        # an internal error in an orchestrator's piece is a break in the piece.
        stack = getattr(e, "real_stack", None) or _user_code_frames(str(e))
        if not stack:
            stack = [f for f in traceback.extract_tb(e.__traceback__) if _is_project_file(
                os.path.realpath(f.filename), self.root)]
        gb_type = getattr(e, "gb_type", None)
        if gb_type is None and "data-dependent" in str(e).lower():
            gb_type = DATA_DEPENDENT_GUARD  # UserError from a guard on an unbacked symbol: no GB id
        if gb_type is None and isinstance(e, AssertionError) and str(e).startswith("Expected bool, got FakeTensor"):
            gb_type = TENSOR_ASSERT
        gb_type = gb_type or type(e).__name__  # a dynamo internal error: no Gb_type, no GB id
        message = str(e) if str(e).startswith(gb_type) else f"{gb_type}\n{e}"
        if not self.add(message, list(stack), gb_type):
            # Internal errors carry no user stack: pin the break on the compiled function itself,
            # so fullgraph's failure is never reported as "no graph breaks".
            function = inspect.unwrap(getattr(compiled, "_torchdynamo_orig_callable", compiled))
            code = getattr(function, "__code__", None) or type(function).__call__.__code__
            self.add(message, [traceback.FrameSummary(code.co_filename, code.co_firstlineno, code.co_name)], gb_type)


def _revealed_break(e: BaseException, compiled: Callable, root: Path) -> list[dict]:
    """The break at the project line where dynamo failed while tracing (none when the error did not
    come from tracing project code)."""
    stack = getattr(e, "real_stack", None) or _user_code_frames(str(e))
    if not any(_is_project_file(os.path.realpath(f.filename), str(root)) for f in stack):
        return []
    collector = _BreakCollector(str(root))
    collector.add_exception(e, compiled)
    return list(collector.by_site.values())


def _user_code_frames(message: str) -> list[traceback.FrameSummary]:
    """The frames of the "from user code:" section dynamo appends to an error's message: an internal
    error (e.g. PendingUnbackedSymbolNotFound) carries its user stack only there."""
    _, marker, section = message.partition("\nfrom user code:\n")
    frames = []
    for line in section.splitlines() if marker else ():
        parsed = _FRAME_LINE.match(line)
        if parsed:
            filename, lineno, name = parsed.groups()
            frames.append(traceback.FrameSummary(filename, int(lineno), name, line=linecache.getline(filename, int(lineno))))
    return frames


_FRAME_LINE = re.compile(r'\s*File "(.+)", line (\d+), in (\S+)$')


@contextlib.contextmanager
def _graph_break_hook(collector: _BreakCollector):
    """Record every break dynamo logs, including the ones explain does not report."""
    from torch._dynamo import symbolic_convert

    original = symbolic_convert.InstructionTranslatorBase.log_graph_break

    def log_graph_break(self: Any, code_options: Any, reason: str, exc: Any) -> None:
        if not getattr(exc, "logged", False):
            stack = getattr(exc, "real_stack", None) or []
            message = str(exc)
            gb_type = getattr(exc, "gb_type", None)
            if gb_type == _LOOP_WRAPPER and exc.__cause__ is not None:
                message, gb_type = str(exc.__cause__), getattr(exc.__cause__, "gb_type", None)
            collector.add(message, list(stack), gb_type)
        return original(self, code_options, reason, exc)

    symbolic_convert.InstructionTranslatorBase.log_graph_break = log_graph_break
    try:
        yield
    finally:
        symbolic_convert.InstructionTranslatorBase.log_graph_break = original


def _configure_dynamo() -> None:
    import torch._dynamo.config as config

    # fullgraph=True turns these on by itself: without them we would "fix" what compiles anyway.
    config.capture_scalar_outputs = True
    config.capture_dynamic_output_shape_ops = True


_pieces_allow_breaks = False  # True while a rewrite is checked with graph breaks allowed


def _force_backend(backend: str) -> None:
    """Compiled pieces the rewrite creates say ``torch.compile(fullgraph=True)`` (inductor); the
    worker compiles them on the requested backend instead, and without graph breaks unless a
    caller explicitly allows them: an orchestrator's pieces must all compile whole. While a
    rewrite is checked with graph breaks allowed, its pieces allow them too (a piece that the next
    round splits again still breaks)."""
    import functools

    import torch

    original = torch.compile

    def compile_on_backend(model: Any = None, **kwargs: Any) -> Any:
        kwargs["backend"] = backend
        kwargs.setdefault("fullgraph", True)
        if model is None:
            return functools.partial(compile_on_backend, **kwargs)
        strict = original(model, **kwargs)
        if not kwargs["fullgraph"] or isinstance(model, torch.nn.Module):
            return strict
        lenient = original(model, **{**kwargs, "fullgraph": False})

        @functools.wraps(model)
        def piece(*args: Any, **kw: Any) -> Any:
            return (lenient if _pieces_allow_breaks else strict)(*args, **kw)

        piece._torchdynamo_orig_callable = model  # as torch.compile marks it: _resolve unwraps a target
        return piece

    torch.compile = compile_on_backend


def _is_orchestrator(fn: Callable) -> bool:
    return bool(getattr(fn, "_torchdynamo_disable", False))


def _graph_count() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _collect_breaks(fn: Callable, make_inputs: Callable[[], tuple], orchestrator: bool, root: Path,
                    backend: str) -> tuple[list[dict], int]:
    """Every break ``fullgraph=True`` would hit, one per innermost project site, and the graph count.

    Also run in the user's own process by ``breakfix.testing``, where ``torch.compile`` is not
    redirected to the requested backend: the backend is passed explicitly."""
    import torch
    from torch._dynamo.utils import counters

    collector = _BreakCollector(str(root))
    graph_count = 0
    with _graph_break_hook(collector):
        torch._dynamo.reset()
        counters.clear()
        _seed_all(SEEDS[0])
        args = make_inputs()
        with _sandboxed_call():
            if orchestrator:
                # An eager orchestrator: its compiled pieces carry fullgraph=True and raise.
                try:
                    fn(*args)
                except Exception as e:
                    collector.add_exception(e, fn)
                graph_count = _graph_count()
            else:
                # A dynamo internal error (np.asarray of a PIL image) would abort explain; the
                # fullgraph attempt below still reports it.
                try:
                    with torch._dynamo.config.patch(suppress_errors=True):
                        explained = torch._dynamo.explain(fn)(*args)
                except Exception as e:
                    # A compiled piece run by an eager orchestrator below the target compiles with
                    # fullgraph=True on its own and raises, explain or not.
                    collector.add_exception(e, fn)
                    graph_count = _graph_count()
                else:
                    graph_count = explained.graph_count
                    for reason in explained.break_reasons:
                        collector.add(reason.reason, list(reason.user_stack))
    if not orchestrator:
        # fullgraph stops at the first break with its root cause, including the ones explain skips.
        torch._dynamo.reset()
        _seed_all(SEEDS[0])
        args = make_inputs()
        with _sandboxed_call():
            try:
                torch.compile(fn, fullgraph=True, backend=backend)(*args)
            except Exception as e:
                collector.add_exception(e, fn)
    return list(collector.by_site.values()), graph_count


def locate(request: dict, root: Path, overlay: dict[str, str]) -> dict:
    import torch

    _configure_dynamo()
    _force_backend(request["backend"])
    module, fn, target_file = _resolve(request["target"], root, overlay)
    make_inputs = _example_inputs(request, module, root, overlay)
    orchestrator = _is_orchestrator(fn)
    if request.get("reference"):
        calls = _run_calls(fn, make_inputs, user_errors=True)
        try:
            with open(request["reference"], "wb") as f:
                torch.save({"calls": calls}, f)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            raise UserCodeError(f"cannot verify: the target's outputs cannot be pickled ({_one_line(e)})") from e
    breaks, graph_count = _collect_breaks(fn, make_inputs, orchestrator, root, request["backend"])
    return {"breaks": breaks, "graph_count": graph_count, "target_file": target_file,
            "target_qualname": request["target"].rpartition(":")[2], "orchestrator": orchestrator,
            "facts": _facts(fn, make_inputs, breaks), "torch_version": torch.__version__,
            "missing_apis": list(missing_apis(request.get("apis", ())))}


def _facts(fn: Callable, make_inputs: Callable[[], tuple], breaks: list[dict]) -> dict:
    from breakfix._facts import collect_facts

    return collect_facts(fn, make_inputs, breaks, _seed_all) if breaks else {}


# --- verifying a rewrite -----------------------------------------------------------------------


def _differ(actual: Any, expected: Any, what: str, rtol: float | None, atol: float | None) -> str:
    """'' when ``actual`` matches ``expected``, else one line saying where they first differ.

    Containers and dataclasses are walked element by element, so a string, None or int nested
    anywhere is compared too; tensors and numbers are compared with ``assert_close`` (NaN equals
    NaN, infinities must match); anything else must be ``==``. Values that cannot be compared do
    not match: a rewrite is never taken as verified on a comparison that did not happen."""
    import torch

    if dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        if type(actual).__qualname__ != type(expected).__qualname__:
            return f"{what} differ: expected a {type(expected).__qualname__}, got {type(actual).__qualname__}"
        return next((p for f in dataclasses.fields(expected) if (p := _differ(
            getattr(actual, f.name), getattr(expected, f.name), f"{what}.{f.name}", rtol, atol))), "")
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or list(actual) != list(expected):
            keys = list(actual) if isinstance(actual, dict) else type(actual).__name__
            return f"{what} differ: expected keys {list(expected)!r:.80}, got {keys!r:.80}"
        return next((p for k in expected if (p := _differ(actual[k], expected[k], f"{what}[{k!r}]", rtol, atol))), "")
    if isinstance(expected, (list, tuple)):
        if type(actual) is not type(expected) or len(actual) != len(expected):
            return f"{what} differ: expected {type(expected).__name__} of {len(expected)}, got {_short(actual)}"
        return next((p for i, (a, e) in enumerate(zip(actual, expected))
                     if (p := _differ(a, e, f"{what}[{i}]", rtol, atol))), "")
    try:
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
        return ""
    except AssertionError as e:
        return f"{what} differ: {(str(e).strip().splitlines() or ['by assert_close'])[0]}"
    except Exception:
        pass  # not a tensor or number: compare as Python values
    try:
        equal = bool(actual == expected)
    except Exception as e:
        return f"{what} cannot be compared: {_one_line(e)}"
    return "" if equal else f"{what} differ: expected {_short(expected)}, got {_short(actual)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _compare(expected: dict, actual: dict, rtol: float | None, atol: float | None) -> str:
    import torch

    if expected["stdout"] != actual["stdout"]:
        return f"stdout differs: expected {expected['stdout'][:80]!r}, got {actual['stdout'][:80]!r}"
    for kind in ("warnings", "logs"):
        if expected[kind] != actual[kind]:
            return f"{kind} differ: expected {expected[kind][:3]!r}, got {actual[kind][:3]!r}"
    if set(expected["files"]) != set(actual["files"]):
        return f"files written differ: expected {sorted(expected['files'])}, got {sorted(actual['files'])}"
    for name, data in expected["files"].items():
        if data != actual["files"][name]:
            loaded = [torch.load(io.BytesIO(d), weights_only=False) for d in (data, actual["files"][name])]
            problem = _differ(loaded[1], loaded[0], f"contents of written file {name!r}", rtol, atol)
            if problem:
                return problem
    return _differ(actual["output"], expected["output"], "outputs", rtol, atol) or _differ(
        actual["inputs_after"], expected["inputs_after"], "inputs after the call", rtol, atol)


def _load_reference(path: str) -> list[dict]:
    import torch

    with open(path, "rb") as f:
        return torch.load(f, weights_only=False)["calls"]


def _first_mismatch(reference: list[dict], calls: list[dict], request: dict) -> str:
    for number, (expected, actual) in enumerate(zip(reference, calls), start=1):
        problem = _compare(expected, actual, request.get("rtol"), request.get("atol"))
        if problem:
            return f"call {number}: {problem}"
    return ""


def repeat(request: dict, root: Path, overlay: dict[str, str]) -> dict:
    """Run the original target eagerly again, in a fresh process like every check, and say how it
    differs from the reference: when identically seeded runs differ, no rewrite can be verified."""
    module, fn, _ = _resolve(request["target"], root, overlay)
    make_inputs = _example_inputs(request, module, root, overlay)
    calls = _run_calls(fn, make_inputs, user_errors=True)
    return {"difference": _first_mismatch(_load_reference(request["reference"]), calls, request)}


def check(request: dict, root: Path, overlay: dict[str, str]) -> dict:
    """Check a rewrite against the reference, in a fresh process.

    Verified when it compiles with ``fullgraph=True`` and every call matches. When breaks remain
    elsewhere, an intermediate rewrite must still match the reference when compiled with graph
    breaks allowed; the remaining breaks are returned so the engine can see this one is gone.
    """
    import torch
    from torch._dynamo.exc import TorchDynamoException, UserError

    _configure_dynamo()
    _force_backend(request["backend"])
    module, fn, _ = _resolve(request["target"], root, overlay)
    make_inputs = _example_inputs(request, module, root, overlay)
    orchestrator = _is_orchestrator(fn)
    reference = _load_reference(request["reference"])
    from torch._dynamo.utils import counters

    def matches(compiled: Callable) -> str:
        return _first_mismatch(reference, _run_calls(compiled, make_inputs, user_errors=False), request)

    counters.clear()
    try:
        problem = matches(fn if orchestrator else torch.compile(fn, fullgraph=True))
    except (TorchDynamoException, UserError):
        pass  # breaks remain: check the rewrite with graph breaks allowed, below
    except Exception as e:
        # The compiler failed inside the rewrite (also below, with breaks allowed): when it failed
        # on a project line (code a rewrite made the compiler trace, like a torch.cond branch or a
        # compiled piece), that line is a break the engine may repair.
        revealed = _revealed_break(e, fn, root)
        return {"ok": False, "fullgraph": False, "reason": f"the rewrite raised {_one_line(e)}", "breaks": revealed}
    else:
        if problem:
            return {"ok": False, "fullgraph": True, "reason": problem, "mismatch": True}
        if orchestrator and _graph_count() == 0:
            return {"ok": False, "fullgraph": True, "reason": "no compiled piece ran"}
        return {"ok": True, "fullgraph": True, "reason": "", "graph_count": _graph_count(), "breaks": []}

    global _pieces_allow_breaks
    torch._dynamo.reset()
    _pieces_allow_breaks = True
    try:
        # A frame dynamo fails on internally raises here too (running it eagerly instead would
        # accept a rewrite whose piece cannot compile); the engine may repair it as a revealed break.
        problem = matches(fn if orchestrator else torch.compile(fn, fullgraph=False))
    except Exception as e:
        revealed = _revealed_break(e, fn, root)
        return {"ok": False, "fullgraph": False, "reason": f"the rewrite raised {_one_line(e)}", "breaks": revealed}
    finally:
        _pieces_allow_breaks = False
    if problem:
        return {"ok": False, "fullgraph": False, "reason": problem, "mismatch": True}
    breaks, graph_count = _collect_breaks(fn, make_inputs, orchestrator, root, request["backend"])
    return {"ok": True, "fullgraph": False, "reason": "", "graph_count": graph_count, "breaks": breaks,
            "facts": _facts(fn, make_inputs, breaks), "orchestrator": orchestrator}


def main(argv: list[str]) -> int:
    request_path, response_path = argv
    request = json.loads(Path(request_path).read_text())
    root = Path(request["root"]).resolve()
    overlay = request.get("overlay", {})
    sys.path.insert(0, str(root))
    sys.meta_path.insert(0, _OverlayFinder(overlay))
    for path, source in overlay.items():
        # Stack frames of rewritten files must show the rewritten lines, not the ones on disk.
        linecache.cache[os.path.realpath(path)] = (len(source), None, source.splitlines(True), path)
    sys.dont_write_bytecode = True
    faulthandler.enable()  # a segfault in the target prints its Python stack: the parent names the frame
    try:
        result = {"locate": locate, "check": check, "repeat": repeat}[request["mode"]](request, root, overlay)
        response = {"result": result}
    except UserCodeError as e:
        response = {"error": str(e)}
    except SyntaxError as e:
        response = {"error": f"syntax error in {e.filename}:{e.lineno}: {e.msg}"}
    except SystemExit as e:
        response = {"error": f"the target's code called sys.exit({e.code!r}){_last_user_frame(e)}"}
    except Exception as e:
        if request["mode"] == "check":
            response = {"result": {"ok": False, "fullgraph": False, "reason": _one_line(e)}}
        else:
            response = {"error": f"importing or running the target failed: {_one_line(e)}{_last_user_frame(e)}"}
    Path(response_path).write_text(json.dumps(response, default=str))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown of torch's threads: it can take seconds


# --- the zygote --------------------------------------------------------------------------------


def _preload() -> None:
    """Import what every job needs and nothing of the user's. Importing starts no torch thread
    (the intra-op pool starts at the first parallel op), so forking afterwards is safe; OpenBLAS's
    pool, started by numpy, shuts down and restarts around fork by itself."""
    import torch  # noqa: F401
    import torch._dynamo  # noqa: F401
    import torch._dynamo.utils  # noqa: F401
    import torch._functorch.aot_autograd  # noqa: F401  (aot_eager, the default backend)
    import torch.testing  # noqa: F401

    import breakfix._facts  # noqa: F401

    _warm_up()


def _warm_up() -> None:
    """Explain and compile a function of ours once, so dynamo's and aot_eager's lazy imports and
    one-time setup are paid here, not in every job (about half a second each); then forget it.
    Only ``torch.ones``: the random generators are left as a fresh process has them, and no op is
    big enough to start torch's intra-op thread pool."""
    import torch
    from torch._dynamo.utils import counters

    def ours(x: Any) -> Any:
        y = x.sin()
        torch._dynamo.graph_break()
        return y.cos()

    torch._dynamo.explain(ours)(torch.ones(2))
    torch._dynamo.reset()
    torch.compile(lambda x: x.sin() + 1, fullgraph=True, backend="aot_eager")(torch.ones(2))
    torch._dynamo.reset()
    counters.clear()


def serve() -> None:
    """Zygote loop (``python -m breakfix._worker --zygote``), driven by ``breakfix.workers``.

    Reads one JSON line per job from stdin (``{"id", "dir"}``: a folder holding request.json),
    forks a child that runs :func:`main` on it, and writes ``{"id", "pid"}`` when the child is
    started and ``{"id", "returncode"}`` when it has exited. No thread is ever started here: a
    SIGCHLD wake-up file descriptor lets one ``select`` wait for both. At end of input, every
    child still running is killed with its process group.
    """
    import select
    import signal

    events = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # a stray print during import must not corrupt the protocol
    _preload()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    running: dict[int, int] = {}  # pid -> job id
    pending = b""
    reading = True
    while reading or running:
        ready, _, _ = select.select([0, wake_read] if reading else [wake_read], [], [])
        if wake_read in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 512)
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                reading = False
                for pid in running:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                job = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _run_forked_job(job["dir"], devnull, (0, wake_read, wake_write, events.fileno()))
                running[pid] = job["id"]
                events.write(json.dumps({"id": job["id"], "pid": pid}) + "\n")
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            if pid in running:
                events.write(json.dumps({"id": running.pop(pid), "returncode": os.waitstatus_to_exitcode(status)}) + "\n")
    os._exit(0)  # skip interpreter teardown of torch: it can take seconds


def _run_forked_job(job_dir: str, devnull: int, zygote_fds: tuple[int, ...]) -> None:
    """In the forked child: become what ``python -m breakfix._worker REQUEST RESPONSE`` started in
    the root would be, then run the job. Never returns into the zygote's loop."""
    import signal

    try:
        os.setsid()  # its own process group: a timeout kills everything the target starts
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in zygote_fds:
            os.close(fd)
        # stdin closed (input() gets EOF); what the target prints outside its captured calls is
        # dropped, so megabytes of it cost nothing; stderr is kept for the parent's crash message.
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        err = os.open(os.path.join(job_dir, "stderr"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(err, 2)
        os.close(err)
        request_path, response_path = os.path.join(job_dir, "request.json"), os.path.join(job_dir, "response.json")
        root = json.loads(Path(request_path).read_text())["root"]
        os.chdir(root)
        sys.path[0] = root  # as ``python -m`` started in the root would have it
        sys.argv = [__file__, request_path, response_path]
        main([request_path, response_path])
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(1)


if __name__ == "__main__":
    if sys.argv[1:] == ["--zygote"]:
        serve()
    else:
        sys.exit(main(sys.argv[1:]))

