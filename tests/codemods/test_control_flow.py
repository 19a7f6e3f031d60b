"""The control_flow codemods (BF601 branch, BF602 expert loop and empty skip, BF604 validation raise) on
source text: where they refuse and what they write. The fixtures show one case each way through the real CLI.
"""

from __future__ import annotations

import itertools
import types

import libcst as cst
import pytest
from codemod_harness import PATH, line_of, run_codemod
from libcst.codemod import TransformSkip, TransformSuccess

from breakfix.codemods.control_flow._numbers import number_names, number_valued


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("def f(x):\n    if x.sum() > 0:\n        y = x * 2\n    return y\n", "no else"),
        (
            "def f(x):\n    if x.sum() > 0:\n        y = x * 2\n    elif x.sum() < -1:\n        y = -x\n    return y\n",
            "the elif chain has no else",
        ),
        (
            "def f(x):\n    if x.sum() > 0:\n        y = x * 2\n    elif x.sum() < -1:\n        y = -x\n        z = y\n"
            "    else:\n        y = x + 1\n    return y, z\n",
            "z is assigned on some branches only",
        ),
        (
            "def f(x):\n    if x.sum() > 0:\n        x.add_(1)\n        y = x\n    else:\n        y = x\n"
            "    return y\n",
            "more than assign",
        ),
        (
            "def f(x):\n    if x.sum() > 0:\n        y = x * 2\n    else:\n        z = x\n    return x\n",
            "no name in common",
        ),
        (
            "def f(x):\n    t = x\n    if x.sum() > 0:\n        t = x * 2\n        y = t\n    else:\n        y = x\n"
            "    return y, t\n",
            "t is assigned on some branches only",
        ),
    ],
)
def test_branch_refusals(source: str, why: str) -> None:
    result = run_codemod("BF601", source, line_of(source, "if x.sum()"))
    assert isinstance(result, TransformSkip) and why in result.skip_description, result


def test_branch_operands_are_the_names_a_branch_rebinds_after_reading() -> None:
    source = (
        "def f(x, w):\n    if x.sum() > 0:\n        x = x * w\n        tmp = x\n    else:\n        x = x + 1\n"
        "    return x\n"
    )
    result = run_codemod("BF601", source, 2)
    assert isinstance(result, TransformSuccess)
    assert "def _if_true(x):" in result.code and "def _if_false(x):" in result.code
    assert "    x = torch.cond(x.sum() > 0, _if_true, _if_false, (x,))\n" in result.code
    namespace: dict = {}
    plain = result.code.replace("import torch\n", "").replace("torch.cond", "cond")
    cond = {"cond": lambda pred, t, f, ops=(): t(*ops) if pred else f(*ops)}  # torch.cond's meaning, eagerly
    exec(compile(plain, PATH, "exec"), cond, namespace)  # noqa: S102 (runs the rewrite, which the test wrote)
    assert namespace["f"](_Num(2), 3).value == 6 and namespace["f"](_Num(-2), 3).value == -1


def assert_same_branches(source: str, line: int, x: object = 3, **options: list) -> str:
    """Rewrite ``f`` in ``source`` for a break at ``line`` and run it on ``x`` with ``torch.cond``
    stood in for by its eager meaning, beside the original, for every combination of ``options``
    (the values of ``f``'s parameters after ``x``, ``a`` and ``b``) and every truth of the tests
    ``a(x)`` and ``b(x)``: the same branch is taken, and the same tests run, in the same order. The
    rewrite."""
    result = run_codemod("BF601", source, line)
    assert isinstance(result, TransformSuccess), result
    cond = {"cond": lambda pred, t, f, ops=(): t(*ops) if pred else f(*ops)}
    original: dict = {}
    rewritten: dict = {}
    exec(compile(source, PATH, "exec"), {}, original)  # noqa: S102 (the test's own source)
    plain = result.code.replace("import torch\n", "").replace("torch.cond", "cond")
    exec(compile(plain, PATH, "exec"), cond, rewritten)  # noqa: S102 (runs the rewrite, which the test wrote)
    for va, vb, *values in itertools.product([True, False], [True, False], *options.values()):
        outcomes = []
        for namespace in (original, rewritten):
            log: list[str] = []
            a = lambda x, log=log, v=va: log.append("a") or v  # noqa: E731
            b = lambda x, log=log, v=vb: log.append("b") or v  # noqa: E731
            outcomes.append((namespace["f"](x, *values, a, b), log))
        assert outcomes[0] == outcomes[1], (va, vb, values, result.code)
    return result.code


