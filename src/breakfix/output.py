"""What a command prints on stdout, one writer per ``--format``: chosen once (``writer_for``), then
given each result. Text goes through the renderer's tables and lines; JSON and SARIF are one
document each, printed by the renderer too (render.py stays the only module that imports rich)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from breakfix import report_json, sarif
from breakfix.render import Renderer
from breakfix.types import OutputFormat, RunReport

if TYPE_CHECKING:
    from breakfix.batch import TargetOutcome
    from breakfix.static import CheckReport


class ReportWriter(ABC):
    """Prints the result of ``breakfix run`` (one target or several) and ``breakfix check``, and the
    document of a failed command (after the one-line error on stderr)."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer

    @abstractmethod
    def run(self, report: RunReport, root: str) -> None: ...

    @abstractmethod
    def batch(self, outcomes: list[TargetOutcome], root: str) -> None: ...

    @abstractmethod
    def check(self, report: CheckReport, root: str) -> None: ...

    @abstractmethod
    def failure(self, message: str, exit_code: int) -> None: ...


class TextWriter(ReportWriter):
    def run(self, report: RunReport, root: str) -> None:
        self.renderer.report(report, root)

    def batch(self, outcomes: list[TargetOutcome], root: str) -> None:
        self.renderer.batch_report(outcomes, root)

    def check(self, report: CheckReport, root: str) -> None:
        self.renderer.findings(report)

    def failure(self, message: str, exit_code: int) -> None:
        pass  # the error line on stderr says it all


class _DocumentWriter(ReportWriter):
    """stdout is one JSON document; errors still go to stderr as lines."""

    def run(self, report: RunReport, root: str) -> None:
        self.renderer.json(self.run_document(report, root))

    def batch(self, outcomes: list[TargetOutcome], root: str) -> None:
        self.renderer.json(self.batch_document(outcomes, root))

    def check(self, report: CheckReport, root: str) -> None:
        for error in report.errors:
            self.renderer.error(error)
        self.renderer.json(self.check_document(report, root))

    def failure(self, message: str, exit_code: int) -> None:
        self.renderer.json(self.failure_document(message, exit_code))

    @abstractmethod
    def run_document(self, report: RunReport, root: str) -> dict[str, Any]: ...

    @abstractmethod
    def batch_document(self, outcomes: list[TargetOutcome], root: str) -> dict[str, Any]: ...

    @abstractmethod
    def check_document(self, report: CheckReport, root: str) -> dict[str, Any]: ...

    @abstractmethod
    def failure_document(self, message: str, exit_code: int) -> dict[str, Any]: ...


class JsonWriter(_DocumentWriter):
    """The documents of docs/json-schema.md."""

    def run_document(self, report: RunReport, root: str) -> dict[str, Any]:
        return report_json.to_json(report, root)

    def batch_document(self, outcomes: list[TargetOutcome], root: str) -> dict[str, Any]:
        return report_json.batch_json(outcomes, root)

    def check_document(self, report: CheckReport, root: str) -> dict[str, Any]:
        return report_json.check_json(report, root)

    def failure_document(self, message: str, exit_code: int) -> dict[str, Any]:
        return report_json.error_json(message, exit_code)


class SarifWriter(_DocumentWriter):
    """SARIF 2.1.0 logs: a file that could not be checked, a target that failed or a failed command is
    an error notification of the invocation."""

    def run_document(self, report: RunReport, root: str) -> dict[str, Any]:
        return sarif.sarif_log(sarif.run_results(report), root)

    def batch_document(self, outcomes: list[TargetOutcome], root: str) -> dict[str, Any]:
        return sarif.sarif_log(
            [r for o in outcomes if o.report for r in sarif.run_results(o.report)],
            root,
            [f"{o.job.target}: {o.error}" for o in outcomes if not o.report],
        )

    def check_document(self, report: CheckReport, root: str) -> dict[str, Any]:
        return sarif.sarif_log(sarif.check_results(report.findings), root, report.errors)

    def failure_document(self, message: str, exit_code: int) -> dict[str, Any]:
        return sarif.sarif_log([], os.getcwd(), errors=[message])


WRITERS: dict[OutputFormat, type[ReportWriter]] = {
    OutputFormat.TEXT: TextWriter,
    OutputFormat.JSON: JsonWriter,
    OutputFormat.SARIF: SarifWriter,
}


def writer_for(output_format: OutputFormat, verbose: bool = False) -> ReportWriter:
    """The writer of ``output_format``, with a renderer that shows progress only when stdout is text."""
    return WRITERS[output_format](Renderer(quiet=output_format is not OutputFormat.TEXT, verbose=verbose))
