"""Speed of breakfix: the floor, one run side by side with it, rounds, scale, and the runtime payoff.

    python benchmarks/speed/run.py [--pairs 5] [--only floor,profile,breaks,lines,targets,payoff]
                                   [--baseline-src DIR] [--payoff-cases a,b]

Writes benchmarks/results/speed.json and speed.md. Sections:

floor     ``floor.py`` (one process: import torch, explain the original target once, compile the
          already-fixed target once with fullgraph=True on aot_eager, call it) and
          ``breakfix run --apply`` on examples/graph_break_helper.py, interleaved pair by pair
          (the machine is shared: a pair runs under the same load), ``--pairs`` pairs; the ratio is
          taken per pair and its median reported. With ``--baseline-src``, the same run with that
          copy of breakfix's sources is timed in each pair too (e.g. the commit before zygotes).
profile   one traced run: when each worker job ran, and what the imports cost on their own.
breaks    one target with 1, 10, 50 breaks (each in its own helper): wall time, worker jobs, and
          the cost of each break beyond the first against the median verification job.
lines     one break in a file of 100, 1,000, 10,000 lines.
targets   1, 10, 50 targets (one file each, one break each) in one invocation, with -j 1 and -j 2.
payoff    for a few fixed cases: graph count and inductor steady-state runtime before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RESULTS = REPO / "benchmarks" / "results"
EXAMPLE = REPO / "examples" / "graph_break_helper.py"
SECTIONS = ("floor", "profile", "breaks", "lines", "targets", "payoff")

# (name, project folder, files to copy, target as FILE:QUALNAME)
PAYOFF_CASES = {
    "example_graph_break_helper": (REPO / "examples", ["graph_break_helper.py"], "graph_break_helper.py:f"),
    "corpus_10_attention_graph_break_helper": (
        REPO / "benchmarks/corpus/cases/10_attention_graph_break_helper",
        None,
        "main.py:Attention.forward",
    ),
    "corpus_13_transformer_stats_3_deep": (
        REPO / "benchmarks/corpus/cases/13_transformer_stats_3_deep",
        None,
        "main.py:Transformer.forward",
    ),
}


def _env(src: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(src), PYTHONDONTWRITEBYTECODE="1")


def _timed(
    cmd: list[str], cwd: Path, src: Path = REPO / "src", timeout: float = 3600
) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(
        cmd, cwd=cwd, env=_env(src), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    return time.perf_counter() - started, done


def _breakfix(*args: str) -> list[str]:
    return [sys.executable, "-m", "breakfix", "run", *args]


def _traced(spans: Path, *args: str) -> list[str]:
    return [sys.executable, str(HERE / "traced.py"), str(spans), "run", *args]


def _expect(done: subprocess.CompletedProcess, codes: tuple[int, ...] = (0,)) -> None:
    if done.returncode not in codes:
        raise SystemExit(f"{' '.join(done.args)} exited {done.returncode}:\n{done.stderr[-3000:]}")


def _load() -> float:
    return os.getloadavg()[0]


# --- floor ---------------------------------------------------------------------------------------


def bench_floor(work: Path, pairs: int, baseline: Path | None, baseline_label: str | None) -> dict:
    project, floor_dir = work / "floor-project", work / "floor"
    project.mkdir()
    floor_dir.mkdir()
    original = EXAMPLE.read_text()
    (project / "graph_break_helper.py").write_text(original)
    _, warm = _timed(_breakfix("graph_break_helper.py:f", "--apply"), project)  # also warms the page cache
    _expect(warm)
    fixed = (project / "graph_break_helper.py").read_text()
    (floor_dir / "original.py").write_text(original)
    (floor_dir / "fixed.py").write_text(fixed)
    floor_cmd = [sys.executable, str(HERE / "floor.py"), "original.py", "fixed.py", "f", "--backend", "aot_eager"]
    rows = []
    for number in range(pairs):
        row = {"load": _load()}
        steps = ["floor", "floor_fast_exit", "run"] + (["baseline_run"] if baseline else [])
        if number % 2:
            steps.reverse()  # alternate the order so a drift in load does not favour one side
        for step in steps:
            if step.startswith("floor"):
                row[step], done = _timed(floor_cmd + (["--fast-exit"] if step == "floor_fast_exit" else []), floor_dir)
                _expect(done)
            else:
                (project / "graph_break_helper.py").write_text(original)
                row[step], done = _timed(
                    _breakfix("graph_break_helper.py:f", "--apply"),
                    project,
                    src=baseline if step == "baseline_run" else REPO / "src",
                )
                _expect(done)
                if (project / "graph_break_helper.py").read_text() != fixed:
                    raise SystemExit(f"{step}: the rewrite differs from the warm-up run's")
        row["ratio"] = row["run"] / row["floor"]
        row["ratio_fast_exit"] = row["run"] / row["floor_fast_exit"]
        if baseline:
            row["baseline_ratio"] = row["baseline_run"] / row["floor"]
        rows.append(row)
        print(f"  pair {number + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    keys = [k for k in rows[0] if k != "load"]
    return {
        "target": "examples/graph_break_helper.py:f",
        "pairs": rows,
        "baseline": baseline_label,
        "median": {k: statistics.median(r[k] for r in rows) for k in keys},
    }


# --- profile -------------------------------------------------------------------------------------


def bench_profile(work: Path) -> dict:
    project = work / "profile"
    project.mkdir()
    shutil.copy(EXAMPLE, project)
    spans = work / "profile-spans.json"
    wall, done = _timed(_traced(spans, "graph_break_helper.py:f", "--apply"), project)
    _expect(done)
    traced = json.loads(spans.read_text())
    torch_import, _ = _timed([sys.executable, "-c", "import torch, torch._dynamo, torch._functorch.aot_autograd"], work)
    parent_import, _ = _timed([sys.executable, "-c", "import breakfix.cli, breakfix.engine, breakfix.render"], work)
    python_start, _ = _timed([sys.executable, "-c", "pass"], work)
    return {
        "wall": wall,
        "spans": traced["spans"],
        "end": traced["end"],
        "torch_import": torch_import,
        "parent_import": parent_import,
        "python_start": python_start,
    }


# --- scale ---------------------------------------------------------------------------------------


def _many_breaks_source(breaks: int, padding_lines: int = 0) -> str:
    helpers = "".join(
        f"\n\ndef h{i}(x):\n    torch._dynamo.graph_break()\n    return x * {i + 2}\n" for i in range(breaks)
    )
    calls = "".join(f"    x = h{i}(x) + 1\n" for i in range(breaks))
    text = (
        f"import torch\n{helpers}\n\ndef f(x):\n{calls}    return x\n\n\n"
        "def example_inputs():\n    return (torch.randn(4),)\n"
    )
    filler = []
    number = 0
    while len(text.splitlines()) + len(filler) * 5 < padding_lines:
        filler.append(f"\n\ndef unrelated_{number}(a, b):\n    c = a + b  # filler\n    return c * {number}\n")
        number += 1
    return text + "".join(filler)


def _run_traced(project: Path, work: Path, name: str, *args: str) -> dict:
    spans = work / f"{name}-spans.json"
    wall, done = _timed(_traced(spans, *args, "--apply", "--json", "--timeout", "1800"), project)
    _expect(done, (0, 1))
    doc = json.loads(done.stdout)
    traced = json.loads(spans.read_text())
    checks = [s["end"] - s["start"] for s in traced["spans"] if s["mode"] == "check"]
    locates = [s["end"] - s["start"] for s in traced["spans"] if s["mode"] == "locate"]
    results = doc.get("results", [doc])
    return {
        "wall": wall,
        "exit_code": done.returncode,
        "worker_jobs": len(traced["spans"]),
        "checks": len(checks),
        "check_median": statistics.median(checks) if checks else None,
        "check_total": sum(checks),
        "locate_total": sum(locates),
        "applied": sum(bool(r.get("applied")) for r in results),
        "targets": len(results),
        "graph_count": [r.get("graph_count") for r in results][:3],
        "load": _load(),
    }


def bench_breaks(work: Path, counts: list[int]) -> dict:
    rows = []
    for count in counts:
        project = work / f"breaks-{count}"
        project.mkdir()
        (project / "target.py").write_text(_many_breaks_source(count))
        row = {"breaks": count, **_run_traced(project, work, f"breaks-{count}", "target.py:f")}
        rows.append(row)
        print(f"  {count} breaks: {row['wall']:.1f}s, {row['checks']} checks, applied {row['applied']}", flush=True)
    first, last = rows[0], rows[-1]
    marginal = (last["wall"] - first["wall"]) / (last["breaks"] - first["breaks"]) if len(rows) > 1 else None
    return {"rows": rows, "marginal_per_break": marginal}


def bench_lines(work: Path, sizes: list[int]) -> dict:
    rows = []
    for size in sizes:
        project = work / f"lines-{size}"
        project.mkdir()
        source = _many_breaks_source(1, padding_lines=size)
        (project / "target.py").write_text(source)
        row = {"lines": len(source.splitlines()), **_run_traced(project, work, f"lines-{size}", "target.py:f")}
        rows.append(row)
        print(f"  {row['lines']} lines: {row['wall']:.1f}s", flush=True)
    return {"rows": rows}


def bench_targets(work: Path, counts: list[int], parallel: list[int]) -> dict:
    rows = []
    for count in counts:
        for jobs in parallel:
            project = work / f"targets-{count}-j{jobs}"
            project.mkdir()
            for i in range(count):
                (project / f"t{i}.py").write_text(_many_breaks_source(1))
            targets = [f"t{i}.py:f" for i in range(count)]
            row = {
                "targets": count,
                "j": jobs,
                **_run_traced(project, work, f"targets-{count}-j{jobs}", *targets, "-j", str(jobs)),
            }
            row["per_target"] = row["wall"] / count
            rows.append(row)
            print(f"  {count} targets -j {jobs}: {row['wall']:.1f}s, applied {row['applied']}", flush=True)
    return {"rows": rows}


# --- payoff --------------------------------------------------------------------------------------


def bench_payoff(work: Path, names: list[str]) -> dict:
    rows = []
    for name in names:
        folder, files, target = PAYOFF_CASES[name]
        before, after = work / f"payoff-{name}-before", work / f"payoff-{name}-after"
        for project in (before, after):
            if files is None:
                shutil.copytree(
                    folder, project, ignore=shutil.ignore_patterns("solution", "unsound", "case.toml", "__pycache__")
                )
            else:
                project.mkdir()
                for file in files:
                    shutil.copy(folder / file, project)
        _, done = _timed(_breakfix(target, "--apply", "--json"), after)
        _expect(done, (0, 1))
        doc = json.loads(done.stdout)
        file, _, qualname = target.partition(":")
        row = {"case": name, "target": target, "applied": doc["applied"], "graph_count": doc["graph_count"]}
        for side, project in (("before", before), ("after", after)):
            _, measured = _timed(
                [sys.executable, str(HERE / "payoff.py"), file, qualname, "--backend", "inductor"], project
            )
            _expect(measured)
            row[side] = json.loads(measured.stdout.strip().splitlines()[-1])
        both = row["before"]["compiled"] and row["after"]["compiled"]
        row["speedup"] = row["before"]["compiled"] / row["after"]["compiled"] if both else None
        rows.append(row)
        print(
            f"  {name}: graphs {doc['graph_count']}, compiled {_ms(row['before']['compiled'])} -> "
            f"{_ms(row['after']['compiled'])} ms {row['before'].get('error', '')}",
            flush=True,
        )
    return {"rows": rows}


# --- report --------------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


def markdown(doc: dict) -> str:
    meta = doc["meta"]
    out = [
        "# Speed",
        "",
        f"`python benchmarks/speed/run.py` at breakfix {meta['breakfix']}, torch {meta['torch']}, "
        f"{meta['cpus']} CPUs ({meta['machine']}), {meta['date']}. The machine was shared with other "
        "work while this ran (load average per row below): wall times are noisy, so the floor and the "
        "run are timed pair by pair, in alternating order, and ratios are taken within a pair.",
        "",
    ]
    if meta.get("sections"):
        out += [
            "Sections measured: "
            + "; ".join(f"{name} at {m['breakfix']}, {m['date']}" for name, m in meta["sections"].items())
            + ".",
            "",
        ]
    if "floor" in doc:
        floor = doc["floor"]
        median = floor["median"]
        out += [
            "## One fix against the floor",
            "",
            f"Target `{floor['target']}` (one break, fixed by BF201). **floor**: `floor.py`, one process that "
            "imports torch, runs `torch._dynamo.explain` on the original target once, compiles the already-fixed "
            "target once with `fullgraph=True` on aot_eager and calls it, then exits normally. **floor, fast exit**: "
            "the same ending in `os._exit` (no interpreter teardown, as breakfix's workers end). **run**: "
            "`breakfix run graph_break_helper.py:f --apply` on a fresh copy (locate, reference run, rewrite, "
            "verification in a fresh worker, write)."
            + (
                " **baseline run**: the same command with the sources given by `--baseline-src` "
                f"({floor.get('baseline')})."
                if "baseline_run" in median
                else ""
            ),
            "",
            "| pair | load | floor (s) | floor, fast exit (s) | run (s) | run / floor | run / floor, fast exit |"
            + (" baseline run (s) | baseline / floor |" if "baseline_run" in median else ""),
            "|---|---|---|---|---|---|---|" + ("---|---|" if "baseline_run" in median else ""),
        ]
        for number, row in enumerate(floor["pairs"], start=1):
            out.append(
                f"| {number} | {row['load']:.2f} | {row['floor']:.2f} | {row['floor_fast_exit']:.2f} | "
                f"{row['run']:.2f} | {row['ratio']:.2f} | {row['ratio_fast_exit']:.2f} |"
                + (f" {row['baseline_run']:.2f} | {row['baseline_ratio']:.2f} |" if "baseline_run" in row else "")
            )
        out.append(
            f"| **median** | | {median['floor']:.2f} | {median['floor_fast_exit']:.2f} | {median['run']:.2f} | "
            f"**{median['ratio']:.2f}** | {median['ratio_fast_exit']:.2f} |"
            + (f" {median['baseline_run']:.2f} | {median['baseline_ratio']:.2f} |" if "baseline_run" in median else "")
        )
        verdict = "holds" if median["ratio"] <= 1.3 else "does NOT hold"
        out += [
            "",
            f"Target: median of the per-pair ratios run / floor at most 1.3: **{verdict}** ({median['ratio']:.2f}).",
            "",
        ]
    if "profile" in doc:
        profile = doc["profile"]
        out += [
            "## Where the time of one run goes",
            "",
            "One traced run (`traced.py`, the CLI in-process with each worker job timed): "
            f"{profile['wall']:.2f} s wall.",
            "",
            "| what | from (s) | to (s) | seconds |",
            "|---|---|---|---|",
        ]
        for span in profile["spans"]:
            what = {
                "locate": "locate job (zygote ready, then reference run, explain, fullgraph attempt, facts)",
                "check": "check job (compile the rewrite with fullgraph=True, two seeded calls, compare)",
            }[span["mode"]]
            out.append(f"| {what} | {span['start']:.2f} | {span['end']:.2f} | {span['end'] - span['start']:.2f} |")
        out += [
            "",
            "For scale, on their own: python start "
            f"{profile['python_start']:.2f} s; `import torch, torch._dynamo, aot_autograd` "
            f"{profile['torch_import']:.2f} s "
            f"(paid once per zygote, two zygotes start in parallel); the parent's imports (click, libcst, rich; "
            f"never torch) {profile['parent_import']:.2f} s.",
            "",
        ]
    if "breaks" in doc:
        breaks = doc["breaks"]
        out += [
            "## Breaks in one target",
            "",
            "One target calling N helpers, each with its own `torch._dynamo.graph_break()`; every break "
            "is fixed (BF201), one verification each.",
            "",
            "| breaks | wall (s) | locate job (s) | checks | check jobs, total (s) | median check job (s) "
            "| outside jobs (s) | fixed and written | load |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in breaks["rows"]:
            rest = row["wall"] - row["locate_total"] - row["check_total"]
            out.append(
                f"| {row['breaks']} | {row['wall']:.1f} | {row['locate_total']:.1f} | {row['checks']} | "
                f"{row['check_total']:.1f} | {row['check_median']:.2f} | {rest:.1f} | "
                f"{'yes' if row['applied'] else 'no'} | {row['load']:.2f} |"
            )
        if breaks["marginal_per_break"] is not None:
            out += [
                "",
                f"Each break beyond the first costs {breaks['marginal_per_break']:.2f} s of wall time "
                f"((wall at {breaks['rows'][-1]['breaks']} - wall at {breaks['rows'][0]['breaks']}) / "
                f"{breaks['rows'][-1]['breaks'] - breaks['rows'][0]['breaks']}). Each further fix is one "
                "more verification: one check job, forked from a zygote that has imported torch (no new "
                "`import torch`), plus the rewrite in the parent. A check job grows with the target: it "
                "compiles the whole target and, while breaks remain, locates them again. *Outside jobs*: wall "
                "time not spent waiting on a worker job: the parent's start (its imports overlap the zygotes' "
                "start, which the locate job includes), the rewrites (LibCST), writing, the report, exit.",
                "",
            ]
    if "lines" in doc:
        out += [
            "## File size",
            "",
            "One break in a file padded with unrelated functions.",
            "",
            "| lines | wall (s) | locate job (s) | check jobs (s) | outside jobs (s) | load |",
            "|---|---|---|---|---|---|",
        ]
        for row in doc["lines"]["rows"]:
            rest = row["wall"] - row["locate_total"] - row["check_total"]
            out.append(
                f"| {row['lines']} | {row['wall']:.1f} | {row['locate_total']:.1f} | {row['check_total']:.1f} | "
                f"{rest:.1f} | {row['load']:.2f} |"
            )
        out.append("")
    if "targets" in doc:
        out += [
            "## Many targets",
            "",
            "N files with one fixable break each, all given to one `breakfix run ... --apply -j J`.",
            "",
            "| targets | -j | wall (s) | per target (s) | fixed and written | load |",
            "|---|---|---|---|---|---|",
        ]
        for row in doc["targets"]["rows"]:
            out.append(
                f"| {row['targets']} | {row['j']} | {row['wall']:.1f} | {row['per_target']:.2f} | "
                f"{row['applied']}/{row['targets']} | {row['load']:.2f} |"
            )
        out += ["", "```", *_ascii_plot(doc["targets"]["rows"]), "```", ""]
    if "payoff" in doc:
        out += [
            "## What a fix buys",
            "",
            "Each case before and after `breakfix run --apply`: graph count from `--json` (aot_eager, as "
            "breakfix verifies), then, in a fresh process per side, `torch.compile(target)` on **inductor** "
            "(CPU, one thread, breaks allowed for the original), three warm-up calls after the compiling one, "
            "then the median of up to 30 calls (at least 5, about 3 s), fresh inputs made outside the timer. "
            "A fix that made the target an eager orchestrator is called as it is: its pieces carry their own "
            "`torch.compile(fullgraph=True)` (inductor); its *eager* column then already includes them.",
            "",
            "| case | graphs before | graphs after | eager (ms) | compiled before (ms) | compiled after (ms) | speedup "
            "| first call before (s) | first call after (s) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in doc["payoff"]["rows"]:
            before, after = row["before"], row["after"]
            out.append(
                f"| {row['case']} | {row['graph_count']['before']} | {row['graph_count']['after']} | "
                f"{_ms(before['eager'])} | {_ms(before['compiled']) if before['compiled'] else 'raises (a)'} | "
                f"{_ms(after['compiled']) if after['compiled'] else 'raises (a)'} | "
                + (f"{row['speedup']:.2f}x" if row["speedup"] else "-")
                + " | "
                + " | ".join(
                    "(b)"
                    if side.get("orchestrator")
                    else f"{side['first_call']:.1f}"
                    if side.get("first_call")
                    else "-"
                    for side in (before, after)
                )
                + " |"
            )
        errors = [
            f"{row['case']} {side}: `{row[side]['error']}`"
            for row in doc["payoff"]["rows"]
            for side in ("before", "after")
            if row[side].get("error")
        ]
        if errors:
            out += ["", "(a) The compiled call raised on inductor: " + "; ".join(errors) + "."]
        if any(row[side].get("orchestrator") for row in doc["payoff"]["rows"] for side in ("before", "after")):
            out += [
                "",
                "(b) An eager orchestrator: its pieces were compiled during the eager calls, before the timed ones.",
            ]
        out.append("")
    return "\n".join(out)


def _ascii_plot(rows: list[dict]) -> list[str]:
    """Wall time per configuration as bars: a picture of how many targets scale with -j."""
    top = max(r["wall"] for r in rows)
    return [
        f"{r['targets']:>3} targets -j {r['j']} | {'#' * max(1, round(50 * r['wall'] / top)):<50} {r['wall']:.1f} s"
        for r in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--baseline-src", type=Path)
    parser.add_argument("--baseline-label", help="what --baseline-src is, for the report (e.g. a commit)")
    parser.add_argument("--breaks", default="1,10,50")
    parser.add_argument("--lines", default="100,1000,10000")
    parser.add_argument("--targets", default="1,10,50")
    parser.add_argument("--payoff-cases", default=",".join(PAYOFF_CASES))
    parser.add_argument("--out", type=Path, default=RESULTS / "speed")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other sections of an existing OUT.json; rerun only those of --only",
    )
    parser.add_argument("--render", action="store_true", help="only write OUT.md again from OUT.json")
    args = parser.parse_args()
    if args.render:
        args.out.with_suffix(".md").write_text(markdown(json.loads(args.out.with_suffix(".json").read_text())))
        return
    sections = args.only.split(",")
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    torch_version = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    doc: dict = json.loads(args.out.with_suffix(".json").read_text()) if args.merge else {}
    doc["meta"] = {
        **doc.get("meta", {}),
        **{
            "breakfix": commit,
            "torch": torch_version,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        },
    }
    for section in sections:
        doc["meta"].setdefault("sections", {})[section] = {"breakfix": commit, "date": doc["meta"]["date"]}
    with tempfile.TemporaryDirectory(prefix="breakfix-speed-") as tmp:
        work = Path(tmp)
        numbers = lambda text: [int(x) for x in text.split(",")]  # noqa: E731
        runs = {
            "floor": lambda: bench_floor(
                work,
                args.pairs,
                args.baseline_src and args.baseline_src.resolve(),
                args.baseline_label or (args.baseline_src and str(args.baseline_src)),
            ),
            "profile": lambda: bench_profile(work),
            "breaks": lambda: bench_breaks(work, numbers(args.breaks)),
            "lines": lambda: bench_lines(work, numbers(args.lines)),
            "targets": lambda: bench_targets(work, numbers(args.targets), [1, 2]),
            "payoff": lambda: bench_payoff(work, args.payoff_cases.split(",")),
        }
        for section in SECTIONS:
            if section in sections:
                print(f"{section}:", flush=True)
                started = time.perf_counter()
                doc[section] = runs[section]()
                doc[section]["seconds"] = time.perf_counter() - started
                args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")  # keep what is done
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(doc))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
