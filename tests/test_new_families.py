"""Where the copies, side_effects, control_flow and numpy-math codemods refuse, and what they write: libcst only.

The fixtures show one case each way through the real CLI; these pin the rules in between.
"""

from __future__ import annotations

import ast
import textwrap

import pytest
from libcst.codemod import CodemodContext, TransformSkip, TransformSuccess, transform_module

from breakfix.codemods import BY_CODE, FixRequest
from breakfix.codemods.side_effects import _literal
from breakfix.types import Frame, GraphBreak

PATH = "/project/m.py"


def _run(code: str, source: str, line: int):
    frames = [Frame(PATH, line, "f")]
    codemod = BY_CODE[code]
    brk = GraphBreak(gb_type=min(codemod.GB_TYPES, default=""), gb_id=min(codemod.GB_IDS, default=None), reason="",
                     explanation="", hints=[], user_stack=frames, project_stack=frames)
    request = FixRequest(brk=brk, target_file=PATH, target_qualname="f")
    return transform_module(BY_CODE[code](CodemodContext(filename=PATH), request), textwrap.dedent(source))


def _line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(textwrap.dedent(source).splitlines(), 1) if text in line)


@pytest.mark.parametrize(("statement", "why"), [
    ('print(f"x={x}")', "may be a tensor"),
    ('print(f"{x.sum().item()!r}")', "conversion"),
    ('print(f"{x.sum().item()=}")', "conversion"),
    ('print(f"{x.sum():.{p}f}")', "nested format spec"),
    ('print("loss", x.sum().item(), sep=",")', "sep/end/file/flush"),
    ('print(f"{step}")', "may be a tensor"),  # a loop variable over a list, not range/enumerate
])
def test_print_refusals(statement: str, why: str) -> None:
    source = f"def f(x, p, steps):\n    for step in steps:\n        {statement}\n"
    result = _run("BF501", source, 3)
    assert isinstance(result, TransformSkip) and why in result.skip_description


def test_print_format_string_prints_the_same_text() -> None:
    source = '''
        def f(x, ys):
            for i, y in enumerate(ys):
                print(f"{i}: {{raw}} {x.sum().item():.2f}\\t'q\\"", "{lit}", x.shape[0], len(ys))
    '''
    result = _run("BF501", source, 4)
    assert isinstance(result, TransformSuccess)
    call = ast.parse(result.code).body[-1].body[0].body[0].value
    assert ast.unparse(call.func) == "torch._higher_order_ops.print"
    fmt = call.args[0].value
    assert fmt.format(3, 1.0, 4, 2) == f"{3}: {{raw}} {1.0:.2f}\t'q\" {{lit}} 4 2"
    assert [ast.unparse(a) for a in call.args[1:]] == ["i", "x.sum().item()", "x.shape[0]", "len(ys)"]


@pytest.mark.parametrize("text", ["a", 'a"b', "a'b", "both ' and \" \\ end", "tab\tnew\nline", "\\'"])
def test_literal_round_trips(text: str) -> None:
    literal = _literal(text)
    assert literal.startswith('"') and ast.literal_eval(literal) == text


def test_counter_rebound_elsewhere_is_not_a_counter() -> None:
    source = "def f(x):\n    for i in range(3):\n        i = x\n        print(f'{i}')\n"
    assert isinstance(_run("BF501", source, 4), TransformSkip)


@pytest.mark.parametrize(("source", "why"), [
    ("def f(x):\n    if x.sum() > 0:\n        y = x * 2\n    return y\n", "no else"),
    ("def f(x):\n    if x.sum() > 0:\n        y = x * 2\n    elif x.sum() < -1:\n        y = x\n    else:\n        y = -x\n    return y\n",
     "elif"),
    ("def f(x):\n    if x.sum() > 0:\n        x.add_(1)\n        y = x\n    else:\n        y = x\n    return y\n", "more than assign"),
    ("def f(x):\n    if x.sum() > 0:\n        y = x * 2\n    else:\n        z = x\n    return x\n", "no name in common"),
    ("def f(x):\n    t = x\n    if x.sum() > 0:\n        t = x * 2\n        y = t\n    else:\n        y = x\n    return y, t\n",
     "t is assigned on one branch only"),
])
def test_branch_refusals(source: str, why: str) -> None:
    result = _run("BF601", source, _line_of(source, "if x.sum()"))
    assert isinstance(result, TransformSkip) and why in result.skip_description, result


