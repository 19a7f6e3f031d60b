"""Map a located break to the codemods that may fix it, safest first."""

from __future__ import annotations

from breakfix.codemods import REGISTRY, BreakfixCodemod
from breakfix.gb_ids import gb_id_of
from breakfix.types import Applicability, GraphBreak

_ORDER = {Applicability.SAFE: 0, Applicability.UNSAFE: 1, Applicability.DISPLAY_ONLY: 2}


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
