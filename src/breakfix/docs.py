"""The documentation breakfix serves at run time: ``breakfix explain CODE|GBnnnn`` and torch's registry.

A codemod's page is built from the class alone (its docstring with the headings of ``DOC_HEADINGS``
and its attributes), so it works from an installed wheel. torch's graph-break registry
(``torch/_dynamo/graph_break_registry.json``) is read from the installed torch without importing it.
The pages in docs/ add each codemod's fixtures; they are generated from a source checkout by
``scripts/gen_docs.py``.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
from functools import cache
from pathlib import Path
from typing import Any

from breakfix.classifier import answering
from breakfix.codemods import BY_CODE, REGISTRY, BreakfixCodemod
from breakfix.errors import UnknownCode

GB_PAGE = "https://meta-pytorch.github.io/compile-graph-break-site/gb/{}.html"
# What `breakfix explain` says in place of the fixtures, which live in the source tree only.
FIXTURES_NOTE = ("## Fixtures\n\nThe fixtures (before/after cases run by the test suite) are shown on the generated "
                 "page docs/codemods/{code}.md of the breakfix source tree; an installed breakfix does not ship them.\n")


@cache
def torch_gb_registry() -> dict[str, list[dict[str, Any]]]:
    """torch/_dynamo/graph_break_registry.json, found without importing torch (2 s)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(spec.submodule_search_locations[0], "_dynamo", "graph_break_registry.json")
    registry: dict[str, list[dict[str, Any]]] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return registry


def gb_type_of(gb_id: str) -> str:
    entries = torch_gb_registry().get(gb_id) or [{}]
    return str(entries[0].get("Gb_type", ""))


def gb_types(gb_id: str) -> list[str]:
    """The id's Gb_types, oldest entry first, without repeats (torch keeps historical entries)."""
    return list(dict.fromkeys(entry.get("Gb_type", "") for entry in torch_gb_registry().get(gb_id, [])))


def family(codemod: type[BreakfixCodemod]) -> str:
    """The fix family: the codemod's module in breakfix.codemods (``escape_hatches``)."""
    return codemod.__module__.rpartition(".")[2]


def source_path(codemod: type[BreakfixCodemod]) -> str:
    return f"src/breakfix/codemods/{family(codemod)}.py"


def cell(text: str) -> str:
    """Text for a Markdown table cell."""
    return text.replace("|", "\\|")


def codemod_page(codemod: type[BreakfixCodemod]) -> str:
    """A codemod's page from its class: title, summary, applicability, the breaks it answers, the docstring."""
    doc = inspect.cleandoc(codemod.__doc__ or "")
    summary, _, body = doc.partition("\n\n")
    answers = [f"| [{gb_id}]({GB_PAGE.format(gb_id.lower())}) | {cell(gb_type_of(gb_id))} |"
               for gb_id in sorted(codemod.GB_IDS)]
    answers += [f"| - | {cell(gb_type)} |" for gb_type in sorted(codemod.GB_TYPES) if gb_type not in
                {gb_type_of(gb_id) for gb_id in codemod.GB_IDS}]
    return "\n".join([
        f"# {codemod.CODE}: {codemod.FIX_TITLE}\n",
        summary.strip() + "\n",
        f"- Pattern: `{codemod.__name__}` (`{source_path(codemod)}`)\n"
        f"- Applicability: **{codemod.APPLICABILITY.value}**"
        + (f" (changes: {codemod.CHANGES})" if codemod.CHANGES else "") + "\n",
        "Answers these graph breaks:\n\n| GB id | Gb_type |\n|---|---|\n" + "\n".join(answers) + "\n",
        body.strip() + "\n",
    ])


def specific_codemods(gb_id: str) -> list[type[BreakfixCodemod]]:
    """Codemods that name this GB id or one of its Gb_types (a catch-all only where it names them)."""
    found = [c for gb_type in gb_types(gb_id) or [""] for c in answering(gb_id, gb_type)
             if gb_id in c.GB_IDS or gb_type in c.GB_TYPES]
    return list(dict.fromkeys(found))


def catch_all_note(linked: bool = True) -> str:
    codes = ", ".join(f"[{c.CODE}](codemods/{c.CODE}.md)" if linked else c.CODE for c in REGISTRY if c.CATCH_ALL)
    return (f"After the codemods listed for a break, the engine tries the last resort {codes} on every break: it "
            "keeps the breaking statement eager and compiles the code around it, when that split can be verified.")


def gb_page(gb_id: str) -> str:
    """A GB id's registry entries (every historical wording once) and the codemods that answer it."""
    entries = list({entry.get("Explanation", ""): entry for entry in torch_gb_registry()[gb_id]}.values())
    parts = [f"# {gb_id}: {' / '.join(gb_types(gb_id))}\n", f"PyTorch's page: {GB_PAGE.format(gb_id.lower())}\n"]
    for entry in entries:
        parts.append(f"- Gb_type: {entry.get('Gb_type', '')}\n- Context: `{entry.get('Context', '')}`\n"
                     f"- Explanation: {entry.get('Explanation', '')}\n")
        parts.extend(f"  - Hint: {hint}" for hint in entry.get("Hints", []))
        parts.append("")
    codemods = specific_codemods(gb_id)
    parts.append("## Codemods that answer it\n")
    if codemods:
        parts.append("| code | fix | applicability |\n|---|---|---|")
        parts.extend(f"| {c.CODE} | {cell(c.FIX_TITLE)} | {c.APPLICABILITY.value} |" for c in codemods)
        parts.append("")
    else:
        parts.append("No codemod answers this GB id specifically.\n")
    parts.append(catch_all_note(linked=False) + "\n")
    return "\n".join(parts)


def explain(code: str) -> str:
    """The text of ``breakfix explain CODE``: a codemod's page, or a GB id's registry entry."""
    key = code.strip().upper()
    if key in BY_CODE:
        return "\n".join([codemod_page(BY_CODE[key]), FIXTURES_NOTE.format(code=key)])
    if key in torch_gb_registry():
        return gb_page(key)
    raise UnknownCode(f"unknown code {code!r}: expected a codemod code (`breakfix codemods` lists them) "
                      "or a GB id of the installed torch (GB0000-GB9999, docs/coverage.md)")
