"""The only module that imports rich: tables, diffs, progress and errors on the terminal."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from breakfix.batch import BatchEvents, TargetJob, TargetOutcome
from breakfix.codemods import BY_CODE, BreakfixCodemod
from breakfix.diffing import unified_diff
from breakfix.docs import family
from breakfix.types import BreakReport, FixKind, RunReport, Status, Verification

if TYPE_CHECKING:
    from breakfix.static import CheckReport

_STATUS_STYLE = {
    Status.FIXED: "green",
    Status.PROPOSED: "cyan",
    Status.RESOLVED: "green",
    Status.KEPT_EAGER: "yellow",
    Status.NEEDS_UNSAFE: "yellow",
    Status.UNFIXABLE: "red",
}


class Renderer:
    """Owns the consoles: results to stdout, progress and errors to stderr."""

    def __init__(self, quiet: bool = False, verbose: bool = False) -> None:
        # User text (targets, paths, Gb_types, hints) is printed as Text, never as a str: rich would
        # read "m.py:ok:" as an emoji code and brackets as markup.
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet
        self.verbose = verbose  # full refusal reasons in the break table

    def progress(self, message: str) -> None:
        if not self.quiet:
            self.err.print(Text(f"breakfix: {message}", style="dim" if self.err.is_terminal else ""))

    def error(self, message: str) -> None:
        self.err.print(Text(f"breakfix: error: {message}", style="bold red" if self.err.is_terminal else ""))

    def json(self, document: dict) -> None:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")

    def page(self, markdown: str) -> None:
        """A documentation page: rendered on a terminal, the Markdown source itself through a pipe."""
        if self.out.is_terminal:
            self.out.print(Markdown(markdown))
        else:
            sys.stdout.write(markdown if markdown.endswith("\n") else markdown + "\n")

    def catalogue(
        self, codemods: tuple[type[BreakfixCodemod], ...], availability: dict[str, str], torch_version: str
    ) -> None:
        """`breakfix codemods`: one row per codemod, in the order the classifier tries them, with
        whether the installed torch offers it (``availability``: code -> "yes" or what it needs)."""
        table = Table(title=f"breakfix codemods on torch {torch_version} (breakfix explain CODE for one page)")
        # Long lists of GB ids wrap (six to a line), so that a wide terminal keeps each fix's title on one line.
        for column in ("code", "fix", "family", "applicability", "GB ids", f"available on {torch_version}"):
            table.add_column(column, overflow="fold", max_width=48 if column == "GB ids" else None)
        for codemod in codemods:
            gb_ids = ", ".join(sorted(codemod.GB_IDS)) or "-"
            if codemod.CATCH_ALL:
                gb_ids += " (and any break, last)"
            available = availability[codemod.CODE]
            table.add_row(
                *(
                    Text(cell)
                    for cell in (
                        codemod.CODE,
                        codemod.FIX_TITLE,
                        family(codemod),
                        codemod.APPLICABILITY.value,
                        gb_ids,
                    )
                ),
                Text(available, style="green" if available == "yes" else "red"),
            )
        self.out.print(table)

    def torch_notes(self, report: RunReport) -> None:
        """``--verbose``: the torch the fixes were verified on, and the private hooks it lacks (on stderr)."""
        self.err.print(Text(f"breakfix: {report.target}: verified on torch {report.torch_version}"))
        for fallback in report.torch_fallbacks:
            self.err.print(Text(f"breakfix: {report.target}: torch {report.torch_version} lacks {fallback}"))

    def report(self, report: RunReport, root: str) -> None:
        if not report.breaks:
            self.out.print(Text(f"{report.target}: no graph breaks; compiles with fullgraph=True."))
            return
        if self.out.is_terminal:
            self._break_table(report, root)
        else:  # a pipe or a file: one plain line per break, never wrapped mid-word
            self.out.print(Text(f"Graph breaks in {report.target}:"))
            for item in report.breaks:
                verified = "verified" if item.verified else "not verified"
                fix = (
                    f"{item.fix_code} ({_kind(item)}, {item.applicability.value}, {verified})"
                    if item.fix_code and item.applicability
                    else "no fix"
                )
                self.out.print(
                    Text(
                        f"{_location(item, root)}: {item.brk.gb_id or '-'} {item.brk.gb_type}: {fix}: "
                        + "; ".join(self._why(item))
                    )
                )
        for change in report.changes:
            diff = unified_diff(str(change.path), change.before, change.after, root)
            if self.out.is_terminal:
                self.out.print(Syntax(diff, "diff", theme="ansi_dark", background_color="default"))
            else:
                sys.stdout.write(diff)
        for item in report.breaks:
            if item.verified and item.verification:
                self.out.print(
                    Text(
                        f"{os.path.relpath(item.brk.site.filename, root)}:{item.brk.site.lineno} "
                        f"{item.fix_code}: {_checked_on(item.verification)}"
                    )
                )
        self.out.print(self._summary(report))
        if not self.verbose and any(_shorten(a.reason) != a.reason for item in report.breaks for a in item.attempts):
            self.out.print(Text("Refusal reasons are shortened; --verbose prints them whole."))
        for caller in report.eager_callers:
            self.out.print(
                Text(
                    f"{os.path.relpath(caller.path, root)}: {caller.function} now runs eagerly and calls {caller.pieces} "
                    f"compiled piece(s): every caller of it runs them, and none can compile it with fullgraph=True. "
                    f"Paths through it that the example inputs did not take are not verified."
                )
            )
        for item in report.breaks:
            if item.status is Status.UNFIXABLE and item.brk.hints:
                self.out.print(Text(f"hint for {_location(item, root)}: " + " ".join(item.brk.hints[:2])))

    def _break_table(self, report: RunReport, root: str) -> None:
        table = Table(title=Text(f"Graph breaks in {report.target}"), show_lines=False)
        for column in ("location", "GB id", "Gb_type", "fix", "kind", "safety", "verified", "why"):
            table.add_column(column, overflow="fold")
        for item in report.breaks:
            table.add_row(
                *(
                    Text(cell)
                    for cell in (
                        _location(item, root),
                        item.brk.gb_id or "-",
                        item.brk.gb_type,
                        item.fix_code or "-",
                        _kind(item),
                        item.applicability.value if item.applicability else "-",
                    )
                ),
                Text("yes" if item.verified else "no", style="green" if item.verified else "red"),
                Text("\n".join(self._why(item)), style=_STATUS_STYLE.get(item.status, "")),
            )
        self.out.print(table)

    def _why(self, item: BreakReport) -> list[str]:
        """The status or why, then each fix tried and refused before the one kept, with its reason
        (shortened unless --verbose): a split for one ``print`` says why the targeted fix was not used."""
        refused = [
            f"{a.code} refused: {a.reason if self.verbose else _shorten(a.reason)}"
            for a in item.attempts
            if not a.verified
            and a.code != item.fix_code
            and a.reason != item.why
            and (self.verbose or not BY_CODE[a.code].CATCH_ALL)
        ]  # a last resort's refusal: --verbose
        return [item.why or item.status.value, *refused]

    def findings(self, report: CheckReport) -> None:
        """``breakfix check``: one line per likely break, as linters print them (1-based columns)."""
        for f in report.findings:
            gb = f"{f.gb_id} " if f.gb_id else ""
            self.out.print(
                Text.assemble(
                    (f"{f.path}:{f.line}:{f.col + 1}:", "bold"), " ", (f.code, "red"), f" {f.message} [{gb}{f.gb_type}]"
                )
            )
        for error in report.errors:
            self.error(error)
        files = f"{report.files} file{'s' if report.files != 1 else ''}"
        if report.findings:
            self.out.print(
                Text(
                    f"Found {len(report.findings)} likely graph break(s) in {files} (static check, not "
                    "verified: `breakfix run` locates and verifies them)."
                )
            )
        elif not report.errors:
            self.out.print(Text(f"No likely graph breaks in {files}."))

    @contextlib.contextmanager
    def batch_progress(self, total: int) -> Iterator[BatchEvents]:
        """Progress of several targets: a live display on a terminal, plain lines otherwise."""
        if self.quiet or not self.err.is_terminal:
            yield _PlainBatchEvents(self, total)
            return
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.err) as progress:
            yield _LiveBatchEvents(progress, total)

    def batch_report(self, outcomes: list[TargetOutcome], root: str) -> None:
        for outcome in outcomes:
            if outcome.report:
                self.report(outcome.report, root)
            else:
                self.error(f"{outcome.job.target}: {outcome.error}")
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome_status(outcome)] = counts.get(outcome_status(outcome), 0) + 1
        self.out.print(Text(f"{len(outcomes)} targets: " + ", ".join(f"{n} {status}" for status, n in counts.items())))

    @staticmethod
    def _summary(report: RunReport) -> str:
        if report.kind is FixKind.SPLIT:
            split = (
                f"as a split: {report.target} now runs eagerly and calls {report.pieces} compiled piece(s) "
                f"covering {report.coverage:.0%} of the operations; outputs and side effects match eager. "
                f"Call it eagerly; do not wrap it in torch.compile."
            )
            if report.applied:
                return f"Wrote {len(report.changes)} file(s) {split}"
            return f"Dry run: the rewrite above is verified {split} Rerun with --apply to write it."
        if report.applied:
            return f"Wrote {len(report.changes)} file(s); the target compiles with fullgraph=True and matches eager."
        if report.verified and report.changes:
            return "Dry run: the rewrite above is verified (fullgraph=True, outputs and side effects equal). Rerun with --apply to write it."
        if report.changes:
            return "Not written: the rewrite above is partial; breaks remain, so it is not verified."
        return f"{report.remaining} graph break(s) remain; no verified fix."


REASON_WIDTH = 72  # characters of a refusal reason shown without --verbose


def _shorten(reason: str) -> str:
    first = reason.splitlines()[0] if reason else ""
    if len(first) <= REASON_WIDTH and first == reason:
        return reason
    return first[:REASON_WIDTH].rsplit(" ", 1)[0].rstrip(",;:") + " …"


def _location(item: BreakReport, root: str) -> str:
    return f"{os.path.relpath(item.brk.site.filename, root)}:{item.brk.site.lineno}"


def _checked_on(verification: Verification) -> str:
    """What a fix was verified on, in a few words."""
    derived = verification.derived_inputs
    recompiles = ", ".join(f"`{guard}`" for guard in verification.recompiles) or "none"
    return (
        f"verified on {verification.calls} calls on the same inputs and one on fresh inputs, "
        f"{derived} derived input{'' if derived == 1 else 's'} of other sizes; recompiles after the first call: "
        f"{recompiles}"
    )


def _kind(item: BreakReport) -> str:
    if item.kind is FixKind.SPLIT and item.coverage is not None:
        return f"split {item.coverage:.0%}"
    return item.kind.value if item.kind else "-"


def outcome_status(outcome: TargetOutcome) -> str:
    """A few words on how one target of several ended."""
    report = outcome.report
    if report is None:
        return "error"
    if report.applied:
        return "fixed"
    if not report.breaks:
        return "clean"
    if report.verified and report.changes:
        return "fix verified (dry run)"
    return "breaks remain"


class _PlainBatchEvents:
    """One line per event on stderr: for logs and pipes (silent under --json)."""

    def __init__(self, renderer: Renderer, total: int) -> None:
        self.renderer, self.total, self.done = renderer, total, 0
        self.lock = threading.Lock()

    def started(self, job: TargetJob) -> None:
        pass  # its first progress line says it started

    def progress(self, job: TargetJob, message: str) -> None:
        self.renderer.progress(f"{job.target}: {message}")

    def finished(self, outcome: TargetOutcome) -> None:
        with self.lock:
            self.done += 1
            done = self.done
        detail = f": {outcome.error}" if outcome.error else ""
        self.renderer.progress(
            f"[{done}/{self.total}] {outcome.job.target}: {outcome_status(outcome)}{detail} ({outcome.seconds:.1f}s)"
        )


class _LiveBatchEvents:
    """A rich display: the overall bar, and one line per target being worked on."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.live = progress
        self.overall = progress.add_task("targets", total=total)
        self.tasks: dict[TargetJob, object] = {}
        self.lock = threading.Lock()

    def started(self, job: TargetJob) -> None:
        with self.lock:
            self.tasks[job] = self.live.add_task(f"{job.target}: starting", total=None)

    def progress(self, job: TargetJob, message: str) -> None:
        with self.lock:
            self.live.update(self.tasks[job], description=f"{job.target}: {message}")

    def finished(self, outcome: TargetOutcome) -> None:
        style = {"fixed": "green", "clean": "green", "error": "red"}.get(outcome_status(outcome), "yellow")
        with self.lock:
            self.live.remove_task(self.tasks.pop(outcome.job))
            self.live.advance(self.overall)
            self.live.console.print(
                Text(f"{outcome.job.target}: {outcome_status(outcome)} ({outcome.seconds:.1f}s)", style=style)
            )