@pytest.mark.parametrize(
    "test",
    [
        "a(x) and flag",
        "flag and a(x)",
        "a(x) or b(x)",
        "not (a(x) and b(x))",
        "a(x) and (b(x) or flag)",
        "x is not None and not a(x)",
        "(flag or a(x)) and b(x)",
    ],
)
def test_a_compound_test_evaluates_its_operands_as_python_does(test: str) -> None:
    """Each operand of an and/or test runs only where Python runs it."""
    source = f"def f(x, flag, a, b):\n    if {test}:\n        y = x * 2\n    else:\n        y = x - 1\n    return y\n"
    assert "if " + test not in assert_same_branches(source, 2, flag=[True, False])


@pytest.mark.parametrize(
    "tests",
    [("a(x)", "b(x)"), ("a(x)", "mode == 1"), ("a(x) and flag", "b(x) or flag"), ("a(x)", "b(x)", "mode == 2")],
)
def test_an_elif_chain_takes_the_branch_python_takes(tests: tuple[str, ...]) -> None:
    """Each test of an if/elif/else chain runs only where Python runs it, and a test of Python
    state (``mode == 1``) stays Python."""
    arms = "".join(
        f"    {'if' if i == 0 else 'elif'} {t}:\n        y = x * {i + 2}\n        tmp = y\n"
        for i, t in enumerate(tests)
    )
    source = f"def f(x, flag, mode, a, b):\n{arms}    else:\n        y = x - 1\n    return y\n"
    code = assert_same_branches(source, 2, flag=[True, False], mode=[0, 1, 2])
    assert "elif " not in code and "_elif_true" in code and "torch.cond(mode" not in code


def test_a_break_at_an_elif_keeps_the_python_tests_before_it() -> None:
    """The tests above the break ran in Python while tracing: they stay, and the chain from the
    break's test on becomes their else block."""
    source = (
        "def f(x, mode, a, b):\n    if mode == 1:\n        y = x * 2\n    elif mode == 2:\n        y = x * 5\n"
        "    elif a(x):\n        y = x * 3\n    elif b(x):\n        y = x * 4\n    else:\n        y = x - 1\n"
        "    return y\n"
    )
    code = assert_same_branches(source, line_of(source, "elif a(x)"), mode=[0, 1, 2])
    assert "    if mode == 1:\n" in code and "    elif mode == 2:\n" in code
    assert "        y = torch.cond(a(x), _if_true, lambda: torch.cond(b(x), _elif_true, _if_false))\n" in code


def test_a_break_at_an_elif_without_else_is_refused() -> None:
    source = (
        "def f(x, mode):\n    if mode:\n        y = x * 2\n    elif x.sum() > 0:\n        y = x * 3\n    return y\n"
    )
    result = run_codemod("BF601", source, 4)
    assert isinstance(result, TransformSkip) and "the elif at the break has no else" in result.skip_description


@pytest.mark.parametrize("otherwise", ["    else:\n        y = x - 1\n", ""])
def test_a_branch_may_branch_on_python_state(otherwise: str) -> None:
    """An ``if`` on Python state inside the branch (``if mode == 1:``, an ``elif``, an ``else`` that
    raises) is taken while the branch is traced: the rewrite takes the path Python takes, with
    and without an ``else`` at the break."""
    source = (
        "def f(x, mode, a, b):\n    y = x * 1\n    if a(x):\n        z = x * 2\n"
        "        if mode == 1:\n            y = z + 1\n        elif mode == 2:\n            w = z * 3\n"
        "            y = w - 1\n        elif mode == 9:\n            raise ValueError(mode)\n"
        f"        else:\n            y = z\n{otherwise}    return y\n"
    )
    code = assert_same_branches(source, line_of(source, "if a(x)"), x=_Num(3), mode=[0, 1, 2])
    assert "        if mode == 1:\n" in code and "            raise ValueError(mode)\n" in code
    assert "    y = torch.cond(a(x), _if_true, _if_false" in code  # y is the one result


