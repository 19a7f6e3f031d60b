"""Deriving fake kernels for BF202 (breakfix.worker.facts): real torch, in process, no subprocess.

The helpers below are module-level on purpose: the facts are only derived for module-level
functions, found by file and line like a located break.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import random
import sys

import numpy as np
import pytest
import torch
from libcst.codemod import CodemodContext, TransformSuccess, transform_module

from breakfix.codemods import FixRequest
from breakfix.codemods.opaque_ops import OpaqueComputation
from breakfix.types import DATA_DEPENDENT_GUARD, BreakFacts, Frame, GraphBreak, ValueKind
from breakfix.worker import facts as facts_module
from breakfix.worker.facts import opaque_op_facts
from breakfix.worker.fakes import Rejected, atoms, fit_size, perturbations
from breakfix.worker.loader import OverlayFinder


def seed_all(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(seed)


# --- fitting one size ----------------------------------------------------------------------------


def samples(rule, args_list):
    return [(atoms(a), rule(a)) for a in args_list]


def all_runs(args):
    """The base run and its perturbations that keep every rank (a rule below indexes sizes)."""
    ranks = {k: v.dim() for k, v in args.items() if isinstance(v, torch.Tensor)}
    return [args, *(p for p in perturbations(args) if all(p[k].dim() == r for k, r in ranks.items()))]


def test_fit_picks_the_input_size_over_a_coincidental_constant() -> None:
    runs = all_runs({"x": torch.zeros(3, 5)})
    assert fit_size(samples(lambda a: a["x"].shape[1], runs)) == "x.shape[1]"
    assert fit_size(samples(lambda a: 7, runs)) == "7"


def test_fit_differences_offsets_and_sequence_elements() -> None:
    runs = all_runs({"x": torch.zeros(2, 9), "box": (1, 2, 6, 8), "k": 3})
    assert fit_size(samples(lambda a: a["box"][3] - a["box"][1], runs)) == "box[3] - box[1]"
    assert fit_size(samples(lambda a: a["x"].shape[1] - a["k"] + 1, runs)) == "x.shape[1] - k + 1"
    assert fit_size(samples(lambda a: a["x"].shape[1] - 2, runs)) == "x.shape[1] - 2"
    assert fit_size(samples(lambda a: a["x"].shape[0] + a["x"].shape[1], runs)) == "x.shape[0] + x.shape[1]"
    assert fit_size(samples(lambda a: 10 - a["k"], runs)) == "10 - k"


def test_no_fit_for_a_product() -> None:
    runs = all_runs({"x": torch.zeros(3, 4)})
    assert fit_size(samples(lambda a: a["x"].shape[0] * a["x"].shape[1], runs)) is None


def test_the_base_run_alone_cannot_tell_a_size_from_a_constant() -> None:
    # Why the helper is rerun on perturbed copies: from one run, 40 could be anything equal to 40.
    base = {"box": (10, 10, 50, 50)}
    assert fit_size(samples(lambda a: 40, [base])) == "box[2] - box[0]"
    assert fit_size(samples(lambda a: a["box"][3] - a["box"][1], all_runs(base))) == "box[3] - box[1]"


def test_perturbations_change_exactly_one_thing() -> None:
    args = {"x": torch.zeros(2, 3), "n": 4, "box": [0, 2], "flag": True, "name": "a", "index": -1}
    runs = list(perturbations(args))
    # x: a leading dim added and taken away, two dims x (+1, -1), one dtype flip; n: +1, -1;
    # box: 0 -> 1 only, 2 -> 3, 1; index: -1 -> -2 only
    assert len(runs) == 2 + 4 + 1 + 2 + 3 + 1
    for run in runs:
        changed = [k for k in args if not _same(args[k], run[k])]
        assert len(changed) == 1, changed
        assert run["flag"] is True and run["name"] == "a"


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype
    return a == b and type(a) is type(b)


# --- deriving a whole fake -------------------------------------------------------------------------


def crop_pil(pic, box):
    import PIL.Image

    arr = (pic.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
    cropped = PIL.Image.fromarray(arr).crop(box)
    return torch.from_numpy(np.array(cropped)).permute(2, 0, 1) / 255.0


def crop_view(x, top: int, left: int, size: int):
    return torch.from_numpy(x.numpy()[..., top : top + size, left : left + size])


def interp_curve(x):
    return torch.from_numpy(np.interp(x.numpy(), [0.0, 0.5, 1.0], [0.0, 0.8, 1.0])).to(x.dtype)


def sort_with_numpy(x):
    order = np.argsort(x.numpy(), axis=-1, kind="stable")
    return torch.from_numpy(np.take_along_axis(x.numpy(), order, axis=-1)), torch.from_numpy(order)


def flatten_numpy(x):
    return torch.from_numpy(x.numpy().reshape(-1).copy())


def noisy_helper(x):
    print("shape", tuple(x.shape))
    return torch.from_numpy(x.numpy() * 2)


def returns_a_list(x):
    return [x * 2]


def takes_a_dict(x, options):
    return torch.from_numpy(x.numpy() * options["scale"])


def differentiable(x):
    return x.sin()


def mutates_its_input(x):
    x.add_(1)
    return x * 2


def derived(helper, *args):
    calls = facts_module.capture_calls(lambda *a: helper(*a), lambda: args, [helper], seed_all)
    return opaque_op_facts(helper, calls[helper.__code__], seed_all)


def test_pil_crop_fake_has_cropped_sizes_fixed_dtype_and_hwc_layout() -> None:
    facts = derived(crop_pil, torch.rand(3, 64, 64), (10, 10, 50, 50))
    assert facts.annotations == {"pic": "torch.Tensor", "box": "Sequence[int]"}
    assert facts.returns == "torch.Tensor" and facts.wrap == ""
    # PIL hands back HWC memory permuted to CHW: the fake states that layout, so opcheck passes.
    assert (
        facts.fake
        == "pic.new_empty((box[3] - box[1], box[2] - box[0], pic.shape[0]), dtype=torch.float32).permute(2, 0, 1)"
    )
    assert facts.op_name == f"breakfix::{crop_pil.__module__.replace('.', '_')}_crop_pil"


def test_a_view_of_the_input_is_cloned() -> None:
    facts = derived(crop_view, torch.rand(2, 8, 8), 1, 2, 4)
    assert facts.wrap == "clone"
    # The helper crops the last two dims of any rank: so does the fake.
    assert facts.fake == "x.new_empty(x.shape[:-2] + (size, size))"


def test_the_dtype_follows_the_input_when_a_flipped_dtype_is_followed() -> None:
    facts = derived(interp_curve, torch.rand(5))
    assert facts.fake == "x.new_empty(x.shape)"  # new_empty keeps x's dtype; any rank (the helper takes 2-D too)


def test_tuple_outputs() -> None:
    facts = derived(sort_with_numpy, torch.rand(3, 4))
    assert facts.returns == "tuple[torch.Tensor, torch.Tensor]"
    assert facts.fake == "x.new_empty(x.shape), x.new_empty(x.shape, dtype=torch.int64)"


@pytest.mark.parametrize(
    ("helper", "args", "why"),
    [
        (flatten_numpy, (torch.rand(3, 4),), "no size rule explains output 0, dim 0"),
        (noisy_helper, (torch.rand(3),), "side effects: it prints"),
        (returns_a_list, (torch.rand(3),), "returns list"),
        (takes_a_dict, (torch.rand(3), {"scale": 2}), "parameter options is dict"),
        (differentiable, (torch.rand(3, requires_grad=True),), "differentiable"),
        (differentiable, (torch.rand(3),), "differentiable"),  # in training it would be
        (mutates_its_input, (torch.rand(3),), "opcheck rejects the op"),
    ],
    ids=lambda v: getattr(v, "__name__", None) or "",
)
def test_rejected(helper, args, why) -> None:
    with pytest.raises(Rejected, match=why):
        derived(helper, *args)


def _line_in(helper) -> int:
    return inspect.getsourcelines(helper)[1] + 1


def two_helpers(x):
    return crop_view(x, 1, 1, 2), flatten_numpy(x)


def test_collect_facts_keys_by_site_one_capture_for_all_helpers() -> None:
    here = os.path.realpath(__file__)
    call_site = {"filename": here, "lineno": _line_in(two_helpers), "name": "two_helpers"}

    def at(line):
        return {"project_stack": [call_site, {"filename": here, "lineno": line, "name": "h"}]}

    lines = [_line_in(crop_view), _line_in(flatten_numpy), _line_in(test_only_module_level_functions) + 1]  # + nested
    breaks = [*(at(line) for line in lines), {"project_stack": [call_site]}]
    facts = facts_module.collect_facts(two_helpers, lambda: (torch.rand(4, 4),), breaks, seed_all)
    assert list(facts) == [f"{here}:{line}" for line in lines]
    crop, flat, inner = (v.opaque_op for v in facts.values())
    assert crop.helper == "crop_view" and crop.wrap == "clone"
    assert flat.rejected.startswith("no size rule")
    assert "nested in" in inner.rejected


def array_of(x):
    return x.numpy() * 2


def doubled(x):
    return torch.from_numpy(array_of(x))


def calls_doubled(x):
    return doubled(x) + flatten_numpy(x).sum()


def test_collect_facts_takes_the_innermost_helper_that_can_be_an_op() -> None:
    """A break in a function that returns an ndarray (no op returns one) is answered by the
    helper that calls it; a break with no such helper reports the innermost one's reason."""
    here = os.path.realpath(__file__)
    outer, middle, inner = (
        {"filename": here, "lineno": _line_in(f), "name": f.__name__} for f in (calls_doubled, doubled, array_of)
    )
    flat_site = {"filename": here, "lineno": _line_in(flatten_numpy), "name": "flatten_numpy"}
    breaks = [{"project_stack": [outer, middle, inner]}, {"project_stack": [outer, flat_site]}]
    facts = facts_module.collect_facts(calls_doubled, lambda: (torch.rand(4, 4),), breaks, seed_all)
    deep, flat = (facts[f"{here}:{site['lineno']}"].opaque_op for site in (inner, flat_site))
    assert deep.helper == "doubled" and not deep.rejected
    assert flat.rejected.startswith("no size rule")


