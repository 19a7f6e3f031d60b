"""Render benchmarks/results/models.json as models.md: summary, break catalogue, per-model detail."""

from __future__ import annotations

from collections import defaultdict

FAMILIES = {
    "warning_once": "logger.warning_once in forward (GB0291)",
    "global_attn_item": "`if is_global_attn:` after .any().item()",
    "data_dependent_shape": "shape arithmetic on data-dependent values (GB0170)",
    "moe_routing": "MoE routing loops over nonzero()/torch.where",
    "numpy_planning": "numpy planning code (GB0033)",
    "item_sizes": ".item() to size tensors",
    "module_attr_assign": "re-assigning a module attribute in forward",
}


def _ok(side: dict | None) -> bool:
    return bool(side) and "error" not in side


def explain_count(side: dict | None, key: str) -> int | None:
    """explain's graph_break_count; None when explain itself failed."""
    if not _ok(side) or "error" in side[key]:
        return None
    return side[key]["graph_break_count"]


def fullgraph_breaks(side: dict | None) -> list[dict]:
    """Distinct breaks standing between the target and fullgraph=True: every break dynamo logs under
    the config fullgraph=True implies, plus the error that stops fullgraph (or explain)."""
    if not _ok(side):
        return []
    explained = side["explain_fullgraph_config"]
    found = list(explained["logged_sites"])
    for extra in (explained.get("error_site"), side["fullgraph_eager"].get("error")):
        if extra:
            found.append(extra)
    unique: dict[tuple, dict] = {}
    for brk in found:
        key = _site_key(brk)[1:]
        # One break per line: the root cause over dynamo's "graph break in loop" wrapper of it.
        if key not in unique or unique[key]["gb_type"].startswith("graph break in loop"):
            unique[key] = brk
    return list(unique.values())


def default_only_breaks(side: dict | None) -> list[dict]:
    """Breaks of dynamo's default config that fullgraph=True compiles anyway (scalar/dynamic-shape capture)."""
    if not _ok(side):
        return []
    explained = side["explain_default"]
    hard = {_site_key(b)[1:] for b in fullgraph_breaks(side)}
    unique: dict[tuple, dict] = {}
    for brk in explained.get("logged_sites", []) + explained.get("break_reasons", []):
        key = _site_key(brk)
        if key[1:] not in hard and not brk["gb_type"].startswith("graph break in loop"):
            unique.setdefault(key, brk)
    return list(unique.values())


def _site_key(brk: dict) -> tuple:
    where = brk.get("site") or brk.get("innermost") or {}
    return (brk["gb_id"], where.get("file"), where.get("line"))


def fullgraph(side: dict | None) -> str:
    if not _ok(side):
        return "error"
    return "yes" if side["fullgraph_eager"]["ok"] else "no"


def applied_codes(entry: dict) -> list[str]:
    """The codes of the fixes written, an unsafe one marked as such."""
    run = entry.get("breakfix") or {}
    if not run.get("applied"):
        return []
    return sorted(
        {
            b["fix"] + (" (unsafe)" if b.get("applicability") == "unsafe" else "")
            for b in run.get("breaks", [])
            if b.get("fix") and b["status"] == "fixed"
        }
    )


def verified_equal(entry: dict) -> bool | None:
    """The rewrite compiles with fullgraph=True and equals the original's eager output, by the CLI's
    verdict and by measure.py's own check (eager and aot_eager backends)."""
    after, run = entry.get("after"), entry.get("breakfix") or {}
    if not _ok(after):
        return None
    own = (
        after["fullgraph_eager"].get("ok")
        and after["fullgraph_eager"].get("equal")
        and after.get("fullgraph_aot_eager", {}).get("equal")
        and after["eager_equal"]["equal"]
    )
    return bool(own and run.get("verified"))