@pytest.mark.parametrize(
    ("inner", "why"),
    [
        ("        if x.sum() > 1:\n            y = x * 3\n", "a branch holds an `if` whose test may read a tensor"),
        ("        if mode:\n            print(x)\n", "more than assign names and branch on Python state"),
        ("        raise ValueError(x)\n", "more than assign names and branch on Python state"),
    ],
)
def test_a_branch_branching_on_a_tensor_or_acting_is_refused(inner: str, why: str) -> None:
    source = (
        f"def f(x, mode):\n    if x.mean() > 0:\n        y = x * 2\n{inner}    else:\n        y = x\n    return y\n"
    )
    result = run_codemod("BF601", source, 2)
    assert isinstance(result, TransformSkip) and why in result.skip_description, result


def test_a_name_bound_on_some_paths_of_a_branch_is_no_result() -> None:
    """A name an inner ``if`` binds only when its test holds is not bound on every path: it is no
    result of the branch."""
    source = (
        "def f(x, mode):\n    if x.mean() > 0:\n        y = x * 2\n        if mode:\n            z = x\n"
        "    else:\n        y = x\n        z = x\n    return y, z\n"
    )
    result = run_codemod("BF601", source, 2)
    assert isinstance(result, TransformSkip), result
    assert "z is assigned on some branches only" in result.skip_description


class _Num:
    """A stand-in with .sum() and .clone() so the branch runs in plain Python."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Num) and other.value == self.value

    def sum(self) -> float:
        return self.value

    def clone(self) -> _Num:
        return _Num(self.value)

    def __sub__(self, other):
        return _Num(self.value - other)

    def __mul__(self, other):
        return _Num(self.value * other)

    def __add__(self, other):
        return _Num(self.value + other)


_ROUTING = """
def f(x, mask, experts):
    out = torch.zeros_like(x)
    hit = mask.sum(dim=-1).nonzero()
    for e in hit:
        {body}
    return out
