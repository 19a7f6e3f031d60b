"""The one way the codemod unit tests run a codemod: on source text, through ``engine.apply_codemod``
(the engine's and the fuzzer's entry point), for a break reported at one line. libcst only, no torch."""

from __future__ import annotations

import textwrap

from libcst.codemod import TransformResult

from breakfix.codemods import BY_CODE, FixRequest
from breakfix.engine import apply_codemod
from breakfix.types import BreakFacts, Frame, GraphBreak

PATH = "/project/m.py"


def run_codemod(
    code: str,
    source: str,
    line: int,
    *,
    function: str = "f",
    qualname: str | None = None,
    path: str = PATH,
    facts: BreakFacts | None = None,
    callers: tuple[tuple[int, str], ...] = (),
) -> TransformResult:
    """Codemod ``code`` on ``source`` (dedented) for a break at ``line`` of ``function``, with the
    codemod's own GB id and Gb_type; ``callers`` are the frames above it in the same source
    (line, function), outermost first."""
    codemod = BY_CODE[code]
    frames = [*(Frame(path, at, name) for at, name in callers), Frame(path, line, function)]
    brk = GraphBreak(
        gb_type=min(codemod.GB_TYPES, default=""),
        gb_id=min(codemod.GB_IDS, default=None),
        reason="",
        explanation="",
        hints=[],
        user_stack=frames,
        project_stack=frames,
    )
    text = textwrap.dedent(source)
    request = FixRequest(
        brk=brk,
        target_file=path,
        target_qualname=qualname or (callers[0][1] if callers else function),
        facts=facts or BreakFacts(),
        sources={path: text},
    )
    _, result = apply_codemod(codemod, request, path, text)
    return result


def line_of(source: str, text: str) -> int:
    """The first line of ``source`` (dedented) that contains ``text``."""
    return next(i for i, line in enumerate(textwrap.dedent(source).splitlines(), 1) if text in line)