ON_DISK = """\
import torch

TABLE = torch.arange(10) * 10


def step(t):
    return TABLE[t]
"""

REWRITTEN = """\
import torch

TABLE = torch.arange(10) * 10


def step(t):
    def _next():
        return TABLE[t + 1]

    return _next()
"""


def test_value_facts_read_the_code_that_ran_not_the_file(tmp_path, monkeypatch) -> None:
    """A rewrite under verification is served by the overlay: the expressions measured at a break
    are those of its lines (here ``t + 1`` at line 8, where the file has nothing), arithmetic of
    a 0-d tensor index included."""
    path = tmp_path / "overlaid_steps.py"
    path.write_text(ON_DISK)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", [OverlayFinder({str(path): REWRITTEN}), *sys.meta_path])
    module = importlib.import_module("overlaid_steps")
    try:
        here = os.path.realpath(path)
        brk = {
            "gb_type": DATA_DEPENDENT_GUARD,
            "project_stack": [
                {"filename": here, "lineno": 10, "name": "step"},
                {"filename": here, "lineno": 8, "name": "_next"},
            ],
        }
        facts = facts_module.value_facts(module.step, lambda: (torch.tensor(3),), [brk], seed_all)
    finally:
        sys.modules.pop("overlaid_steps", None)
    assert facts[f"{here}:8"] == {"TABLE": (ValueKind.TENSOR,), "t + 1": (ValueKind.INDEX_TENSOR,)}


