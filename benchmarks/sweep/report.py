"""Render benchmarks/results/sweep.md from the sweep's JSON document."""

from __future__ import annotations

import re
from collections import Counter

OUTCOMES = ("fixed-fullgraph", "fixed-split", "unfixable", "false-fix")


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def render(document: dict) -> str:
    meta, sources, rows = document["meta"], document["sources"], document["targets"]
    args = meta["args"]
    lines = [
        "# Sweep: breakfix on enumerated real code",
        "",
        f"breakfix {meta['breakfix']}; `run.py --sample {args['sample']} --limit {args['limit']} "
        f"--timeout {args['timeout']} --jobs {args['jobs']}"
        + (f" --only {args['only']}" if args.get("only") else "")
        + (f" --budget {args['budget']:g}" if args.get("budget") else "")
        + f"`; {meta.get('minutes', 0):g} minutes. Candidates are enumerated (public functions of "
        "public submodules, public classes, every model type of the auto mappings), sorted, and a "
        "stride sample is screened: a target is one that runs eagerly with standard inputs and fails "
        '`torch.compile(fullgraph=True, backend="aot_eager")`. See `benchmarks/README.md`.',
        "",
    ]
    lines += [
        "| source | version | enumerated | screened | ran eagerly | compile already | targets | run | "
        "fixed, one graph | fixed, split | unfixable | false fixes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    total = Counter()
    for label, info in sources.items():
        statuses = Counter(e["status"] for e in info["screen"])
        ran = sum(n for s, n in statuses.items() if s in ("target", "compiles", "compiles-differs"))
        mine = Counter(r["outcome"] for r in rows if r["source"] == label)
        version = meta["sources"].get(label, {}).get("version", "?")
        cells = [
            info["enumerated"],
            info["screened"],
            ran,
            statuses["compiles"] + statuses["compiles-differs"],
            statuses["target"],
            sum(mine.values()),
            mine["fixed-fullgraph"],
            mine["fixed-split"],
            mine["unfixable"],
            mine["false-fix"],
        ]
        for key, value in zip(("enumerated", "screened", "ran", "compiles", "targets", "run", *OUTCOMES), cells):
            total[key] += value
        lines.append(f"| {label} | {version} | " + " | ".join(str(c) for c in cells) + " |")
    lines.append(
        "| **all** | | "
        + " | ".join(
            f"**{total[k]}**" for k in ("enumerated", "screened", "ran", "compiles", "targets", "run", *OUTCOMES)
        )
        + " |"
    )
    run = total["run"]
    fixed = total["fixed-fullgraph"] + total["fixed-split"]
    lines += [
        "",
        f"**Of {run} targets run: {fixed} fixed and verified ({_pct(fixed, run)}): "
        f"{total['fixed-fullgraph']} as one graph ({_pct(total['fixed-fullgraph'], run)}), "
        f"{total['fixed-split']} by split ({_pct(total['fixed-split'], run)}); "
        f"{total['unfixable']} unfixable; {total['false-fix']} false fixes.**",
        "",
    ]
    not_run = total["targets"] - run
    if not_run:
        lines += [
            f"{not_run} targets found were not run (`--limit`/`--budget`); the table counts them under targets only.",
            "",
        ]

    reasons = Counter(r["reason"] for r in rows if r["outcome"] == "unfixable")
    if reasons:
        lines += [
            "## Unfixable, by reason",
            "",
            "The first break left open, as breakfix's JSON states it "
            "(status, GB id, torch's break type with its particulars blanked).",
            "",
            "| targets | reason | examples |",
            "|---|---|---|",
        ]
        for reason, count in reasons.most_common():
            names = [f"{r['source']}:{'.'.join(r['name'].split('.')[-2:])}" for r in rows if r["reason"] == reason][:4]
            lines.append(f"| {count} | {reason.replace('|', '/')} | {', '.join(names)} |")
        lines.append("")
    refusals = Counter()
    for r in rows:
        for b in r["breakfix"].get("breaks", []):
            if b["status"] not in ("fixed", "resolved"):
                refusals.update({(a["code"], generic(a["reason"])) for a in b["attempts"] if not a["verified"]})
    if refusals:
        lines += [
            "## Why each codemod refused, over the breaks left open",
            "",
            "Each attempt on a break that stayed open, its reason with the particulars blanked; a reason "
            "counts once per break.",
            "",
            "| breaks | codemod | reason |",
            "|---|---|---|",
        ]
        lines += [f"| {n} | {code} | {reason.replace('|', '/')} |" for (code, reason), n in refusals.most_common(40)]
        lines.append("")
    false_fixes = [r for r in rows if r["outcome"] == "false-fix"]
    if false_fixes:
        lines += ["## False fixes", "", "| source | target | why the check failed |", "|---|---|---|"]
        lines += [f"| {r['source']} | {r['name']} | {r['reason'][:200].replace('|', '/')} |" for r in false_fixes]
        lines.append("")

    lines += [
        "## Targets",
        "",
        "| source | target | profile | original break | outcome | codemods written | breakfix s | why (unfixable) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        codes = sorted({b["fix"] for b in r["breakfix"].get("breaks", []) if b["status"] == "fixed" and b["fix"]})
        original = f"{r['original_gb_id'] or ''} {r['original_error'][:70]}".strip().replace("|", "/")
        lines.append(
            f"| {r['source']} | `{r['name']}` | {r['profile']} | {original} | {r['outcome']} | "
            f"{', '.join(codes) or '-'} | {r['breakfix_seconds']:.0f} | {r['reason'][:110].replace('|', '/')} |"
        )
    lines.append("")

    lines += [
        "## Screening",
        "",
        "Every screened candidate that was not a target, by status: `compiles` "
        "(already compiles with fullgraph=True and matches), `compiles-differs` (compiles, output differs "
        "from eager), `not-runnable` (no input profile runs it eagerly), `nondeterministic` (two seeded eager "
        "runs differ), `timeout`/`screen-*` (the screen hung or crashed on it).",
        "",
        "| source | status | count |",
        "|---|---|---|",
    ]
    for label, info in sources.items():
        for status, count in sorted(Counter(e["status"] for e in info["screen"]).items()):
            lines.append(f"| {label} | {status} | {count} |")
    lines.append("")
    return "\n".join(lines)


def generic(text: str) -> str:
    """A message with its particulars (numbers, quoted names, paths) blanked, to group reasons."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", "…", text)
    text = re.sub(r"/\S+", "…", text)
    text = re.sub(r"\b(in|at|is|of) [A-Za-z_][\w.]*(, neither)", r"\1 …\2", text)
    return re.sub(r"\d+(\.\d+)?", "N", text)[:90]
