"""Run breakfix over the corpus and check every rewrite independently.

    python benchmarks/corpus/run.py [--jobs N] [--only PATTERN] [--timeout 120]
    python benchmarks/corpus/run.py --mode solutions   # the hand-written sound fixes (corpus self-test)
    python benchmarks/corpus/run.py --mode unsound     # known-wrong rewrites: the check must reject them
    python benchmarks/corpus/run.py --mode selfcheck   # is each original reproducible across processes?

For each case (``cases/<NN_name>/`` with ``main.py`` and ``case.toml``) in a temporary copy:

1. ``check.py reference``: the original, eagerly, in a fresh process (PYTHONHASHSEED=0): outputs,
   stdout, files, warnings, logs, argument and global state over two seeded calls; and whether the
   original compiles with fullgraph=True (it must not: every case has a break).
2. ``breakfix run main.py:TARGET --inputs main.py:example_inputs --apply --json --root COPY
   --timeout T`` with the copy as the working directory.
3. If any file changed: ``check.py check`` in another fresh process (PYTHONHASHSEED=1, fresh
   bytecode cache): fullgraph compile on aot_eager (or an eager orchestrator whose pieces compile
   with fullgraph=True) and every call equal to the reference.

Outcomes: ``fixed`` (fixable, rewritten, check passes), ``not-fixed`` (fixable, untouched),
``false-fix`` (rewritten but the check fails, or the caller's example_inputs was rewritten),
``wrong-touch`` (an unfixable case was modified), ``untouched`` (an unfixable case left alone),
``case-error`` (the case itself is broken: its original fails to run or compiles without a break).
Results go to benchmarks/results/corpus.json and corpus.md.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import datetime
import difflib
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

HERE = Path(__file__).resolve().parent
CASES_DIR = HERE / "cases"
REPO = HERE.parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
CHECK = HERE / "check.py"
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "solution", "unsound")


@dataclass
class Case:
    name: str
    path: Path
    target: str
    fixable: bool
    category: str
    structure: list[str]
    exercises: str
    ground_truth: str  # the sound fix, or why no rewrite can be verified

    @classmethod
    def load(cls, path: Path) -> Case:
        meta = tomllib.loads((path / "case.toml").read_text())
        return cls(
            name=path.name,
            path=path,
            target=meta["target"],
            fixable=bool(meta["fixable"]),
            category=meta["category"],
            structure=list(meta.get("structure", [])),
            exercises=meta.get("exercises", ""),
            ground_truth=meta.get("sound_fix") or meta.get("why_unfixable", ""),
        )


@dataclass
class Result:
    case: Case
    outcome: str = ""
    reason: str = ""
    original: dict = field(default_factory=dict)
    cli: dict = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    diff: str = ""
    check: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict:
        c = self.case
        return {
            "case": c.name,
            "target": c.target,
            "fixable": c.fixable,
            "category": c.category,
            "structure": c.structure,
            "exercises": c.exercises,
            "ground_truth": c.ground_truth,
            "outcome": self.outcome,
            "reason": self.reason,
            "original": self.original,
            "cli": self.cli,
            "changed_files": self.changed,
            "diff": self.diff,
            "check": self.check,
            "seconds": round(self.seconds, 1),
        }


# --- subprocesses -------------------------------------------------------------------------------


def run_process(cmd: list[str], cwd: Path, env: dict, timeout: float) -> tuple[int | None, str, str]:
    """(exit code or None on timeout, stdout, stderr); a timeout kills the whole process group."""
    process = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
        errors="replace",
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        return None, out, err
    return process.returncode, out, err


def child(mode: str, case_dir: Path, target: str, state: Path, tmp: Path, hash_seed: int, timeout: float) -> dict:
    result_path = tmp / f"{mode}.json"
    env = dict(
        os.environ,
        PYTHONHASHSEED=str(hash_seed),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPYCACHEPREFIX=str(tmp / f"pycache-{mode}"),
    )
    code, _, err = run_process(
        [sys.executable, str(CHECK), mode, str(case_dir), target, str(state), str(result_path)],
        cwd=tmp,
        env=env,
        timeout=timeout,
    )
    if code is None:
        return {"ok": False, "reason": f"{mode} timed out after {timeout:g}s"}
    if not result_path.exists():
        tail = (err.strip().splitlines() or [f"exit code {code}"])[-1]
        return {"ok": False, "reason": f"{mode} process died: {tail}"}
    return json.loads(result_path.read_text())


def breakfix_command() -> list[str]:
    script = Path(sys.executable).with_name("breakfix")
    if script.exists():
        return [str(script)]
    found = shutil.which("breakfix")
    return [found] if found else [sys.executable, "-m", "breakfix"]


def parse_json_document(text: str) -> dict | None:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    starts = [i for i, ch in enumerate(text) if ch == "{" and (i == 0 or text[i - 1] == "\n")]
    for start in reversed(starts):
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            continue
    return None


def run_cli(case: Case, work: Path, timeout: float, case_timeout: float) -> dict:
    cmd = [
        *breakfix_command(),
        "run",
        f"main.py:{case.target}",
        "--inputs",
        "main.py:example_inputs",
        "--apply",
        "--json",
        "--root",
        str(work),
        "--timeout",
        f"{timeout:g}",
    ]
    started = time.monotonic()
    code, out, err = run_process(cmd, cwd=work, env=dict(os.environ), timeout=case_timeout)
    seconds = round(time.monotonic() - started, 1)
    if code is None:
        return {"exit_code": None, "error": f"breakfix timed out after {case_timeout:g}s", "seconds": seconds}
    document = parse_json_document(out)
    if document is None:
        tail = (err.strip().splitlines() or ["no output"])[-1]
        return {"exit_code": code, "error": f"no JSON on stdout: {tail}", "seconds": seconds}
    if "error" in document:
        return {"exit_code": code, "error": document["error"], "seconds": seconds}
    return {
        "exit_code": code,
        "applied": document.get("applied"),
        "verified": document.get("verified"),
        "rounds": document.get("rounds"),
        "graph_count": document.get("graph_count"),
        "seconds": seconds,
        "breaks": [
            {
                "site": f"{b.get('file')}:{b.get('line')}",
                "function": b.get("function"),
                "gb_id": b.get("gb_id"),
                "gb_type": b.get("gb_type"),
                "status": b.get("status"),
                "fix": (b.get("fix") or {}).get("code"),
                "why": b.get("why"),
                "attempts": b.get("attempts", []),
            }
            for b in document.get("breaks", [])
        ],
    }


# --- comparing the copy with the original -------------------------------------------------------


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def changes(original: Path, work: Path) -> tuple[list[str], str]:
    before, after = tree(original), tree(work)
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    diff = []
    for name in changed:
        old = before.get(name, b"").decode(errors="replace").splitlines(keepends=True)
        new = after.get(name, b"").decode(errors="replace").splitlines(keepends=True)
        diff.extend(difflib.unified_diff(old, new, f"a/{name}", f"b/{name}"))
    return changed, "".join(diff)


def inputs_rewritten(original: Path, work: Path) -> bool:
    """example_inputs stands for the caller: a fix must keep it (and so the caller's contract)."""

    def definition(path: Path) -> str:
        try:
            module = ast.parse(path.read_text())
        except (OSError, SyntaxError):
            return "<unreadable>"
        found = [ast.dump(n) for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "example_inputs"]
        return found[0] if found else "<missing>"

    return definition(original / "main.py") != definition(work / "main.py")


# --- one case -------------------------------------------------------------------------------------


def run_case(case: Case, args: argparse.Namespace) -> Result:
    result = Result(case)
    started = time.monotonic()
    overlay = case.path / ("solution" if args.mode == "solutions" else "unsound")
    if args.mode in ("solutions", "unsound") and not overlay.is_dir():
        result.outcome, result.reason = "skipped", f"no {overlay.name}/ folder"
        return result
    tmp = Path(tempfile.mkdtemp(prefix=f"corpus-{case.name}-"))
    try:
        original, work = tmp / "orig", tmp / "work"
        shutil.copytree(case.path, original, ignore=COPY_IGNORE)
        shutil.copytree(case.path, work, ignore=COPY_IGNORE)
        state = tmp / "reference.pt"
        reference = child("reference", original, case.target, state, tmp, 0, args.timeout)
        result.original = reference.get("original", {})
        if not reference.get("ok"):
            result.outcome, result.reason = "case-error", f"the original fails: {reference.get('reason')}"
            return result
        if not result.original.get("breaks"):
            result.outcome, result.reason = "case-error", "the original compiles with fullgraph=True: no break to fix"
            return result
        if args.mode == "selfcheck":
            again = child("eager", original, case.target, state, tmp, 1, args.timeout)
            reproducible = bool(again.get("ok"))
            result.check = again
            result.outcome = "reproducible" if reproducible else "not-reproducible"
            result.reason = again.get("reason", "")
            return result
        if args.mode in ("solutions", "unsound"):
            shutil.copytree(overlay, work, dirs_exist_ok=True)
        else:
            result.cli = run_cli(case, work, args.timeout, args.case_timeout)
        result.changed, result.diff = changes(original, work)
        if result.changed:
            for cache in work.rglob("__pycache__"):
                shutil.rmtree(cache, ignore_errors=True)
            result.check = child("check", work, case.target, state, tmp, 1, args.timeout)
            if inputs_rewritten(original, work):
                result.check = {
                    **result.check,
                    "ok": False,
                    "reason": "example_inputs (the caller) was rewritten; " + result.check.get("reason", ""),
                }
        if args.mode == "unsound":
            caught = not result.check.get("ok")
            result.outcome = "check-caught" if caught else "check-missed"
            result.reason = result.check.get("reason", "") if caught else "the check accepts an unsound rewrite"
        else:
            classify(result)
        return result
    except Exception as e:  # one broken case must not stop the corpus
        result.outcome, result.reason = "case-error", f"runner: {type(e).__name__}: {e}"
        return result
    finally:
        result.seconds = time.monotonic() - started
        if args.keep:
            result.reason = f"{result.reason} (kept in {tmp})".strip()
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def classify(result: Result) -> None:
    case, check = result.case, result.check
    if not result.changed:
        result.outcome = "not-fixed" if case.fixable else "untouched"
        result.reason = result.cli.get("error") or _missed_why(result.cli)
    elif not case.fixable:
        result.outcome = "wrong-touch"
        result.reason = (
            "modified "
            + ", ".join(result.changed)
            + (f" (independent check: {'passes' if check.get('ok') else check.get('reason')})")
        )
    elif check.get("ok"):
        result.outcome = "fixed"
        kind = "eager orchestrator" if check.get("orchestrator") else "fullgraph"
        result.reason = f"{kind}, {check.get('graphs')} graph(s)"
    else:
        result.outcome = "false-fix"
        result.reason = check.get("reason", "")


def _missed_why(cli: dict) -> str:
    parts = []
    for brk in cli.get("breaks", []):
        if brk.get("status") != "fixed":
            parts.append(f"{brk['site']} {brk.get('gb_id') or brk.get('gb_type')}: {brk.get('status')}: {_why(brk)}")
    return "; ".join(parts)


def _why(brk: dict) -> str:
    """The CLI joins one reason per attempted codemod; several attempts often give the same one."""
    reasons = [r.strip() for r in (brk.get("why") or "").split("; ") if r.strip()]
    return "; ".join(dict.fromkeys(reasons))


# --- reports --------------------------------------------------------------------------------------


def summarize(results: list[Result]) -> dict:
    fixable = [r for r in results if r.case.fixable]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    fixed = sum(r.outcome == "fixed" for r in fixable)
    return {
        "cases": len(results),
        "fixable": len(fixable),
        "unfixable": len(results) - len(fixable),
        "outcomes": counts,
        "fixed_and_verified": fixed,
        "fixed_rate": round(fixed / len(fixable), 4) if fixable else None,
        "false_fixes": counts.get("false-fix", 0),
        "wrong_touches": counts.get("wrong-touch", 0),
        "done": bool(fixable)
        and fixed / len(fixable) >= 0.9
        and not counts.get("false-fix")
        and not counts.get("wrong-touch"),
    }


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{rev}{' + uncommitted changes in src/' if dirty else ''}"


def markdown(results: list[Result], summary: dict, meta: dict) -> str:
    rate = summary["fixed_rate"]
    lines = [
        "# breakfix corpus results",
        "",
        f"Generated by `python benchmarks/corpus/run.py` on {meta['date']} (breakfix {meta['revision']}, "
        f"torch {meta['torch']}, `--timeout {meta['timeout']:g}`, {meta['jobs']} jobs, {meta['minutes']:.1f} min).",
        "",
        "## Headline",
        "",
        "| metric | value | target |",
        "|---|---|---|",
        f"| fixed and verified / fixable | **{summary['fixed_and_verified']} / {summary['fixable']}**"
        f" ({'n/a' if rate is None else f'{rate:.0%}'}) | >= 90% |",
        f"| false fixes (a written rewrite whose independent check fails) | **{summary['false_fixes']}** | 0 |",
        f"| wrong touches (an unfixable case modified) | **{summary['wrong_touches']}** | 0 |",
        "",
        f"Outcomes: {', '.join(f'{k} {v}' for k, v in sorted(summary['outcomes'].items()))}. "
        f"{summary['cases']} cases ({summary['fixable']} fixable, {summary['unfixable']} unfixable).",
        "",
        "## By category and structure",
        "",
        "| tag | fixable cases | fixed and verified | unfixable cases | touched |",
        "|---|---|---|---|---|",
        *_by_tag(results),
        "",
        "## Cases",
        "",
        "| case | category | structure | fixable | outcome | breakfix | detail |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cli = r.cli
        fixes = sorted({b["fix"] for b in cli.get("breaks", []) if b.get("fix") and b.get("status") == "fixed"})
        tool = "-" if not cli else f"exit {cli.get('exit_code')}" + (f", {' '.join(fixes)}" if fixes else "")
        detail = _cell(r.reason, 160)
        lines.append(
            f"| {r.case.name} | {r.case.category} | {', '.join(r.case.structure)} | "
            f"{'yes' if r.case.fixable else 'no'} | {r.outcome} | {tool} | {detail} |"
        )
    missed = [r for r in results if r.case.fixable and r.outcome != "fixed"]
    if missed:
        lines += ["", "## Fixable cases breakfix misses, and why (from the CLI's JSON)", ""]
        for r in missed:
            lines.append(f"- **{r.case.name}** ({r.outcome}; expected fix: {r.case.ground_truth})")
            for brk in r.cli.get("breaks", []):
                lines.append(
                    f"  - `{brk['site']}` {brk.get('gb_id') or '-'} *{_cell(brk.get('gb_type') or '', 80)}*: "
                    f"{brk.get('status')}: {_cell(_why(brk), 300)}"
                )
            if r.cli.get("error"):
                lines.append(f"  - error: {_cell(r.cli['error'], 300)}")
            if r.outcome == "false-fix":
                lines.append(f"  - independent check: {_cell(r.reason, 300)}")
    bad = [r for r in results if r.outcome in ("false-fix", "wrong-touch")]
    if bad:
        lines += ["", "## Diffs of false fixes and wrong touches", ""]
        for r in bad:
            lines += [f"### {r.case.name}", "", f"{_cell(r.reason, 400)}", "", "```diff", r.diff.rstrip(), "```", ""]
    return "\n".join(lines) + "\n"


def _by_tag(results: list[Result]) -> list[str]:
    tags = sorted({t for r in results for t in (r.case.category, *r.case.structure)})
    rows = []
    for tag in tags:
        tagged = [r for r in results if tag in (r.case.category, *r.case.structure)]
        fixable = [r for r in tagged if r.case.fixable]
        unfixable = [r for r in tagged if not r.case.fixable]
        rows.append(
            f"| {tag} | {len(fixable)} | {sum(r.outcome == 'fixed' for r in fixable)} | {len(unfixable)} | "
            f"{sum(r.outcome == 'wrong-touch' for r in unfixable)} |"
        )
    return rows


def _cell(text: str, limit: int) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="cases run in parallel (default 2)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run the cases whose folder name contains PATTERN or matches it as a glob (repeatable)",
    )
    parser.add_argument("--timeout", type=float, default=120, help="breakfix --timeout and the check's timeout (s)")
    parser.add_argument("--case-timeout", type=float, default=900, help="wall-clock limit of one breakfix run (s)")
    parser.add_argument(
        "--mode",
        choices=("cli", "solutions", "unsound", "selfcheck"),
        default="cli",
        help="cli: run breakfix; solutions / unsound: apply each case's solution/ or unsound/ "
        "rewrite instead (the check must pass / fail); selfcheck: rerun the original eagerly",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results prefix (default benchmarks/results/corpus for --mode cli; other modes only print)",
    )
    parser.add_argument("--keep", action="store_true", help="keep each case's temporary copy")
    args = parser.parse_args(argv)

    cases = [Case.load(p) for p in sorted(CASES_DIR.iterdir()) if (p / "case.toml").exists()]
    if args.only:
        cases = [c for c in cases if any(p in c.name or fnmatch.fnmatch(c.name, p) for p in args.only)]
    if not cases:
        parser.error("no case matches")
    started = time.monotonic()
    results: list[Result] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_case, case, args): case for case in cases}
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            results.append(result)
            print(
                f"[{len(results):2d}/{len(cases)}] {result.case.name:42s} {result.outcome:16s} "
                f"{result.seconds:5.0f}s  {_cell(result.reason, 110)}",
                file=sys.stderr,
                flush=True,
            )
    results.sort(key=lambda r: r.case.name)
    summary = summarize(results)
    print(
        json.dumps(
            {
                k: summary[k]
                for k in ("fixed_and_verified", "fixable", "fixed_rate", "false_fixes", "wrong_touches", "outcomes")
            }
        ),
        flush=True,
    )

    if args.mode == "selfcheck":
        for r in results:
            if r.outcome != ("reproducible" if r.case.fixable else "not-reproducible"):
                print(f"ground truth disagrees: {r.case.name} (fixable={r.case.fixable}): {r.outcome} {r.reason}")
    out = args.out or (RESULTS_DIR / "corpus" if args.mode == "cli" else None)
    if out is not None:
        import torch

        meta = {
            "date": datetime.date.today().isoformat(),
            "revision": git_revision(),
            "torch": torch.__version__,
            "timeout": args.timeout,
            "jobs": args.jobs,
            "mode": args.mode,
            "minutes": (time.monotonic() - started) / 60,
            "only": args.only,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(
            json.dumps({"meta": meta, "summary": summary, "cases": [r.to_json() for r in results]}, indent=2) + "\n"
        )
        out.with_suffix(".md").write_text(markdown(results, summary, meta))
    return 0 if summary["done"] or args.mode != "cli" else 1


if __name__ == "__main__":
    sys.exit(main())