def test_only_module_level_functions() -> None:
    def nested(x):
        return x.numpy()

    with pytest.raises(Rejected, match="nested in"):
        facts_module.helper_at(os.path.realpath(__file__), _line_in(nested))
    with pytest.raises(Rejected, match="not imported"):
        facts_module.helper_at("/nowhere/else.py", 3)


# --- the codemod renders the facts ---------------------------------------------------------------

HELPER = """\
import numpy as np
import torch


def smooth(x, window):
    values = np.convolve(x.numpy(), np.ones(window), mode="valid")
    return torch.from_numpy(values) / window


def f(x):
    return smooth(x, 3)
"""


def fix(source: str, fact: dict | None, tmp_path) -> TransformSuccess | str:
    path = tmp_path / "mod.py"
    path.write_text(source)
    frames = [Frame(str(path), 11, "f"), Frame(str(path), 6, "smooth")]
    brk = GraphBreak("attempted to trace numpy function unsupported by PyTorch", "GB0294", "", "", [], frames, frames)
    request = FixRequest(brk, str(path), "f", facts=BreakFacts.from_json({"opaque_op": fact}))
    result = transform_module(OpaqueComputation(CodemodContext(filename=str(path)), request), source)
    return result if isinstance(result, TransformSuccess) else result.skip_description


