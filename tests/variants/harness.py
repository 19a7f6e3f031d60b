"""Runs the variants: the fixture's codemod alone (text tier) or the real CLI (torch tier), and the report.

Text tier: the codemod gets the variant's moved break through ``engine.apply_codemod`` (as the
engine and tests/test_fixtures.py do) and either refuses (``SkipFile``, or the file back
unchanged) or rewrites. A rewrite must parse and compile, change nothing outside the functions of
the break's frames in the edited file (new imports and new module-level helpers aside: the
checks of ``benchmarks/fuzz/fuzzing.py``), and be left alone by a second application for the same break
found again in the rewrite. Anything else is a failure: a crash, unparsable code, an edit outside
the break's functions or outside the project, a second rewrite.

Torch tier: ``python -m breakfix run before.py:<target> --inputs inputs.py:example_inputs --apply
--json`` in a copy of the variant; the outcome is fixed (verified and written), refused (exit 1,
nothing written) or error (exit 2, a crash, a timeout, or a report that does not parse).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import fuzzing
import libcst as cst
from libcst.codemod import SkipFile, TransformFailure, TransformSkip, TransformSuccess

from breakfix.codemods import BY_CODE, FixRequest
from breakfix.engine import apply_codemod
from breakfix.types import BreakFacts, Frame, GraphBreak
from variants.generator import Skipped, Variant

LIBRARY_FILE = "/usr/lib/python3/site-packages/somelib/__init__.py"
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "variants.md"
FAILURE_KINDS = ("crash", "not_parsing", "outside_changes", "outside_project", "not_idempotent", "second_crash")


@dataclass(frozen=True)
class TextOutcome:
    variant: str
    code: str
    family: str
    status: str  # rewritten, refused or failure
    reason: str = ""  # the refusal, or the failure kind
    detail: str = ""  # a failure's traceback or diff
    idempotence: str = ""  # checked, or site_gone (the rewrite moved the break's line out of its function)


def graph_break(variant: Variant, folder: Path) -> GraphBreak:
    """The variant's break as the locator would report it in ``folder``."""
    frames = []
    for name, line, function in variant.stack:
        text = variant.files[name].splitlines()[line - 1].strip()
        frames.append(Frame(str((folder / name).resolve()), line, function, line=text))
    entry = variant.fixture.first_break
    library = [Frame(LIBRARY_FILE, 1, "lib") for _ in range(entry.get("library_frames", 0))]
    return GraphBreak(
        gb_type=entry["gb_type"],
        gb_id=entry.get("gb_id"),
        reason=entry["gb_type"],
        explanation="",
        hints=[],
        user_stack=frames + library,
        project_stack=frames,
    )


def normalized(reason: str) -> str:
    """A refusal without its line numbers, so that refusals group."""
    return re.sub(r"\d+", "N", reason.strip().splitlines()[0] if reason.strip() else "(no reason)")[:200]


def _unblanked(units: list[fuzzing.Unit]) -> list[fuzzing.Unit]:
    """Units without their leading blank lines: a helper inserted above a class takes the blank
    lines before it, which is no change to the class. Other statements are known by their text,
    not by their index: a statement a codemod inserts (a custom op's registration) shifts the
    index of every statement after it."""
    return [
        replace(u, text=u.text.lstrip("\n"), name=u.text.strip() if u.kind == "statement" else u.name) for u in units
    ]


@functools.cache
def fixture_outside_changes(folder: Path, stack: tuple[str, ...]) -> frozenset[str]:
    """What the fixture's own reviewed rewrite (after.py) changes outside the functions of its
    break, such as an import it removes or a helper of the site it rewrites: a variant's rewrite
    may change the same."""
    before, after = ((folder / name).read_text() for name in ("before.py", "after.py"))
    original = fuzzing.Source.of("before.py", before, cst.parse_module(before))
    rewritten = fuzzing.Source.of("before.py", after, cst.parse_module(after))
    touched = {fuzzing.unit_at(original.units, int(item.split(":")[1])) for item in stack}
    return frozenset(fuzzing.outside_changes(_unblanked(original.units), _unblanked(rewritten.units), touched))