"""


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("out.index_add_(0, torch.where(mask[e[0]])[0], experts[e[0]](x))\n        print(e)", "is used in `print(e)`"),
        ("out += e[0]", "is used in `out += e[0]`"),  # a number, not an index
        ('log(f"{e}")', "where a tensor and the static loop's list may differ"),  # a row formats as tensor([i])
        ('log(f"{e[0]!r}")', "where a tensor and the static loop's int may differ"),
        ("out.add_(experts[e[0]](x))\n        break", "a break"),
    ],
)
def test_expert_loop_refusals(body: str, why: str) -> None:
    source = _ROUTING.format(body=body)
    result = run_codemod("BF602", source, line_of(source, "for e in hit"))
    assert isinstance(result, TransformSkip) and why in result.skip_description, result


@pytest.mark.parametrize(
    ("source", "why"),
    [
        (
            _ROUTING.format(body="out.add_(experts[e[0]](x))").replace("return out", "return out, hit"),
            "hit is used again",
        ),
        (_ROUTING.format(body="out.add_(experts[e[0]](x))").replace("return out", "return out, e"), "e is read after"),
        (
            _ROUTING.format(body="out.add_(experts[e[0]](x))").replace("    hit = ", "    if x.any():\n        hit = "),
            "the assignment is conditional",
        ),
        (
            _ROUTING.format(body="out.add_(experts[e[0]](x))").replace(".nonzero()", ".nonzero(as_tuple=True)"),
            "not a nonzero() of a tensor",
        ),
    ],
)
def test_expert_loop_refuses_what_it_cannot_see_whole(source: str, why: str) -> None:
    result = run_codemod("BF602", source, line_of(source, "for e in hit"))
    assert isinstance(result, TransformSkip) and why in result.skip_description, result


def test_expert_loop_items_keep_the_shape_the_body_used() -> None:
    # torch.nonzero(...)[0] gives index tensors: the static loop gives ints; its assignment keeps
    # the tensor counted, which the loop's length is read from.
    source = _ROUTING.format(body="out.index_add_(0, torch.where(mask[e])[0], experts[f'e{e}'](x))").replace(
        "mask.sum(dim=-1).nonzero()", "torch.nonzero(mask.sum(dim=-1), as_tuple=True)[0]"
    )
    result = run_codemod("BF602", source, line_of(source, "for e in hit"))
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
    result = run_codemod("BF602", source, line_of(source, "if rows"))
    assert isinstance(result, TransformSkip) and "more than `continue`" in result.skip_description
    unselected = source.replace("torch.where(mask[e])[0]", "mask[e].float()").replace(
        "                    x = x + 1\n", ""
    )
    result = run_codemod("BF602", unselected, line_of(unselected, "if rows"))
    assert isinstance(result, TransformSkip) and "not selected with torch.where" in result.skip_description


_VALIDATION = (
    "import torch\n{prelude}\n\ndef f(x):\n    if (x < 0).any():\n        {body}\n{after}    return x.sqrt()\n"
)


@pytest.mark.parametrize(
    ("parts", "why"),
    [
        ({"body": 'raise KeyError("k")'}, "raises KeyError: only RuntimeError"),
        ({"body": 'raise AssertionError("a")'}, "raises AssertionError"),
        ({"prelude": "class BadInput(ValueError):\n    pass\n", "body": 'raise BadInput("b")'}, "raises BadInput"),
        (
            {"prelude": "from errors import ValueError\n", "body": 'raise ValueError("v")'},
            "the module rebinds ValueError",
        ),
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
    ],
)
def test_validation_raise_refusals(parts: dict, why: str) -> None:
    source = _VALIDATION.format(**{"prelude": "", "after": "", **parts})
    result = run_codemod("BF604", source, line_of(source, "if (x < 0)"))
    assert isinstance(result, TransformSkip) and why in result.skip_description, result


def test_validation_raise_refuses_an_elif_and_a_class_body() -> None:
    elif_source = (
        "def f(x):\n    if x.sum() > 1:\n        pass\n    elif (x < 0).any():\n        raise ValueError('v')\n"
    )
    assert "is an elif" in run_codemod("BF604", elif_source, 4).skip_description
    class_source = (
        "import torch\nclass C:\n    t = torch.ones(1)\n    if (t < 0).any():\n        raise ValueError('v')\n"
    )
    assert "not in a function body" in run_codemod("BF604", class_source, 4).skip_description


def test_validation_raise_keeps_comments_and_the_exact_message() -> None:
    source = """
        def f(x, n):
            # check first
            if x.sum().item() > n:  # a data-dependent guard
                # explain
                raise TypeError(f"over {n}: " 'drop it')  # why
            if (x < 0).any(): raise RuntimeError
            return x
    """
    first = run_codemod("BF604", source, line_of(source, "if x.sum()"))
    assert isinstance(first, TransformSuccess), first
    assert (
        "    # check first\n    # a data-dependent guard\n    # explain\n"
        "    torch._check_type(torch.sym_not(bool(x.sum().item() > n)), "
        "lambda: f\"over {n}: \" 'drop it')  # why\n"
    ) in first.code
    second = run_codemod("BF604", first.code, line_of(first.code, "if (x < 0)"))
    assert isinstance(second, TransformSuccess), second
    assert '    torch._check(torch.sym_not(bool((x < 0).any())), lambda: "")\n    return x\n' in second.code
    assert second.code.count("import torch\n") == 1


# --- BF601: an if without else that rebinds a parameter ------------------------------------------

HELPER = """\
import torch
import torch.nn.functional as F


def squash(p):
    if not torch.all((p >= 0) & (p <= 1)):
        p = p.sigmoid()
    return p


def caller(x):
{body}


def score(p, x):
    return (p * x).sum() - p.mean()


def keep(p, x):
    p.clamp_(0.1, 0.9)
    return x


def pair(x):
    p = squash(x)
    return p, x.sum()
