"""Plain data passed between the pipeline stages (and, as JSON, across the worker boundary)."""

from __future__ import annotations

import ast
import enum
import os
from dataclasses import dataclass, field
from pathlib import Path

# Our Gb_types for the breaks dynamo raises without one (and without a GB id).
DATA_DEPENDENT_GUARD = "Data-dependent guard"  # a UserError from a guard on an unbacked symbol
# dynamo's internal AssertionError on an ``assert`` whose test is a tensor (``[n, m] == [n, t]``
# with ``t`` a 0-d tensor compares to a tensor)
TENSOR_ASSERT = "Tensor-valued assert"


class OutputFormat(str, enum.Enum):
    """What a command prints on stdout (``--format``): text for people, or one JSON or SARIF document."""

    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"


class Applicability(str, enum.Enum):
    """How a fix may be used, after Ruff: safe fixes keep the exact meaning."""

    SAFE = "safe"
    UNSAFE = "unsafe"  # may change observable behaviour; written only with --unsafe-fixes
    DISPLAY_ONLY = "display-only"  # shown in the report, never written


@dataclass(frozen=True)
class TargetSpec:
    """`pkg.module:qualname` or `path/to/file.py:qualname`, as the user typed it."""

    location: str
    qualname: str

    @classmethod
    def parse(cls, text: str) -> TargetSpec:
        location, sep, qualname = text.rpartition(":")
        # A Windows drive letter ("C:\\x.py") is not a separator: require a qualname after it.
        if not sep or not location or not qualname or not qualname.replace(".", "").isidentifier():
            raise ValueError(f"expected MODULE:QUALNAME or FILE.py:QUALNAME, got {text!r}")
        return cls(location, qualname)

    @property
    def is_file(self) -> bool:
        return self.location.endswith(".py") or "/" in self.location or "\\" in self.location

    def absolute(self, base: str | os.PathLike[str]) -> TargetSpec:
        """The spec with a file location made absolute against ``base`` (links resolved); a module
        spec as it is."""
        if not self.is_file:
            return self
        return TargetSpec(os.path.realpath(os.path.join(base, self.location)), self.qualname)

    def __str__(self) -> str:
        return f"{self.location}:{self.qualname}"


@dataclass(frozen=True)
class Frame:
    """One frame of a user stack. Columns are character offsets (converted from UTF-8 bytes)."""

    filename: str
    lineno: int
    name: str
    colno: int | None = None
    end_colno: int | None = None
    line: str = ""


@dataclass
class GraphBreak:
    """One break that `torch.compile(fullgraph=True)` would hit, deduplicated on its innermost site."""

    gb_type: str
    gb_id: str | None
    reason: str
    explanation: str
    hints: list[str]
    user_stack: list[Frame]  # outermost first; the compiled frame first, the break site last
    project_stack: list[Frame]  # the frames of user_stack inside the project root

    @property
    def site(self) -> Frame:
        """The innermost frame inside the project: where a fix goes."""
        return self.project_stack[-1]

    @property
    def in_library(self) -> bool:
        return self.user_stack[-1] != self.project_stack[-1]

    @classmethod
    def from_json(cls, data: dict) -> GraphBreak:
        data = dict(data)
        data["user_stack"] = [Frame(**f) for f in data["user_stack"]]
        data["project_stack"] = [Frame(**f) for f in data["project_stack"]]
        return cls(**data)


@dataclass(frozen=True)
class Verification:
    """What a fix was verified on: calls on the example inputs (state carried from call to call,
    plus one call on fresh inputs), derived inputs of other sizes the original accepts, and the
    recompiles seen after the first call (each by the guard that failed; only ones the original
    makes too are accepted)."""

    calls: int
    derived_inputs: int
    recompiles: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict) -> Verification:
        return cls(**{**data, "recompiles": tuple(data["recompiles"])})


@dataclass
class Attempt:
    """One candidate fix tried for one break."""

    code: str
    applicability: Applicability
    verified: bool
    reason: str  # why it was skipped or why verification failed; empty when verified


class Status(str, enum.Enum):
    """How a located break ends, in the report."""

    FIXED = "fixed"  # its fix was verified and written
    PROPOSED = "proposed"  # its fix verified, not written (a dry run, or other breaks remain)
    RESOLVED = "resolved"  # no fix of its own: gone after a whole-graph fix of another break
    KEPT_EAGER = "kept-eager"  # no fix of its own: its code now runs eagerly, in a split made for another break
    NEEDS_UNSAFE = "needs-unsafe"  # only an unsafe or display-only fix exists
    UNFIXABLE = "unfixable"  # no codemod answers it, or every one was refused