def one_line(entry: dict) -> str:
    before, after = entry.get("before"), entry.get("after")
    if not _ok(before):
        return f"before failed: {(before or {}).get('error')}"
    text = (
        f"explain {explain_count(before, 'explain_default')}, sites {len(fullgraph_breaks(before))}, "
        f"fullgraph {fullgraph(before)}"
    )
    if entry.get("breakfix"):
        run = entry["breakfix"]
        text += (
            f" -> explain {explain_count(after, 'explain_default')}, sites {len(fullgraph_breaks(after))}, "
            f"fullgraph {fullgraph(after)}; breakfix exit {run.get('exit_code')}, verified {run.get('verified')}"
            f"{', error ' + run['error'] if run.get('error') else ''}"
        )
    return text


def _arrow(before, after) -> str:
    show = lambda v: "n/a" if v is None else str(v)  # noqa: E731
    return show(before) if after is None and before is None else f"{show(before)} → {show(after)}"


def _reduction(before: int, after: int) -> str:
    return f"{100 * (before - after) / before:.0f}%" if before else "n/a"


def _where(brk: dict) -> str:
    site, inner = brk.get("site"), brk.get("innermost")
    if not site:
        return f"(library only) {inner['file']}:{inner['line']}" if inner else "(no frame)"
    text = f"`{site['file']}:{site['line']}` {site['function']}: `{site['text'][:70]}`"
    if inner and not inner.get("in_project"):
        text += f" → in `{inner['file']}:{inner['line']}`"
    return text


def _summary(lines: list[str], version: str, entries: list[dict]) -> dict[str, list[int]]:
    """One version's table; returns its break totals, before and after, per count."""
    lines += [
        f"### transformers {version}",
        "",
        "| model | issue family | explain breaks (default cfg) | explain breaks (fullgraph cfg) "
        "| break sites (fullgraph) | fullgraph=True | verified equal | kind (coverage) | breakfix codes applied |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    totals = defaultdict(lambda: [0, 0])
    for entry in entries:
        before, after = entry.get("before"), entry.get("after") if entry.get("breakfix") else None
        counts = {
            "default": (explain_count(before, "explain_default"), explain_count(after, "explain_default")),
            "fullgraph": (
                explain_count(before, "explain_fullgraph_config"),
                explain_count(after, "explain_fullgraph_config"),
            ),
            "sites": (
                len(fullgraph_breaks(before)) if _ok(before) else None,
                len(fullgraph_breaks(after)) if _ok(after) else None,
            ),
        }
        for name, (b, a) in counts.items():
            if b is not None and a is not None:
                totals[name][0] += b
                totals[name][1] += a
        run = entry.get("breakfix") or {}
        applied = applied_codes(entry)
        codes = ", ".join(applied) or ("none" if run else "not run")
        if run.get("error"):
            codes += f" (error: {run['error'][:80]})"
        lines.append(
            f"| {entry['model']} | {entry['family']} | {_arrow(*counts['default'])} | {_arrow(*counts['fullgraph'])} "
            f"| {_arrow(*counts['sites'])} | {fullgraph(before)} → {fullgraph(after) if after else 'n/a'} "
            f"| {_yes(verified_equal(entry)) if after else 'n/a'} | {_kind(run, applied)} | {codes} |"
        )
    lines.append(
        f"| **total** (models measured on both sides) | | {totals['default'][0]} → {totals['default'][1]} "
        f"({_reduction(*totals['default'])} fewer) | {totals['fullgraph'][0]} → {totals['fullgraph'][1]} "
        f"({_reduction(*totals['fullgraph'])} fewer) | {totals['sites'][0]} → {totals['sites'][1]} "
        f"({_reduction(*totals['sites'])} fewer) | | | | |"
    )
    lines.append("")
    need = [e for e in entries if _ok(e.get("before")) and fullgraph(e["before"]) == "no"]
    done = [e for e in need if e.get("breakfix") and fullgraph(e.get("after")) == "yes" and verified_equal(e)]
    lines += [
        f"Models that do not compile with `fullgraph=True` as shipped: {len(need)} of {len(entries)}; "
        f"compiling with `fullgraph=True` after `breakfix run --apply`, outputs verified equal: "
        f"{len(done)} ({', '.join(e['model'] for e in done) or 'none'}).",
        "",
    ]
    return totals


def _kind(run: dict, applied: list[str]) -> str:
    """The kind of the verified rewrite breakfix wrote: none when it wrote nothing; rows that wrote
    a fix, measured before breakfix reported its kind, say so."""
    if "kind" not in run:
        if not run:
            return "n/a"
        return "not recorded" if applied else "none"
    if run["kind"] == "split":
        return f"split ({run['coverage']:.0%})"
    return run["kind"] or "none"


def _id(gb_id: str) -> str:
    return "none" if gb_id == "?" else gb_id


def _yes(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def _catalogue(lines: list[str], runs: dict) -> None:
    groups: dict[tuple, dict] = {}
    for key, entry in sorted(runs.items()):
        version = entry["transformers"]
        attempts = {(b["file"], b["line"]): b for b in (entry.get("breakfix") or {}).get("breaks", [])}
        for brk in fullgraph_breaks(entry.get("before")):
            site = brk.get("site") or {}
            group = groups.setdefault(
                (brk["gb_id"], brk["gb_type"][:70], site.get("text", "")[:60]),
                {"brk": brk, "models": [], "outcome": set()},
            )
            name = f"{entry['model']}@{version}"
            if name not in group["models"]:
                group["models"].append(name)
            tried = attempts.get((site.get("file"), site.get("line")))
            if tried:
                codes = [a["code"] for a in tried["attempts"]]
                group["outcome"].add(f"{tried['status']}" + (f" (tried {', '.join(codes)})" if codes else ""))
    lines += ["| GB id | Gb_type | site (innermost project frame) | models | breakfix on it |", "|---|---|---|---|---|"]
    for (gb_id, gb_type, _), group in sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[1]["models"]))):
        lines.append(
            f"| {_id(gb_id)} | {gb_type} | {_where(group['brk'])} | {', '.join(group['models'])} "
            f"| {'; '.join(sorted(group['outcome'])) or 'not reported by breakfix'} |"
        )
    lines.append("")