"""


@pytest.mark.parametrize(
    "body",
    [
        "    p = squash(x)\n    return (p > 0.5).float().mean()",  # only read
        "    p = squash(x)\n    p = p > 0.5\n    return p",  # rebound at once to a new tensor
        "    return squash(x) * 2",  # arithmetic on the result
        "    p = squash(x)\n    return F.softmax(p, -1)",  # a torch function makes a new tensor
        "    p = squash(x)\n    return score(p, x)",  # a project function that only computes on it
        "    p = squash(x)\n    return torch.sigmoid(p) + len(p)",  # torch functions and len only read it
        "    p = squash(x)\n    return score(p, x).to(p.device)",  # its device describes it
    ],
)
def test_a_parameter_passes_through_when_no_caller_can_tell_the_copy(body: str) -> None:
    source = HELPER.format(body=body)
    result = run_codemod("BF601", source, 6, function="squash", callers=((line_of(source, "squash(x)"), "caller"),))
    assert isinstance(result, TransformSuccess), getattr(result, "skip_description", result)
    assert "return p.clone()" in result.code and "torch.cond(torch.all(" in result.code


@pytest.mark.parametrize(
    "body",
    [
        "    p = squash(x)\n    p.mul_(2)\n    return p",  # the caller updates it in place
        "    p = squash(x)\n    return p",  # handed on to the user's code
        "    return other(squash(x))",  # another call may keep or update it
        "    p, q = squash(x), x\n    return p",  # not a plain binding
        "    p = squash(x)\n    return keep(p, x)",  # a project function that updates it in place
        "    p = squash(x)\n    return helper(p)",  # a function whose code is not read
        "    p = squash(x)\n    q = p\n    return q * 2",  # another name for it
        "    p = squash(x)\n    return p.data * 2",  # its data is its memory
        "    p = squash(x)\n    return p.numpy() * 2",  # so is its array
        "    p = squash(x)\n    return (p is x) * p.sum()",  # identity tells a copy apart
        "    p = squash(x)\n    seen.add(p)\n    return p.sum()",  # a method of another object may keep it
    ],
)
def test_a_parameter_the_caller_may_tell_from_a_copy_is_refused(body: str) -> None:
    source = HELPER.format(body=body)
    result = run_codemod("BF601", source, 6, function="squash", callers=((line_of(source, "squash(x)"), "caller"),))
    assert isinstance(result, TransformSkip)
    assert "parameter the function returns to a caller that may update it" in result.skip_description


@pytest.mark.parametrize(
    ("body", "private"),
    [
        ("    p, total = pair(x)\n    return p * total", True),  # the element is only computed on
        ("    p, total = pair(x)\n    p.mul_(2)\n    return p", False),  # the element is updated in place
        ("    total, p = pair(x)\n    p.mul_(2)\n    return p", True),  # the other element is
        ("    pair_ = pair(x)\n    return pair_[0] * 2", False),  # the tuple is kept whole
    ],
)
def test_a_parameter_returned_in_a_tuple_follows_its_element(body: str, private: bool) -> None:
    """The helper returns the copy as the first element of a tuple: the caller that unpacks it
    decides, by what it does with that element."""
    source = HELPER.format(body=body.replace("pair(x)", "pair(x)  # here"))
    callers = ((line_of(source, "# here"), "caller"), (line_of(source, "p = squash(x)"), "pair"))
    result = run_codemod("BF601", source, 6, function="squash", callers=callers)
    assert isinstance(result, TransformSuccess) is private, getattr(result, "skip_description", result)


def test_an_if_without_else_is_refused_when_the_function_passes_the_name_on_to_an_updater() -> None:
    source = HELPER.format(body="    return x").replace(
        "        p = p.sigmoid()\n    return p", "        p = p.sigmoid()\n    keep(p, p)\n    return p * 2"
    )
    result = run_codemod("BF601", source, 6, function="squash")
    assert isinstance(result, TransformSkip)
    assert "p is passed after the if to a function that may update it" in result.skip_description
    kept = run_codemod("BF601", source.replace("keep(p, p)", "score(p, p)"), 6, function="squash")
    assert isinstance(kept, TransformSuccess), getattr(kept, "skip_description", kept)


def test_a_conditional_expression_copies_a_branch_that_reads_an_existing_tensor_only_for_arithmetic() -> None:
    source = """\
    import torch


    def f(self, t, x):
        a = self.table[t.reshape(1)].squeeze(0) if t >= 0 else self.final
        return x * a ** 0.5
    """
    result = run_codemod("BF601", source, 5)
    assert isinstance(result, TransformSuccess)
    assert "lambda: self.final.clone()" in result.code
    kept = run_codemod("BF601", source.replace("return x * a ** 0.5", "a.add_(1)\n        return x * a"), 5)
    assert isinstance(kept, TransformSkip) and "only read by arithmetic" in kept.skip_description


@pytest.mark.parametrize(
    ("binding", "fresh"),
    [
        ("F.cross_entropy(logits, y)", True),
        ("torch.linalg.vector_norm(logits, dim=-1).sum()", True),
        ("nn.functional.softmax(logits, -1)", True),
        ("torch.flatten(logits)", False),  # hands back its input when it is already flat
        ("F.relu(logits, inplace=True)", False),  # hands back the tensor it was given
        ("torch.utils.checkpoint.checkpoint(g, logits)", False),  # returns whatever g returns
        ("self.head(logits)", False),  # a module may be an identity
    ],
)
def test_an_if_without_else_passes_a_copy_only_of_a_new_tensor(binding: str, fresh: bool) -> None:
    source = f"""\
    import torch
    import torch.nn.functional as F
    from torch import nn


    def f(self, logits, y, g):
        loss = {binding}
        if torch.isnan(loss).any():
            loss = torch.zeros_like(loss)
        return loss * 2
    """
    result = run_codemod("BF601", source, 8)
    assert isinstance(result, TransformSuccess) is fresh, getattr(result, "skip_description", "")
    if not fresh:
        assert "may be a view or alias" in result.skip_description


@pytest.mark.parametrize("test", ["not a(y)", "not (a(y))", "not not a(y)", "not flag"])
def test_a_tail_under_a_negated_test_branches_on_the_value_itself(test: str) -> None:
    """``not t`` would ask Python for a tensor's truth: BF603 names ``t`` and the tail tests
    ``not`` of the name, so the branch taken is Python's."""
    source = f"def f(x, a, flag):\n    y = x * 2\n    if {test}:\n        return y - 1\n    return y + 1\n"
    result = run_codemod("BF603", source, 3)
    assert isinstance(result, TransformSuccess), getattr(result, "skip_description", result)
    assert "_taken = not" not in result.code
    torch = types.SimpleNamespace(
        cond=lambda pred, t, f, ops=(): t(*ops) if pred else f(*ops), SymBool=bool, Tensor=bool
    )
    original: dict = {}
    rewritten: dict = {}
    exec(compile(source, PATH, "exec"), {}, original)  # noqa: S102 (the test's own source)
    exec(compile(result.code.replace("import torch\n", ""), PATH, "exec"), {"torch": torch}, rewritten)  # noqa: S102
    for truth, flag in itertools.product([True, False], [True, False]):
        a = lambda y, truth=truth: truth  # noqa: E731
        assert original["f"](3, a, flag) == rewritten["f"](3, a, flag), (truth, flag, result.code)