def run_text(variant: Variant, folder: Path) -> TextOutcome:
    """The fixture's codemod on the variant (materialized in ``folder``), checked."""
    variant.materialize(folder)
    fixture = variant.fixture
    outcome = TextOutcome(variant.id, fixture.code, fixture.family, "refused")
    codemod = BY_CODE[fixture.code]
    brk = graph_break(variant, folder)
    request = FixRequest(
        brk=brk,
        target_file=str((folder / "before.py").resolve()),
        target_qualname=variant.target,
        facts=BreakFacts.from_json(variant.facts),
    )

    def failure(kind: str, detail: str) -> TextOutcome:
        return replace(outcome, status="failure", reason=kind, detail=detail)

    try:
        path = codemod.file_to_edit(request)
    except SkipFile as e:
        return replace(outcome, reason=normalized(str(e)))
    except Exception:  # noqa: BLE001 (a codemod bug, reported as a failure)
        return failure("crash", traceback.format_exc())
    files = {str((folder / name).resolve()): name for name in variant.files}
    if path not in files:
        return failure("outside_project", f"file_to_edit is {path}")
    source = variant.files[files[path]]
    _, result = apply_codemod(codemod, request, path, source)
    if isinstance(result, TransformFailure):
        return failure("crash", result.traceback_str)
    if isinstance(result, TransformSkip):
        return replace(outcome, reason=normalized(result.skip_description))
    if not isinstance(result, TransformSuccess) or result.code == source:
        return replace(outcome, reason="returned the file unchanged")
    try:
        compile(result.code, path, "exec", dont_inherit=True)
        rewritten = fuzzing.Source.of(path, result.code, cst.parse_module(result.code))
    except (SyntaxError, ValueError, cst.ParserSyntaxError) as e:
        return failure("not_parsing", f"{type(e).__name__}: {e}\n{result.code}")
    original = fuzzing.Source.of(path, source, cst.parse_module(source))
    here = [f for f in brk.project_stack if f.filename == path]
    touched = {fuzzing.unit_at(original.units, f.lineno) for f in here}
    problems = set(fuzzing.outside_changes(_unblanked(original.units), _unblanked(rewritten.units), touched))
    problems -= fixture_outside_changes(fixture.folder, tuple(fixture.first_break["stack"]))
    if problems:
        return failure("outside_changes", "; ".join(problems) + "\n" + result.code)
    outcome = replace(outcome, status="rewritten")
    local = replace(brk, user_stack=here, project_stack=here)
    case = fuzzing.Case(local, variant.target, BreakFacts.from_json(variant.facts), frozenset(touched), variant.id)
    again = fuzzing.relocate(case, original, rewritten)
    if again is None:
        return replace(outcome, idempotence="site_gone")
    moved = dict(zip(here, again.brk.project_stack))
    frames = [moved.get(f, f) for f in brk.project_stack]
    second_brk = replace(brk, project_stack=frames, user_stack=frames + brk.user_stack[len(brk.project_stack) :])
    second_request = replace(request, brk=second_brk, sources={path: result.code})
    _, second = apply_codemod(codemod, second_request, path, result.code)
    if isinstance(second, TransformFailure):
        return failure("second_crash", second.traceback_str)
    if isinstance(second, TransformSuccess) and second.code != result.code:
        return failure("not_idempotent", second.code)
    return replace(outcome, idempotence="checked")


@dataclass(frozen=True)
class TorchOutcome:
    variant: str
    code: str
    family: str
    status: str  # fixed, refused or error
    detail: str  # the codes of the fixes written, or why not


