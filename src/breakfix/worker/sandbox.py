"""Running user code in the worker: seeded calls in a scratch directory, with everything observable
captured (output, stdout, files written, warnings, log records, the inputs' state afterwards)."""

from __future__ import annotations

import collections.abc
import contextlib
import io
import logging
import os
import random
import tempfile
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from breakfix.project import PACKAGE_DIR

SEEDS = (0, 1)  # the inputs of the repeated calls, then of one call on fresh inputs (``run_calls``)


class UserCodeError(Exception):
    """The user's target, module or inputs callable is at fault (reported, exit 2)."""


def seed_all(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    numpy_random = _numpy_random()
    if numpy_random:
        numpy_random.seed(seed)


def _numpy_random() -> Any:
    """``numpy.random``, when numpy is installed."""
    try:
        import numpy
    except ImportError:
        return None
    return numpy.random


def one_line(e: BaseException) -> str:
    """The exception's type and the first line of its message; a line that ends in a colon
    introduces the cause on the lines after it (torch's "Got graph break/error:"), so those follow
    it, up to the first that does not."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    taken = lines[:1]
    while taken and taken[-1].endswith(":") and len(taken) < min(len(lines), 4):
        taken.append(lines[len(taken)])
    return f"{type(e).__name__}: {' '.join(taken)}" if taken else type(e).__name__


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
def sandboxed_call():
    """Capture stdout, warnings and log records, and run in a fresh working directory so relative
    writes can be compared: a rewrite must keep every one of them."""
    buffer = io.StringIO()
    old_cwd = os.getcwd()
    with (
        tempfile.TemporaryDirectory(prefix="breakfix-run-") as cwd,
        warnings.catch_warnings(record=True) as warned,
        _recording_logs() as logs,
    ):
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


def _tensor_leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """The tensors in ``value`` with where each is (``[0]['logits']``): in lists, tuples and dicts,
    and a module's parameters and buffers."""
    import torch

    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, torch.nn.Module):
        for name, tensor in value.state_dict(keep_vars=True).items():
            yield from _tensor_leaves(tensor, f"{path}.{name}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _tensor_leaves(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensor_leaves(item, f"{path}[{key!r}]")


def _memory_shared_with_inputs(output: Any, args: tuple) -> list[tuple[str, str]]:
    """Which tensors of the output share memory with which tensors of the arguments (their bytes
    overlap: a view of an element, not another element of the same storage): a caller that
    updates the one in place sees the other change, so a rewrite must share the same."""

    def span(tensor: Any) -> tuple[int, int] | None:
        try:
            start = tensor.data_ptr()
        except (RuntimeError, NotImplementedError):  # sparse and other storage-less layouts
            return None
        if not tensor.numel() or not start:
            return None
        extent = sum((size - 1) * abs(stride) for size, stride in zip(tensor.shape, tensor.stride()))
        return start, start + (extent + 1) * tensor.element_size()

    inputs = [(path, span(tensor)) for path, tensor in _tensor_leaves(args, "args")]
    shared = []
    for path, tensor in _tensor_leaves(output, "output"):
        bytes_ = span(tensor)
        if bytes_ is not None:
            shared += [(path, other) for other, b in inputs if b is not None and b[0] < bytes_[1] and bytes_[0] < b[1]]
    return sorted(shared)


def record_call(fn: Callable, args: tuple, user_errors: bool, where: str = "") -> dict:
    """Call ``fn(*args)`` once in the sandbox; everything observable about the call."""
    with sandboxed_call() as state:
        try:
            output = fn(*args)
        except Exception as e:
            if user_errors:
                raise UserCodeError(f"the target raised in eager mode{where}: {one_line(e)}{last_user_frame(e)}") from e
            raise
    return {
        "output": output,
        "stdout": state["stdout"].getvalue(),
        "files": state["files"],
        "warnings": [(w.category.__name__, str(w.message)) for w in state["warnings"] if not _from_torch(w)],
        "logs": state["logs"],
        "inputs_after": _snapshot_inputs(args),
        "shares_memory": _memory_shared_with_inputs(output, args),
    }


def run_calls(
    fn: Callable,
    make_inputs: Callable[[], tuple],
    calls: int,
    user_errors: bool,
    watch: Callable[[int], None] | None = None,
) -> list[dict]:
    """Call ``fn`` ``calls`` times in a row on the same inputs (made with ``SEEDS[0]``), so module
    and argument state carries from call to call as it does in a loop, then once on fresh inputs
    made with ``SEEDS[1]``; record every call. ``watch(number)`` is told each call's number first."""
    records = []
    for seed, count in ((SEEDS[0], calls), (SEEDS[1], 1)):
        seed_all(seed)
        args = make_inputs()
        seed_all(seed)  # the random state carries on between the calls of a loop: seeded once
        for index in range(count):
            number = len(records) + 1
            if watch:
                watch(number)
            if index:
                args = _fresh_iterators(args, make_inputs, seed)
            records.append(record_call(fn, args, user_errors, f" (call {number})" if number > 1 else ""))
    return records


def _fresh_iterators(args: tuple, make_inputs: Callable[[], tuple], seed: int) -> tuple:
    """``args`` with each iterator argument made again: a call uses an iterator up, and a caller
    passes a new one on every call, where the other arguments (a module, a cache) carry their state.
    The global random state is left as the previous call left it."""
    if not any(isinstance(arg, collections.abc.Iterator) for arg in args):
        return args
    with rng_preserved():
        seed_all(seed)
        fresh = make_inputs()
    return tuple(new if isinstance(old, collections.abc.Iterator) else old for old, new in zip(args, fresh))


@contextlib.contextmanager
def rng_preserved() -> Iterator[None]:
    """Seeding torch, numpy and ``random`` inside leaves their states as they were outside."""
    import torch

    python_state = random.getstate()
    numpy_random = _numpy_random()
    numpy_state = numpy_random.get_state() if numpy_random else None
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python_state)
            if numpy_random:
                numpy_random.set_state(numpy_state)


def _from_torch(warning: warnings.WarningMessage) -> bool:
    """Warnings torch raises itself are not the user's: those dynamo raises while tracing (from
    torch's Python files), and those of torch's C++ core ("Triggered internally at ..."), which
    are attributed to the user's line but which compiled code does not raise again."""
    import torch

    torch_dir = os.path.dirname(os.path.realpath(torch.__file__)) + os.sep
    from_cpp = "(Triggered internally at " in str(warning.message)
    return from_cpp or os.path.realpath(warning.filename).startswith(torch_dir)


def last_user_frame(e: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith(str(PACKAGE_DIR))]
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
