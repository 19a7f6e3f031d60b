"""The GB id the codemods know a break by, on any supported torch.

Codemods name the GB ids of the torch they were written for (2.13). Other releases differ: builds
without GB ids, errors that carry none (data-dependent guards), and releases that report a break
under a broader id: ``next()`` on an input iterator is GB4347, "Missing tp_iternext", on 2.13, but
GB0156, "Unsupported method call", on 2.9 and GB9493, "C-implemented special method without
VariableTracker model", on 2.14. Those are mapped from the break's text to the id the codemods
answer; the report keeps torch's own. A release may also give a break a new id of its own: 2.14
reports a call to an object without a traceable ``__call__`` (numpy's ``sliding_window_view``) as
GB4818, which 2.13 reported as GB0156, "Unsupported method call".
"""

from __future__ import annotations

import re

from breakfix.types import GraphBreak

# Breaks without a GB id: Gb_type and reason -> GB id, for the types whose wording is stable.
_REASON_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"torch\._dynamo\.graph_break\(\)"), "GB0025"),
    (re.compile(r"builtin operator `?print"), "GB0059"),
    (re.compile(r"function marked as skipped"), "GB0007"),
    (re.compile(r"tp_iternext|next\(\) on|list_iterator", re.I), "GB4347"),
    (re.compile(r"Data-dependent branching", re.I), "GB0170"),
)

# A broader id of another torch, and its explanation -> the id of the release the codemods know.
_ITERATOR_METHODS = (
    (re.compile(r"implements '__next__'|method `__next__`"), "GB4347"),
    (re.compile(r"implements '__iter__'|method `__iter__`"), "GB0811"),
)
_NARROWED: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    "GB0156": _ITERATOR_METHODS,
    "GB9493": _ITERATOR_METHODS,
}


# An id another torch introduced -> the id the same break has on the release the codemods know.
_RENAMED = {"GB4818": "GB0156"}


def gb_id_of(brk: GraphBreak) -> str | None:
    """The GB id codemods answer for this break: torch's own, narrowed where a newer torch groups
    several under one, renamed where it introduced a new one, or read off the text where torch
    gives none."""
    if brk.gb_id:
        text = brk.explanation or brk.reason
        narrowed = next((known for pattern, known in _NARROWED.get(brk.gb_id, ()) if pattern.search(text)), brk.gb_id)
        return _RENAMED.get(narrowed, narrowed)
    text = f"{brk.gb_type}\n{brk.reason}"
    return next((gb_id for pattern, gb_id in _REASON_PATTERNS if pattern.search(text)), None)