def run_torch(variant: Variant, folder: Path, timeout: float = 900) -> TorchOutcome:
    variant.materialize(folder)
    fixture = variant.fixture
    command = [
        sys.executable,
        "-m",
        "breakfix",
        "run",
        f"before.py:{variant.target}",
        "--inputs",
        "inputs.py:example_inputs",
        "--apply",
        "--json",
        "--backend",
        "aot_eager",
    ]
    if fixture.spec.get("unsafe_fixes"):
        command.append("--unsafe-fixes")

    def outcome(status: str, detail: str) -> TorchOutcome:
        return TorchOutcome(variant.id, fixture.code, fixture.family, status, detail)

    try:
        run = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return outcome("error", f"timed out after {timeout:.0f} s")
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        return outcome("error", f"exit {run.returncode}: {run.stderr.strip()[-300:]}")
    if "error" in report:
        return outcome("error", f"exit {run.returncode}: {report['error']}")
    fixes = sorted({b["fix"]["code"] for b in report["breaks"] if b.get("fix") and b["status"] == "fixed"})
    if report["applied"] and report["verified"]:
        return outcome("fixed", f"{'+'.join(fixes)} ({report.get('kind')})")
    # What the fixture's own codemod said, then how each break ended.
    own = [a["reason"] for b in report["breaks"] for a in b.get("attempts", []) if a["code"] == fixture.code]
    statuses = ", ".join(
        f"{b['status']}" + (f" by {b['fix']['code']}" if b.get("fix") else "") for b in report["breaks"]
    )
    detail = f"{fixture.code}: {normalized(own[0]) if own else 'not tried'}; breaks: {statuses or 'none reported'}"
    return outcome("refused", detail)


# --- the report -----------------------------------------------------------------------------------


def _families(codes: set[str]) -> list[str]:
    return sorted(codes)


