"""The documentation breakfix serves at run time: ``breakfix explain CODE|GBnnnn`` and torch's registry.

A codemod's page is built from the class alone (its docstring with the headings of ``DOC_HEADINGS``
and its attributes), so it works from an installed wheel. torch's graph-break registry
(``torch/_dynamo/graph_break_registry.json``) is read from the installed torch without importing it.
The pages in docs/ add each codemod's fixtures; they are generated from a source checkout by
``scripts/gen_docs.py``.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from breakfix.classifier import answering
from breakfix.codemods import BY_CODE, REGISTRY, BreakfixCodemod
from breakfix.errors import UnknownCode

GB_PAGE = "https://meta-pytorch.github.io/compile-graph-break-site/gb/{}.html"
# What `breakfix explain` says in place of the fixtures, which live in the source tree only.
FIXTURES_NOTE = (
    "## Fixtures\n\nThe fixtures (before/after cases run by the test suite) are shown on the generated "
    "page docs/codemods/{code}.md of the breakfix source tree; an installed breakfix does not ship them.\n"
)


@cache
def torch_gb_registry() -> dict[str, list[dict[str, Any]]]:
    """torch/_dynamo/graph_break_registry.json, found without importing torch (2 s)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(spec.submodule_search_locations[0], "_dynamo", "graph_break_registry.json")
    registry: dict[str, list[dict[str, Any]]] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return registry


# A field torch's registry generator could not evaluate holds the source of the expression instead:
# a variable (``msg``, ``_gb_type``, ``inst.argval``) or a concatenation (``msg + err_epilogue``).
_SOURCE_NAME = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*(\(.*\))?")


def _registry_text(value: str, field: str) -> str | None:
    """A registry field as text, or None when it is unevaluated source. Adjacent string literals
    (``"a " "b"``) are evaluated; a field naming a variable or concatenating one is not text."""
    if field == "Gb_type":  # snake_case Gb_types are real (``missing_mp_subscript``); ``_gb_type`` is a variable
        return None if value.startswith("_") and _SOURCE_NAME.fullmatch(value) else value
    if _SOURCE_NAME.fullmatch(value):
        return None
    if value.startswith(('"', "'", 'f"', "(")) or re.search(r"(^|\s)\+(\s|$)", value):
        try:
            text = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return None
        return " ".join(text.split()) if isinstance(text, str) else None
    return value


@cache
def registry_entries(gb_id: str) -> list[dict[str, Any]]:
    """The id's registry entries as text: unevaluated fields dropped, an entry without a Gb_type
    dropped, each wording once (torch keeps historical entries)."""
    entries: list[dict[str, Any]] = []
    for raw in torch_gb_registry().get(gb_id, []):
        entry = {
            name: text
            for name in ("Gb_type", "Context", "Explanation")
            if (text := _registry_text(raw.get(name, ""), name))
        }
        if "Gb_type" in entry and entry not in entries:
            entries.append(entry)
    # An entry whose fields another entry has too (its Explanation was a variable there) says nothing new.
    texts = [e for e in entries if not any(e.items() < other.items() for other in entries)]
    hints = {
        e["Gb_type"]: [
            h
            for raw in torch_gb_registry().get(gb_id, [])
            if raw.get("Gb_type") == e["Gb_type"]
            for h in raw.get("Hints", [])
        ]
        for e in texts
    }
    return [{**e, "Hints": list(dict.fromkeys(hints[e["Gb_type"]]))} for e in texts]


def gb_type_of(gb_id: str) -> str:
    entries = registry_entries(gb_id) or [{}]
    return str(entries[0].get("Gb_type", ""))


def gb_types(gb_id: str) -> list[str]:
    """The id's Gb_types, oldest entry first, without repeats (torch keeps historical entries)."""
    return list(dict.fromkeys(str(entry["Gb_type"]) for entry in registry_entries(gb_id)))


def family(codemod: type[BreakfixCodemod]) -> str:
    """The fix family: the codemod's module in breakfix.codemods (``escape_hatches``), or the
    package of its module (``control_flow``, one module per codemod)."""
    return codemod.__module__.split(".")[2]


def source_path(codemod: type[BreakfixCodemod]) -> str:
    return f"src/{codemod.__module__.replace('.', '/')}.py"


def cell(text: str) -> str:
    """Text for a Markdown table cell."""
    return text.replace("|", "\\|")


def codemod_page(codemod: type[BreakfixCodemod]) -> str:
    """A codemod's page from its class: title, summary, applicability, the breaks it answers, the docstring."""
    doc = inspect.cleandoc(codemod.__doc__ or "")
    summary, _, body = doc.partition("\n\n")
    answers = [
        f"| [{gb_id}]({GB_PAGE.format(gb_id.lower())}) | {cell(gb_type_of(gb_id))} |"
        for gb_id in sorted(codemod.GB_IDS)
    ]
    answers += [
        f"| - | {cell(gb_type)} |"
        for gb_type in sorted(codemod.GB_TYPES)
        if gb_type not in {gb_type_of(gb_id) for gb_id in codemod.GB_IDS}
    ]
    return "\n".join(
        [
            f"# {codemod.CODE}: {codemod.FIX_TITLE}\n",
            summary.strip() + "\n",
            f"- Pattern: `{codemod.__name__}` (`{source_path(codemod)}`)\n"
            f"- Applicability: **{codemod.APPLICABILITY.value}**"
            + (f" (changes: {codemod.CHANGES})" if codemod.CHANGES else "")
            + "\n",
            "Answers these graph breaks:\n\n| GB id | Gb_type |\n|---|---|\n" + "\n".join(answers) + "\n",
            body.strip() + "\n",
        ]
    )


def specific_codemods(gb_id: str) -> list[type[BreakfixCodemod]]:
    """Codemods that name this GB id or one of its Gb_types (a catch-all only where it names them)."""
    found = [
        c
        for gb_type in gb_types(gb_id) or [""]
        for c in answering(gb_id, gb_type)
        if gb_id in c.GB_IDS or gb_type in c.GB_TYPES
    ]
    return list(dict.fromkeys(found))


def catch_all_note(linked: bool = True) -> str:
    codes = ", ".join(f"[{c.CODE}](codemods/{c.CODE}.md)" if linked else c.CODE for c in REGISTRY if c.CATCH_ALL)
    return (
        f"After the codemods listed for a break, the engine tries the last resort {codes} on every break: it "
        "keeps the breaking statement eager and compiles the code around it, when that split can be verified."
    )


def gb_page(gb_id: str) -> str:
    """A GB id's registry entries (every historical wording once) and the codemods that answer it."""
    parts = [f"# {gb_id}: {' / '.join(gb_types(gb_id))}\n", f"PyTorch's page: {GB_PAGE.format(gb_id.lower())}\n"]
    for entry in registry_entries(gb_id):
        parts.append(
            "\n".join(
                [
                    f"- Gb_type: {entry['Gb_type']}",
                    *([f"- Context: `{entry['Context']}`"] if "Context" in entry else []),
                    *([f"- Explanation: {entry['Explanation']}"] if "Explanation" in entry else []),
                ]
            )
            + "\n"
        )
        parts.extend(f"  - Hint: {hint.strip()}" for hint in entry["Hints"])
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
    raise UnknownCode(
        f"unknown code {code!r}: expected a codemod code (`breakfix codemods` lists them) "
        "or a GB id of the installed torch (GB0000-GB9999, docs/coverage.md)"
    )
