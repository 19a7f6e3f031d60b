"""Verified fixes remembered across editor sessions, in ``.breakfix/fixes/`` under the project root.

An entry is keyed by the sha256 of a file's content as the run read it (the target's file and every
file the fix rewrites), so a file reopened unchanged gets its verified fix back without running
anything, and any edit to it makes the entry unreachable. One file holds the runs of every target
in a file with that content, by target.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from breakfix.codemods import BY_CODE
from breakfix.types import FileChange, FixKind, RunReport

FORMAT = 1  # bump when the entry layout changes: older entries are then ignored


def content_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class CachedRun:
    """What one ``breakfix.run`` found: its verified rewrite, or why there is none."""

    target: str
    verified: bool  # the changes match eager with no break left (see ``kind``)
    title: str  # the fixes' titles, for the code action
    why: str  # when there is no verified rewrite: why not
    changes: list[FileChange] = field(default_factory=list)
    kind: str | None = None  # of the verified rewrite: "fullgraph", or "split" (the target then runs eagerly)
    coverage: float | None = None  # of a split: the share of the original's operations its pieces compile
    breaks: list[dict] = field(default_factory=list)  # {"path", "line", "gb_id", "gb_type", "status"}

    @classmethod
    def from_report(cls, target: str, report: RunReport) -> CachedRun:
        codes = list(dict.fromkeys(b.fix_code for b in report.breaks if b.verified and b.fix_code))
        verified = report.verified and bool(report.changes)
        if verified:
            why = ""
        elif not report.breaks:
            why = "no graph breaks: the target compiles with fullgraph=True"
        else:
            why = "; ".join(dict.fromkeys(b.why for b in report.breaks if b.why)) or "no verified fix"
        title = "; ".join(BY_CODE[c].FIX_TITLE for c in codes)
        if verified and report.kind is FixKind.SPLIT:
            title += (
                f" [split: pieces compile {report.coverage:.0%} of the operations; call the target eagerly, "
                f"not under torch.compile]"
            )
        return cls(
            target=target,
            verified=verified,
            title=title,
            why=why,
            kind=report.kind.value if verified and report.kind else None,
            coverage=report.coverage if verified else None,
            changes=report.changes if verified else [],
            breaks=[
                {
                    "path": str(b.brk.site.filename),
                    "line": b.brk.site.lineno,
                    "gb_id": b.brk.gb_id,
                    "gb_type": b.brk.gb_type,
                    "status": b.status.value,
                }
                for b in report.breaks
            ],
        )

    def to_json(self) -> dict:
        data = asdict(self)
        data["changes"] = [{"path": str(c.path), "before": c.before, "after": c.after} for c in self.changes]
        return data

    @classmethod
    def from_json(cls, data: dict) -> CachedRun:
        data = dict(data)
        data["changes"] = [FileChange(Path(c["path"]), c["before"], c["after"]) for c in data["changes"]]
        return cls(**data)


class FixCache:
    def __init__(self, root: Path) -> None:
        self.directory = Path(root) / ".breakfix" / "fixes"

    def store(self, run: CachedRun, contents: Iterable[str]) -> None:
        """Remember ``run`` under each file content it depends on."""
        self.directory.mkdir(parents=True, exist_ok=True)
        ignore = self.directory.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# breakfix's cache of verified fixes\n*\n")
        for key in {content_key(text) for text in contents}:
            path = self.directory / f"{key}.json"
            runs = self._read(path)
            runs[run.target] = run.to_json()
            _write_atomically(path, json.dumps({"format": FORMAT, "runs": runs}))

    def lookup(self, content: str) -> list[CachedRun]:
        runs = self._read(self.directory / f"{content_key(content)}.json")
        return [CachedRun.from_json(r) for r in runs.values()]

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # absent, or cut short by a crash: as if never computed
        return data.get("runs", {}) if data.get("format") == FORMAT else {}


def _write_atomically(path: Path, text: str) -> None:
    """Two servers (two editor windows) may store at once: readers see a whole file or none."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