def test_branch_operands_are_the_names_a_branch_rebinds_after_reading() -> None:
    source = "def f(x, w):\n    if x.sum() > 0:\n        x = x * w\n        tmp = x\n    else:\n        x = x + 1\n    return x\n"
    result = _run("BF601", source, 2)
    assert isinstance(result, TransformSuccess)
    assert "def _if_true(x):" in result.code and "def _if_false(x):" in result.code
    assert "    x = torch.cond(x.sum() > 0, _if_true, _if_false, (x,))\n" in result.code
    namespace: dict = {}
    plain = result.code.replace("import torch\n", "").replace("torch.cond", "cond")
    exec(compile(plain, PATH, "exec"),
         {"cond": lambda pred, t, f, ops=(): t(*ops) if pred else f(*ops)}, namespace)
    assert namespace["f"](_Num(2), 3).value == 6 and namespace["f"](_Num(-2), 3).value == -1


class _Num:
    """A stand-in with .sum() so the branch runs in plain Python."""

    def __init__(self, value: float) -> None:
        self.value = value

    def sum(self) -> float:
        return self.value

    def __mul__(self, other):
        return _Num(self.value * other)

    def __add__(self, other):
        return _Num(self.value + other)


def test_deepcopy_helper_is_added_once_and_its_own_call_is_never_rewritten() -> None:
    source = "import copy\n\n\ndef f(x):\n    a = copy.deepcopy(x)\n    return a\n"
    first = _run("BF401", source, 5)
    assert isinstance(first, TransformSuccess) and "    a = _deepcopy(x)\n" in first.code
    helper_line = _line_of(first.code, "return copy.deepcopy(value)")
    assert isinstance(_run("BF401", first.code, helper_line), TransformSkip)
    assert first.code.count("def _deepcopy(") == 1
    memo = "import copy\n\n\ndef f(x, memo):\n    return copy.deepcopy(x, memo)\n"
    assert "memo" in _run("BF401", memo, 5).skip_description


_ROUTING = """
def f(x, mask, experts):
    out = torch.zeros_like(x)
    hit = mask.sum(dim=-1).nonzero()
    for e in hit:
        {body}
    return out
"""


@pytest.mark.parametrize(("body", "why"), [
    ("out.index_add_(0, torch.where(mask[e[0]])[0], experts[e[0]](x))\n        print(e)", "is used in `print(e)`"),
    ("out += e[0]", "is used in `out += e[0]`"),  # a number, not an index
    ('log(f"{e}")', "where a tensor and the static loop's list may differ"),  # a row formats as tensor([i])
    ('log(f"{e[0]!r}")', "where a tensor and the static loop's int may differ"),
    ("out.add_(experts[e[0]](x))\n        break", "a break"),
])
def test_expert_loop_refusals(body: str, why: str) -> None:
    source = _ROUTING.format(body=body)
    result = _run("BF602", source, _line_of(source, "for e in hit"))
    assert isinstance(result, TransformSkip) and why in result.skip_description, result


@pytest.mark.parametrize(("source", "why"), [
    (_ROUTING.format(body="out.add_(experts[e[0]](x))").replace("return out", "return out, hit"), "hit is used again"),
    (_ROUTING.format(body="out.add_(experts[e[0]](x))").replace("return out", "return out, e"), "e is read after"),
    (_ROUTING.format(body="out.add_(experts[e[0]](x))").replace("    hit = ", "    if x.any():\n        hit = "),
     "the assignment is conditional"),
    (_ROUTING.format(body="out.add_(experts[e[0]](x))").replace(".nonzero()", ".nonzero(as_tuple=True)"),
     "not a nonzero() of a tensor"),
])
def test_expert_loop_refuses_what_it_cannot_see_whole(source: str, why: str) -> None:
    result = _run("BF602", source, _line_of(source, "for e in hit"))
    assert isinstance(result, TransformSkip) and why in result.skip_description, result


