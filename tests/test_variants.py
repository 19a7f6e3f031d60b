"""Every positive fixture as a space of variants that keep its meaning (issue 14, metamorphic tests).

tests/variants/generator.py makes the variants (rename, move the break into a helper 1-3 calls
deep, a method, a child module's forward, another file, a local as an attribute or a parameter,
else dropped or added, a loop body); tests/variants/harness.py runs them. The text tier runs the
fixture's codemod on every variant and fails on a crash, unparsable output, an edit outside the
break's functions or a second rewrite; it writes the counts per codemod to
benchmarks/results/variants.md. The torch tier (opt-in: BREAKFIX_VARIANTS_TORCH=N, N variants per
family) runs the real CLI on a sample.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections import defaultdict
from pathlib import Path

import pytest
from variants import generator, harness

FIXTURES = generator.positive_fixtures()
TORCH_SAMPLE = int(os.environ.get("BREAKFIX_VARIANTS_TORCH", "0"))  # variants per family


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.id)
def test_marks_round_trip(fixture: generator.Fixture) -> None:
    """With no transformation the generator gives the fixture back, with its recorded stack: the
    marks that carry the frames through a transformation leave no trace."""
    variant = generator.finish(fixture, "none", generator.base_project(fixture))
    assert variant.files["before.py"] == (fixture.folder / "before.py").read_text()
    assert variant.files["inputs.py"] == (fixture.folder / "inputs.py").read_text()
    assert [f"{f}:{line}:{fn}" for f, line, fn in variant.stack] == fixture.first_break["stack"]


def test_a_moved_break_points_at_the_moved_statement() -> None:
    """The helper variant's stack ends at the breaking statement, now in the helper, and its caller's
    frame is the call; in another file, the frame is in that file."""
    fixture = next(f for f in FIXTURES if f.id == "BF601_item_flag")
    deep, other = generator.variants(fixture, ["helper_depth_3", "other_file"])
    lines = {name: code.splitlines() for name, code in deep.files.items()}
    assert [fn for _, _, fn in deep.stack] == ["gate", "gate_part", "gate_inner", "gate_core"]
    assert [lines[f][n - 1].strip() for f, n, _ in deep.stack] == [
        "y = gate_part(has_outliers, x, w)",
        "return gate_inner(has_outliers, x, w)",
        "return gate_core(has_outliers, x, w)",
        "if has_outliers:",
    ]
    assert [f for f, _, _ in other.stack] == ["before.py", "steps.py"]
    assert "from steps import gate_part" in other.files["before.py"]


def test_a_transformation_that_would_change_the_meaning_is_not_made() -> None:
    """Moving `if ...: keys = ...` into a helper would return a name the if may leave unbound."""
    fixture = next(f for f in FIXTURES if f.id == "BF603_global_tokens")
    (skipped,) = generator.variants(fixture, ["helper_depth_1"])
    assert isinstance(skipped, generator.Skipped) and skipped.reason == "the statement may leave keys unbound"


@pytest.mark.parametrize("how", ["helper_depth_1", "method", "child_module", "other_file"])
def test_an_early_return_is_not_moved_into_a_helper(how: str) -> None:
    """`if bad: return zeros` in a helper would return from the helper, not from the function."""
    fixture = next(f for f in FIXTURES if f.id == "BF603_early_return_isnan")
    (skipped,) = generator.variants(fixture, [how])
    assert isinstance(skipped, generator.Skipped) and skipped.reason == "the statement returns from inside a block"


def _all_variants() -> tuple[list[generator.Variant], list[generator.Skipped]]:
    made, skipped = [], []
    for fixture in FIXTURES:
        for item in generator.variants(fixture):
            (skipped if isinstance(item, generator.Skipped) else made).append(item)
    return made, skipped


def test_text_tier(tmp_path: Path) -> None:
    """Every variant: the codemod refuses it or rewrites it soundly (parses, touches only the
    break's functions, a second pass changes nothing). The counts go to variants.md."""
    made, skipped = _all_variants()
    assert len(made) > 300, "the generator makes variants of every family"
    outcomes = [harness.run_text(v, tmp_path / f"{i}") for i, v in enumerate(made)]
    section = harness.text_section(outcomes, skipped)
    harness.write_report(text=section)
    print("\n".join(section[: len({o.code for o in outcomes}) + 4]))
    failures = [o for o in outcomes if o.status == "failure"]
    assert not failures, "\n\n".join(f"{o.variant}: {o.reason}\n{o.detail[-1500:]}" for o in failures)


# The shapes the torch tier samples first: a break moved away from where the fixture has it.
SAMPLED_FIRST = (
    "helper_depth_2",
    "other_file",
    "child_module",
    "local_to_parameter",
    "method",
    "add_else",
    "helper_depth_3",
    "drop_else",
    "local_to_attribute",
    "loop_body",
)


def _sample(per_family: int) -> list[generator.Variant]:
    """``per_family`` variants per fixture family, of different fixtures and transformations; each
    family starts further down ``SAMPLED_FIRST``, so that the sample covers its shapes."""
    made, _ = _all_variants()
    by_family: dict[str, list[generator.Variant]] = defaultdict(list)
    for variant in made:
        if variant.transformation in SAMPLED_FIRST:
            by_family[variant.fixture.family].append(variant)
    chosen = []
    for index, family in enumerate(sorted(by_family)):
        order = SAMPLED_FIRST[2 * index % len(SAMPLED_FIRST) :] + SAMPLED_FIRST[: 2 * index % len(SAMPLED_FIRST)]
        picked: list[generator.Variant] = []
        for variant in sorted(by_family[family], key=lambda v: order.index(v.transformation)):
            if len(picked) < per_family and all(
                p.fixture.id != variant.fixture.id and p.transformation != variant.transformation for p in picked
            ):
                picked.append(variant)
        chosen += picked
    return chosen


@pytest.mark.torch
@pytest.mark.skipif(not TORCH_SAMPLE, reason="opt-in: BREAKFIX_VARIANTS_TORCH=N runs the torch tier")
def test_variants_keep_their_meaning(tmp_path: Path) -> None:
    """Every variant, run eagerly, gives its fixture's outputs and stdout on the same seeded inputs:
    the generator changes the form, never the meaning."""
    made, _ = _all_variants()
    verdicts = harness.eager_verdicts(made, tmp_path)
    differing = {k: v for k, v in verdicts.items() if v != "same"}
    assert len(verdicts) == len(made)
    assert not differing, "\n".join(f"{k}: {v}" for k, v in differing.items())


@pytest.mark.torch
@pytest.mark.skipif(not TORCH_SAMPLE, reason="opt-in: BREAKFIX_VARIANTS_TORCH=N runs N variants per family")
def test_torch_tier(tmp_path: Path) -> None:
    """The CLI on a sample: each variant is fixed and verified, or refused; never an error (a
    crash, or a variant the generator broke)."""
    sample = _sample(TORCH_SAMPLE)
    outcomes = []
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two CLI runs at a time, each a subprocess
        for outcome in pool.map(lambda iv: harness.run_torch(iv[1], tmp_path / f"{iv[0]}"), enumerate(sample)):
            outcomes.append(outcome)
            section = harness.torch_section(outcomes)
            harness.write_report(torch=section)  # as it goes: a run stopped early leaves what it ran
    print("\n".join(section))
    errors = [o for o in outcomes if o.status == "error"]
    assert not errors, "\n".join(f"{o.variant}: {o.detail}" for o in errors)