def test_a_tail_returns_copies_of_the_locals_it_hands_back() -> None:
    """torch.cond's outputs may not alias its inputs: a local bound before the tail, or a view or
    detached alias of one, is returned as a copy; a parameter (the caller's own tensor) and a new
    value are returned as they are."""
    source = (
        "def f(x, a):\n    h = x * 2\n    if a(h):\n        return h.detach(), x\n"
        "    return (h + 1).detach(), h.view(-1)\n"
    )
    result = run_codemod("BF603", source, 3)
    assert isinstance(result, TransformSuccess), getattr(result, "skip_description", result)
    assert "return h.detach().clone(), x\n" in result.code
    assert "return (h + 1).detach(), h.view(-1).clone()\n" in result.code
    python_values = source.replace("    h = x * 2\n", "    h = x * 2\n    n = len(x)\n").replace(", x\n", ", n\n")
    kept = run_codemod("BF603", python_values, 4)
    assert isinstance(kept, TransformSuccess), getattr(kept, "skip_description", kept)
    assert "return h.detach().clone(), n\n" in kept.code  # an int is returned as it is
    unpacked = source.replace("    h = x * 2\n", "    h, g = x * 2, x\n    k = j = x * 3\n")
    rebound = run_codemod("BF603", unpacked, 4)
    assert isinstance(rebound, TransformSuccess), getattr(rebound, "skip_description", rebound)
    assert "return h.detach(), x\n" in rebound.code  # bound by unpacking: not known to be a local tensor


def _run_with_eager_cond(code: str) -> dict:
    """Run a rewrite with ``torch.cond`` stood in for by its eager meaning (the real torch makes
    the tensors the numbers cross as); the rewrite's namespace."""
    import torch

    eager = types.SimpleNamespace(
        cond=lambda pred, t, f, ops=(): t(*ops) if pred else f(*ops), tensor=torch.tensor, float64=torch.float64
    )
    namespace: dict = {"torch": eager}
    exec(compile(code, PATH, "exec"), namespace)  # noqa: S102 (runs the rewrite, which the test wrote)
    return namespace


