"""The only module that imports rich: tables, diffs, progress and errors on the terminal."""

from __future__ import annotations

import json
import os
import sys

from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from breakfix.diffing import unified_diff
from typing import TYPE_CHECKING

from breakfix.types import RunReport

if TYPE_CHECKING:
    from breakfix.static import CheckReport

_STATUS_STYLE = {"fixed": "green", "proposed": "cyan", "resolved": "green", "needs-unsafe": "yellow", "unfixable": "red"}


class Renderer:
    """Owns the consoles: results to stdout, progress and errors to stderr."""

    def __init__(self, quiet: bool = False) -> None:
        # User text (targets, paths, Gb_types, hints) is printed as Text, never as a str: rich would
        # read "m.py:ok:" as an emoji code and brackets as markup.
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet

    def progress(self, message: str) -> None:
        if not self.quiet:
            self.err.print(Text(f"breakfix: {message}", style="dim" if self.err.is_terminal else ""))

    def error(self, message: str) -> None:
        self.err.print(Text(f"breakfix: error: {message}", style="bold red" if self.err.is_terminal else ""))

    def json(self, document: dict) -> None:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")

    def report(self, report: RunReport, root: str) -> None:
        if not report.breaks:
            self.out.print(Text(f"{report.target}: no graph breaks; compiles with fullgraph=True."))
            return
        table = Table(title=Text(f"Graph breaks in {report.target}"), show_lines=False)
        for column in ("location", "GB id", "Gb_type", "fix", "safety", "verified", "why"):
            table.add_column(column, overflow="fold")
        for item in report.breaks:
            site = item.brk.site
            table.add_row(
                *(Text(cell) for cell in (
                    f"{os.path.relpath(site.filename, root)}:{site.lineno}", item.brk.gb_id or "-", item.brk.gb_type,
                    item.fix_code or "-", item.applicability.value if item.applicability else "-")),
                Text("yes" if item.verified else "no", style="green" if item.verified else "red"),
                Text(item.why or item.status, style=_STATUS_STYLE.get(item.status, "")),
            )
        self.out.print(table)
        for change in report.changes:
            diff = unified_diff(str(change.path), change.before, change.after, root)
            if self.out.is_terminal:
                self.out.print(Syntax(diff, "diff", theme="ansi_dark", background_color="default"))
            else:
                sys.stdout.write(diff)
        self.out.print(self._summary(report))
        for item in report.breaks:
            if item.status == "unfixable" and item.brk.hints:
                self.out.print(Text(f"hint for {os.path.relpath(item.brk.site.filename, root)}:{item.brk.site.lineno}: "
                                    + " ".join(item.brk.hints[:2])))

    def findings(self, report: CheckReport) -> None:
        """``breakfix check``: one line per likely break, as linters print them (1-based columns)."""
        for f in report.findings:
            gb = f"{f.gb_id} " if f.gb_id else ""
            self.out.print(Text.assemble((f"{f.path}:{f.line}:{f.col + 1}:", "bold"), " ", (f.code, "red"),
                                         f" {f.message} [{gb}{f.gb_type}]"))
        for error in report.errors:
            self.error(error)
        files = f"{report.files} file{'s' if report.files != 1 else ''}"
        if report.findings:
            self.out.print(Text(f"Found {len(report.findings)} likely graph break(s) in {files} (static check, not "
                                "verified: `breakfix run` locates and verifies them)."))
        elif not report.errors:
            self.out.print(Text(f"No likely graph breaks in {files}."))

    @staticmethod
    def _summary(report: RunReport) -> str:
        if report.applied:
            return f"Wrote {len(report.changes)} file(s); the target compiles with fullgraph=True and matches eager."
        if report.verified and report.changes:
            return "Dry run: the rewrite above is verified (fullgraph=True, outputs and side effects equal). Rerun with --apply to write it."
        if report.changes:
            return "Not written: the rewrite above is partial; breaks remain, so it is not verified with fullgraph=True."
        return f"{report.remaining} graph break(s) remain; no verified fix."
