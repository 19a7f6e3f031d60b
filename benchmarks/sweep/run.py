"""An unselected sweep of real code: breakfix on callables and models enumerated from real packages.

    python benchmarks/sweep/run.py [--sources kornia,torchmetrics,...] [--sample N] [--limit N]
                                   [--only PATTERN] [--jobs 2] [--timeout 300] [--budget MINUTES]

1. screen: for each source (a package in its own benchmark environment, see README), screen.py
   enumerates the public callables or models, takes a stride sample of ``--sample`` of them
   (sorted by name, evenly spaced: not picked), builds inputs from standard profiles, and keeps
   every target that runs eagerly and fails ``torch.compile(fullgraph=True, backend="aot_eager")``.
2. fix: targets are taken round-robin over the sources, up to ``--limit``. Each gets a temporary
   project root holding a copy of the package and ``target.py``, and
   ``breakfix run target.py:target --inputs target.py:example_inputs --apply --json --root ROOT``.
3. check: if breakfix wrote anything, check.py in a fresh process compiles the rewritten target
   (whole graph, or split: an eager orchestrator of fullgraph pieces) and compares its output with
   the original's eager output.

Writes benchmarks/results/sweep.json and sweep.md after every target. Nothing of the packages is
kept: the projects live in a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(HERE))

import report  # noqa: E402


@dataclass(frozen=True)
class Source:
    label: str  # the row name in the report
    kind: str  # the key of targets.SOURCES
    env: str  # the benchmark environment
    package: str  # the import name copied into the project root


SOURCES = (
    Source("kornia", "kornia", "/work/envs/sweep", "kornia"),
    Source("torchmetrics", "torchmetrics", "/work/envs/sweep", "torchmetrics"),
    Source("diffusers", "diffusers", "/work/envs/sweep", "diffusers"),
    Source("torch_geometric", "torch_geometric", "/work/envs/sweep", "torch_geometric"),
    Source("transformers-5", "transformers", "/work/envs/tflatest", "transformers"),
    Source("transformers-4", "transformers", "/work/envs/tf446", "transformers"),
)
SCREEN_STALL = 400  # seconds without a screened candidate before the screen is restarted past it


def env_vars(cache: Path) -> dict:
    # One thread each: the machine's two cores are shared. A bytecode cache per run: no stale
    # bytecode of a rewritten file can outlive the rewrite.
    return dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PYTHONPYCACHEPREFIX=str(cache),
        TRANSFORMERS_VERBOSITY="error",
        TOKENIZERS_PARALLELISM="false",
    )


def versions(source: Source) -> dict:
    out = subprocess.run(
        [
            f"{source.env}/bin/python",
            "-c",
            f"import os, torch, {source.package} as p; print(torch.__version__, getattr(p, '__version__', '?'), "
            "os.path.dirname(p.__file__))",
        ],
        capture_output=True,
        text=True,
        env=env_vars(Path(tempfile.gettempdir()) / "sweep-pycache"),
    )
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1][:300]}
    torch_version, version, path = out.stdout.split()
    return {"torch": torch_version, "version": version, "path": path}


def screen(source: Source, work: Path, sample: int, only: str | None) -> list[dict]:
    """Screen the source's sample; a hung or crashed candidate is recorded and skipped."""
    out = work / f"{source.label}.screen.jsonl"
    refs = work / "refs" / source.label
    refs.mkdir(parents=True, exist_ok=True)
    cache = work / "pycache" / source.label
    base = [
        f"{source.env}/bin/python",
        str(HERE / "screen.py"),
        source.kind,
        str(out),
        str(refs),
        "--sample",
        str(sample),
    ] + (["--only", only] if only else [])
    listing = subprocess.run(base + ["--list"], capture_output=True, text=True, env=env_vars(cache))
    if listing.returncode != 0:
        raise SystemExit(f"{source.label}: {(listing.stderr.strip().splitlines() or ['?'])[-1]}")
    counts = json.loads(listing.stdout)
    start = max((e["index"] for e in _lines(out)), default=-1) + 1  # a run with the same --work resumes
    while start < counts["sampled"]:
        process = subprocess.Popen(
            base + ["--start", str(start)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env_vars(cache),
            stdin=subprocess.DEVNULL,
        )
        seen, last = _lines(out), time.monotonic()
        while process.poll() is None:
            time.sleep(2)
            now = _lines(out)
            if len(now) != len(seen):
                seen, last = now, time.monotonic()
            elif time.monotonic() - last > SCREEN_STALL:
                process.kill()
                break
        process.wait()
        done = {e["index"] for e in _lines(out)}
        start = max(done, default=-1) + 1
        if start < counts["sampled"] and start not in done:
            why = (
                "hung"
                if process.returncode == -9
                else f"crashed ({(process.stderr.read().strip().splitlines() or ['?'])[-1][:200]})"
            )
            with open(out, "a") as f:
                f.write(
                    json.dumps(
                        {
                            "index": start,
                            "name": f"#{start}",
                            "status": "screen-" + why.split()[0],
                            "error": why,
                            "enumerated": counts["enumerated"],
                        }
                    )
                    + "\n"
                )
            start += 1
    entries = sorted(_lines(out), key=lambda e: e["index"])
    for entry in entries:
        entry["reference"] = str(refs / f"{entry['index']}.pt")
    return entries


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in root.rglob("*.py")
        if "__pycache__" not in p.parts
    }


