"""The ``--json`` document (schema: docs/json-schema.md). Pure data, no I/O."""

from __future__ import annotations

import os

from breakfix.codemods import BY_CODE
from breakfix.diffing import unified_diff
from breakfix.types import BreakReport, RunReport

SCHEMA_VERSION = 1


def _break(report: BreakReport, root: str) -> dict:
    brk = report.brk
    site = brk.site
    return {
        "file": os.path.relpath(site.filename, root),
        "line": site.lineno,
        "column": site.colno,
        "function": site.name,
        "gb_id": brk.gb_id,
        "gb_type": brk.gb_type,
        "explanation": brk.explanation,
        "hints": brk.hints,
        "user_stack": [{"file": f.filename, "line": f.lineno, "function": f.name} for f in brk.user_stack],
        "round": report.round,
        "status": report.status.value,
        "fix": None
        if report.fix_code is None
        else {
            "code": report.fix_code,
            "title": BY_CODE[report.fix_code].FIX_TITLE,
            "applicability": report.applicability.value,
            "kind": report.kind.value if report.kind else None,
            "coverage": report.coverage,
        },
        "verified": report.verified,
        "why": report.why,
        "verification": None
        if report.verification is None
        else {
            "calls": report.verification.calls,
            "derived_inputs": report.verification.derived_inputs,
            "recompiles": list(report.verification.recompiles),
        },
        "attempts": [
            {"code": a.code, "applicability": a.applicability.value, "verified": a.verified, "reason": a.reason}
            for a in report.attempts
        ],
    }


def to_json(report: RunReport, root: str) -> dict:
    return {
        "version": SCHEMA_VERSION,
        "target": report.target,
        "applied": report.applied,
        "verified": report.verified,
        "exit_code": report.exit_code,
        "rounds": report.rounds,
        "remaining": report.remaining,
        "graph_count": {"before": report.graph_count_before, "after": report.graph_count_after},
        "kind": report.kind.value if report.kind else None,
        "coverage": report.coverage,
        "pieces": report.pieces,
        "eager_callers": [
            {"file": os.path.relpath(c.path, root), "function": c.function, "pieces": c.pieces}
            for c in report.eager_callers
        ],
        "breaks": [_break(b, root) for b in report.breaks],
        "changes": [
            {"file": os.path.relpath(c.path, root), "diff": unified_diff(str(c.path), c.before, c.after, root)}
            for c in report.changes
        ],
    }


def error_json(message: str, exit_code: int) -> dict:
    return {"version": SCHEMA_VERSION, "error": message, "exit_code": exit_code}


def check_json(report, root: str) -> dict:
    """The ``breakfix check --format json`` document: likely breaks, unverified (static)."""
    return {
        "version": SCHEMA_VERSION,
        "exit_code": report.exit_code,
        "files": report.files,
        "errors": report.errors,
        "findings": [
            {
                "file": os.path.relpath(f.path, root),
                "line": f.line,
                "column": f.col,
                "end_line": f.end_line,
                "end_column": f.end_col,
                "code": f.code,
                "title": BY_CODE[f.code].FIX_TITLE,
                "gb_id": f.gb_id,
                "gb_type": f.gb_type,
                "message": f.message,
                "pattern": f.pattern,
                "function": f.function,
                "compiled": f.compiled,
                "verified": False,
            }
            for f in report.findings
        ],
    }


def batch_json(outcomes: list, root: str) -> dict:
    """Several targets: one document per target (report or error form, each with its target)."""
    results = [
        to_json(o.report, root) if o.report else {**error_json(str(o.error), o.exit_code), "target": o.job.target}
        for o in outcomes
    ]
    return {"version": SCHEMA_VERSION, "exit_code": max(o.exit_code for o in outcomes), "results": results}