def text_section(outcomes: list[TextOutcome], skipped: list[Skipped]) -> list[str]:
    by_code: dict[str, list[TextOutcome]] = defaultdict(list)
    for o in outcomes:
        by_code[o.code].append(o)
    skipped_by_code: dict[str, list[Skipped]] = defaultdict(list)
    for s in skipped:
        skipped_by_code[s.fixture.code].append(s)
    codes = _families({*by_code, *skipped_by_code})
    lines = [
        "## Text tier (codemod alone, every variant)",
        "",
        "| codemod | family | fixtures | variants | rewritten (idempotence checked) | refused | failures | "
        "not generated |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for code in codes:
        rows = by_code[code]
        fixtures = {o.variant.split(":")[0] for o in rows} | {s.fixture.id for s in skipped_by_code[code]}
        family = next(iter({o.family for o in rows} | {s.fixture.family for s in skipped_by_code[code]}))
        rewritten = [o for o in rows if o.status == "rewritten"]
        checked = sum(o.idempotence == "checked" for o in rewritten)
        lines.append(
            f"| {code} | {family} | {len(fixtures)} | {len(rows)} | {len(rewritten)} ({checked}) | "
            f"{sum(o.status == 'refused' for o in rows)} | {sum(o.status == 'failure' for o in rows)} | "
            f"{len(skipped_by_code[code])} |"
        )
    total = len(outcomes)
    lines += [
        f"| **all** | | | **{total}** | **{sum(o.status == 'rewritten' for o in outcomes)}** | "
        f"**{sum(o.status == 'refused' for o in outcomes)}** | "
        f"**{sum(o.status == 'failure' for o in outcomes)}** | {len(skipped)} |",
        "",
    ]
    lines += ["### Refusals by reason", ""]
    for code in codes:
        reasons = Counter(o.reason for o in by_code[code] if o.status == "refused")
        if not reasons:
            continue
        lines.append(f"**{code}**")
        lines.append("")
        for reason, count in reasons.most_common():
            examples = sorted(o.variant for o in by_code[code] if o.status == "refused" and o.reason == reason)
            lines.append(f"- {count} × {reason} — e.g. `{examples[0]}`")
        lines.append("")
    names = list(dict.fromkeys(o.variant.split(":")[1] for o in outcomes))
    lines += [
        "### Rewritten / generated, by codemod and transformation",
        "",
        "A cell is variants rewritten / variants generated (blank: the transformation applied to none of "
        "the codemod's fixtures).",
        "",
        "| codemod | " + " | ".join(n.replace("_", " ") for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for code in codes:
        cells = []
        for name in names:
            rows = [o for o in by_code[code] if o.variant.split(":")[1] == name]
            cells.append(f"{sum(o.status == 'rewritten' for o in rows)}/{len(rows)}" if rows else "")
        lines.append(f"| {code} | " + " | ".join(cells) + " |")
    lines += [
        "| **all** | "
        + " | ".join(
            f"{sum(o.status == 'rewritten' for o in outcomes if o.variant.split(':')[1] == n)}/"
            f"{sum(o.variant.split(':')[1] == n for o in outcomes)}"
            for n in names
        )
        + " |"
    ]
    lines += ["", "### Failures", ""]
    failures = [o for o in outcomes if o.status == "failure"]
    if not failures:
        lines.append("None.")
    for o in failures:
        lines += [f"- `{o.variant}` ({o.code}): **{o.reason}**", "", "```", o.detail.strip()[-1500:], "```", ""]
    lines += [
        "",
        "### Transformations that did not apply",
        "",
        "A transformation that cannot keep the fixture's meaning, or has nothing to act on, makes no variant:",
        "",
    ]
    for (name, reason), count in sorted(Counter((s.transformation, s.reason) for s in skipped).items()):
        lines.append(f"- {name}: {reason} ({count})")
    return lines


def torch_section(outcomes: list[TorchOutcome]) -> list[str]:
    by_code: dict[str, list[TorchOutcome]] = defaultdict(list)
    for o in outcomes:
        by_code[o.code].append(o)
    lines = [
        "## Torch tier (the CLI, a sample)",
        "",
        "| codemod | variants run | fixed and verified | refused | error |",
        "|---|---|---|---|---|",
    ]
    for code in _families(set(by_code)):
        rows = by_code[code]
        lines.append(
            f"| {code} | {len(rows)} | {sum(o.status == 'fixed' for o in rows)} | "
            f"{sum(o.status == 'refused' for o in rows)} | {sum(o.status == 'error' for o in rows)} |"
        )
    lines += ["", "| variant | outcome | detail |", "|---|---|---|"]
    for o in outcomes:
        lines.append(f"| `{o.variant}` | {o.status} | {o.detail.replace('|', '/')[:400]} |")
    return lines


def write_report(text: list[str] | None = None, torch: list[str] | None = None, path: Path = RESULTS) -> str:
    """variants.md with the given sections; a section not given is kept from the file as it is."""
    kept = path.read_text() if path.exists() else ""
    parts = {"text": "", "torch": ""}
    for key, heading in (("text", "## Text tier"), ("torch", "## Torch tier")):
        if heading in kept:
            start = kept.index(heading)
            ends = [kept.index(h) for h in ("## Text tier", "## Torch tier") if h in kept and kept.index(h) > start]
            parts[key] = kept[start : min(ends) if ends else len(kept)].rstrip() + "\n"
    if text is not None:
        parts["text"] = "\n".join(text) + "\n"
    if torch is not None:
        parts["torch"] = "\n".join(torch) + "\n"
    header = [
        "# Metamorphic variants of the positive fixtures",
        "",
        "Generated by `tests/test_variants.py` (tests/variants/): every positive fixture, transformed "
        "in ways that keep its meaning (see tests/variants/generator.py), with its recorded break moved "
        "along. Text tier: `.venv/bin/python -m pytest tests/test_variants.py -m 'not torch'`. Torch tier "
        "(opt-in): `BREAKFIX_VARIANTS_TORCH=N .venv/bin/python -m pytest tests/test_variants.py -m torch` "
        "(N variants per fixture family).",
        "",
    ]
    content = "\n".join(header) + "\n" + parts["text"] + ("\n" + parts["torch"] if parts["torch"] else "")
    path.write_text(content)
    return content


def eager_verdicts(variants: list[Variant], folder: Path, timeout: float = 1800) -> dict[str, str]:
    """Each variant against its fixture, both run eagerly (tests/variants/eager.py): variant id ->
    "same", or what differs."""
    pairs = []
    fixtures: dict[str, Path] = {}
    for index, variant in enumerate(variants):
        fixture = variant.fixture
        if fixture.id not in fixtures:
            fixtures[fixture.id] = folder / "fixtures" / fixture.id
            shutil.copytree(
                fixture.folder,
                fixtures[fixture.id],
                ignore=shutil.ignore_patterns("after.py", "case.toml", "__pycache__"),
            )
        pairs.append(
            {
                "id": variant.id,
                "fixture": str(fixtures[fixture.id]),
                "fixture_target": fixture.spec["target"],
                "variant": str(variant.materialize(folder / "variants" / str(index))),
                "variant_target": variant.target,
            }
        )
    (folder / "pairs.json").write_text(json.dumps(pairs))
    run = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("eager.py")), str(folder / "pairs.json")],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if run.returncode:
        raise RuntimeError(run.stderr[-2000:])
    return json.loads(run.stdout.strip().splitlines()[-1])
