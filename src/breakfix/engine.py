"""The pipeline: locate -> classify -> rewrite -> verify -> write. Never prints.

Every rewrite lives in an in-memory overlay (path -> source) until the whole overlay is verified:
it matches the original eager run with no break left, either as a whole graph (the target compiles
with ``fullgraph=True``) or as a split (the target runs eagerly and calls compiled pieces, which
must compile at least ``--min-coverage`` of the original's operations). A candidate fix is
kept only when a fresh worker shows it still matches the reference and its break is gone; a
target is written only when nothing is left (all or nothing: a partly fixed target is shown, never
written, so an unfixable target is never touched).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from libcst.codemod import CodemodContext, TransformResult, TransformSuccess, transform_module

from breakfix import classifier, writer
from breakfix.codemods import BY_CODE, BreakfixCodemod, FixRequest
from breakfix.codemods._orchestration import eager_original_lines, new_orchestrators
from breakfix.errors import CannotVerify, TargetError
from breakfix.locator import RunOptions, locate
from breakfix.project import is_project_file
from breakfix.torch_apis import unavailable
from breakfix.types import (
    Applicability,
    Attempt,
    BreakFacts,
    BreakReport,
    FileChange,
    FixKind,
    Frame,
    GraphBreak,
    RunReport,
    Status,
)
from breakfix.verifier import check, original_recompiles, repeat
from breakfix.worker.coverage import statement_span
from breakfix.worker.protocol import CheckResult, LocateResult

Progress = Callable[[str], None]
REPAIR_DEPTH = 4  # how many breaks revealed one inside another's rewrite are repaired before giving up


def _moved_breaks(outcome: CheckResult, path: str, old_lines: set[str], request: FixRequest) -> list[GraphBreak]:
    """The breaks of a rewrite of ``path`` that sit on lines it wrote. A rewrite that only moves
    the break (wrapping the failing call) leaves one there; breaks revealed in untouched code, or
    in code moved into a compiled piece, sit on lines that existed before. A break located before
    the rewrite, of the same type at the same line of the same function, is that break (the
    rewrite changed its line's text), not one moved."""
    located_before = {(o.site.filename, o.site.lineno, o.site.name, o.gb_type) for o in request.other_breaks}
    return [
        b
        for b in outcome.breaks
        if b.site.filename == path
        and b.site.line not in old_lines
        and (b.site.filename, b.site.lineno, b.site.name, b.gb_type) not in located_before
    ]


@dataclass(frozen=True)
class _Fix:
    """A verified rewrite: the whole overlay with it, its check, and the reports of the breaks it
    revealed and repaired on the way."""

    overlay: dict[str, str]
    outcome: CheckResult
    repairs: list[BreakReport]


@dataclass(frozen=True)
class _RepairRefused:
    """Why the break a candidate rewrite revealed could not be repaired on top of it."""

    reason: str


_RESUME_FUNCTION = re.compile(r"^torch_dynamo_resume_in_(?P<name>.+)_at_\d+$")


def _identity(brk: GraphBreak) -> tuple[str, ...]:
    """A break's identity across rewrites: line numbers shift; the site's type, function and text
    do not (dynamo names a function resumed after a break ``torch_dynamo_resume_in_<fn>_at_<N>``).
    The compiled frame's statement is part of it: one helper reached from two statements breaks
    twice, and keeping the first statement eager leaves the second."""
    resumed = _RESUME_FUNCTION.match(brk.site.name)
    function = resumed["name"] if resumed else brk.site.name
    return (brk.gb_type, brk.site.filename, function, brk.site.line, brk.project_stack[0].line)


def disk_line(located_source: str, disk_source: str, lineno: int) -> int:
    """The line of the file as on disk that line ``lineno`` of a rewrite of it came from. Lines the
    rewrite left in place map by a line diff; a line it moved (into a compiled piece) maps to the
    line on disk with the same text nearest to where the diff puts it; a line it wrote maps to the
    start of the code it replaced."""
    located, disk = located_source.splitlines(), disk_source.splitlines()
    index = lineno - 1
    if not 0 <= index < len(located):
        return lineno
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, located, disk, autojunk=False).get_opcodes():
        if not i1 <= index < i2:
            continue
        if tag == "equal":
            return j1 + index - i1 + 1
        text = located[index].strip()
        same_text = [j for j, line in enumerate(disk) if line.strip() == text]
        nearest = min(same_text, key=lambda j: abs(j - (j1 + index - i1)), default=j1)
        return min(nearest, len(disk) - 1) + 1
    return lineno


