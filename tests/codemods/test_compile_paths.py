"""BF801: every is-compiling check that ran on the way to the break takes its eager value, False.
BF802: a function the project disabled with a decorator is compiled, unless a split wrote it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from codemod_harness import line_of, run_codemod
from libcst.codemod import TransformSkip, TransformSuccess

from breakfix.codemods import BY_CODE, FixRequest
from breakfix.codemods.compile_paths import CompileOnlyPath
from breakfix.engine import apply_codemod
from breakfix.types import Frame, GraphBreak


def _fixed(source: str, break_at: str, caller_at: str | None = None) -> str:
    """BF801's rewrite of ``source`` for a break at the line holding ``break_at`` in ``g``, called
    by ``f`` at the line holding ``caller_at`` (or a break in ``f`` itself)."""
    if caller_at is None:
        result = run_codemod("BF801", source, line_of(source, break_at), function="f")
    else:
        result = run_codemod(
            "BF801", source, line_of(source, break_at), function="g", callers=((line_of(source, caller_at), "f"),)
        )
    assert isinstance(result, TransformSuccess), getattr(result, "skip_description", result)
    return result.code


HELPER = """\
import torch


def g(mask):
    return mask.shape


def f(x, mask=None):
    {check}
    return g(mask)
"""


@pytest.mark.parametrize(
    ("check", "becomes"),
    [
        (
            "if mask is None and not torch.compiler.is_compiling():\n        mask = x.new_ones(x.shape)",
            "if mask is None:\n        mask = x.new_ones(x.shape)",
        ),
        (
            "if not torch._dynamo.is_compiling() and mask is None:\n        mask = x.new_ones(x.shape)",
            "if mask is None:\n        mask = x.new_ones(x.shape)",
        ),
        (
            "if torch.compiler.is_dynamo_compiling() or mask is None:\n        mask = x.new_ones(x.shape)",
            "if mask is None:\n        mask = x.new_ones(x.shape)",
        ),
        (
            "if torch.compiler.is_compiling():\n        mask = None\n    else:\n        mask = x.new_ones(x.shape)",
            "mask = x.new_ones(x.shape)",
        ),
        ("if not torch.compiler.is_compiling():\n        mask = x.new_ones(x.shape)", "mask = x.new_ones(x.shape)"),
        ("mask = None if torch.compiler.is_compiling() else x.new_ones(x.shape)", "mask = x.new_ones(x.shape)"),
        (
            "if mask is not None:\n        pass\n    elif torch.compiler.is_compiling():\n        mask = None\n"
            "    else:\n        mask = x.new_ones(x.shape)",
            "if mask is not None:\n        pass\n    else:\n        mask = x.new_ones(x.shape)",
        ),
        (
            "if mask is not None:\n        pass\n    elif not torch.compiler.is_compiling():\n        mask = x.new_ones(x.shape)",
            "if mask is not None:\n        pass\n    else:\n        mask = x.new_ones(x.shape)",
        ),
    ],
    ids=["and-not", "not-and", "or", "if-else", "if-not", "conditional-expression", "elif", "elif-not"],
)
def test_a_check_before_the_call_takes_its_eager_value_and_the_test_is_simplified(check: str, becomes: str) -> None:
    source = HELPER.format(check=check)
    assert _fixed(source, "return mask.shape", "return g(mask)") == HELPER.format(check=becomes)


def test_an_imported_library_wrapper_is_a_check_and_a_value_becomes_false() -> None:
    source = """\
    from transformers.utils import is_torchdynamo_compiling


    def f(x):
        compiling = is_torchdynamo_compiling()
        y = None if compiling else x + 1
        return y.shape
    """
    assert "compiling = False\n" in _fixed(source, "return y.shape")


def test_a_check_that_decides_nothing_alone_is_left_as_its_constant() -> None:
    # ``x and False`` keeps x, which may have effects; only the call changes.
    source = """\
    import torch


    def f(x, mask=None):
        if mask.any() and torch.compiler.is_compiling():
            mask = None
        return mask.shape
    """
    assert "if mask.any() and False:" in _fixed(source, "return mask.shape")


@pytest.mark.parametrize(
    "source",
    [
        # the project's own function of that name: its meaning is the project's
        "def is_compiling():\n    return True\n\n\ndef f(x):\n    if is_compiling():\n        x = None\n"
        "    return x.shape\n",
        # the check comes after the break: it did not run
        "import torch\n\n\ndef f(x):\n    y = x.shape\n    if torch.compiler.is_compiling():\n        x = None\n"
        "    return y\n",
        # a function off the break's stack
        "import torch\n\n\ndef h(x):\n    return None if torch.compiler.is_compiling() else x\n\n\ndef f(x):\n"
        "    y = h(x)\n    return y.shape\n",
    ],
    ids=["own-function", "after-the-break", "off-the-stack"],
)
def test_a_check_that_did_not_run_on_the_way_to_the_break_is_left_alone(source: str) -> None:
    line = line_of(source, ".shape")
    result = run_codemod("BF801", source, line, function="f")
    assert isinstance(result, TransformSkip)
    assert "no call of is_compiling()" in result.skip_description


def test_the_innermost_file_holding_a_check_is_the_one_edited(tmp_path: Path) -> None:
    caller = tmp_path / "model.py"
    helper = tmp_path / "blocks.py"
    clean = tmp_path / "util.py"
    caller.write_text(
        textwrap.dedent("""\
        import torch
        from blocks import split


        def forward(x, mask=None):
            if mask is None and not torch.compiler.is_compiling():
                mask = x.new_ones(x.shape)
            return split(mask)
        """)
    )
    helper.write_text("from util import size\n\n\ndef split(mask):\n    return size(mask)\n")
    clean.write_text("def size(mask):\n    return mask.shape\n")
    frames = [Frame(str(caller), 8, "forward"), Frame(str(helper), 5, "split"), Frame(str(clean), 2, "size")]
    brk = GraphBreak("Observed exception", "GB0088", "", "", [], frames, frames)
    request = FixRequest(brk=brk, target_file=str(caller), target_qualname="forward")
    assert CompileOnlyPath.file_to_edit(request) == str(caller)


def _disabled(source: str, call: str, function: str = "f", explanation: str = "") -> TransformSkip | TransformSuccess:
    text = textwrap.dedent(source)
    frame = Frame("/project/m.py", line_of(text, call), function)
    brk = GraphBreak(
        "Skip calling `torch.compiler.disable()`d function", "GB0098", "", explanation, [], [frame], [frame]
    )
    request = FixRequest(brk=brk, target_file=frame.filename, target_qualname=function, sources={frame.filename: text})
    _, result = apply_codemod(BY_CODE["BF802"], request, frame.filename, text)
    assert isinstance(result, (TransformSkip, TransformSuccess)), result
    return result


def test_a_disabled_method_called_through_self_is_compiled() -> None:
    source = """\
    import torch


    class Head(torch.nn.Module):
        @torch._dynamo.disable(recursive=False)
        def scale(self, x):
            return x * 2

        def forward(self, x):
            return self.scale(x) + 1
    """
    result = _disabled(source, "return self.scale(x)", "forward")
    assert isinstance(result, TransformSuccess)
    assert "disable" not in result.code and "    def scale(self, x):" in result.code


def test_the_function_dynamo_names_is_the_one_compiled() -> None:
    source = """\
    import torch


    @torch.compiler.disable
    def a(x):
        return x + 1


    @torch.compiler.disable
    def b(x):
        return x * 2


    def f(x):
        return a(b(x))
    """
    result = _disabled(source, "return a(b(x))", explanation="Skip calling function `<function b at 0x7f00>`")
    assert isinstance(result, TransformSuccess)
    assert "@torch.compiler.disable\ndef a(x):" in result.code and "\n\ndef b(x):" in result.code


def test_an_orchestrator_of_compiled_pieces_stays_disabled() -> None:
    source = """\
    import torch


    @torch.compiler.disable
    def step(x):
        y = _step_piece(x)
        print(y)
        return y


    def f(x):
        return step(x)


    @torch.compile(fullgraph=True)
    def _step_piece(x):
        return x + 1
    """
    result = _disabled(source, "return step(x)")
    assert isinstance(result, TransformSkip)
    assert "an eager orchestrator of compiled pieces" in result.skip_description


def test_a_disabled_helper_imported_from_a_project_module_is_edited_there(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    helper = tmp_path / "pkg" / "blocks.py"
    helper.write_text("import torch\n\n\n@torch.compiler.disable\ndef normalize(x):\n    return x / 2\n")
    for line in ("from .blocks import normalize", "from pkg.blocks import normalize"):
        caller = tmp_path / "pkg" / "model.py"
        caller.write_text(f"{line}\n\n\ndef forward(x):\n    return normalize(x)\n")
        frame = Frame(str(caller), 5, "forward")
        brk = GraphBreak("Skip calling `torch.compiler.disable()`d function", "GB0098", "", "", [], [frame], [frame])
        request = FixRequest(brk=brk, target_file=str(caller), target_qualname="forward")
        assert BY_CODE["BF802"].file_to_edit(request) == str(helper), line


def test_a_disabled_function_with_side_effects_stays_disabled() -> None:
    source = """\
    import torch


    class Cache(torch.nn.Module):
        @torch.compiler.disable
        def store(self, x):
            self.last = x
            return x

        def forward(self, x):
            return self.store(x) + 1
    """
    result = _disabled(source, "return self.store(x)", "forward")
    assert isinstance(result, TransformSkip)
    assert "has side effects, which may be why it was disabled" in result.skip_description