def fix(source: Source, entry: dict, package_dir: Path, work: Path, timeout: int, breakfix_commit: str) -> dict:
    root = work / "projects" / source.label / str(entry["index"])
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shutil.copytree(package_dir, root / source.package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (root / "target.py").write_text(entry["text"])
    before = _snapshot(root)
    result: dict = {
        "source": source.label,
        "name": entry["name"],
        "profile": entry["profile"],
        "original_error": entry["error"],
        "original_gb_id": entry.get("gb_id"),
        "measured_with": breakfix_commit,
    }
    cmd = [
        f"{source.env}/bin/breakfix",
        "run",
        "target.py:target",
        "--inputs",
        "target.py:example_inputs",
        "--apply",
        "--json",
        "--root",
        str(root),
        "--timeout",
        str(timeout),
    ]
    result["command"] = " ".join(cmd[1:]).replace(str(root), "ROOT")
    started = time.perf_counter()
    try:
        done = subprocess.run(
            cmd,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=timeout * 3,
            env=env_vars(work / "pycache" / "fix" / source.label / str(entry["index"])),
            stdin=subprocess.DEVNULL,
        )
        stdout, stderr, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired:
        stdout, stderr, code = "", f"breakfix timed out after {timeout * 3}s", None
    result["breakfix_seconds"] = round(time.perf_counter() - started, 1)
    result["breakfix"] = _summary(stdout, stderr, code)
    changed = sorted(f for f, digest in _snapshot(root).items() if before.get(f) != digest)
    result["changed_files"] = changed
    if changed:
        out = work / "checks" / source.label / f"{entry['index']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(
                [f"{source.env}/bin/python", str(HERE / "check.py"), str(root), entry["reference"], str(out)],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=timeout * 2,
                env=env_vars(work / "pycache" / "check" / source.label / str(entry["index"])),
                stdin=subprocess.DEVNULL,
            )
            result["check"] = json.loads(out.read_text())
        except (subprocess.TimeoutExpired, FileNotFoundError, json.JSONDecodeError) as e:
            result["check"] = {"ok": False, "kind": None, "reason": f"the check did not finish: {type(e).__name__}"}
        result["diff"] = "".join(c["diff"] for c in result["breakfix"].get("changes", []))[:20000]
    result["outcome"], result["reason"] = classify(result)
    shutil.rmtree(root, ignore_errors=True)
    return result


def _summary(stdout: str, stderr: str, code: int | None) -> dict:
    try:
        document = json.loads(stdout)
    except json.JSONDecodeError:
        return {"exit_code": code, "error": (stderr.strip().splitlines() or ["no JSON output"])[-1][:400]}
    if "error" in document:
        return {"exit_code": code, "error": document["error"][:400]}
    breaks = [
        {key: b.get(key) for key in ("file", "line", "function", "gb_id", "gb_type", "status", "verified")}
        | {
            "fix": b["fix"] and b["fix"]["code"],
            "applicability": b["fix"] and b["fix"]["applicability"],
            "why": (b.get("why") or "")[:400],
            "attempts": [{k: a.get(k) for k in ("code", "verified", "reason")} for a in b.get("attempts", [])],
        }
        | {k: v for k, v in b.items() if k in ("kind", "fix_kind")}
        for b in document.get("breaks", [])
    ]
    return {
        "exit_code": code,
        "applied": document.get("applied"),
        "verified": document.get("verified"),
        "rounds": document.get("rounds"),
        "remaining": document.get("remaining"),
        "graph_count": document.get("graph_count"),
        "breaks": breaks,
        "changes": [{"file": c["file"], "diff": c["diff"]} for c in document.get("changes", [])],
    }


def classify(result: dict) -> tuple[str, str]:
    """(outcome, reason): fixed-fullgraph, fixed-split, false-fix or unfixable, with the reason group."""
    summary, check = result["breakfix"], result.get("check")
    if result["changed_files"]:
        if not summary.get("applied"):
            return "false-fix", "files changed although breakfix did not report applying a rewrite"
        if check and check["ok"]:
            return f"fixed-{check['kind']}", ""
        return "false-fix", (check or {}).get("reason", "not checked")
    if summary.get("applied"):
        return "false-fix", "breakfix reported a rewrite applied but no file changed"
    if "error" in summary:
        return "unfixable", "breakfix error: " + report.generic(summary["error"])
    open_breaks = [b for b in summary["breaks"] if b["status"] not in ("fixed", "resolved")]
    if not open_breaks:
        return "unfixable", "no break reported"
    first = open_breaks[0]
    return "unfixable", f"{first['status']}: {first['gb_id'] or '-'} {report.generic(first['gb_type'] or '')}"