_STATUS_RANK = {
    Status.FIXED: 0,
    Status.PROPOSED: 0,
    Status.NEEDS_UNSAFE: 1,
    Status.UNFIXABLE: 2,
    Status.KEPT_EAGER: 3,
    Status.RESOLVED: 3,
}


def one_report_per_site(reports: list[BreakReport]) -> list[BreakReport]:
    """A break located again in a rewrite (a split moves it into a compiled piece) is the break on
    disk it came from: one report per site, the one that says most (a fix over "gone"), in the
    place of the first."""
    kept: dict[tuple, BreakReport] = {}
    for report in reports:
        key = (report.brk.gb_type, report.brk.site.filename, report.brk.site.lineno)
        if key not in kept or _STATUS_RANK[report.status] < _STATUS_RANK[kept[key].status]:
            kept[key] = report
    return list(kept.values())


def _place_in(path: str, brk: GraphBreak, root: Path) -> str:
    """``file:line`` of the break's frame in ``path`` (the file a codemod rewrites), or the file alone."""
    real = os.path.realpath(path)
    line = next((f.lineno for f in reversed(brk.project_stack) if os.path.realpath(f.filename) == real), None)
    relative = os.path.relpath(path, root)
    return f"{relative}:{line}" if line is not None else relative


def apply_codemod(
    codemod: type[BreakfixCodemod], request: FixRequest, path: str, source: str
) -> tuple[BreakfixCodemod, TransformResult]:
    """Run one codemod on ``source`` (the text of ``path``) in memory: the instance, whose
    ``applicability`` and ``changes`` are read after the transform, and LibCST's result (a success,
    a ``SkipFile`` as a skip, any other exception as a failure)."""
    instance = codemod(CodemodContext(filename=path), request)
    return instance, transform_module(instance, source)


