"""Map a located break to the codemods that may fix it, safest first."""

from __future__ import annotations

import re

from breakfix.codemods import REGISTRY, BreakfixCodemod
from breakfix.types import Applicability, GraphBreak

# Torch builds without GB ids (and errors that carry none, like data-dependent guards) are
# classified from the reason text: Gb_type -> GB id for the types whose wording is stable.
_REASON_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"torch\._dynamo\.graph_break\(\)"), "GB0025"),
    (re.compile(r"builtin operator `?print"), "GB0059"),
    (re.compile(r"function marked as skipped"), "GB0007"),
    (re.compile(r"tp_iternext|next\(\) on|list_iterator", re.I), "GB4347"),
    (re.compile(r"Data-dependent branching", re.I), "GB0170"),
)

_ORDER = {Applicability.SAFE: 0, Applicability.UNSAFE: 1, Applicability.DISPLAY_ONLY: 2}


def gb_id_of(brk: GraphBreak) -> str | None:
    if brk.gb_id:
        return brk.gb_id
    text = f"{brk.gb_type}\n{brk.reason}"
    return next((gb_id for pattern, gb_id in _REASON_PATTERNS if pattern.search(text)), None)


def candidates(brk: GraphBreak) -> list[type[BreakfixCodemod]]:
    """Codemods answering this break, safe ones first, last resorts last, else registry order."""
    return [c for c in answering(gb_id_of(brk), brk.gb_type) if c.refusal(brk) is None]


def answering(gb_id: str | None, gb_type: str) -> list[type[BreakfixCodemod]]:
    """Codemods answering a GB id or Gb_type, in the order the engine tries them: the fixes made
    for this break, safe ones first, then the last resorts. An unsafe specific fix comes before a
    safe last resort: without --unsafe-fixes it is only reported and the last resort is tried next;
    with it, the fix for the pattern beats a split that keeps the break eager."""
    matching = [c for c in REGISTRY if c.answers(gb_id, gb_type)]
    return sorted(matching, key=lambda c: (c.CATCH_ALL, _ORDER[c.APPLICABILITY]))