def test_expert_loop_items_keep_the_shape_the_body_used() -> None:
    # torch.nonzero(...)[0] gives index tensors: the static loop gives ints; its assignment keeps
    # the tensor counted, which the loop's length is read from.
    source = _ROUTING.format(body="out.index_add_(0, torch.where(mask[e])[0], experts[f'e{e}'](x))").replace(
        "mask.sum(dim=-1).nonzero()", "torch.nonzero(mask.sum(dim=-1), as_tuple=True)[0]")
    result = _run("BF602", source, _line_of(source, "for e in hit"))
    assert isinstance(result, TransformSuccess)
    assert "    hit = mask.sum(dim=-1)\n    for e in range(hit.shape[0]):\n" in result.code


def test_empty_skip_refusals() -> None:
    source = """
        def f(x, mask):
            for e in range(4):
                rows = torch.where(mask[e])[0]
                if rows.shape[0] == 0:
                    x = x + 1
                    continue
                x[rows] = 0
            return x
    """
    result = _run("BF602", source, _line_of(source, "if rows"))
    assert isinstance(result, TransformSkip) and "more than `continue`" in result.skip_description
    unselected = source.replace("torch.where(mask[e])[0]", "mask[e].float()").replace("                    x = x + 1\n", "")
    result = _run("BF602", unselected, _line_of(unselected, "if rows"))
    assert isinstance(result, TransformSkip) and "not selected with torch.where" in result.skip_description


def test_numpy_math_follows_the_branch_back_to_the_numpy_call_and_no_further() -> None:
    source = """
        from numpy import gcd as g
        import numpy


        def lcm3(a, b, c):
            ab = numpy.lcm(a, b)
            return numpy.lcm(ab, c)


        def chunk(sizes):
            return lcm3(sizes[0], sizes[1], sizes[2])


        def f(x, sizes):
            n = chunk(sizes)
            step: int = g(n, 4)
            other = g(n, 6)  # read only inside the branch: left alone
            pad = x.shape[0] % step != 0
            if pad:
                x = x + other
            x = x * numpy.lcm(2, 3)  # after the branch: left alone
            return x
    """
    result = _run("BF203", source, _line_of(source, "if pad:"))
    assert isinstance(result, TransformSuccess), result
    code = result.code
    assert "ab = math.lcm(a, b)" in code and "return math.lcm(ab, c)" in code and "step: int = math.gcd(n, 4)" in code
    assert "other = g(n, 6)" in code and "x * numpy.lcm(2, 3)" in code
    assert code.count("import math\n") == 1 and "from numpy import gcd as g" in code
    namespace: dict = {}
    exec(compile(code, PATH, "exec"), namespace)
    assert type(namespace["chunk"]((4, 6, 10))) is int and namespace["chunk"]((4, 6, 10)) == 60
    assert isinstance(_run("BF203", code, _line_of(code, "if pad:")), TransformSkip), "a second pass changes nothing"


@pytest.mark.parametrize(("source", "why"), [
    ("import numpy as np\n\ndef f(x, a, math):\n    n = np.lcm(a, 2)\n    if x.shape[0] > n:\n        x = x + math\n    return x\n",
     "math is bound"),
    ("import numpy as np\n\ndef f(x, a):\n    n = np.lcm(a, 2, dtype=np.int32)\n    if x.shape[0] > n:\n        x = x + 1\n    return x\n",
     "other than two positional arguments"),
    ("import numpy as np\n\ndef f(x, a):\n    n = np.sqrt(a)\n    if x.shape[0] > n:\n        x = x + 1\n    return x\n",
     "numpy.sqrt feeds the branch and has no exact Python counterpart"),
    ("from math import lcm\n\ndef f(x, a):\n    n = lcm(a, 2)\n    if x.shape[0] > n:\n        x = x + 1\n    return x\n",
     "does not import numpy"),
    ("import numpy as np\n\ndef f(x, a):\n    def inner():\n        n = np.lcm(a, 2)\n        return n\n    n = a\n"
     "    if x.shape[0] > n:\n        x = x + inner()\n    return x\n", "no np.lcm/np.gcd call feeds line 8"),
])
def test_numpy_math_refusals(source: str, why: str) -> None:
    result = _run("BF203", source, _line_of(source, "if "))
    assert isinstance(result, TransformSkip) and why in result.skip_description, result