def _default_only(lines: list[str], runs: dict) -> None:
    groups: dict[tuple, list[str]] = defaultdict(list)
    examples: dict[tuple, dict] = {}
    for entry in runs.values():
        if not _ok(entry.get("before")) or "error" in entry["before"]["explain_fullgraph_config"]:
            continue  # explain stopped early under the fullgraph config: "default only" is unknowable
        for brk in default_only_breaks(entry.get("before")):
            key = (brk["gb_id"], brk["gb_type"][:70])
            examples.setdefault(key, brk)
            name = f"{entry['model']}@{entry['transformers']}"
            if name not in groups[key]:
                groups[key].append(name)
    lines += ["| GB id | Gb_type | example site | models |", "|---|---|---|---|"]
    for key, models in sorted(groups.items()):
        lines.append(f"| {_id(key[0])} | {key[1]} | {_where(examples[key])} | {', '.join(sorted(models))} |")
    lines.append("")


def _details(lines: list[str], runs: dict) -> None:
    for key, entry in sorted(runs.items()):
        lines.append(f"#### {key} ({entry['model_class']})")
        lines.append("")
        before = entry.get("before")
        if not _ok(before):
            lines += [f"- measuring failed: {(before or {}).get('error')}", ""]
            continue
        for brk in fullgraph_breaks(before):
            lines.append(f"- {_id(brk['gb_id'])} {brk['gb_type'][:90]}: {_where(brk)}")
        if not fullgraph_breaks(before):
            lines.append("- no break under `fullgraph=True`")
        for brk in default_only_breaks(before):
            lines.append(f"- default config only: {_id(brk['gb_id'])} {brk['gb_type'][:90]}: {_where(brk)}")
        run = entry.get("breakfix")
        if run:
            if run.get("error"):
                lines.append(f"- breakfix: exit {run.get('exit_code')}, error: {run['error']}")
            for brk in run.get("breaks", []):
                tried = (
                    "; ".join(f"{a['code']}: {a['reason'] or 'verified'}" for a in brk["attempts"])
                    or "no codemod answers it"
                )
                lines.append(f"- breakfix on `{brk['file']}:{brk['line']}` ({brk['gb_id']}): {brk['status']}; {tried}")
            after = entry.get("after")
            if _ok(after):
                lines.append(
                    f"- after: fullgraph {fullgraph(after)}, eager output equal to the original: "
                    f"{_yes(after['eager_equal']['equal'])}"
                )
        lines.append("")