@pytest.mark.parametrize(
    ("source", "marker"),
    [
        (  # an elif chain binding constants, its tests on a float read off the data
            "def f(x, a, b):\n    v = float(x)\n    if a(v):\n        coef = 0.1\n    elif b(v):\n        coef = 0.3\n"
            "    else:\n        coef = 0.5\n    return coef, type(coef)\n",
            "if a(v):",
        ),
        (  # an if without else updating an int the function bound before, reading an int off the data
            "def f(x, a, b):\n    n = int(x) + 1\n    steps = 2\n    if a(x):\n        steps *= n\n"
            "    return steps, type(steps)\n",
            "if a(x):",
        ),
        (  # a conditional expression computing on a float read off the data
            "import math\n\ndef f(x, a, b):\n    var = x.item()\n    scale = 1.0 / math.sqrt(var) if a(var) else 1.0\n"
            "    return scale, type(scale)\n",
            "scale = ",
        ),
        (  # bools, and a float computed in the branch from one read off the data
            "def f(x, a, b):\n    v = x.item()\n    if a(v) and b(v):\n        clipped = True\n        s = v * 2.5\n"
            "    else:\n        clipped = False\n        s = 1.0\n    return clipped, s, type(s)\n",
            "if a(v)",
        ),
    ],
)
def test_python_numbers_cross_the_branches_as_tensors_and_come_back_the_same(source: str, marker: str) -> None:
    """A branch binding Python numbers returns them as tensors that hold them exactly, read back
    with ``.item()``; a float read off the data that a branch reads is passed in the same way.
    Run with ``torch.cond``'s eager meaning beside the original, every truth of the tests gives
    the same numbers, of the same type, and runs the same tests."""
    result = run_codemod("BF601", source, line_of(source, marker))
    assert isinstance(result, TransformSuccess), result
    assert "_number_as_tensor(" in result.code and ".item()" in result.code
    original: dict = {}
    exec(compile(source, PATH, "exec"), original)  # noqa: S102 (the test's own source)
    rewritten = _run_with_eager_cond(result.code)
    for va, vb, x in itertools.product([True, False], [True, False], [4, 0.25]):
        outcomes = []
        for namespace in (original, rewritten):
            log: list[str] = []
            a = lambda v, log=log, t=va: log.append(f"a{v!r}") or t  # noqa: E731
            b = lambda v, log=log, t=vb: log.append(f"b{v!r}") or t  # noqa: E731
            outcomes.append((namespace["f"](x if "item" not in source else _Item(x), a, b), log))
        assert outcomes[0] == outcomes[1], (va, vb, x, result.code)


class _Item:
    """A stand-in for a 0-d tensor: ``.item()`` gives its number."""

    def __init__(self, value: float) -> None:
        self.value = value

    def item(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("0.5", True),
        ("-2", True),
        ("loss.item() * 0.5", True),
        ("1.0 / math.sqrt(var)", True),
        ("max(lo, 0.1)", True),
        ("float(x)", True),
        ("x * 0.5", False),  # x is a parameter: maybe a tensor
        ("torch.tensor(0.5)", False),
        ("math.sqrt(x)", False),
        ("max(x, 0.1)", False),
        ("lo if lo else 1.0", False),
    ],
)
def test_a_number_is_what_surely_gives_one(value: str, number: bool) -> None:
    function = cst.ensure_type(
        cst.parse_statement("def f(x, loss):\n    lo = 0.2\n    var = loss.item()\n    y = x * 2\n    var += 1\n"),
        cst.FunctionDef,
    )
    numbers = number_names(function)
    assert numbers == {"lo", "var"}
    assert number_valued(cst.parse_expression(value), numbers) is number


def test_a_name_a_branch_binds_to_a_tensor_is_not_crossed_as_a_number() -> None:
    source = "def f(x, w):\n    if x.sum() > 0:\n        coef = w * 0.1\n    else:\n        coef = 0.5\n    return x * coef\n"
    result = run_codemod("BF601", source, 2)
    assert isinstance(result, TransformSuccess), result
    assert "_number_as_tensor" not in result.code and ".item()" not in result.code


@pytest.mark.parametrize(
    ("after", "copied"),
    [
        ("    return h * 3\n", True),  # only arithmetic reads it: a copy is the same
        ("    h.add_(1)\n    return h\n", False),  # updated in place: the copy would miss x
        ("    return h.view(-1), x\n", False),  # a view of it: it shares memory with x
    ],
)
def test_a_branch_handing_back_an_existing_tensor_returns_a_copy_only_where_one_is_the_same(
    after: str, copied: bool
) -> None:
    source = f"def f(x):\n    if x.sum() > 0:\n        h = x * 2\n    else:\n        h = x.float()\n{after}"
    result = run_codemod("BF601", source, 2)
    assert isinstance(result, TransformSuccess), result
    assert ("return h.clone()" in result.code) is copied, result.code
    assert "def _if_true():\n        h = x * 2\n        return h\n" in result.code  # a new tensor: no copy