class Engine:
    def __init__(self, options: RunOptions, unsafe_fixes: bool, max_rounds: int, progress: Progress) -> None:
        self.options = options
        self.unsafe_fixes = unsafe_fixes
        self.max_rounds = max_rounds
        self.progress = progress
        self.root = Path(os.path.realpath(options.root))
        self.overlay: dict[str, str] = {}
        self.on_disk: dict[str, str] = {}  # each touched file as read, to diff and to detect changes
        self.reproducible = False  # a second eager run of the target matched the reference
        self.original_recompiles: list[str] | None = None  # asked once, when a rewrite recompiles
        self.revealed: list[BreakReport] = []  # breaks a kept rewrite revealed, repaired with it
        self.torch_version = ""  # the workers' torch, and the APIs it lacks that some codemod relies on
        self.missing_apis: frozenset[str] = frozenset()
        self.located: LocateResult | None = None  # the original, as located (its compiled operations)
        self.break_statements: set[tuple[str, int]] = set()  # (file, line) of the statements holding its breaks
        self.final: CheckResult | None = None  # the check of the last rewrite kept
        self.kept_codes: list[str] = []  # the codemods of the last rewrite kept (its fix and repairs)

    def run(self, apply: bool) -> RunReport:
        with tempfile.TemporaryDirectory(prefix="breakfix-") as tmp:
            reference = str(Path(tmp, "reference.pt"))
            self.progress(f"locating graph breaks in {self.options.target}")
            found = locate(self.options, {}, reference)
            self.torch_version, self.missing_apis = found.torch_version, frozenset(found.missing_apis)
            self.located = found
            self.break_statements = {
                (file, line)
                for b in found.breaks
                for file, first, last in [statement_span(b.site.filename, b.site.lineno)]
                for line in range(first, last + 1)
            }
            if not is_project_file(found.target_file, self.root):
                # Breaks are only collected at frames inside the root: "no graph breaks" would be a guess.
                raise TargetError(
                    f"the target is defined in {found.target_file}, outside the project root "
                    f"{self.root}: its breaks can be neither located nor fixed (see --root)"
                )
            reports, verified, graph_count_after, rounds = self._fix_all(found, reference)
        changes = [FileChange(Path(p), self.on_disk[p], s) for p, s in self.overlay.items() if s != self.on_disk[p]]
        written = bool(changes) and verified and apply
        if written:
            writer.write_all(changes)
        final = self.final if verified else None
        target = (os.path.realpath(found.target_file), found.target_qualname)  # its kind is the report's own
        kind = None if final is None else (FixKind.SPLIT if final.split else FixKind.FULLGRAPH)
        coverage = self._coverage(final, self.overlay) if final is not None and final.split else None
        for report in reports:
            if report.status is Status.PROPOSED and written:
                report.status = Status.FIXED
            elif report.status is Status.PROPOSED and not verified:
                report.verified = False
                report.why = "matches eager, but other breaks remain, so the rewrite is not verified; not written"
            if kind is not None and report.status in (Status.FIXED, Status.PROPOSED):
                # A fix is part of the rewrite as verified: whole graph only if the target is.
                report.kind, report.coverage = kind, coverage
        remaining = 0 if (not found.breaks or written) else len(found.breaks)
        return RunReport(
            target=self.options.target,
            applied=written,
            breaks=reports,
            changes=changes,
            rounds=rounds,
            verified=verified,
            graph_count_before=found.graph_count,
            graph_count_after=graph_count_after if verified else None,
            remaining=remaining,
            kind=kind,
            coverage=coverage,
            pieces=len(final.pieces) if final is not None and final.split else 0,
            eager_callers=[
                caller
                for c in changes
                if kind is FixKind.SPLIT
                for caller in new_orchestrators(c.path, c.before, c.after)
                if (os.path.realpath(caller.path), caller.function) != target
            ],
            torch_version=found.torch_version,
            torch_fallbacks=found.torch_fallbacks,
        )

    def _fix_all(self, found: LocateResult, reference: str) -> tuple[list[BreakReport], bool, int | None, int]:
        """Fix breaks round by round; True when the final overlay is verified with no break left."""
        breaks, facts = found.breaks, found.facts
        reports: dict[tuple, BreakReport] = {}
        hidden_by: dict[tuple, str] = {}  # breaks that vanished into a split's eager code: by the split's code
        verified, graph_count, rounds = not breaks, None, 0
        while breaks and rounds < self.max_rounds:
            rounds += 1
            progressed = False
            tried: set[tuple] = set()
            while True:
                for brk in breaks:  # every break found is reported, including ones a fix removes first
                    reports.setdefault(
                        _identity(brk),
                        BreakReport(brk=self._on_disk(brk, self.overlay), round=rounds, status=Status.UNFIXABLE),
                    )
                pending = [b for b in breaks if _identity(b) not in tried]
                if not pending:
                    break
                brk = pending[0]
                tried.add(_identity(brk))
                report = reports[_identity(brk)]
                request = FixRequest(
                    brk=brk,
                    target_file=found.target_file,
                    target_qualname=found.target_qualname,
                    facts=facts.get(f"{brk.site.filename}:{brk.site.lineno}", BreakFacts()),
                    sources=dict(self.overlay),
                    other_breaks=tuple(b for b in breaks if b is not brk),
                    piece_options=self.options.piece_options,
                )
                outcome = self._fix_one(request, report, reference)
                if outcome is None:
                    continue
                progressed = True
                split = next((code for code in self.kept_codes if BY_CODE[code].CATCH_ALL), None)
                if split is not None:
                    after = {_identity(b) for b in outcome.breaks}
                    hidden_by.update(
                        {_identity(b): split for b in breaks if b is not brk and _identity(b) not in after}
                    )
                verified, graph_count, self.final = outcome.complete, outcome.graph_count, outcome
                breaks, facts = outcome.breaks, outcome.facts
            if not progressed:
                break
        left = {_identity(b) for b in breaks}
        for key, report in reports.items():
            if report.status in (Status.UNFIXABLE, Status.NEEDS_UNSAFE) and key not in left:
                report.fix_code, report.applicability = None, None
                if key in hidden_by:
                    # Not fixed: its code no longer runs compiled.
                    report.status = Status.KEPT_EAGER
                    report.why = (
                        f"kept eager by {hidden_by[key]}: its code now runs eagerly, outside the compiled pieces"
                    )
                else:
                    # e.g. the second report of a break dynamo hit again in its resume function
                    report.status = Status.RESOLVED
                    report.why = "gone after the fix of another break"
            elif report.status is Status.UNFIXABLE and not report.why:
                report.why = "; ".join(a.reason for a in report.attempts) or (
                    "no codemod answers this break"
                    if classifier.candidates(report.brk)
                    else f"not tried: --max-rounds {self.max_rounds} reached"
                )
        return one_report_per_site([*reports.values(), *self.revealed]), verified, graph_count, rounds

    def _fix_one(self, request: FixRequest, report: BreakReport, reference: str) -> CheckResult | None:
        """Fix one break on top of the overlay; the check of the kept rewrite, or None."""
        fix = self._find_fix(request, report, reference, self.overlay, classifier.candidates(request.brk), REPAIR_DEPTH)
        if fix is None:
            return None
        self.overlay = fix.overlay
        self.kept_codes = [code for r in (report, *fix.repairs) if (code := r.fix_code)]
        for repair in fix.repairs:
            repair.round = report.round
        self.revealed += fix.repairs
        return fix.outcome

    def _find_fix(
        self,
        request: FixRequest,
        report: BreakReport,
        reference: str,
        base: dict[str, str],
        codemods: list[type[BreakfixCodemod]],
        repairs_left: int,
    ) -> _Fix | None:
        """The first of ``codemods`` whose rewrite of ``base`` removes the break and matches the
        reference. A rewrite the compiler fails on at a project line (it made the compiler trace
        code it never traced before) is repaired by fixing that revealed break on top of it, up to
        ``repairs_left`` deep; the two are kept only if they verify together."""
        brk = request.brk
        for codemod in codemods:
            lacking = [api for api in codemod.REQUIRES if api in self.missing_apis]
            if lacking:  # not offered on this torch; the report says what it needs
                report.add_attempt(
                    Attempt(
                        codemod.CODE,
                        codemod.APPLICABILITY,
                        False,
                        unavailable(codemod.CODE, lacking, self.torch_version),
                    )
                )
                continue
            path = codemod.file_to_edit(request)
            if not is_project_file(path, self.root):
                report.add_attempt(
                    Attempt(codemod.CODE, codemod.APPLICABILITY, False, f"{path} is outside the project root")
                )
                continue
            self.progress(f"trying {codemod.CODE} on {_place_in(path, brk, self.root)}")
            source = base[path] if path in base else self._source(path)
            instance, result = apply_codemod(codemod, request, path, source)
            if not isinstance(result, TransformSuccess) or result.code == source:
                why = (
                    getattr(result, "skip_description", "") or str(getattr(result, "error", "")) or "nothing to change"
                )
                report.add_attempt(Attempt(codemod.CODE, instance.applicability, False, why))
                continue
            if instance.applicability is Applicability.DISPLAY_ONLY or (
                instance.applicability is Applicability.UNSAFE and not self.unsafe_fixes
            ):
                why = (
                    f"unsafe fix available with --unsafe-fixes: {instance.changes}"
                    if instance.applicability is Applicability.UNSAFE
                    else "display-only fix"
                )
                report.add_attempt(Attempt(codemod.CODE, instance.applicability, False, why))
                if report.status is Status.UNFIXABLE:
                    report.status, report.fix_code, report.applicability = (
                        Status.NEEDS_UNSAFE,
                        codemod.CODE,
                        instance.applicability,
                    )
                    report.why = why
                continue
            trial = {**base, path: result.code}
            self.progress(f"verifying {codemod.CODE} in a fresh worker")
            outcome = check(self.options, trial, reference)
            repairs: list[BreakReport] = []
            old_lines = {line.strip() for line in source.splitlines()}
            # A break on a line the rewrite wrote may be one the line held beside the one fixed (a
            # conditional expression around a rewritten subscript): it is repaired like a break the
            # compiler failed on, and counts as moved only when no verified repair removes it.
            moved = _moved_breaks(outcome, path, old_lines, request)
            if outcome.breaks and repairs_left and (not outcome.ok or moved):
                revealed = moved[0] if outcome.ok else outcome.breaks[0]
                repaired = self._repair(request, codemod, trial, outcome, revealed, reference, repairs_left - 1)
                if isinstance(repaired, _Fix):
                    trial, outcome, repairs = repaired.overlay, repaired.outcome, repaired.repairs
                elif isinstance(repaired, _RepairRefused) and not outcome.ok:
                    outcome = CheckResult(ok=False, fullgraph=False, reason=f"{outcome.reason}; {repaired.reason}")
                moved = _moved_breaks(outcome, path, old_lines, request)
            if outcome.mismatch:
                self._require_reproducible(reference)
            outcome = self._no_new_recompiles(outcome)
            # The same break reached through a statement the rewrite wrote is still the same break.
            gone = outcome.ok and not any(
                _identity(b)[:-1] == _identity(brk)[:-1]
                and (b.project_stack[0].line == brk.project_stack[0].line or b.project_stack[0].line not in old_lines)
                for b in outcome.breaks
            )
            if not gone or moved:
                why = outcome.reason or (
                    f"the rewrite moved the break to a line it wrote ({moved[0].gb_type})"
                    if moved
                    else "the break is still there after the rewrite"
                )
                report.add_attempt(Attempt(codemod.CODE, instance.applicability, False, why))
                continue
            refusal = self._split_refusal(outcome, trial)
            if refusal:
                report.add_attempt(Attempt(codemod.CODE, instance.applicability, False, refusal))
                continue
            report.add_attempt(Attempt(codemod.CODE, instance.applicability, True, ""))
            report.status, report.fix_code, report.applicability = Status.PROPOSED, codemod.CODE, instance.applicability
            report.verified, report.why, report.verification = True, instance.changes, outcome.verification
            return _Fix(trial, outcome, repairs)
        return None

    def _coverage(self, outcome: CheckResult, overlay: dict[str, str]) -> float:
        """The share of the original's compiled operations a split's pieces compile (at most 1).
        What the statements the split keeps eager compute themselves is left out of the original's
        count (the break's statement, and the calls of functions the split made eager): no split
        compiles those. What the functions they call compute is counted."""
        eager = set(self.break_statements)
        for path, text in overlay.items():
            if text != self.on_disk[path]:
                real = os.path.realpath(path)
                eager |= {(real, line) for line in eager_original_lines(self.on_disk[path], text)}
        assert self.located is not None
        compilable = self.located.operations - sum(
            count for file, line, count in self.located.operations_by_line if (file, line) in eager
        )
        if compilable <= 0:
            return 1.0 if outcome.operations else 0.0
        return min(1.0, outcome.operations / compilable)

    def _split_refusal(self, outcome: CheckResult, overlay: dict[str, str]) -> str:
        """Why a rewrite that leaves the target eager is no fix: its pieces compile too little of the
        work ('' when it is a fix). Judged once no break is left: while breaks remain, a piece
        holding one may run its frame eagerly and count nothing."""
        if not (outcome.split and outcome.complete):
            return ""
        coverage = self._coverage(outcome, overlay)
        if coverage < self.options.min_coverage:
            return (
                f"the split compiles {coverage:.0%} of the original's operations, below --min-coverage "
                f"{self.options.min_coverage:g}"
            )
        return ""

    def _repair(
        self,
        request: FixRequest,
        candidate: type[BreakfixCodemod],
        trial: dict[str, str],
        outcome: CheckResult,
        revealed: GraphBreak,
        reference: str,
        repairs_left: int,
    ) -> _Fix | _RepairRefused | None:
        """Fix the break a candidate rewrite revealed, on top of it: the fix of both, or why not
        (None when there is nothing to repair: the same break, or no fix made for it)."""
        code = candidate.CODE
        report = BreakReport(brk=self._on_disk(revealed, trial), round=0, status=Status.UNFIXABLE)
        # A split (a last resort) whose compiled piece fails is split again, as a later round would;
        # a specific fix is repaired only by fixes made for the revealed break: a split would keep
        # part of it eager (half of a torch.cond).
        codemods = [c for c in classifier.candidates(revealed) if candidate.CATCH_ALL or not c.CATCH_ALL]
        if _identity(revealed)[:-1] == _identity(request.brk)[:-1] or not codemods:
            return None
        self.progress(
            f"{code}'s rewrite reveals a break at {os.path.relpath(revealed.site.filename, self.root)}:"
            f"{revealed.site.lineno}: repairing it"
        )
        repair_request = FixRequest(
            brk=revealed,
            target_file=request.target_file,
            target_qualname=request.target_qualname,
            facts=outcome.facts.get(f"{revealed.site.filename}:{revealed.site.lineno}", BreakFacts()),
            sources=dict(trial),
            piece_options=request.piece_options,
        )
        fix = self._find_fix(repair_request, report, reference, trial, codemods, repairs_left)
        if fix is None:
            tried = "; ".join(f"{a.code}: {a.reason}" for a in report.attempts)
            return _RepairRefused(f"no repair of the break it reveals ({tried})")
        report.why = f"revealed by {code}'s rewrite" + (f": {report.why}" if report.why else "")
        return _Fix(fix.overlay, fix.outcome, [report, *fix.repairs])

    def _require_reproducible(self, reference: str) -> None:
        """A rewrite that behaves differently from the reference may not be at fault: if a second
        eager run of the original differs too, the target is nondeterministic and nothing can be
        verified. Asked once per run, and only after a mismatch, so deterministic targets whose
        fixes verify pay nothing."""
        if self.reproducible:
            return
        self.progress("a rewrite did not match: checking that the target repeats its own results")
        difference = repeat(self.options, reference)
        if difference:
            raise CannotVerify(
                f"cannot verify: the target is nondeterministic (two eager runs with the same "
                f"seeds differ: {difference})"
            )
        self.reproducible = True

    def _on_disk(self, brk: GraphBreak, located_in: dict[str, str]) -> GraphBreak:
        """The break as the report shows it: its frames at lines of the files as the user has them,
        not of the rewrite ``located_in`` it was located in (which may have lines the file lacks)."""

        def frame(f: Frame) -> Frame:
            if f.filename not in located_in or located_in[f.filename] == self.on_disk[f.filename]:
                return f
            return dataclasses.replace(f, lineno=disk_line(located_in[f.filename], self.on_disk[f.filename], f.lineno))

        return dataclasses.replace(
            brk, user_stack=[frame(f) for f in brk.user_stack], project_stack=[frame(f) for f in brk.project_stack]
        )

    def _no_new_recompiles(self, outcome: CheckResult) -> CheckResult:
        """``outcome``, or a refusal when the rewrite recompiles after its first call more often
        than the original compiled with breaks allowed does (asked once per run, and only when a
        rewrite recompiles: most never do)."""
        if not (outcome.ok and outcome.complete and outcome.verification and outcome.verification.recompiles):
            return outcome
        if self.original_recompiles is None:
            self.progress("the rewrite recompiles: counting the original's recompiles")
            self.original_recompiles = original_recompiles(self.options)
        guards = outcome.verification.recompiles
        if len(guards) <= len(self.original_recompiles):
            return outcome
        return CheckResult(
            ok=False,
            fullgraph=False,
            reason=(
                f"the rewrite recompiles {len(guards)} times in {outcome.verification.calls} calls on the same inputs "
                f"(guard on `{guards[-1]}`), the original {len(self.original_recompiles)} times"
            ),
        )

    def _source(self, path: str) -> str:
        if path not in self.overlay:
            self.on_disk[path] = self.overlay[path] = writer.read_source(path)
        return self.overlay[path]
