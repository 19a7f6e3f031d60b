"""BF402 on the text alone (libcst, no torch): the local it introduces never captures a name the
function already uses, and a second run on its own output changes nothing."""

from __future__ import annotations

from pathlib import Path

from libcst.codemod import CodemodContext, TransformSkip, TransformSuccess, transform_module

from breakfix.codemods import BY_CODE, FixRequest
from breakfix.types import Frame, GraphBreak

SOURCE = '''\
class Positions:
    def forward(self, x, table):
        self.table = self.table.to(dtype=x.dtype)
        return x + table + self.table
'''


def _run(source: str, line: int, path: Path):
    frames = [Frame(str(path), line, "forward")]
    brk = GraphBreak(gb_type="Unsupported python_type() call", gb_id="GB4841", reason="", explanation="",
                     hints=[], user_stack=frames, project_stack=frames)
    request = FixRequest(brk=brk, target_file=str(path), target_qualname="Positions.forward")
    return transform_module(BY_CODE["BF402"](CodemodContext(filename=str(path)), request), source)


def test_the_local_does_not_capture_a_name_of_the_function(tmp_path: Path) -> None:
    result = _run(SOURCE, 3, tmp_path / "m.py")
    assert isinstance(result, TransformSuccess), result
    assert "        table_2 = self.table.to(dtype=x.dtype)\n" in result.code
    assert "        self.table = self.table if table_2 is self.table else table_2\n" in result.code
    assert "return x + table + self.table" in result.code


def test_a_second_run_on_the_rewrite_changes_nothing(tmp_path: Path) -> None:
    rewritten = _run(SOURCE, 3, tmp_path / "m.py").code
    for line in (3, 5):  # the binding and the assignment: the break could be reported at either
        result = _run(rewritten, line, tmp_path / "m.py")
        assert isinstance(result, TransformSkip), result


def test_a_method_of_another_value_is_left_alone(tmp_path: Path) -> None:
    source = SOURCE.replace("self.table = self.table.to", "self.table = self.cache.to")
    result = _run(source, 3, tmp_path / "m.py")
    assert isinstance(result, TransformSkip)
    assert "another value" in result.skip_description