_LOGGED_BRANCH = """\
import logging
import warnings

import torch

logger = logging.getLogger(__name__)


def f(x, w, mode):
    loss = ((x @ w) ** 2).mean()
    if {test}:
        logger.warning("odd loss %.3f for a batch of %d", loss, x.shape[0])
        loss = torch.zeros_like(loss)
        warnings.warn(f"skipped a batch of {{x.shape[0]}}", RuntimeWarning)
    else:
        logger.info("kept %s", mode)
        print(f"kept {{loss.item():.3f}} for", x.shape, x.dtype)
    return loss * 2
"""


@pytest.mark.parametrize("test", ["not torch.isfinite(loss)", "(x > 3).any()"])
def test_log_calls_of_a_branch_are_made_on_its_condition(test: str, tmp_path, monkeypatch, capsys) -> None:
    """Real torch: the rewrite, eager and compiled with fullgraph=True (aot_eager, which keeps the
    graph's effects), logs, warns and prints the same records and text as the original, each on
    the calls that took its block, and computes the same value."""
    import importlib.util
    import logging
    import sys
    import warnings

    import torch

    source = _LOGGED_BRANCH.format(test=test)
    result = run_codemod("BF601", source, line_of(source, "    if "))
    assert isinstance(result, TransformSuccess), getattr(result, "skip_description", result)
    assert "logger.warning(" not in result.code.split("def f(")[1] and "print(" not in result.code.split("def f(")[1]
    modules = {}
    for name, code in (("original", source), ("rewritten", result.code)):
        # A module of its own per case: the log operator is registered under the module's name.
        path = tmp_path / f"logged_branch_{'isfinite' in test}_{name}.py"
        path.write_text(code)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, path.stem, module)
        spec.loader.exec_module(module)
        modules[name] = module

    def run(module, fn, x):
        records = []
        handler = logging.Handler()
        handler.emit = lambda r: records.append((r.levelname, r.getMessage()))
        logger = module.logger
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                value = fn(x, torch.ones(3, 2), "mean")
        finally:
            logger.removeHandler(handler)
        return value, records, [(w.category, str(w.message)) for w in caught], capsys.readouterr().out

    compiled = torch.compile(modules["rewritten"].f, fullgraph=True, backend="aot_eager")
    for odd in (False, True):
        x = torch.rand(4, 3)
        if odd:
            x[0, 0] = float("inf") if "isfinite" in test else 5.0
        want = run(modules["original"], modules["original"].f, x)
        assert want[1], "the original logs on every call"
        for fn in (modules["rewritten"].f, compiled):
            got = run(modules["rewritten"], fn, x)
            torch.testing.assert_close(got[0], want[0])
            assert got[1:] == want[1:], (odd, fn)


@pytest.mark.parametrize(
    ("branch", "why"),
    [
        (
            "    if x.sum() > 0:\n        y = x * 2\n        logger.info('y %s', y)\n    else:\n        y = x\n",
            "reads y, which the branch binds before it",
        ),
        (
            "    if x.sum() > 0:\n        logger.info('norm %s', x.norm())\n        y = x * 2\n    else:\n        y = x\n",
            "computes a value",
        ),
        (
            "    if x.sum() > 0:\n        logger.info('up')\n        y = x * 2\n    elif x.sum() < -1:\n        y = -x\n"
            "    else:\n        y = x\n",
            "elif chain",
        ),
        (
            "    if flag and x.sum() > 0:\n        logger.info('up')\n        y = x * 2\n    else:\n        y = x + 1\n",
            "joined by and/or",
        ),
        (
            "    if x.sum() > 0:\n        logger.info('up')\n    else:\n        y = x + 1\n",
            "only logs and its else block computes",
        ),
    ],
)
def test_log_calls_of_a_branch_refusals(branch: str, why: str) -> None:
    source = f"import logging\n\nlogger = logging.getLogger(__name__)\n\n\ndef f(x, flag):\n{branch}    return y\n"
    result = run_codemod("BF601", source, line_of(source, "    if "))
    assert isinstance(result, TransformSkip) and why in result.skip_description, result