_VALIDATION = "import torch\n{prelude}\n\ndef f(x):\n    if (x < 0).any():\n        {body}\n{after}    return x.sqrt()\n"


@pytest.mark.parametrize(("parts", "why"), [
    ({"body": 'raise KeyError("k")'}, "raises KeyError: only RuntimeError"),
    ({"body": 'raise AssertionError("a")'}, "raises AssertionError"),
    ({"prelude": "class BadInput(ValueError):\n    pass\n", "body": 'raise BadInput("b")'}, "raises BadInput"),
    ({"prelude": "from errors import ValueError\n", "body": 'raise ValueError("v")'}, "the module rebinds ValueError"),
    ({"prelude": "bool = int\n", "body": 'raise ValueError("v")'}, "the module rebinds bool"),
    ({"body": 'raise ValueError("v") from None'}, "raise ... from"),
    ({"body": 'x = x.abs()\n        raise ValueError("v")'}, "more than one raise"),
    ({"body": 'raise ValueError("v")', "after": "    else:\n        x = x.abs()\n"}, "has an else or elif"),
    ({"body": 'raise ValueError("v", 1)'}, "more than one positional message"),
    ({"body": "raise ValueError(MESSAGE)"}, "not a string literal or f-string"),
    ({"body": 'raise ValueError(b"v")'}, "bytes literal"),
    ({"body": 'raise ValueError(f"{(n := 1)}")'}, "binds a name"),
    ({"body": 'raise ValueError(f"{super()}")'}, "calls super"),
    ({"body": "raise builtins.ValueError"}, "raises builtins.ValueError"),
    ({"body": "raise"}, "a bare raise"),
])
def test_validation_raise_refusals(parts: dict, why: str) -> None:
    source = _VALIDATION.format(**{"prelude": "", "after": "", **parts})
    result = _run("BF604", source, _line_of(source, "if (x < 0)"))
    assert isinstance(result, TransformSkip) and why in result.skip_description, result


def test_validation_raise_refuses_an_elif_and_a_class_body() -> None:
    elif_source = "def f(x):\n    if x.sum() > 1:\n        pass\n    elif (x < 0).any():\n        raise ValueError('v')\n"
    assert "is an elif" in _run("BF604", elif_source, 4).skip_description
    class_source = "import torch\nclass C:\n    t = torch.ones(1)\n    if (t < 0).any():\n        raise ValueError('v')\n"
    assert "not in a function body" in _run("BF604", class_source, 4).skip_description


def test_validation_raise_keeps_comments_and_the_exact_message() -> None:
    source = '''
        def f(x, n):
            # check first
            if x.sum().item() > n:  # a data-dependent guard
                # explain
                raise TypeError(f"over {n}: " 'drop it')  # why
            if (x < 0).any(): raise RuntimeError
            return x
    '''
    first = _run("BF604", source, _line_of(source, "if x.sum()"))
    assert isinstance(first, TransformSuccess), first
    assert ("    # check first\n    # a data-dependent guard\n    # explain\n"
            "    torch._check_type(torch.sym_not(bool(x.sum().item() > n)), "
            "lambda: f\"over {n}: \" 'drop it')  # why\n") in first.code
    second = _run("BF604", first.code, _line_of(first.code, "if (x < 0)"))
    assert isinstance(second, TransformSuccess), second
    assert '    torch._check(torch.sym_not(bool((x < 0).any())), lambda: "")\n    return x\n' in second.code
    assert second.code.count("import torch\n") == 1
