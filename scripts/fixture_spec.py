"""The fixture format (fixtures/README.md): a folder's case.toml loaded into frozen dataclasses.

Unknown keys, missing keys and values of the wrong type are errors naming the file, so a typo
(``unsafe_fix = true``) cannot silently turn a check off. Used by the fixture harness
(tests/test_fixtures.py), the registry test and the docs generator (scripts/gen_docs.py).
"""

from __future__ import annotations

import json
import linecache
import types
import typing
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from breakfix._toml import tomllib
from breakfix.types import Frame, GraphBreak

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
# Where the recorded library frames point (a file outside every project root).
LIBRARY_FILE = "/usr/lib/python3/site-packages/somelib/__init__.py"


class FixtureSpecError(ValueError):
    """A case.toml that does not follow fixtures/README.md."""


def _matches(value: object, hint: object) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typing.cast(type, origin or hint))


def _load(cls: type[Any], table: dict[str, Any], where: str) -> Any:
    """``cls(**table)``, refusing keys the dataclass does not declare, missing ones and wrong types."""
    declared = {f.name: f for f in fields(cls)}
    unknown = sorted(set(table) - set(declared))
    if unknown:
        raise FixtureSpecError(f"{where}: unknown key(s) {unknown} (fixtures/README.md lists the keys)")
    missing = sorted(
        name
        for name, f in declared.items()
        if name not in table and f.default is MISSING and f.default_factory is MISSING
    )
    if missing:
        raise FixtureSpecError(f"{where}: missing key(s) {missing}")
    hints = typing.get_type_hints(cls)
    for name, value in table.items():
        if not _matches(value, hints[name]):
            raise FixtureSpecError(f"{where}: {name} = {value!r} is not a {hints[name]}")
    return cls(**table)


@dataclass(frozen=True)
class RecordedBreak:
    """One ``[[breaks]]`` table: a break as the locator reports it."""

    gb_type: str
    stack: list[str]  # "FILE:LINE:FUNCTION" of the project frames, outermost first
    gb_id: str | None = None
    library_frames: int = 0  # library frames after the last project frame
    facts: str = "{}"  # JSON: what the locate worker measured at the site (FixRequest.facts)

    def facts_dict(self) -> dict[str, Any]:
        facts = json.loads(self.facts)
        assert isinstance(facts, dict), self.facts
        return facts


@dataclass(frozen=True)
class Case:
    """One fixture folder: before.py, after.py, inputs.py and this case.toml."""

    folder: Path
    code: str  # the codemod the case is for
    kind: Literal["positive", "negative"]
    target: str  # qualname in before.py
    exit_code: int  # of `breakfix run before.py:<target> --inputs inputs.py:example_inputs --apply`
    breaks: list[RecordedBreak]
    description: str = ""
    unsafe_fixes: bool = False  # the torch tier passes --unsafe-fixes
    unsafe_only: bool = False  # negative: the codemod's rewrite exists but is unsafe, so it is not written
    multi_round: bool = False  # the fix takes more than one round: the text tier cannot replay it
    torch_tier_skip: str = ""  # why `breakfix run` cannot take the target (its rewrite is checked elsewhere)
    refused_by: Literal["", "verification"] = ""  # negative: the codemod rewrites, the verifier refuses it
    fixed_by: str = ""  # negative: the codemod that fixes the run instead (after.py is its rewrite)

    @classmethod
    def read(cls, folder: Path) -> Case:
        path = folder / "case.toml"
        table = tomllib.loads(path.read_text(encoding="utf-8"))
        raw_breaks = table.pop("breaks", None)
        if not isinstance(raw_breaks, list) or not raw_breaks:
            raise FixtureSpecError(f"{path}: at least one [[breaks]] table is required")
        breaks = [_load(RecordedBreak, entry, f"{path} [[breaks]] #{i + 1}") for i, entry in enumerate(raw_breaks)]
        case: Case = _load(cls, {**table, "folder": folder, "breaks": breaks}, str(path))
        if case.unsafe_only and case.kind != "negative":
            raise FixtureSpecError(f"{path}: unsafe_only is for negative cases")
        if case.refused_by and case.kind != "negative":
            raise FixtureSpecError(f"{path}: refused_by is for negative cases")
        if case.fixed_by and (case.kind != "negative" or case.fixed_by == case.code):
            raise FixtureSpecError(f"{path}: fixed_by names another codemod, for negative cases")
        return case

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def positive(self) -> bool:
        return self.kind == "positive"

    @property
    def single_round(self) -> bool:
        return len(self.breaks) == 1 and not self.multi_round

    def break_at(self, folder: Path, index: int = 0) -> GraphBreak:
        """The recorded break, with frames pointing into ``folder`` (the case's folder or a copy)."""
        entry = self.breaks[index]
        frames = []
        for item in entry.stack:
            name, line, function = item.split(":")
            path = str((folder / name).resolve())
            frames.append(Frame(path, int(line), function, line=linecache.getline(path, int(line)).strip()))
        library = [Frame(LIBRARY_FILE, 1, "lib") for _ in range(entry.library_frames)]
        return GraphBreak(
            gb_type=entry.gb_type,
            gb_id=entry.gb_id,
            reason=entry.gb_type,
            explanation="",
            hints=[],
            user_stack=frames + library,
            project_stack=frames,
        )


def all_cases(fixtures: Path = FIXTURES) -> list[Case]:
    return [Case.read(path.parent) for path in sorted(fixtures.glob("*/*/case.toml"))]


def cases_of(code: str, fixtures: Path = FIXTURES) -> list[Case]:
    """The fixtures of one codemod: ``fixtures/<family>/<CODE>_*/``."""
    return [Case.read(path.parent) for path in sorted(fixtures.glob(f"*/{code}_*/case.toml"))]