FACT = {
    "helper": "smooth",
    "op_name": "breakfix::mod_smooth",
    "annotations": {"x": "torch.Tensor", "window": "int"},
    "returns": "torch.Tensor",
    "fake": "x.new_empty((x.shape[0] - window + 1,), dtype=torch.float64)",
    "wrap": "",
    "runs": 5,
}


def test_codemod_renders_op_and_fake(tmp_path) -> None:
    result = fix(HELPER, FACT, tmp_path)
    assert (
        '@torch.library.custom_op("breakfix::mod_smooth", mutates_args=())\n'
        "def smooth(x: torch.Tensor, window: int) -> torch.Tensor:\n" in result.code
    )
    assert (
        "\n\n\n@smooth.register_fake\ndef _(x, window):\n"
        "    return x.new_empty((x.shape[0] - window + 1,), dtype=torch.float64)\n\n\ndef f(x):" in result.code
    )


def test_codemod_wraps_returns_and_reuses_imports(tmp_path) -> None:
    source = "from typing import Sequence\n" + HELPER.replace(
        "    return torch.from_numpy(values) / window",
        "    for _ in range(2):\n        pass\n    return torch.from_numpy(values) / window",
    )
    fact = {**FACT, "wrap": "clone", "annotations": {"x": "torch.Tensor", "window": "Sequence[int]"}}
    code = fix(source, fact, tmp_path).code
    assert "return (torch.from_numpy(values) / window).clone()" in code
    assert "window: Sequence[int]" in code and "collections.abc" not in code
    assert "def _smooth_fake(x, window):" in code  # the module already uses ``_``


def test_codemod_wraps_each_tuple_element(tmp_path) -> None:
    source = HELPER.replace("return torch.from_numpy(values) / window", "return values_t, values_t[1:]")
    fact = {**FACT, "wrap": "clone", "returns": "tuple[torch.Tensor, torch.Tensor]", "fake": "x, x"}
    code = fix(source, fact, tmp_path).code
    assert "return values_t.clone(), values_t[1:].clone()" in code
    assert "-> tuple[torch.Tensor, torch.Tensor]:" in code and "    return x, x\n" in code


@pytest.mark.parametrize(
    ("change", "fact", "why"),
    [
        (lambda s: s, None, "no runtime facts"),
        (lambda s: s, {"rejected": "no size rule explains output 0"}, "no fake kernel: no size rule"),
        (lambda s: s.replace("def smooth", "@cache\ndef smooth"), FACT, "decorated"),
        (lambda s: s.replace("    values =", "    print(x)\n    values ="), FACT, "not pure"),
        (lambda s: s.replace("def smooth(x, window)", "def smooth(x, window, extra=1)"), FACT, "parameters differ"),
    ],
)
def test_codemod_skips(change, fact, why, tmp_path) -> None:
    assert why in fix(change(HELPER), fact, tmp_path)


