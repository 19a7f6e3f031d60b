"""What the parent and a worker exchange: one request type per mode, one response type per request.

The parent writes ``request.to_json()`` to request.json; the worker reads it with
``request_from_json`` and answers ``{"result": response.to_json()}`` or ``{"error": "one line"}``
in response.json. Both sides import this module; it never imports torch.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, Union

from breakfix.types import BreakFacts, GraphBreak, Verification

DEFAULT_CALLS = 10  # calls on the same inputs, as a training or serving loop makes them


class Mode(str, enum.Enum):
    LOCATE = "locate"  # every break fullgraph=True would hit; records the eager reference
    CHECK = "check"  # a rewrite compiled and compared with the reference
    REPEAT = "repeat"  # the original run eagerly again and compared with the reference
    RECOMPILES = "recompiles"  # the original compiled with breaks allowed: the guards it recompiles on


@dataclass(frozen=True)
class LocateResult:
    """What the locate worker found in the code as it is on disk (or in the given overlay)."""

    breaks: list[GraphBreak]
    graph_count: int
    target_file: str
    target_qualname: str
    facts: dict[str, BreakFacts] = field(default_factory=dict)  # per break site, keyed "file:line"
    torch_version: str = ""  # the worker's torch, which every fix is verified on
    missing_apis: tuple[str, ...] = ()  # of the request's ``apis``, those this torch lacks
    torch_fallbacks: tuple[str, ...] = ()  # private hooks this torch lacks, replaced by reading the break text
    operations: int = 0  # operations compiled graphs of project frames executed in one call (explain)
    operations_by_line: list[list] = field(default_factory=list)  # [file, line, count]: by the line that wrote them

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "facts": {k: f.to_json() for k, f in self.facts.items()}}

    @classmethod
    def from_json(cls, data: dict) -> LocateResult:
        return cls(
            **{
                **data,
                "breaks": [GraphBreak.from_json(b) for b in data["breaks"]],
                "facts": {k: BreakFacts.from_json(f) for k, f in data.get("facts", {}).items()},
                "missing_apis": tuple(data.get("missing_apis", ())),
                "torch_fallbacks": tuple(data.get("torch_fallbacks", ())),
            }
        )


@dataclass(frozen=True)
class CheckResult:
    """A rewrite checked against the eager reference in a fresh worker."""

    ok: bool  # matches the reference (with no break left when ``complete``, else with breaks allowed)
    fullgraph: bool  # the target compiled whole with fullgraph=True
    reason: str = ""  # one line: why it was rejected
    mismatch: bool = False  # rejected because it ran but behaved differently from the reference
    graph_count: int | None = None
    breaks: list[GraphBreak] = field(default_factory=list)  # breaks left when not complete
    facts: dict[str, BreakFacts] = field(default_factory=dict)
    complete: bool = False  # no break left: the target compiled whole, or a split whose pieces all did
    split: bool = False  # the target runs eagerly (torch.compiler.disable) and calls compiled pieces
    operations: int = 0  # operations compiled code executed in the first call (worker/coverage.py)
    pieces: list[str] = field(default_factory=list)  # compiled pieces that ran in the first call
    verification: Verification | None = None  # what the rewrite was checked on, when it matched

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "facts": {k: f.to_json() for k, f in self.facts.items()}}

    @classmethod
    def from_json(cls, data: dict) -> CheckResult:
        verification = data.get("verification")
        return cls(
            **{
                **data,
                "breaks": [GraphBreak.from_json(b) for b in data.get("breaks", [])],
                "facts": {k: BreakFacts.from_json(f) for k, f in data.get("facts", {}).items()},
                "verification": verification and Verification.from_json(verification),
            }
        )


@dataclass(frozen=True)
class RepeatResult:
    difference: str  # how a second eager run differs from the reference; '' when it does not

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> RepeatResult:
        return cls(**data)


@dataclass(frozen=True)
class RecompilesResult:
    guards: list[str]  # the guard of each recompile after the first call on the same inputs

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> RecompilesResult:
        return cls(**data)


Result = TypeVar("Result", LocateResult, CheckResult, RepeatResult, RecompilesResult)


@dataclass(frozen=True)
class WorkerRequest(Generic[Result]):
    """What every request names: the target, its inputs, the project root, the reference, the overlay."""

    target: str  # a TargetSpec: "file.py:qualname" or "module:qualname"
    inputs: str | None  # the spec of the inputs callable; None: the module's example_inputs
    root: str
    reference: str | None  # the eager reference run (.pt): written by locate, read by check and repeat
    overlay: dict[str, str]  # rewritten sources by path, served instead of the files on disk

    mode: ClassVar[Mode]
    response: ClassVar[type]  # the Result type the worker answers with

    def to_json(self) -> dict:
        return {"mode": self.mode.value, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class LocateRequest(WorkerRequest[LocateResult]):
    backend: str = "aot_eager"
    apis: tuple[str, ...] = ()  # torch APIs the codemods rely on: the worker says which its torch lacks
    calls: int = DEFAULT_CALLS  # calls the reference makes on the same inputs
    derived_inputs: bool = True  # the reference also runs the inputs derived with other sizes
    mode: ClassVar[Mode] = Mode.LOCATE
    response: ClassVar[type] = LocateResult

    def __post_init__(self) -> None:
        object.__setattr__(self, "apis", tuple(self.apis))  # a JSON list after the round trip


@dataclass(frozen=True)
class CheckRequest(WorkerRequest[CheckResult]):
    backend: str = "aot_eager"
    calls: int = DEFAULT_CALLS
    rtol: float | None = None
    atol: float | None = None
    mode: ClassVar[Mode] = Mode.CHECK
    response: ClassVar[type] = CheckResult


@dataclass(frozen=True)
class RepeatRequest(WorkerRequest[RepeatResult]):
    calls: int = DEFAULT_CALLS
    rtol: float | None = None
    atol: float | None = None
    mode: ClassVar[Mode] = Mode.REPEAT
    response: ClassVar[type] = RepeatResult


@dataclass(frozen=True)
class RecompilesRequest(WorkerRequest[RecompilesResult]):
    backend: str = "aot_eager"
    calls: int = DEFAULT_CALLS
    mode: ClassVar[Mode] = Mode.RECOMPILES
    response: ClassVar[type] = RecompilesResult


Request = Union[LocateRequest, CheckRequest, RepeatRequest, RecompilesRequest]
Response = Union[LocateResult, CheckResult, RepeatResult, RecompilesResult]
_BY_MODE: dict[Mode, type] = {r.mode: r for r in (LocateRequest, CheckRequest, RepeatRequest, RecompilesRequest)}


def request_from_json(data: dict[str, Any]) -> Request:
    data = dict(data)
    return _BY_MODE[Mode(data.pop("mode"))](**data)
