"""Precision and recall of the static ``breakfix check`` against the break sites dynamo locates in the corpus.

    .venv/bin/python benchmarks/corpus/check_precision.py            # scan, compare with the located sites
    .venv/bin/python benchmarks/corpus/check_precision.py --locate   # first locate every case again (torch)

*Located sites* are where ``breakfix run`` locates each case's breaks before fixing anything: one
locate worker per case on the code as on disk, every break's site (the innermost frame in the
case's folder) as ``file:line``. ``--locate`` records them in
``benchmarks/results/check-corpus-sites.json`` (about 10 s a case); the scan reuses that file.

The scan is ``breakfix check`` on the case's folder, each file as on disk, except that ``main.py``
gets ``torch.compile(TARGET)`` appended (``torch.compile(Model())`` for ``Model.forward``): what a
user who compiles the target in that file would check. A finding is *true* when a located site is
on its first line, else *false*; a located site is *found* when a finding is on its line.
precision = true findings / findings, recall = found sites / located sites. Results go to
benchmarks/results/check-corpus.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from breakfix._toml import tomllib
from breakfix.static import python_files, scan_sources

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"
SITES = RESULTS / "check-corpus-sites.json"


def _marked(source: str, target: str) -> str:
    owner, _, method = target.rpartition(".")
    compiled = f"{owner}()" if method == "forward" else target
    return f"{source}\n\nimport torch as _breakfix_torch\n_breakfix_torch.compile({compiled})\n"


def locate_case(folder: Path) -> list[str]:
    """The sites breakfix's locate worker finds in the case as on disk (a copy, so nothing is written)."""
    import shutil

    from breakfix.locator import RunOptions, locate

    spec = tomllib.loads((folder / "case.toml").read_text())
    with tempfile.TemporaryDirectory(prefix="check-corpus-") as tmp:
        copy = Path(tmp, folder.name)
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("solution", "unsound", "__pycache__"))
        options = RunOptions(
            target=f"{copy / 'main.py'}:{spec['target']}",
            inputs=f"{copy / 'main.py'}:example_inputs",
            root=Path(os.path.realpath(copy)),
            backend="aot_eager",
            timeout=180,
        )
        found = locate(options, {}, None)
        return sorted({f"{os.path.relpath(b.site.filename, options.root)}:{b.site.lineno}" for b in found.breaks})


def scan_case(folder: Path) -> list[dict]:
    spec = tomllib.loads((folder / "case.toml").read_text())
    sources = {}
    for path in python_files([str(folder)]):
        if os.path.relpath(path, folder).split(os.sep)[0] not in ("solution", "unsound"):
            sources[path] = Path(path).read_text()
    main_py = str(folder / "main.py")
    sources[main_py] = _marked(sources[main_py], spec["target"])
    return [
        {"site": f"{os.path.relpath(path, folder)}:{f.line}", "code": f.code, "gb_id": f.gb_id, "pattern": f.pattern}
        for path, findings in scan_sources(sources).items()
        for f in findings
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--locate", action="store_true", help="locate every case again (torch, minutes)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    cases = sorted(p for p in (HERE / "cases").iterdir() if (p / "case.toml").is_file())
    if args.locate:
        from breakfix.errors import BreakfixError

        def located(folder: Path) -> list[str] | str:
            try:
                return locate_case(folder)
            except BreakfixError as e:
                return f"error: {e}"

        with ThreadPoolExecutor(args.jobs) as pool:
            sites = dict(zip((c.name for c in cases), pool.map(located, cases)))
        SITES.write_text(json.dumps(sites, indent=1) + "\n")
    sites = json.loads(SITES.read_text())
    rows, started = [], time.perf_counter()
    for folder in cases:
        located = sites.get(folder.name)
        if not isinstance(located, list):
            print(f"{folder.name}: not located ({located}); run with --locate", file=sys.stderr)
            continue
        findings = scan_case(folder)
        lines = {f["site"] for f in findings}
        rows.append(
            {
                "case": folder.name,
                "located": located,
                "found": sorted(set(located) & lines),
                "missed": sorted(set(located) - lines),
                "false": sorted(lines - set(located)),
                "findings": findings,
            }
        )
    seconds = round(time.perf_counter() - started, 2)
    located_n = sum(len(r["located"]) for r in rows)
    found_n = sum(len(r["found"]) for r in rows)
    finding_lines = sum(len({f["site"] for f in r["findings"]}) for r in rows)
    false_n = sum(len(r["false"]) for r in rows)
    precision = (finding_lines - false_n) / finding_lines if finding_lines else 1.0
    recall = found_n / located_n if located_n else 1.0
    totals = {
        "cases": len(rows),
        "located_sites": located_n,
        "found_sites": found_n,
        "finding_lines": finding_lines,
        "false_finding_lines": false_n,
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "seconds": seconds,
    }
    (RESULTS / "check-corpus.json").write_text(json.dumps({"totals": totals, "cases": rows}, indent=1) + "\n")
    summary = (
        f"precision {precision:.3f} ({finding_lines - false_n} of {finding_lines} finding lines are located "
        f"break sites), recall {recall:.3f} ({found_n} of {located_n} located break sites found), "
        f"{len(rows)} cases scanned in {seconds} s."
    )
    table = ["| case | located sites | found | missed | findings on other lines |", "|---|---|---|---|---|"]
    table += [
        f"| {r['case']} | {len(r['located'])} | {len(r['found'])} | {', '.join(r['missed']) or '-'} | "
        f"{', '.join(r['false']) or '-'} |"
        for r in rows
    ]
    (RESULTS / "check-corpus.md").write_text(
        "# breakfix check on the corpus\n\n"
        "Measured by `.venv/bin/python benchmarks/corpus/check_precision.py` (`--locate` first to locate the "
        "break sites again; see its docstring for the definitions).\n\n" + summary + "\n\n" + "\n".join(table) + "\n"
    )
    print(summary)


if __name__ == "__main__":
    main()
