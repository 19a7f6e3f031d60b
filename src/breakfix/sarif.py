"""SARIF 2.1.0 logs (GitHub code scanning) for ``breakfix check`` and ``breakfix run``. Pure data, no I/O.

One rule per codemod of the registry (its code, title, summary and docs page); a result is a break
(``run``) or a likely break (``check``) with the rule of the codemod that answers it. Columns are
1-based Unicode code points (``columnKind``); artifact URIs are relative to ``%SRCROOT%``, the root
the command ran in.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path

from breakfix import __version__, classifier
from breakfix.codemods import REGISTRY
from breakfix.docs import GB_PAGE
from breakfix.types import FixKind, RunReport, Status

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
VERSION = "2.1.0"
ROOT_ID = "%SRCROOT%"
_RULE_INDEX = {codemod.CODE: index for index, codemod in enumerate(REGISTRY)}


@dataclass(frozen=True)
class Result:
    """One result before it is SARIF: where, which rule, how bad, and what to say."""

    rule: str  # a codemod code of the registry
    level: str  # "error" | "warning" | "note"
    message: str
    path: str
    line: int
    col: int | None = None  # 0-based character offset, as breakfix keeps them
    end_line: int | None = None
    end_col: int | None = None
    properties: dict = field(default_factory=dict)


def _rule(codemod) -> dict:
    summary = inspect.cleandoc(codemod.__doc__ or "").partition("\n\n")[0].replace("\n", " ")
    return {
        "id": codemod.CODE,
        "name": codemod.__name__,
        "shortDescription": {"text": codemod.FIX_TITLE},
        "fullDescription": {"text": summary},
        "help": {"text": f"{summary} Applicability: {codemod.APPLICABILITY.value}."},
        "defaultConfiguration": {"level": "warning"},
        "properties": {"applicability": codemod.APPLICABILITY.value, "gbIds": sorted(codemod.GB_IDS)},
    }


def _uri(path: str, root: str) -> dict:
    absolute = Path(os.path.abspath(path))
    try:
        return {"uri": absolute.relative_to(os.path.abspath(root)).as_posix(), "uriBaseId": ROOT_ID}
    except ValueError:
        return {"uri": absolute.as_uri()}


def _result(result: Result, root: str) -> dict:
    region: dict = {"startLine": result.line}
    if result.col is not None:
        region["startColumn"] = result.col + 1
    if result.end_line is not None:
        region["endLine"] = result.end_line
        if result.end_col is not None:
            region["endColumn"] = result.end_col + 1
    return {
        "ruleId": result.rule,
        "ruleIndex": _RULE_INDEX[result.rule],
        "level": result.level,
        "message": {"text": result.message},
        "locations": [{"physicalLocation": {"artifactLocation": _uri(result.path, root), "region": region}}],
        "properties": result.properties,
    }


def sarif_log(results: list[Result], root: str, errors: list[str] = ()) -> dict:
    """The SARIF document; ``errors`` (files that could not be checked, a failed run) make the
    invocation unsuccessful, with one notification each."""
    return {
        "$schema": SCHEMA,
        "version": VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "breakfix",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": [_rule(codemod) for codemod in REGISTRY],
                    }
                },
                "originalUriBaseIds": {ROOT_ID: {"uri": Path(os.path.abspath(root)).as_uri() + "/"}},
                "columnKind": "unicodeCodePoints",
                "invocations": [
                    {
                        "executionSuccessful": not errors,
                        "toolExecutionNotifications": [{"level": "error", "message": {"text": e}} for e in errors],
                    }
                ],
                "results": [_result(r, root) for r in results],
            }
        ],
    }


def _gb_properties(gb_id: str | None, gb_type: str) -> dict:
    return {"gbId": gb_id, "gbType": gb_type, **({"gbUri": GB_PAGE.format(gb_id.lower())} if gb_id else {})}


def check_results(findings) -> list[Result]:
    """``breakfix check`` findings: warnings, since static findings are likely, not verified."""
    return [
        Result(
            f.code,
            "warning",
            f"{f.message} [{f.gb_id or 'no GB id'}: {f.gb_type}]",
            f.path,
            f.line,
            f.col,
            f.end_line,
            f.end_col,
            {**_gb_properties(f.gb_id, f.gb_type), "pattern": f.pattern, "function": f.function, "verified": False},
        )
        for f in findings
    ]


_RUN_LEVELS = {
    Status.UNFIXABLE: "error",
    Status.NEEDS_UNSAFE: "warning",
    Status.PROPOSED: "warning",
    Status.FIXED: "note",
    Status.RESOLVED: "note",
    Status.KEPT_EAGER: "warning",
}


def run_results(report: RunReport) -> list[Result]:
    """``breakfix run`` breaks, at their innermost project frame: a break left in the code is an
    error, one with a fix that was not written a warning, a fixed or resolved one a note."""
    results = []
    for item in report.breaks:
        site = item.brk.site
        codes = [c.CODE for c in classifier.candidates(item.brk)]
        rule = item.fix_code or (item.attempts[0].code if item.attempts else codes[0])
        message = f"graph break ({item.status.value}): {item.brk.gb_type}"
        if item.kind is FixKind.SPLIT:
            message += (
                f"; fixed by a split covering {item.coverage:.0%} of the operations: call the target eagerly, "
                f"do not wrap it in torch.compile"
            )
        elif item.kind is FixKind.FULLGRAPH:
            message += "; the target compiles with fullgraph=True"
        if item.why:
            message += f"; {item.why}"
        # A frame's end column is on its start line (Python records no end line for it).
        end_col = site.end_colno if site.colno is not None and (site.end_colno or 0) > site.colno else None
        results.append(
            Result(
                rule,
                _RUN_LEVELS[item.status],
                message,
                site.filename,
                site.lineno,
                site.colno,
                site.lineno if end_col is not None else None,
                end_col,
                {
                    **_gb_properties(item.brk.gb_id, item.brk.gb_type),
                    "status": item.status.value,
                    "verified": item.verified,
                    "target": report.target,
                    "kind": item.kind.value if item.kind else None,
                    "coverage": item.coverage,
                },
            )
        )
    return results
