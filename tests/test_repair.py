"""A rewrite that makes the compiler trace code it never traced before (BF603's ``torch.cond``
traces both branches) can hit a break there; the engine repairs it on top of the rewrite and keeps
the two only if they verify together. Real CLI runs, real torch."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import breakfix, make_project, snapshot

pytestmark = pytest.mark.torch

# longformer's shape: a flag read off the data decides the rest of forward; the global branch
# sizes a tensor with a count (a 0-d tensor) and checks the size in an assert. Eagerly the flag is
# False on these inputs, so only the compiler ever reaches the assert (when BF603 makes it trace
# the branch).
GLOBAL_ATTENTION = """\
import torch


def global_scores(hidden, max_count):
    batch = hidden.size(0)
    out = hidden.new_zeros(batch, max_count)
    assert list(out.size()) == [batch, {count}], "wrong size"
    return out


def attend(hidden, is_global):
    has_global = is_global.any().item()
    scores = hidden @ hidden.T
    if has_global:
        max_count = is_global.sum(-1).max()
        return scores.sum() + global_scores(hidden, max_count).sum()
    return scores.sum() * 2


def example_inputs():
    return torch.randn(3, 4), torch.zeros(3, 5, dtype=torch.bool)
"""


def test_a_break_revealed_by_a_rewrite_is_repaired_and_both_are_written(tmp_path):
    project = make_project(tmp_path, {"m.py": GLOBAL_ATTENTION.format(count="max_count")})
    result = breakfix(project, "m.py:attend", "--inputs", "m.py:example_inputs", "--apply", "--json")
    assert result.code == 0, result.stderr
    report = result.json()
    by_code = {b["fix"]["code"]: b for b in report["breaks"]}
    assert set(by_code) == {"BF603", "BF702"}
    assert by_code["BF702"]["status"] == "fixed" and by_code["BF702"]["verified"]
    assert by_code["BF702"]["why"].startswith("revealed by BF603's rewrite")
    written = (project / "m.py").read_text()
    assert 'assert list(out.size()) == [batch, int(max_count)], "wrong size"' in written
    assert "torch.cond(" in written


def test_a_rewrite_whose_revealed_break_has_no_repair_is_not_kept(tmp_path):
    # The count in the assert is an expression, not a name: BF702 cannot place it, so BF603's
    # rewrite is rejected with the reason, and the last resort (BF301) fixes the break instead.
    project = make_project(tmp_path, {"m.py": GLOBAL_ATTENTION.format(count="max_count + 0")})
    result = breakfix(project, "m.py:attend", "--inputs", "m.py:example_inputs", "--apply", "--json")
    assert result.code == 0, result.stderr
    [report] = result.json()["breaks"]
    attempts = {a["code"]: a for a in report["attempts"]}
    assert not attempts["BF603"]["verified"]
    assert "no repair of the break it reveals (BF702: no assert comparing sizes" in attempts["BF603"]["reason"]
    assert report["fix"]["code"] == "BF301"
    written = (project / "m.py").read_text()
    assert "torch.cond(" not in written and "int(" not in written


CORPUS = Path(__file__).resolve().parents[1] / "benchmarks" / "corpus" / "cases"


def _corpus_project(tmp_path: Path, case: str) -> Path:
    return make_project(tmp_path, {p.name: p.read_text() for p in (CORPUS / case).glob("*.py")})


# The corpus' augmentation case: the draw and the shift are compiled in BF301's second piece,
# where roll reads its shift as a Python int drawn while tracing: dynamo's internal
# PendingUnbackedSymbolNotFound, placed in the piece, where BF301 splits it again.
def test_an_internal_error_in_a_piece_is_placed_in_the_piece_and_split_again(tmp_path):
    project = _corpus_project(tmp_path, "39_augment_random_flip")
    result = breakfix(project, "main.py:augment", "--inputs", "main.py:example_inputs", "--apply", "--json")
    assert result.code == 0, result.stderr
    first, second = result.json()["breaks"]
    assert first["fix"]["code"] == second["fix"]["code"] == "BF301"
    # placed in the compiled piece dynamo was tracing, not on the orchestrator's eager call to it
    assert second["function"].startswith("_augment_piece") and second["gb_type"] == "InternalTorchDynamoError"
    written = (project / "main.py").read_text()
    assert "    images = torch.roll(images, shifts=shift, dims=-2)\n    return _augment_piece_2(images)" in written


def test_a_split_whose_piece_raises_a_data_dependent_guard_is_split_again(tmp_path):
    # The corpus' CTC case: BF301 keeps the CTC loss eager; its second piece then slices rows by
    # lengths read off a tensor and raises GuardOnDataDependentSymNode (not a graph break, so the
    # check cannot continue with breaks allowed). A split may repair a split: BF301 splits the piece.
    # The split as a whole is then refused: its last piece makes `torch.tensor(cer)` of the error
    # rate the eager code computes and guards on its value, so an evaluation loop would raise on its
    # ninth batch. Nothing is written.
    project = _corpus_project(tmp_path, "22_char_error_rate_levenshtein")
    before = snapshot(project)
    result = breakfix(project, "main.py:evaluate_ctc", "--inputs", "main.py:example_inputs", "--apply", "--json")
    assert result.code == 1 and snapshot(project) == before, result.stderr
    breaks = result.json()["breaks"]
    repaired = [b for b in breaks if b["function"] == "<listcomp>"]
    assert repaired and repaired[0]["fix"]["code"] == "BF301" and repaired[0]["status"] == "proposed", breaks
    refused = [a["reason"] for b in breaks for a in b["attempts"] if a["code"] == "BF301" and not a["verified"]]
    assert any("recompile on every new value of `cer`" in r for r in refused), refused


# A diffusion scheduler's step, called with a timestep taken from the schedule as pipelines do: the
# schedule is read at that 0-d timestep (a data-dependent guard, BF703), and the line after already had its own break, a conditional expression on the previous
# timestep (GB0170, BF601). BF703 rewrites both subscripts; the break left on the second line is
# that line's own, not BF703's moved, so the next round fixes it and the step is one graph.
SCHEDULER_STEP = """\
import torch


