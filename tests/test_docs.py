"""The docs cannot drift: codemod pages are generated and checked, the guides name what the CLI has."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import gen_docs  # scripts/gen_docs.py
from fixture_spec import cases_of

from breakfix import docs
from breakfix.cli import run
from breakfix.codemods import REGISTRY
from breakfix.types import Applicability, Status

PROJECT = Path(__file__).resolve().parent.parent
GUIDE = PROJECT / "docs" / "index.md"
SCHEMA = PROJECT / "docs" / "json-schema.md"


def test_codemod_pages_are_up_to_date() -> None:
    stale = [str(p.relative_to(PROJECT)) for p in gen_docs.stale()]
    assert not stale, f"stale docs {stale}: run `python scripts/gen_docs.py`"


def test_check_finds_stale_missing_and_orphan_pages(tmp_path: Path) -> None:
    shutil.copytree(PROJECT / "fixtures", tmp_path / "fixtures")
    assert {p.name for p in gen_docs.write(tmp_path)} == {f"{c.CODE}.md" for c in REGISTRY} | {
        "index.md",
        "coverage.md",
    }
    assert gen_docs.stale(tmp_path) == []
    folder = tmp_path / "docs" / "codemods"
    edited, missing, orphan = folder / f"{REGISTRY[0].CODE}.md", folder / "index.md", folder / "BF999.md"
    coverage = tmp_path / "docs" / "coverage.md"
    edited.write_text(edited.read_text() + "hand edit\n")
    coverage.write_text(coverage.read_text().replace("| - |", "| BF101 |", 1))
    missing.unlink()
    orphan.write_text("# a removed codemod\n")
    assert gen_docs.stale(tmp_path) == sorted([edited, missing, orphan, coverage])
    gen_docs.write(tmp_path)
    assert gen_docs.stale(tmp_path) == [] and not orphan.exists()


def test_pages_show_the_docstring_and_every_fixture() -> None:
    for codemod in REGISTRY:
        page = gen_docs.page(codemod)
        for heading in ("What it fixes", "Why it breaks", "Example", "Fix safety", "Fixtures"):
            assert f"\n## {heading}\n" in page, (codemod.CODE, heading)
        for case in cases_of(codemod.CODE):
            assert f"\n### {case.id}\n" in page


def test_the_explain_page_is_the_generated_page_without_the_fixtures() -> None:
    """What an installed breakfix prints is the docs page up to its fixtures, which need the source tree."""
    for codemod in REGISTRY:
        explained = docs.explain(codemod.CODE)
        shipped, _, note = explained.rpartition("\n## Fixtures\n")
        assert shipped == docs.codemod_page(codemod)
        assert f"docs/codemods/{codemod.CODE}.md" in note
        generated = (PROJECT / "docs" / "codemods" / f"{codemod.CODE}.md").read_text()
        assert generated.startswith(gen_docs.HEADER.partition("{")[0]) and f"\n{shipped}\n## Fixtures\n" in generated


def test_coverage_has_every_gb_id_and_every_answer() -> None:
    """One row per GB id torch knows; a codemod is listed on the row of every id it names."""
    rows = dict(
        re.findall(r"^\| \[(GB\d{4})\]\(.*?\) \| .* \| (.*) \|$", (PROJECT / "docs" / "coverage.md").read_text(), re.M)
    )
    assert set(rows) == set(docs.torch_gb_registry())
    for codemod in REGISTRY:
        for gb_id in codemod.GB_IDS:
            assert f"[{codemod.CODE}]" in rows[gb_id], (codemod.CODE, gb_id)
    answered = sum(cell != "-" for cell in rows.values())
    assert f"{answered} of the {len(rows)} GB ids" in (PROJECT / "docs" / "coverage.md").read_text()


def test_user_guide_names_every_option() -> None:
    guide = GUIDE.read_text()
    options = [opt for param in run.params for opt in param.opts if opt.startswith("--")]
    assert options and not [opt for opt in options if not re.search(rf"{opt}(?![\w-])", guide)]


def _values(section: str) -> set[str]:
    text = SCHEMA.read_text()
    match = re.search(rf"^#+ {section}\n(.*?)(?=^#+ |\Z)", text, re.M | re.S)
    assert match, section
    return set(re.findall(r"^\| `([a-z-]+)` \|", match.group(1), re.M))


def test_schema_enums_match_the_code() -> None:
    assert _values("Applicability") == {a.value for a in Applicability}
    assert _values("Status") == {s.value for s in Status}
    assert {"0", "1", "2"} <= set(re.findall(r"^\| `(\d+)` \|", SCHEMA.read_text(), re.M))