WINDOWS = """\
import numpy as np


def windows(x, window):
    return np.lib.stride_tricks.sliding_window_view(x.numpy(), window, axis=-1)
"""


def fix_deep(tmp_path, windows: str) -> TransformSuccess | str:
    """BF202 on a break in ``windows`` (another file, returning an ndarray), called by ``smooth``."""
    (tmp_path / "steps.py").write_text(windows)
    source = HELPER.replace("import torch\n", "import torch\n\nfrom steps import windows\n").replace(
        '    values = np.convolve(x.numpy(), np.ones(window), mode="valid")',
        "    values = windows(x, window).mean(axis=-1)",
    )
    path = tmp_path / "mod.py"
    path.write_text(source)
    frames = [Frame(str(path), 14, "f"), Frame(str(path), 9, "smooth"), Frame(str(tmp_path / "steps.py"), 5, "windows")]
    brk = GraphBreak("Unsupported method call", "GB0156", "", "", [], frames, frames)
    request = FixRequest(brk, str(path), "f", facts=BreakFacts.from_json({"opaque_op": FACT}))
    assert OpaqueComputation.file_to_edit(request) == str(path)
    result = transform_module(OpaqueComputation(CodemodContext(filename=str(path)), request), source)
    return result if isinstance(result, TransformSuccess) else result.skip_description


def test_codemod_makes_the_helper_up_the_stack_an_op(tmp_path) -> None:
    code = fix_deep(tmp_path, WINDOWS).code
    assert '@torch.library.custom_op("breakfix::mod_smooth", mutates_args=())\ndef smooth(' in code
    assert "    values = windows(x, window).mean(axis=-1)\n" in code


def test_codemod_reads_the_purity_of_functions_imported_from_the_project(tmp_path) -> None:
    noisy = WINDOWS.replace("    return np.lib", "    print(window)\n    return np.lib")
    assert "not pure: windows calls print" in fix_deep(tmp_path, noisy)


def test_facts_are_json() -> None:
    facts = derived(crop_pil, torch.rand(3, 16, 16), [2, 2, 10, 12])
    typed = BreakFacts(opaque_op=facts)
    assert BreakFacts.from_json(json.loads(json.dumps(typed.to_json()))) == typed


SHAPES = """\
class Box:
    calls = 0

    def __len__(self):
        Box.calls += 1
        return 1


def report(x, layers, box):
    print(tuple(x.shape), x.size(1), len(layers), list(x.size()), len(box), x.dim())
    return x
"""


def test_value_facts_measure_shape_queries_without_running_user_code(tmp_path, monkeypatch) -> None:
    """``tuple(x.shape)``, ``x.size(1)``, ``len(layers)`` in a print are measured (ints); ``len(box)``
    of an object whose ``__len__`` is user code is not evaluated."""
    path = tmp_path / "shape_report.py"
    path.write_text(SHAPES)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("shape_report")
    try:
        here = os.path.realpath(path)
        brk = {"gb_type": "Unsupported", "project_stack": [{"filename": here, "lineno": 10, "name": "report"}]}
        facts = facts_module.value_facts(
            module.report, lambda: (torch.zeros(2, 3), [1, 2], module.Box()), [brk], seed_all
        )
    finally:
        sys.modules.pop("shape_report", None)
    assert module.Box.calls == 1  # the print's own call: measuring it ran no user code
    assert facts[f"{here}:10"] == {
        "tuple(x.shape)": (ValueKind.INTS,),
        "x.size(1)": (ValueKind.INT,),
        "len(layers)": (ValueKind.INT,),
        "list(x.size())": (ValueKind.INTS,),
        "x.dim()": (ValueKind.INT,),
    }