class FixKind(str, enum.Enum):
    """What a verified rewrite makes of the target."""

    FULLGRAPH = "fullgraph"  # the target compiles with fullgraph=True
    SPLIT = "split"  # the target runs eagerly and calls compiled pieces; call it eagerly, never compiled


@dataclass
class BreakReport:
    """A break as it appears in the final report."""

    brk: GraphBreak
    round: int
    status: Status
    fix_code: str | None = None
    applicability: Applicability | None = None
    verified: bool = False
    why: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    kind: FixKind | None = None  # of its fix
    coverage: float | None = None  # of its fix, when a split: the share of the original's operations compiled
    verification: Verification | None = None  # what the fix was checked on, when verified

    def add_attempt(self, attempt: Attempt) -> None:
        """A break retried in a later round reports each distinct outcome once."""
        if attempt not in self.attempts:
            self.attempts.append(attempt)


@dataclass(frozen=True)
class EagerCallers:
    """A function a split turned into an eager orchestrator: whoever calls it, eagerly or from their
    own compiled code, now runs its compiled pieces, and can no longer compile it with fullgraph=True."""

    path: Path
    function: str  # its qualname
    pieces: int  # compiled pieces it calls


@dataclass
class FileChange:
    path: Path
    before: str
    after: str


@dataclass
class RunReport:
    target: str
    applied: bool
    breaks: list[BreakReport]
    changes: list[FileChange]
    rounds: int
    verified: bool  # the rewrite matches the original eagerly with no break left (see ``kind``)
    graph_count_before: int | None
    graph_count_after: int | None
    remaining: int  # breaks left in the code on disk when the command ends
    torch_version: str = ""  # the torch every fix was verified on
    torch_fallbacks: tuple[str, ...] = ()  # private torch hooks it lacks, replaced by reading the break text
    kind: FixKind | None = None  # of the verified rewrite
    coverage: float | None = None  # of a split: the share of the original's operations its pieces compile
    pieces: int = 0  # of a split: compiled pieces that run
    eager_callers: list[EagerCallers] = field(default_factory=list)  # functions a split made eager

    @property
    def exit_code(self) -> int:
        """0: no break remains on disk; 1: breaks remain (including a dry run that proposes fixes)."""
        return 0 if self.remaining == 0 else 1


# --- runtime facts the worker measures at a break, for the codemods ---------------------------------


class ValueKind(str, enum.Enum):
    """What a value at the break held when the worker ran the target eagerly."""

    TENSOR = "tensor"  # a plain torch.Tensor that does not require grad
    INDEX_TENSOR = "0-d integer tensor"  # one element, no dimension: indexes like an int
    TENSOR_GRAD = "tensor requiring grad"
    TENSOR_SUBCLASS = "parameter or tensor subclass"
    TENSORS = "list or tuple of tensors"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STR = "str"
    NONE = "None"
    DTYPE = "dtype"
    DEVICE = "device"
    INTS = "torch.Size, list or tuple of ints"
    MODULE = "nn.Module"
    OTHER = "other"


@dataclass(frozen=True)
class OpaqueOpFact:
    """What BF202 writes for the helper at the break: its custom op and derived fake kernel, or why
    there is none (``rejected``)."""

    rejected: str = ""
    helper: str = ""
    op_name: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    returns: str = ""
    fake: str = ""
    wrap: str = ""  # "", "clone" or "contiguous": what each returned tensor is passed through
    runs: int = 0


@dataclass(frozen=True)
class BreakFacts:
    """Everything measured at one break site (the innermost project frame's file and line)."""

    opaque_op: OpaqueOpFact | None = None
    # The kinds each argument of the print or log call at the site held, over every time the line
    # ran; keyed by the argument's source text as ``ast.unparse`` writes it.
    values: dict[str, tuple[ValueKind, ...]] = field(default_factory=dict)

    def kinds_of(self, source: str) -> tuple[ValueKind, ...]:
        """The kinds seen for the expression ``source`` (any formatting), or () when not measured."""
        try:
            return self.values.get(ast.unparse(ast.parse(source, mode="eval")), ())
        except SyntaxError:
            return ()

    def to_json(self) -> dict:
        return {
            "opaque_op": None if self.opaque_op is None else vars(self.opaque_op),
            "values": {k: [v.value for v in kinds] for k, kinds in self.values.items()},
        }

    @classmethod
    def from_json(cls, data: dict) -> BreakFacts:
        opaque = data.get("opaque_op")
        return cls(
            opaque_op=None if opaque is None else OpaqueOpFact(**opaque),
            values={k: tuple(ValueKind(v) for v in kinds) for k, kinds in data.get("values", {}).items()},
        )
