"""The codemod registry is the one list of fixes: every codemod in it is complete, and none is missing.

Complete means: a unique code, a title, the breaks it answers (ids torch knows), a docstring with
the documentation headings, a generated page, and fixtures on both sides (a case it fixes, a case
it must leave alone). Written generically over REGISTRY, so a new codemod is checked on arrival.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import types
from pathlib import Path

import pytest
from fixture_spec import cases_of

import breakfix.codemods
from breakfix.codemods import BY_CODE, REGISTRY, BreakfixCodemod
from breakfix.codemods._base import DOC_HEADINGS
from breakfix.docs import family, torch_gb_registry
from breakfix.types import Applicability

PROJECT = Path(__file__).resolve().parent.parent
CODEMODS = {codemod.CODE: codemod for codemod in REGISTRY}


def test_codes_are_unique() -> None:
    codes = [codemod.CODE for codemod in REGISTRY]
    assert len(codes) == len(set(codes)), codes
    assert BY_CODE == CODEMODS


def test_every_codemod_class_is_registered() -> None:
    package = breakfix.codemods
    defined = set()
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        module = importlib.import_module(info.name)
        defined |= {
            obj
            # On Python 3.10 a module-level `list[str]` alias passes inspect.isclass, and issubclass rejects it.
            for _, obj in inspect.getmembers(
                module, lambda member: inspect.isclass(member) and not isinstance(member, types.GenericAlias)
            )
            # A base (BreakfixCodemod, SiteCodemod) names no CODE: it is no codemod of its own.
            if issubclass(obj, BreakfixCodemod) and hasattr(obj, "CODE") and obj.__module__ == module.__name__
        }
    unregistered = sorted(c.__qualname__ for c in defined - set(REGISTRY))
    assert not unregistered, f"not in REGISTRY (src/breakfix/codemods/__init__.py): {unregistered}"


@pytest.fixture(params=sorted(CODEMODS), ids=str)
def codemod(request: pytest.FixtureRequest) -> type[BreakfixCodemod]:
    return CODEMODS[request.param]


def test_lives_in_its_family_module(codemod: type[BreakfixCodemod]) -> None:
    name = family(codemod)
    assert not name.startswith("_")
    family_dir = PROJECT / "src" / "breakfix" / "codemods" / name
    if codemod.__module__ == f"breakfix.codemods.{name}":  # a family in one module
        assert family_dir.with_suffix(".py").is_file()
    else:  # a family package, one module per codemod
        assert (family_dir / "__init__.py").is_file()
        assert codemod.__module__.rpartition(".")[0] == f"breakfix.codemods.{name}"


def test_declares_what_it_answers(codemod: type[BreakfixCodemod]) -> None:
    assert re.fullmatch(r"BF\d{3}", codemod.CODE), codemod.CODE
    assert isinstance(codemod.FIX_TITLE, str) and codemod.FIX_TITLE.strip()
    assert codemod.GB_IDS or codemod.GB_TYPES
    assert isinstance(codemod.APPLICABILITY, Applicability)
    if codemod.APPLICABILITY is Applicability.UNSAFE:
        assert codemod.CHANGES.strip(), "an unsafe fix must say what it changes"


def test_gb_ids_exist_in_torch(codemod: type[BreakfixCodemod]) -> None:
    known = torch_gb_registry()
    assert known, "torch/_dynamo/graph_break_registry.json not found"
    assert not sorted(codemod.GB_IDS - set(known)), "GB ids unknown to this torch"


def test_docstring_has_the_documentation_headings(codemod: type[BreakfixCodemod]) -> None:
    doc = inspect.cleandoc(codemod.__doc__ or "")
    headings = re.findall(r"^## (.+)$", doc, re.M)
    assert [h for h in headings if h in DOC_HEADINGS] == list(DOC_HEADINGS), headings
    for heading, body in zip(headings, re.split(r"^## .+$", doc, flags=re.M)[1:]):
        assert body.strip(), f"section {heading!r} is empty"


def test_has_a_docs_page(codemod: type[BreakfixCodemod]) -> None:
    assert (PROJECT / "docs" / "codemods" / f"{codemod.CODE}.md").is_file(), "run `python scripts/gen_docs.py`"


def test_has_positive_and_negative_fixtures(codemod: type[BreakfixCodemod]) -> None:
    cases = cases_of(codemod.CODE, PROJECT / "fixtures")
    for case in cases:
        assert case.folder.parent.name == family(codemod), f"{case.folder} is not under fixtures/{family(codemod)}/"
        assert case.code == codemod.CODE, case.folder
        assert (case.folder / "before.py").is_file() and (case.folder / "after.py").is_file()
    kinds = {case.kind for case in cases}
    assert kinds == {"positive", "negative"}, f"fixtures of {codemod.CODE}: {[case.id for case in cases]}"