def render(results: dict) -> str:
    runs = results["runs"]
    meta = results.get("meta", {})
    lines = [
        "# transformers models: graph breaks before and after `breakfix run --apply`",
        "",
        "Generated by `benchmarks/models/run.py` (method: benchmarks/README.md). CPU, torch "
        f"{meta.get('torch', '2.13.0+cpu')}, breakfix {meta.get('breakfix', '?')} with codemods "
        f"{', '.join(meta.get('codemods', [])) or '?'}"
        f"{'; unsafe fixes allowed (each marked in the table)' if meta.get('unsafe_fixes') else ''}. "
        "Tiny random configs, no weights.",
        "",
        "Columns: *explain breaks* = `torch._dynamo.explain(...).graph_break_count` with dynamo's default "
        "config and with the config `fullgraph=True` implies (scalar and dynamic-shape capture on); n/a when "
        "explain itself fails. *break sites* = distinct breaks (GB id, innermost project line) dynamo logs "
        "under the fullgraph config, plus the error that stops `fullgraph=True`: explain misses breaks "
        "inside loops. *verified equal* = breakfix's verdict and this benchmark's own check (fresh process, "
        "eager and aot_eager, `assert_close` against the original's eager output) both say yes.",
        "",
    ]
    by_version: dict[str, list[dict]] = defaultdict(list)
    for entry in runs.values():
        by_version[entry["transformers"]].append(entry)
    lines += ["## Summary", ""]
    overall = defaultdict(lambda: [0, 0])
    for version in sorted(by_version, key=lambda v: [int(p) for p in v.split(".")]):
        totals = _summary(lines, version, sorted(by_version[version], key=lambda e: _ORDER.get(e["model"], 99)))
        for name, (before, after) in totals.items():
            overall[name][0] += before
            overall[name][1] += after
    names = {
        "default": "explain breaks (default cfg)",
        "fullgraph": "explain breaks (fullgraph cfg)",
        "sites": "break sites (fullgraph)",
    }
    lines += ["### Both versions", "", "| count | before | after | fewer |", "|---|---|---|---|"]
    lines += [
        f"| {label} | {overall[name][0]} | {overall[name][1]} | {_reduction(*overall[name])} |"
        for name, label in names.items()
    ]
    lines.append("")
    earlier = sorted(
        f"{e['model']}@{e['transformers']} ({e.get('measured_with', 'an earlier breakfix')})"
        for e in runs.values()
        if e.get("measured_with") != meta.get("breakfix")
    )
    if earlier:
        lines += [
            "Rows measured with another breakfix commit than the header's (kept from an earlier run): "
            + ", ".join(earlier)
            + ".",
            "",
        ]
    lines += [
        "## Break catalogue: what stands between these models and `fullgraph=True`",
        "",
        "Every distinct break of the code as shipped, grouped by GB id and site, with what breakfix did with it.",
        "",
    ]
    _catalogue(lines, runs)
    lines += [
        "## Breaks that only dynamo's default config sees",
        "",
        "These break `torch.compile()` with graph breaks allowed but compile under `fullgraph=True` "
        "(which turns on scalar and dynamic-shape capture): they need no rewrite for fullgraph, but they "
        "are most of the default-config break count. Models whose explain fails under the fullgraph "
        "config are left out (what follows the failure is not traced); their default-config breaks are "
        "listed under Per model.",
        "",
    ]
    _default_only(lines, runs)
    lines += ["## Per model", ""]
    _details(lines, runs)
    return "\n".join(lines).rstrip() + "\n"


_ORDER = {
    name: i
    for i, name in enumerate(
        "t5 mt5 umt5 longt5 whisper rwkv longformer led reformer gemma2 mixtral qwen2_moe olmoe dbrx "
        "switch_transformers big_bird funnel ctrl".split()
    )
}
