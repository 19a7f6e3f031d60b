"""The three worker modes, each run in a fresh (forked) process on one request.

``locate``  run the target eagerly (the reference: outputs, stdout, files, inputs' state after each
            of several calls on the same inputs, and on derived inputs of other sizes), collect its
            breaks (``breaks.collect_breaks``).
``check``   compile the (rewritten) target with ``fullgraph=True`` and compare every call with
            the reference, counting recompiles; if breaks remain, compare with breaks allowed and
            locate them again.
``repeat``  run the original target eagerly again and compare it with the reference (is the
            target deterministic?).
``recompiles``  compile the original with breaks allowed over the same calls: the guards it
            recompiles on (may a rewrite that recompiles do so?).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import os
import pickle
import sys
import types
from pathlib import Path
from typing import Any, Callable

from breakfix.torch_apis import missing_apis
from breakfix.types import Verification
from breakfix.worker import torch_compat
from breakfix.worker.breaks import collect_breaks, revealed_break
from breakfix.worker.compare import compare_call, first_mismatch, load_reference
from breakfix.worker.coverage import COUNTER
from breakfix.worker.derived import DERIVED_SEED, MAX_DERIVED, MAX_TRIED, derived_input
from breakfix.worker.loader import example_inputs, resolve
from breakfix.worker.protocol import (
    CheckRequest,
    CheckResult,
    LocateRequest,
    LocateResult,
    RecompilesRequest,
    RecompilesResult,
    RepeatRequest,
    RepeatResult,
    Request,
    Response,
)
from breakfix.worker.sandbox import UserCodeError, one_line, record_call, run_calls, seed_all


def run(request: Request, root: Path) -> Response:
    if isinstance(request, LocateRequest):
        return locate(request, root)
    if isinstance(request, CheckRequest):
        return check(request, root)
    if isinstance(request, RecompilesRequest):
        return recompiles(request, root)
    return repeat(request, root)


def locate(request: LocateRequest, root: Path) -> LocateResult:
    import torch

    torch_compat.configure_dynamo()
    _force_backend(request.backend)
    COUNTER.root = root
    module, fn, target_file = resolve(request.target, root, request.overlay)
    make_inputs = example_inputs(request, module, root)
    resized: list[Callable[[], tuple]] = []
    if request.reference:
        calls = run_calls(fn, make_inputs, request.calls, user_errors=True)
        derived = _accepted_derived_inputs(fn, make_inputs, calls[0]["warnings"]) if request.derived_inputs else []
        reference = {"calls": calls, "derived": derived}
        resized = [functools.partial(_derived_args, make_inputs, entry["number"]) for entry in derived]
        try:
            with open(request.reference, "wb") as f:
                torch.save(reference, f)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            raise UserCodeError(f"cannot verify: the target's outputs cannot be pickled ({one_line(e)})") from e
    found = collect_breaks(fn, make_inputs, torch_compat.is_orchestrator(fn), root, request.backend, resized)
    return LocateResult.from_json(
        {
            "breaks": found.breaks,
            "graph_count": found.graph_count,
            "target_file": target_file,
            "target_qualname": request.target.rpartition(":")[2],
            "facts": _facts(fn, make_inputs, found.breaks),
            "operations": found.operations,
            "operations_by_line": found.operations_by_line,
            "torch_version": torch.__version__,
            "missing_apis": missing_apis(request.apis),
            "torch_fallbacks": torch_compat.fallbacks(),
        }
    )


def _derived_args(make_inputs: Callable[[], tuple], number: int) -> tuple:
    """The arguments of derived input ``number``, seeded as the reference ran them."""
    _, args = derived_input(make_inputs, seed_all, number)
    seed_all(DERIVED_SEED)
    return args


def _accepted_derived_inputs(fn: Callable, make_inputs: Callable[[], tuple], warnings: list) -> list[dict]:
    """The derived inputs the original runs on eagerly (one that raises, or warns other than the
    example's first call, such as a broadcast of mismatched sizes, is outside its domain), with
    their calls: a rewrite must match on each of them. Which ones it accepts is found in a forked
    child: a candidate that raises may have changed global state first (a step counter), which the
    check, making only the accepted calls, would not repeat."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and exits at once
        import torch

        # The target's calls above started torch's OpenMP pool, whose threads a fork does not copy:
        # a parallel op (a big softmax, a matmul) would wait for them forever. One thread runs it
        # inline; which candidates raise or warn does not depend on it.
        torch.set_num_threads(1)
        accepted = []
        try:
            for number in range(MAX_TRIED):
                candidate = derived_input(make_inputs, seed_all, number)
                if candidate is None or len(accepted) == MAX_DERIVED:
                    break
                seed_all(DERIVED_SEED)
                with contextlib.suppress(Exception):
                    if record_call(fn, candidate[1], user_errors=False)["warnings"] == warnings:
                        accepted.append(number)
        finally:
            os.write(write, json.dumps(accepted).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        reported = pipe.read()
    os.waitpid(child, 0)
    calls = []
    for number in json.loads(reported or b"[]"):
        changes, args = derived_input(make_inputs, seed_all, number)
        seed_all(DERIVED_SEED)
        with contextlib.suppress(Exception):
            calls.append({"number": number, "changes": changes, "call": record_call(fn, args, user_errors=False)})
    return calls


def recompiles(request: RecompilesRequest, root: Path) -> RecompilesResult:
    """The guards the original recompiles on after its first call, compiled with graph breaks
    allowed over the reference's calls: a rewrite may recompile where the original does, no more.
    Asked only when a rewrite recompiles, so targets whose rewrites do not pay nothing."""
    import torch

    global _pieces_allow_breaks
    torch_compat.configure_dynamo()
    _force_backend(request.backend)
    module, fn, _ = resolve(request.target, root, request.overlay)
    make_inputs = example_inputs(request, module, root)
    seen = _RecompileWatch()
    _pieces_allow_breaks = True
    try:
        with torch_compat.recompiles_logged(seen.record):
            run_calls(
                fn if torch_compat.is_orchestrator(fn) else torch.compile(fn, fullgraph=False),
                make_inputs,
                request.calls,
                user_errors=False,
                watch=seen.watch,
            )
    except Exception:
        pass  # the original ran eagerly; a failure of its compiled form is one of its breaks
    finally:
        _pieces_allow_breaks = False
    return RecompilesResult(seen.repeated(request.calls))


class _RecompileWatch:
    """Which call is running, and the guards dynamo recompiled on during each."""

    def __init__(self) -> None:
        self.call = 0
        self.where = ""
        self.guards: list[tuple[int, str]] = []

    def watch(self, number: int) -> None:
        self.call, self.where = number, f"call {number}"

    def record(self, guard: str) -> None:
        self.guards.append((self.call, guard))

    def repeated(self, calls: int) -> list[str]:
        """The guards recompiled on during calls 2..``calls`` (the same inputs as the first call)."""
        return [guard for number, guard in self.guards if 2 <= number <= calls]


def _facts(fn: Callable, make_inputs: Callable[[], tuple], breaks: list[dict]) -> dict:
    from breakfix.worker.facts import collect_facts

    if not breaks:
        return {}
    return {key: f.to_json() for key, f in collect_facts(fn, make_inputs, breaks, seed_all).items()}


def _run_reference_calls(
    fn: Callable,
    make_inputs: Callable[[], tuple],
    reference: dict,
    calls: int,
    rtol: float | None,
    atol: float | None,
    watch: _RecompileWatch,
) -> str:
    """Make the reference's calls with ``fn`` and compare each; '' when all match, else where not."""
    problem = first_mismatch(
        reference["calls"], run_calls(fn, make_inputs, calls, user_errors=False, watch=watch.watch), rtol, atol
    )
    if problem:
        return problem
    for index, entry in enumerate(reference["derived"], start=1):
        # No dynamo reset between shapes: a user's compiled function sees a new shape the same way.
        watch.call = -1
        watch.where = f"derived input {index} ({entry['changes']})"
        args = _derived_args(make_inputs, entry["number"])
        problem = compare_call(entry["call"], record_call(fn, args, user_errors=False), rtol, atol)
        if problem:
            return f"{watch.where}: {problem}"
    return ""


def repeat(request: RepeatRequest, root: Path) -> RepeatResult:
    """Run the original target eagerly again, in a fresh process like every check, and say how it
    differs from the reference: when identically seeded runs differ, no rewrite can be verified."""
    module, fn, _ = resolve(request.target, root, request.overlay)
    make_inputs = example_inputs(request, module, root)
    reference = load_reference(request.reference)
    try:
        difference = _run_reference_calls(
            fn, make_inputs, reference, request.calls, request.rtol, request.atol, _RecompileWatch()
        )
    except Exception as e:
        difference = f"the target raised {one_line(e)}"
    return RepeatResult(difference)


def check(request: CheckRequest, root: Path) -> CheckResult:
    """Check a rewrite against the reference, in a fresh process.

    Verified when it compiles with ``fullgraph=True``, every call (the repeated ones, the one on
    fresh inputs, the derived inputs) matches, and it recompiles on repeated calls no more than
    the original does. When breaks remain elsewhere, an intermediate rewrite must still match the
    reference when compiled with graph breaks allowed; the remaining breaks are returned so the
    engine can see this one is gone.
    """
    import torch

    torch_compat.configure_dynamo()
    _force_backend(request.backend)
    _computed_floats.clear()
    COUNTER.root = root
    module, fn, _ = resolve(request.target, root, request.overlay)
    make_inputs = example_inputs(request, module, root)
    orchestrator = torch_compat.is_orchestrator(fn)
    reference = load_reference(request.reference)
    seen = _RecompileWatch()

    def matches(compiled: Callable) -> str:
        COUNTER.reset()
        return _run_reference_calls(
            COUNTER.first_call(compiled), make_inputs, reference, request.calls, request.rtol, request.atol, seen
        )

    def verified(fullgraph: bool, **found: Any) -> CheckResult:
        # An orchestrator runs eagerly: what it compiles is what its pieces executed in one call.
        return CheckResult.from_json(
            {
                "ok": True,
                "fullgraph": fullgraph and not orchestrator,
                "split": orchestrator,
                "operations": COUNTER.total,
                "pieces": sorted(COUNTER.pieces_run),
                "verification": dataclasses.asdict(verification()),
                **found,
            }
        )

    def raised(e: Exception, located_by: BaseException | None = None) -> CheckResult:
        # The compiler failed inside the rewrite: when it failed on a project line (code a rewrite
        # made the compiler trace, like a torch.cond branch or a compiled piece), that line is a
        # break the engine may repair, with the facts measured at it. A backend failure carries no
        # user stack; the fullgraph=True error of the same rewrite (``located_by``) then says where
        # tracing first failed.
        where = f"{seen.where}: " if seen.where and seen.call != 1 else ""
        breaks = revealed_break(e, fn, root) or (revealed_break(located_by, fn, root) if located_by else [])
        return CheckResult.from_json(
            {
                "ok": False,
                "fullgraph": False,
                "breaks": breaks,
                "reason": f"{where}the rewrite raised {one_line(e)}",
                "facts": _facts(fn, make_inputs, breaks),
            }
        )

    def verification() -> Verification:
        return Verification(request.calls, len(reference["derived"]), tuple(seen.repeated(request.calls)))

    torch_compat.clear_counters()
    fullgraph_error: BaseException | None = None
    try:
        with torch_compat.recompiles_logged(seen.record):
            problem = matches(fn if orchestrator else torch.compile(fn, fullgraph=True))
    except torch_compat.recompile_limit_errors() as e:
        return CheckResult(ok=False, fullgraph=False, reason=_recompiles_reason(seen, request.calls, one_line(e)))
    except torch_compat.tracing_errors() as e:
        if seen.call != 1:
            return raised(e)  # a break on a later call or a new shape: a failure, not a break to locate
        fullgraph_error = e  # breaks remain: check the rewrite with graph breaks allowed, below
    except Exception as e:
        return raised(e)  # also below, with breaks allowed
    else:
        if problem:
            return CheckResult(ok=False, fullgraph=not orchestrator, reason=problem, mismatch=True)
        if orchestrator and torch_compat.graph_count() == 0:
            return CheckResult(ok=False, fullgraph=False, reason="no compiled piece ran")
        # Still recompiling on the last call, it never settles: under fullgraph=True it hits the
        # recompile limit and raises, where the original (compiled with breaks allowed) falls back
        # to eager. Fewer recompiles are compared with the original's by the engine.
        if any(number == request.calls for number, _ in seen.guards):
            return CheckResult(ok=False, fullgraph=False, reason=_recompiles_reason(seen, request.calls, ""))
        result = verified(True, graph_count=COUNTER.graphs_first_call, complete=True)
        # A split's pieces compile with fullgraph=True: where one recompiles on every new value of a
        # float the eager code computes, a loop makes it raise on the ninth value, where the
        # original, compiled with breaks allowed, falls back to eager.
        per_value = _pieces_per_value() if orchestrator else []
        if per_value:
            return CheckResult(
                ok=False,
                fullgraph=False,
                reason=f"the split's pieces recompile on every new value of {', '.join(per_value)}: a loop "
                "computing a new value each call hits their recompile limit on its ninth, where the original, "
                "compiled with graph breaks allowed, falls back to eager",
            )
        return result

    global _pieces_allow_breaks
    torch._dynamo.reset()
    _pieces_allow_breaks = True
    seen = _RecompileWatch()
    try:
        # A frame dynamo fails on internally raises here too (running it eagerly instead would
        # accept a rewrite whose piece cannot compile); the engine may repair it as a revealed break.
        problem = matches(fn if orchestrator else torch.compile(fn, fullgraph=False))
    except Exception as e:
        return raised(e, located_by=fullgraph_error)
    finally:
        _pieces_allow_breaks = False
    if problem:
        return CheckResult(ok=False, fullgraph=False, reason=problem, mismatch=True)
    measured = {"operations": COUNTER.total, "pieces": sorted(COUNTER.pieces_run)}
    found = collect_breaks(fn, make_inputs, orchestrator, root, request.backend)
    return verified(
        False,
        graph_count=found.graph_count,
        breaks=found.breaks,
        **measured,
        facts=_facts(fn, make_inputs, found.breaks),
    )


def _recompiles_reason(seen: _RecompileWatch, calls: int, limit_error: str) -> str:
    """Why a rewrite that recompiles is refused, naming the guard that failed last: "the rewrite
    recompiles on every call (guard on `self.calls == 7`)"."""
    repeated = seen.repeated(calls) or [guard for _, guard in seen.guards]
    guard = f"guard on `{repeated[-1]}`" if repeated else "a guard"
    last_call = min(seen.call, calls) if seen.call > 0 else calls
    often = "on every call" if len(seen.repeated(calls)) >= last_call - 1 > 0 else f"{len(repeated)} times"
    if limit_error:
        return f"the rewrite recompiles {often} ({guard}) and hits the recompile limit on {seen.where}: {limit_error}"
    return (
        f"the rewrite recompiles {often} in {calls} calls on the same inputs ({guard}) and never settles: "
        "compiled with fullgraph=True, a loop hits the recompile limit"
    )


_pieces_allow_breaks = False  # True while a rewrite is checked with graph breaks allowed
# Per compiled piece: the function, its strict form, its last call's arguments, and which of them
# are floats its eager caller computed (not passed on from the caller's own parameters).
_computed_floats: dict[str, tuple[Callable, Callable, tuple, dict, list[int]]] = {}


def _computed_by_caller(args: tuple, caller: types.FrameType) -> list[int]:
    """The positions of the float arguments a piece's caller computed itself (a learning rate from
    a schedule, a loss read off the data): not one of the caller's parameters."""
    code = caller.f_code
    count = code.co_argcount + code.co_kwonlyargcount
    passed_on = [caller.f_locals.get(n) for n in code.co_varnames[:count]]
    return [i for i, a in enumerate(args) if isinstance(a, float) and not any(a is p for p in passed_on)]


def _pieces_per_value() -> list[str]:
    """The floats a split's eager code computes and passes to a piece that the piece recompiles
    on for every new value.

    The reference's calls compute the same values each time, so a piece's guard on one never
    fails there; in a loop such a value changes (a learning rate from a schedule, a loss read off
    the data), and a piece guarding on the value itself (``lr == 0.0003``: a float given to an op
    as a scalar) raises on the ninth, where the original, tracing the computation, took the
    number as a symbol. After the comparisons (these calls may update their arguments in place),
    each such argument of each piece's last call is given two new values in a row: the first may
    recompile, before dynamo takes the number as a symbol; the second recompiling too is a guard
    on the value. A new value the piece raises on tells nothing and is let be. An int is left
    alone: one the eager code computes is as often a count that stays (``len(self.layers)``) as
    one that changes."""
    specialized = []
    for name, (model, strict, args, kw, computed) in sorted(_computed_floats.items()):
        parameters = list(inspect.signature(model).parameters)
        for index in computed:
            value = args[index]
            guards: list[str] = []
            with torch_compat.recompiles_logged(guards.append):
                before = 0
                try:
                    for step in (1, 2):
                        before = len(guards)
                        strict(*args[:index], (value or 0.1) * (1 + step / 8), *args[index + 1 :], **kw)
                except torch_compat.recompile_limit_errors():
                    guards.append("")  # the limit was hit before the second value
                except Exception:
                    continue
            if len(guards) > before:
                parameter = parameters[index] if index < len(parameters) else f"argument {index + 1}"
                guard = f"guard on `{guards[-1]}`" if guards[-1] else "its recompile limit hit"
                specialized.append(f"`{parameter}` of {name} ({guard})")
    return specialized


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
            _computed_floats[model.__qualname__] = (
                model,
                strict,
                args,
                kw,
                _computed_by_caller(args, sys._getframe(1)),
            )
            with COUNTER.in_piece(model.__qualname__):
                return (lenient if _pieces_allow_breaks else strict)(*args, **kw)

        torch_compat.mark_compiled(piece, model)  # loader.resolve unwraps a target as torch.compile's
        return piece

    torch.compile = compile_on_backend
