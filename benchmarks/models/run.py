"""Benchmark breakfix on transformers models: break events before and after `breakfix run --apply`.

    python benchmarks/models/run.py [--transformers-env PATH ...] [--models a,b,c] [--before-only]

For each environment (a venv with torch 2.13, transformers and breakfix installed) and each model:
copy the model's modeling file into a temporary project with absolute imports, write target.py
(a tiny random model, seeded, called once), measure it in a fresh process (measure.py), run
`breakfix run target.py:forward --apply --json` there, and measure again. Results are merged into
benchmarks/results/models.json (keyed by transformers version and model) and rendered to
models.md. Nothing from transformers is kept: the projects live in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import project  # noqa: E402
import report  # noqa: E402
from specs import BY_NAME, SPECS  # noqa: E402

RESULTS = HERE.parent / "results"
DEFAULT_ENVS = ("/work/envs/tf446", "/work/envs/tflatest")
TIMEOUT = 600


def _env_vars(cache: Path) -> dict:
    # OMP_NUM_THREADS=1: the machine's two cores are shared; PYTHONPYCACHEPREFIX: no stale bytecode
    # of the copied file can outlive a rewrite.
    return dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPYCACHEPREFIX=str(cache),
    )


def _locate_transformers(env: Path) -> tuple[str, Path]:
    out = subprocess.run(
        [
            str(env / "bin/python"),
            "-c",
            "import os, torch, transformers; print(transformers.__version__, torch.__version__, "
            "os.path.dirname(transformers.__file__))",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=_env_vars(Path(tempfile.gettempdir())),
    ).stdout.split()
    version, torch_version, path = out
    if not torch_version.startswith("2.13.0"):
        raise SystemExit(f"{env}: torch {torch_version}, expected 2.13.0")
    return version, Path(path)


def _meta(env: Path) -> dict:
    """What was measured: breakfix's commit (marked dirty when its code or this benchmark differ
    from it; the results this run writes do not count) and its codemods."""
    repo = HERE.parent.parent
    commit = (
        subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        or "?"
    )
    changed = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--", "src", "benchmarks/models"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    commit += "-dirty" if changed else ""
    out = subprocess.run(
        [
            str(env / "bin/python"),
            "-c",
            "import torch; from breakfix.codemods import REGISTRY; "
            "print(torch.__version__, *[c.CODE for c in REGISTRY])",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=_env_vars(Path(tempfile.gettempdir())),
    )
    torch_version, *codes = out.stdout.split()
    return {"breakfix": commit, "codemods": codes, "torch": torch_version}


def _modeling_file(transformers_dir: Path, name: str) -> tuple[Path, str]:
    for package in (f"models.{name}", f"models.deprecated.{name}"):
        path = transformers_dir.joinpath(*package.split("."), f"modeling_{name}.py")
        if path.exists():
            return path, f"transformers.{package}"
    raise FileNotFoundError(f"modeling_{name}.py not in {transformers_dir}")


def _run(cmd: list[str], cwd: Path, cache: Path, timeout: float) -> tuple[int | None, str, str, float]:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            cmd,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env_vars(cache),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return None, "", f"timed out after {timeout:g}s", time.perf_counter() - started
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - started


def _measure(env: Path, root: Path, out: Path, cache: Path, reference: Path, save: bool) -> dict:
    flag = "--save-reference" if save else "--reference"
    code, _, stderr, seconds = _run(
        [str(env / "bin/python"), str(HERE / "measure.py"), str(root), str(out), flag, str(reference)],
        root,
        cache,
        TIMEOUT,
    )
    if code != 0 or not out.exists():
        return {"error": (stderr.strip().splitlines() or [f"exit code {code}"])[-1][:400], "seconds": round(seconds, 1)}
    result = json.loads(out.read_text())
    result["seconds"] = round(seconds, 1)
    return result


def _breakfix(env: Path, root: Path, cache: Path, unsafe_fixes: bool) -> dict:
    cmd = [
        str(env / "bin/breakfix"),
        "run",
        "target.py:forward",
        "--inputs",
        "target.py:example_inputs",
        "--apply",
        "--json",
        "--root",
        str(root),
        "--timeout",
        str(TIMEOUT),
    ]
    cmd += ["--unsafe-fixes"] if unsafe_fixes else []
    code, stdout, stderr, seconds = _run(cmd, root, cache, TIMEOUT * 12)
    result: dict = {"exit_code": code, "seconds": round(seconds, 1), "unsafe_fixes": unsafe_fixes}
    try:
        document = json.loads(stdout)
    except json.JSONDecodeError:
        result["error"] = (stderr.strip().splitlines() or ["no JSON output"])[-1][:400]
        return result
    if "error" in document:
        result["error"] = document["error"][:400]
        return result
    result.update(
        verified=document["verified"],
        applied=document["applied"],
        rounds=document["rounds"],
        remaining=document["remaining"],
        graph_count=document["graph_count"],
        kind=document.get("kind"),
        coverage=document.get("coverage"),
        changed_files=[c["file"] for c in document["changes"]],
        breaks=[
            {
                "gb_id": b["gb_id"],
                "gb_type": b["gb_type"],
                "file": b["file"],
                "line": b["line"],
                "status": b["status"],
                "fix": b["fix"] and b["fix"]["code"],
                "applicability": b["fix"] and b["fix"]["applicability"],
                "verified": b["verified"],
                "why": (b["why"] or "")[:300],
                "attempts": b["attempts"],
            }
            for b in document["breaks"]
        ],
    )
    return result


def bench_model(
    env: Path, version: str, transformers_dir: Path, name: str, work: Path, before_only: bool, unsafe_fixes: bool
) -> dict:
    spec = BY_NAME[name]
    root = work / version / name
    cache = work / "pycache" / version / name
    modeling, package = _modeling_file(transformers_dir, name)
    project.build(spec, modeling, package, root)
    reference = work / version / f"{name}.reference.pt"
    entry: dict = {
        "model": name,
        "family": spec.family,
        "transformers": version,
        "model_class": spec.model_class,
        "config": spec.config,
    }
    entry["before"] = _measure(env, root, work / version / f"{name}.before.json", cache, reference, save=True)
    if before_only or "error" in entry["before"]:
        return entry
    entry["breakfix"] = _breakfix(env, root, cache, unsafe_fixes)
    entry["after"] = _measure(env, root, work / version / f"{name}.after.json", cache / "after", reference, save=False)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transformers-env", action="append", help="venv with transformers (repeatable)")
    parser.add_argument("--models", help="comma-separated model names (default: all)")
    parser.add_argument("--before-only", action="store_true", help="measure the code as it is; do not run breakfix")
    parser.add_argument("--results", default=str(RESULTS), help="folder for models.json and models.md")
    parser.add_argument(
        "--unsafe-fixes", action="store_true", help="let breakfix apply unsafe fixes too (the table marks each one)"
    )
    parser.add_argument("--render", action="store_true", help="only render models.md from models.json")
    args = parser.parse_args()
    names = args.models.split(",") if args.models else [s.name for s in SPECS]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown models: {', '.join(unknown)}")
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    store = results_dir / "models.json"
    results = json.loads(store.read_text()) if store.exists() else {"runs": {}}
    if args.render:
        (results_dir / "models.md").write_text(report.render(results))
        return
    envs = [Path(e) for e in args.transformers_env or DEFAULT_ENVS]
    results["meta"] = {**_meta(envs[0]), "unsafe_fixes": args.unsafe_fixes}
    with tempfile.TemporaryDirectory(prefix="breakfix-models-") as tmp:
        for env in envs:
            version, transformers_dir = _locate_transformers(env)
            for name in names:
                started = time.perf_counter()
                entry = bench_model(
                    env, version, transformers_dir, name, Path(tmp), args.before_only, args.unsafe_fixes
                )
                entry["seconds"] = round(time.perf_counter() - started, 1)
                entry["measured_with"] = results["meta"]["breakfix"]
                key = f"{version}/{name}"
                results["runs"][key] = entry
                store.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
                (results_dir / "models.md").write_text(report.render(results))
                print(f"{key}: {report.one_line(entry)} ({entry['seconds']:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