class Scheduler:
    def __init__(self, steps=1000):
        self.alphas_cumprod = torch.cumprod(1.0 - torch.linspace(1e-4, 0.02, steps), dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0)
        self.stride = 20

    def step(self, model_output, timestep, sample):
        prev_timestep = timestep - self.stride
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        pred_original_sample = (sample - (1 - alpha_prod_t) ** 0.5 * model_output) / alpha_prod_t**0.5
        return alpha_prod_t_prev**0.5 * pred_original_sample + (1 - alpha_prod_t_prev) ** 0.5 * model_output


def denoise(model_output, timesteps, sample):
    return Scheduler().step(model_output, timesteps[0], sample)


def example_inputs():
    return torch.randn(2, 3), torch.tensor([{timestep}, 1]), torch.randn(2, 3)
"""


@pytest.mark.parametrize("timestep", [981, 7])  # the previous timestep in the schedule, and past its start
def test_a_break_already_on_a_rewritten_line_is_fixed_in_the_next_round(tmp_path, timestep):
    project = make_project(tmp_path, {"m.py": SCHEDULER_STEP.format(timestep=timestep)})
    result = breakfix(project, "m.py:denoise", "--inputs", "m.py:example_inputs", "--apply", "--json")
    assert result.code == 0, result.stderr
    fixes = {b["fix"]["code"]: b["fix"]["kind"] for b in result.json()["breaks"] if b["fix"]}
    assert fixes == {"BF703": "fullgraph", "BF601": "fullgraph"}, result.json()["breaks"]
    written = (project / "m.py").read_text()
    assert "self.alphas_cumprod[timestep.reshape(1)].squeeze(0)" in written
    assert "lambda: self.final_alpha_cumprod.clone()" in written


# DDIMParallelScheduler's shape: step's two schedule lines (as above) and a variance helper with the
# same two lines. Once BF703 fixes step's first line, compiling with breaks allowed fails in the
# backend on the helper's subscript (no user stack); the fullgraph=True error locates it, and the
# repairs fix step's conditional expression (a break on a line BF703 wrote, that line's own) and
# then the helper's two lines, measured afresh. All four verify together as one graph.
SCHEDULER_STEP_WITH_VARIANCE = (
    SCHEDULER_STEP.replace(
        "        pred_original_sample =",
        "        variance = self._variance(timestep, prev_timestep)\n        pred_original_sample =",
    )
    .replace(
        "        return alpha_prod_t_prev**0.5 * pred_original_sample",
        "        return variance + alpha_prod_t_prev**0.5 * pred_original_sample",
    )
    .replace(
        "    def step(",
        """    def _variance(self, timestep, prev_timestep):
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        return (1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)

    def step(""",
    )
)


def test_a_break_the_backend_fails_on_is_located_and_repaired_with_the_facts_measured_at_it(tmp_path):
    project = make_project(tmp_path, {"m.py": SCHEDULER_STEP_WITH_VARIANCE.format(timestep=981)})
    result = breakfix(project, "m.py:denoise", "--inputs", "m.py:example_inputs", "--apply", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["kind"] == "fullgraph", result.json()["breaks"]
    # One graph per call; the verification's derived inputs of other sizes compile more, not counted.
    assert result.json()["graph_count"]["after"] == 1, result.json()["graph_count"]
    written = (project / "m.py").read_text()
    assert written.count("self.alphas_cumprod[timestep.reshape(1)].squeeze(0)") == 2
    assert written.count("lambda: self.final_alpha_cumprod.clone()") == 2
