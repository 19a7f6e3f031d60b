"""The copies codemods (BF401 deepcopy, BF402 attribute reassigned from itself) on source text: where
they refuse and what they write. The fixtures show one case each way through the real CLI.
"""

from __future__ import annotations

from codemod_harness import line_of, run_codemod
from libcst.codemod import TransformSkip, TransformSuccess


def test_deepcopy_helper_is_added_once_and_its_own_call_is_never_rewritten() -> None:
    source = "import copy\n\n\ndef f(x):\n    a = copy.deepcopy(x)\n    return a\n"
    first = run_codemod("BF401", source, 5)
    assert isinstance(first, TransformSuccess) and "    a = _deepcopy(x)\n" in first.code
    helper_line = line_of(first.code, "else copy.deepcopy(value)")
    assert isinstance(run_codemod("BF401", first.code, helper_line), TransformSkip)
    assert first.code.count("def _deepcopy(") == 1
    memo = "import copy\n\n\ndef f(x, memo):\n    return copy.deepcopy(x, memo)\n"
    assert "memo" in run_codemod("BF401", memo, 5).skip_description


def test_a_snapshot_read_at_the_break_is_the_site() -> None:
    """At a break on the line that reads a deep copy (a state dict's, which dynamo copies empty),
    the deep copy bound to the name it reads is rewritten, and no other."""
    source = (
        "import copy\n\n\ndef f(m, x):\n    ref = copy.deepcopy(m.state_dict())\n"
        "    other = copy.deepcopy(x)\n    return ref['w'] + x\n"
    )
    result = run_codemod("BF401", source, line_of(source, "return ref"))
    assert isinstance(result, TransformSuccess), result
    assert "    ref = _deepcopy(m.state_dict())\n" in result.code
    assert "    other = copy.deepcopy(x)\n" in result.code
    helper = source.replace(
        "    return ref['w'] + x\n", "    return g(ref, x)\n\n\ndef g(ref, x):\n    return ref['w'] + x\n"
    )
    callers = ((line_of(helper, "return g(ref"), "f"),)
    deeper = run_codemod("BF401", helper, line_of(helper, "return ref['w']"), function="g", callers=callers)
    assert isinstance(deeper, TransformSuccess), deeper
    assert "    ref = _deepcopy(m.state_dict())\n" in deeper.code  # read one call down


def test_the_helper_rebuilds_a_state_dict_as_a_deep_copy_does() -> None:
    import collections
    import copy

    import torch

    from breakfix.codemods.copies import HELPER, HELPER_SOURCE

    namespace: dict = {"torch": torch, "copy": copy, "collections": collections}
    exec(HELPER_SOURCE, namespace)  # noqa: S102 (the helper's own text)
    state = torch.nn.BatchNorm1d(3).state_dict()
    copied, expected = namespace[HELPER](state), copy.deepcopy(state)
    assert type(copied) is collections.OrderedDict and list(copied) == list(expected)
    assert all(torch.equal(copied[k], expected[k]) and copied[k] is not state[k] for k in state)
    assert copied._metadata == expected._metadata and copied._metadata is not state._metadata
    state.note = "other attribute"
    assert namespace[HELPER](state).note == "other attribute"  # deep-copied as before


# --- BF402: the local it introduces never captures a name the function already uses -----------

SOURCE = """\
class Positions:
    def forward(self, x, table):
        self.table = self.table.to(dtype=x.dtype)
        return x + table + self.table
"""


def _reassign(source: str, line: int):
    return run_codemod("BF402", source, line, function="forward", qualname="Positions.forward")


def test_the_local_does_not_capture_a_name_of_the_function() -> None:
    result = _reassign(SOURCE, 3)
    assert isinstance(result, TransformSuccess), result
    assert "        table_2 = self.table.to(dtype=x.dtype)\n" in result.code
    assert "        self.table = self.table if table_2 is self.table else table_2\n" in result.code
    assert "return x + table + self.table" in result.code


def test_a_second_run_on_the_rewrite_changes_nothing() -> None:
    rewritten = _reassign(SOURCE, 3).code
    for line in (3, 5):  # the binding and the assignment: the break could be reported at either
        result = _reassign(rewritten, line)
        assert isinstance(result, TransformSkip), result


def test_a_method_of_another_value_is_left_alone() -> None:
    source = SOURCE.replace("self.table = self.table.to", "self.table = self.cache.to")
    result = _reassign(source, 3)
    assert isinstance(result, TransformSkip)
    assert "another value" in result.skip_description
