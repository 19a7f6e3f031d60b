"""Every private torch hook breakfix uses, in one place (the names torch 2.13 has).

Where a supported torch lacks a hook, the break's text is read instead, and the substitution is
recorded in ``fallbacks()`` (``breakfix run --verbose`` lists them). Imports of torch happen inside
the functions: the module itself is importable without torch.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOP_WRAPPER = "graph break in loop"  # dynamo's Gb_type for a break it hit inside a loop; the cause is the break

_fallbacks: set[str] = set()


def fallbacks() -> tuple[str, ...]:
    """The hooks this torch lacks that were replaced by reading the break text, so far in this process."""
    return tuple(sorted(_fallbacks))


@dataclass(frozen=True)
class LoggedBreak:
    """A graph break as dynamo logged it."""

    message: str  # its text: the Gb_type on the first line, then Explanation, Hints, the GB id's URL
    stack: list  # FrameSummary list, outermost first
    gb_type: str | None  # None: read off the message


# fullgraph=True turns these on by itself: without them breakfix would "fix" what compiles anyway.
FULLGRAPH_CONFIG = {"capture_scalar_outputs": True, "capture_dynamic_output_shape_ops": True}


def configure_dynamo() -> None:
    """Set ``FULLGRAPH_CONFIG`` for the rest of the (worker) process."""
    import torch._dynamo.config as config

    for name, value in FULLGRAPH_CONFIG.items():
        setattr(config, name, value)


def fullgraph_config() -> contextlib.AbstractContextManager:
    """``FULLGRAPH_CONFIG`` for the duration of a ``with`` block (in the user's own process)."""
    import torch._dynamo.config as config

    return config.patch(**FULLGRAPH_CONFIG)


def errors_suppressed() -> contextlib.AbstractContextManager:
    """Dynamo falls back to eager on an internal error instead of raising (explain must finish)."""
    import torch._dynamo.config as config

    return config.patch(suppress_errors=True)


def tracing_errors() -> tuple[type[BaseException], ...]:
    """What a ``fullgraph=True`` compile raises at a graph break."""
    from torch._dynamo.exc import TorchDynamoException, UserError

    return TorchDynamoException, UserError


def gb_registry() -> tuple[dict[str, str], dict[str, list[dict]]]:
    """Dynamo's graph-break registry: Gb_type -> GB id, and GB id -> entries (Explanation, Hints)."""
    import torch._dynamo.exc as exc

    registry_path = Path(exc.__file__).with_name("graph_break_registry.json")
    registry = json.loads(registry_path.read_text()) if registry_path.exists() else {}
    if hasattr(exc, "_load_gb_type_to_gb_id_map"):
        return exc._load_gb_type_to_gb_id_map(), registry
    _fallbacks.add("torch._dynamo.exc._load_gb_type_to_gb_id_map: Gb_type -> GB id read from graph_break_registry.json")
    return {entry["Gb_type"]: gb_id for gb_id, entries in registry.items() for entry in entries}, registry


def gb_type_of(e: BaseException) -> str | None:
    """The Gb_type of a graph-break exception; None for other errors."""
    from torch._dynamo.exc import Unsupported

    gb_type = getattr(e, "gb_type", None)
    if gb_type is None and isinstance(e, Unsupported):  # torch 2.9: the message's first line is the Gb_type
        _fallbacks.add("Unsupported.gb_type: the Gb_type read off the message's first line")
        gb_type = str(e).partition("\n")[0].strip() or None
    return gb_type


def _logged(exc: Any) -> LoggedBreak:
    """What dynamo logged with ``exc``: for its loop wrapper, the break that caused it."""
    message, gb_type = str(exc), getattr(exc, "gb_type", None)
    if gb_type == LOOP_WRAPPER and exc.__cause__ is not None:
        message, gb_type = str(exc.__cause__), getattr(exc.__cause__, "gb_type", None)
    return LoggedBreak(message, list(getattr(exc, "real_stack", None) or []), gb_type)


@contextlib.contextmanager
def graph_break_logged(record: Callable[[LoggedBreak], None]) -> Iterator[None]:
    """Call ``record`` for every graph break dynamo logs (once per break), also the ones
    ``torch._dynamo.explain`` does not report (inside loops, before the first tensor op)."""
    import torch
    from torch._dynamo import symbolic_convert

    owner: Any
    if hasattr(symbolic_convert.InstructionTranslatorBase, "log_graph_break"):
        owner = symbolic_convert.InstructionTranslatorBase
        original = owner.log_graph_break

        def log_graph_break(self: Any, code_options: Any, reason: str, exc: Any) -> None:
            if not getattr(exc, "logged", False):
                record(_logged(exc))
            return original(self, code_options, reason, exc)
    elif hasattr(symbolic_convert, "log_graph_break"):
        # torch 2.9: a module function given the break's text and stack, not the exception.
        _fallbacks.add(
            "InstructionTranslatorBase.log_graph_break: breaks read from the text given to "
            "symbolic_convert.log_graph_break"
        )
        owner = symbolic_convert
        original = owner.log_graph_break

        def log_graph_break(
            code_options: Any, reason: str = "", exc_info: bool = False, user_stack: Any = None
        ) -> None:
            stack = user_stack if user_stack is not None else torch._guards.TracingContext.extract_stack()
            record(LoggedBreak(reason, list(stack), None))
            return original(code_options, reason=reason, exc_info=exc_info, user_stack=user_stack)
    else:
        _fallbacks.add(
            "InstructionTranslatorBase.log_graph_break: no graph-break log; breaks from explain and fullgraph only"
        )
        yield
        return
    owner.log_graph_break = log_graph_break
    try:
        yield
    finally:
        owner.log_graph_break = original


@contextlib.contextmanager
def graph_runs_counted(wrap: Callable[[Any, Callable], Callable]) -> Iterator[None]:
    """While active, every backend ``torch._dynamo.explain`` builds has its compiled graphs passed
    through ``wrap(graph_module, compiled)``: explain's own compiler is a closure handed to
    ``eval_frame.optimize``, the one place to reach it."""
    from torch._dynamo import eval_frame

    original = eval_frame.optimize

    def optimize(backend: Any, *args: Any, **kwargs: Any) -> Any:
        def compiler(graph_module: Any, example_inputs: Any) -> Callable:
            return wrap(graph_module, backend(graph_module, example_inputs))

        return original(compiler if callable(backend) else backend, *args, **kwargs)

    eval_frame.optimize = optimize
    try:
        yield
    finally:
        eval_frame.optimize = original


def compiling_file() -> str | None:
    """The file of the frame dynamo is compiling now (inside a backend call), or None."""
    from torch._dynamo.symbolic_convert import InstructionTranslator

    try:
        return InstructionTranslator.current_tx().f_code.co_filename
    except (AttributeError, AssertionError):
        return None


def lookup_backend(name: str) -> Callable:
    """The compiler function registered as ``name`` (``aot_eager``, ``eager``, ``inductor``)."""
    from torch._dynamo.backends.registry import lookup_backend as lookup

    return lookup(name)


def clear_counters() -> None:
    from torch._dynamo.utils import counters

    counters.clear()


def graph_count() -> int:
    """Graphs compiled since the last ``clear_counters()``."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def is_orchestrator(fn: Callable) -> bool:
    """A ``torch.compiler.disable`` wrapper: an eager function running compiled pieces."""
    return bool(getattr(fn, "_torchdynamo_disable", False))


def original_callable(fn: Callable) -> Callable:
    """The function ``torch.compile`` or ``torch.compiler.disable`` wrapped (``fn`` itself if neither)."""
    return getattr(fn, "_torchdynamo_orig_callable", fn)


def mark_compiled(wrapper: Callable, fn: Callable) -> None:
    """Mark ``wrapper`` as ``torch.compile`` marks what it returns, so ``as_written`` unwraps it."""
    wrapper._torchdynamo_orig_callable = fn


def as_written(fn: Callable) -> Callable:
    """A function under ``@torch.compile`` is checked as written (eagerly for the reference, compiled
    by breakfix itself); a ``torch.compiler.disable`` wrapper marks an orchestrator and is kept."""
    return fn if is_orchestrator(fn) else original_callable(fn)


_RECOMPILES_LOGGER = "torch._dynamo.guards.__recompiles"  # dynamo's ``recompiles`` artifact logger
_FAILED_GUARD = re.compile(r"^\s*- \d+/\d+: (?P<guard>.+?)(?:\s{2,}#.*)?$", re.MULTILINE)


@contextlib.contextmanager
def recompiles_logged(record: Callable[[str], None]) -> Iterator[None]:
    """Call ``record(guard)`` for every recompile dynamo makes, with the first guard that failed
    (``self.calls == 7``), or the whole first line of dynamo's message when it names no guard."""
    import logging

    import torch

    class Recorder(logging.Handler):
        def emit(self, entry: logging.LogRecord) -> None:
            message = entry.getMessage()
            guard = _FAILED_GUARD.search(message)
            record(guard["guard"].strip() if guard else message.splitlines()[0])

    torch._logging.set_logs(recompiles=True)
    logger = logging.getLogger(_RECOMPILES_LOGGER)
    logger.propagate = False  # recorded, not printed on the worker's stderr
    recorder = Recorder()
    logger.addHandler(recorder)
    try:
        yield
    finally:
        logger.removeHandler(recorder)
        torch._logging.set_logs()


def recompile_limit_errors() -> tuple[type[BaseException], ...]:
    """What a ``fullgraph=True`` function raises when it would recompile past the limit."""
    from torch._dynamo.exc import FailOnRecompileLimitHit

    return (FailOnRecompileLimitHit,)
