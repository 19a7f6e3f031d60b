"""The three worker modes, each run in a fresh (forked) process on one request.

``locate``  run the target eagerly (the reference: outputs, stdout, files, inputs' state after the
            call, over several seeded calls), then collect its breaks (``breaks.collect_breaks``).
``check``   compile the (rewritten) target with ``fullgraph=True`` and compare every call with
            the reference; if breaks remain, compare with breaks allowed and locate them again.
``repeat``  run the original target eagerly again and compare it with the reference (is the
            target deterministic?).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Callable

from breakfix.torch_apis import missing_apis
from breakfix.worker import torch_compat
from breakfix.worker.breaks import collect_breaks, revealed_break
from breakfix.worker.coverage import COUNTER
from breakfix.worker.compare import first_mismatch, load_reference
from breakfix.worker.loader import example_inputs, resolve
from breakfix.worker.protocol import (CheckRequest, CheckResult, LocateRequest, LocateResult, RepeatRequest,
                                      RepeatResult, Request, Response)
from breakfix.worker.sandbox import UserCodeError, one_line, run_calls, seed_all


def run(request: Request, root: Path) -> Response:
    if isinstance(request, LocateRequest):
        return locate(request, root)
    if isinstance(request, CheckRequest):
        return check(request, root)
    return repeat(request, root)


def locate(request: LocateRequest, root: Path) -> LocateResult:
    import torch

    torch_compat.configure_dynamo()
    _force_backend(request.backend)
    COUNTER.root = root
    module, fn, target_file = resolve(request.target, root, request.overlay)
    make_inputs = example_inputs(request, module, root)
    if request.reference:
        calls = run_calls(fn, make_inputs, user_errors=True)
        try:
            with open(request.reference, "wb") as f:
                torch.save({"calls": calls}, f)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            raise UserCodeError(f"cannot verify: the target's outputs cannot be pickled ({one_line(e)})") from e
    found = collect_breaks(fn, make_inputs, torch_compat.is_orchestrator(fn), root, request.backend)
    return LocateResult.from_json({"breaks": found.breaks, "graph_count": found.graph_count,
                                   "target_file": target_file, "target_qualname": request.target.rpartition(":")[2],
                                   "facts": _facts(fn, make_inputs, found.breaks), "operations": found.operations,
                                   "operations_by_line": found.operations_by_line, "torch_version": torch.__version__,
                                   "missing_apis": missing_apis(request.apis), "torch_fallbacks": torch_compat.fallbacks()})


def _facts(fn: Callable, make_inputs: Callable[[], tuple], breaks: list[dict]) -> dict:
    from breakfix.worker.facts import collect_facts

    if not breaks:
        return {}
    return {key: f.to_json() for key, f in collect_facts(fn, make_inputs, breaks, seed_all).items()}


def repeat(request: RepeatRequest, root: Path) -> RepeatResult:
    """Run the original target eagerly again, in a fresh process like every check, and say how it
    differs from the reference: when identically seeded runs differ, no rewrite can be verified."""
    module, fn, _ = resolve(request.target, root, request.overlay)
    make_inputs = example_inputs(request, module, root)
    calls = run_calls(fn, make_inputs, user_errors=True)
    return RepeatResult(first_mismatch(load_reference(request.reference), calls, request.rtol, request.atol))


def check(request: CheckRequest, root: Path) -> CheckResult:
    """Check a rewrite against the reference, in a fresh process.

    Verified when it compiles with ``fullgraph=True`` and every call matches. When breaks remain
    elsewhere, an intermediate rewrite must still match the reference when compiled with graph
    breaks allowed; the remaining breaks are returned so the engine can see this one is gone.
    """
    import torch

    torch_compat.configure_dynamo()
    _force_backend(request.backend)
    COUNTER.root = root
    module, fn, _ = resolve(request.target, root, request.overlay)
    make_inputs = example_inputs(request, module, root)
    orchestrator = torch_compat.is_orchestrator(fn)
    reference = load_reference(request.reference)

    def matches(compiled: Callable) -> str:
        COUNTER.reset()
        calls = run_calls(COUNTER.first_call(compiled), make_inputs, user_errors=False)
        return first_mismatch(reference, calls, request.rtol, request.atol)

    def verified(fullgraph: bool, **found: Any) -> CheckResult:
        # An orchestrator runs eagerly: what it compiles is what its pieces executed in one call.
        return CheckResult.from_json({"ok": True, "fullgraph": fullgraph and not orchestrator, "split": orchestrator,
                                      "operations": COUNTER.total, "pieces": sorted(COUNTER.pieces_run), **found})

    def raised(e: Exception) -> CheckResult:
        # The compiler failed inside the rewrite: when it failed on a project line (code a rewrite
        # made the compiler trace, like a torch.cond branch or a compiled piece), that line is a
        # break the engine may repair.
        return CheckResult.from_json({"ok": False, "fullgraph": False, "reason": f"the rewrite raised {one_line(e)}",
                                      "breaks": revealed_break(e, fn, root)})

    torch_compat.clear_counters()
    try:
        problem = matches(fn if orchestrator else torch.compile(fn, fullgraph=True))
    except torch_compat.tracing_errors():
        pass  # breaks remain: check the rewrite with graph breaks allowed, below
    except Exception as e:
        return raised(e)  # also below, with breaks allowed
    else:
        if problem:
            return CheckResult(ok=False, fullgraph=not orchestrator, reason=problem, mismatch=True)
        if orchestrator and torch_compat.graph_count() == 0:
            return CheckResult(ok=False, fullgraph=False, reason="no compiled piece ran")
        return verified(True, graph_count=torch_compat.graph_count(), complete=True)

    global _pieces_allow_breaks
    torch._dynamo.reset()
    _pieces_allow_breaks = True
    try:
        # A frame dynamo fails on internally raises here too (running it eagerly instead would
        # accept a rewrite whose piece cannot compile); the engine may repair it as a revealed break.
        problem = matches(fn if orchestrator else torch.compile(fn, fullgraph=False))
    except Exception as e:
        return raised(e)
    finally:
        _pieces_allow_breaks = False
    if problem:
        return CheckResult(ok=False, fullgraph=False, reason=problem, mismatch=True)
    measured = {"operations": COUNTER.total, "pieces": sorted(COUNTER.pieces_run)}
    found = collect_breaks(fn, make_inputs, orchestrator, root, request.backend)
    return verified(False, graph_count=found.graph_count, breaks=found.breaks, **measured,
                    facts=_facts(fn, make_inputs, found.breaks))


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

    counting_backend = COUNTER.backend(torch_compat.lookup_backend(backend))

    def compile_on_backend(model: Any = None, **kwargs: Any) -> Any:
        kwargs["backend"] = counting_backend
        # ``mode`` and ``options`` tune inductor (a piece may inherit the user's): torch refuses them
        # with a backend given as a callable, and they do not change what is computed.
        kwargs.pop("mode", None)
        kwargs.pop("options", None)
        kwargs.setdefault("fullgraph", True)
        if model is None:
            return functools.partial(compile_on_backend, **kwargs)
        strict = original(model, **kwargs)
        if not kwargs["fullgraph"] or isinstance(model, torch.nn.Module):
            return strict
        lenient = original(model, **{**kwargs, "fullgraph": False})

        @functools.wraps(model)
        def piece(*args: Any, **kw: Any) -> Any:
            with COUNTER.in_piece(model.__qualname__):
                return (lenient if _pieces_allow_breaks else strict)(*args, **kw)

        torch_compat.mark_compiled(piece, model)  # loader.resolve unwraps a target as torch.compile's
        return piece

    torch.compile = compile_on_backend
