"""How much of what ``breakfix run`` finds does the static ``breakfix check`` find, without running anything?

    python benchmarks/corpus/static.py

For each corpus case, ``main.py`` is scanned in memory as if its target were compiled in it
(``torch.compile(target)``, or ``torch.compile(Model())`` for ``Model.forward``), and the findings
are compared with the break sites the last corpus run located in ``main.py``
(``benchmarks/results/corpus.json``: run ``run.py`` first). A site is *found* when a finding starts
on its line, *same GB id* when that finding also claims the GB id dynamo reported. Findings on
other lines are listed for review: a break dynamo never reached, or a false positive (``.tolist()``
of an integer tensor compiles). Breaks in sibling modules are out of reach by design: the scan
follows calls within one module. Results go to benchmarks/results/check-corpus.json and .md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from breakfix._toml import tomllib
from breakfix.static import scan_source

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"


def _marked(source: str, target: str) -> str:
    owner, _, method = target.rpartition(".")
    compiled = f"{owner}()" if method == "forward" else target
    return f"{source}\n\nimport torch as _breakfix_torch\n_breakfix_torch.compile({compiled})\n"


def main() -> None:
    dynamic = {c["case"]: c for c in json.loads((RESULTS / "corpus.json").read_text())["cases"]}
    rows, totals = [], {"sites": 0, "found": 0, "same_gb_id": 0, "other_lines": 0, "elsewhere": 0}
    started = time.perf_counter()
    for folder in sorted((HERE / "cases").iterdir()):
        spec = tomllib.loads((folder / "case.toml").read_text())
        findings = scan_source(_marked((folder / "main.py").read_text(), spec["target"]), "main.py")
        breaks = ((dynamic.get(folder.name) or {}).get("cli") or {}).get("breaks", [])
        sites = {(int(b["site"].rpartition(":")[2]), b["gb_id"]) for b in breaks if b["site"].startswith("main.py:")}
        lines = {f.line for f in findings}
        row = {
            "case": folder.name, "sites": sorted(sites, key=str),
            "found": sorted(line for line, _ in sites if line in lines),
            "same_gb_id": sorted(line for line, gb in sites if any(f.line == line and f.gb_id == gb for f in findings)),
            "other_lines": sorted(lines - {line for line, _ in sites}),
            "elsewhere": sorted({b["site"] for b in breaks if not b["site"].startswith("main.py:")}),
        }
        rows.append(row)
        for key in totals:
            totals[key] += len(row[key])
    seconds = round(time.perf_counter() - started, 2)
    (RESULTS / "check-corpus.json").write_text(json.dumps({"totals": totals, "seconds": seconds, "cases": rows},
                                                          indent=1) + "\n")
    table = ["| case | sites in main.py | found | same GB id | findings on other lines | sites in other modules |",
             "|---|---|---|---|---|---|"]
    table += [f"| {r['case']} | {len(r['sites'])} | {len(r['found'])} | {len(r['same_gb_id'])} | "
              f"{', '.join(map(str, r['other_lines'])) or '-'} | {len(r['elsewhere'])} |" for r in rows]
    summary = (f"{totals['found']} of {totals['sites']} break sites in main.py found statically "
               f"({totals['same_gb_id']} with the same GB id); {totals['other_lines']} findings on other lines; "
               f"{totals['elsewhere']} sites in other modules (not scanned); {len(rows)} cases in {seconds} s.")
    (RESULTS / "check-corpus.md").write_text("# breakfix check on the corpus\n\n" + summary + "\n\n" + "\n".join(table) + "\n")
    print(summary)


if __name__ == "__main__":
    main()