def pick(screened: dict[str, list[dict]], limit: int) -> list[tuple[str, dict]]:
    """Targets round-robin over the sources, each source's in sample order, up to ``limit``."""
    queues = {label: [e for e in entries if e["status"] == "target"] for label, entries in screened.items()}
    picked: list[tuple[str, dict]] = []
    while any(queues.values()) and (limit <= 0 or len(picked) < limit):
        for label, queue in queues.items():
            if queue and (limit <= 0 or len(picked) < limit):
                picked.append((label, queue.pop(0)))
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sources", help="comma-separated labels (default: all): " + ",".join(s.label for s in SOURCES)
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=30,
        help="candidates screened per source, a stride sample of the sorted list (0: all)",
    )
    parser.add_argument(
        "--limit", type=int, default=0, help="targets run through breakfix, round-robin over the sources (0: all)"
    )
    parser.add_argument("--only", help="only candidates whose name contains this (before sampling)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--timeout",
        type=int,
        default=300,
        help="breakfix's --timeout per worker job; the whole run of one target gets 3 times this",
    )
    parser.add_argument("--budget", type=float, default=0, help="start no new target after this many minutes")
    parser.add_argument("--work", help="keep the screening and projects here (default: a temporary folder)")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--render", action="store_true", help="only render sweep.md from sweep.json")
    args = parser.parse_args()
    if args.render:
        store = Path(args.results) / "sweep.json"
        (Path(args.results) / "sweep.md").write_text(report.render(json.loads(store.read_text())))
        return
    chosen = [s for s in SOURCES if not args.sources or s.label in args.sources.split(",")]
    started = time.monotonic()
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "benchmarks/sweep"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    commit += "-dirty" if dirty else ""
    work = Path(args.work or tempfile.mkdtemp(prefix="breakfix-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    document: dict = {"meta": {"breakfix": commit, "args": vars(args), "sources": {}}, "sources": {}, "targets": []}
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        document["meta"]["minutes"] = round((time.monotonic() - started) / 60, 1)
        (results_dir / "sweep.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        (results_dir / "sweep.md").write_text(report.render(document))

    screened: dict[str, list[dict]] = {}
    package_dirs: dict[str, Path] = {}
    for source in chosen:
        info = versions(source)
        document["meta"]["sources"][source.label] = {**info, "env": source.env}
        if "error" in info:
            print(f"{source.label}: {info['error']}", flush=True)
        else:
            package_dirs[source.label] = Path(info["path"])

    def screen_one(source: Source) -> tuple[Source, list[dict], float]:
        t0 = time.monotonic()
        return source, screen(source, work, args.sample, args.only), time.monotonic() - t0

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for source, entries, seconds in pool.map(screen_one, [s for s in chosen if s.label in package_dirs]):
            screened[source.label] = entries
            document["sources"][source.label] = {
                "enumerated": max((e.get("enumerated", 0) for e in entries), default=0),
                "screened": len(entries),
                "minutes": round(seconds / 60, 1),
                "screen": [{k: v for k, v in e.items() if k not in ("text", "reference")} for e in entries],
            }
            statuses = [e["status"] for e in entries]
            print(
                f"{source.label}: screened {len(statuses)}, targets {statuses.count('target')} "
                f"({seconds / 60:.1f} min)",
                flush=True,
            )
            save()

    by_label = {s.label: s for s in chosen}
    queue = pick(screened, args.limit)
    document["meta"]["picked"] = len(queue)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        pending = {}
        for label, entry in queue:
            pending[
                pool.submit(
                    _fix_within_budget, by_label[label], entry, package_dirs[label], work, args, commit, started
                )
            ] = (label, entry)
        for future in as_completed(pending):
            result = future.result()
            if result is None:
                continue
            document["targets"].append(result)
            document["targets"].sort(key=lambda r: (r["source"], r["name"]))
            print(
                f"{result['source']} {result['name']}: {result['outcome']} {result['reason'][:100]} "
                f"({result['breakfix_seconds']:.0f}s)",
                flush=True,
            )
            save()
    save()


def _fix_within_budget(
    source: Source, entry: dict, package_dir: Path, work: Path, args, commit: str, started: float
) -> dict | None:
    if args.budget and time.monotonic() - started > args.budget * 60:
        return None
    return fix(source, entry, package_dir, work, args.timeout, commit)


if __name__ == "__main__":
    main()
