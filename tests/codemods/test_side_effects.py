"""The side_effects codemods (BF501 print, BF502 warnings) on source text: where they refuse and what they write.

The fixtures show one case each way through the real CLI; these pin the rules in between.
"""

from __future__ import annotations

import ast

import libcst as cst
import pytest
from codemod_harness import run_codemod
from libcst.codemod import TransformSkip, TransformSuccess

from breakfix.codemods._messages import numeric_conversions, string_literal


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        ('print(f"x={x}")', "may be a tensor"),
        ('print(f"{x.sum().item()!r}")', "conversion"),
        ('print(f"{x.sum().item()=}")', "conversion"),
        ('print(f"{x.sum():.{p}f}")', "nested format spec"),
        ('print("loss", x.sum().item(), sep=",")', "sep/end/file/flush"),
        ('print(f"{step}")', "may be a tensor"),  # a loop variable over a list, not range/enumerate
    ],
)
def test_print_refusals(statement: str, why: str) -> None:
    source = f"def f(x, p, steps):\n    for step in steps:\n        {statement}\n"
    result = run_codemod("BF501", source, 3)
    assert isinstance(result, TransformSkip) and why in result.skip_description


def test_print_format_string_prints_the_same_text() -> None:
    source = """
        def f(x, ys):
            for i, y in enumerate(ys):
                print(f"{i}: {{raw}} {x.sum().item():.2f}\\t'q\\"", "{lit}", x.shape[0], len(ys))
    """
    result = run_codemod("BF501", source, 4)
    assert isinstance(result, TransformSuccess)
    call = ast.parse(result.code).body[-1].body[0].body[0].value
    assert ast.unparse(call.func) == "torch._higher_order_ops.print"
    fmt = call.args[0].value
    assert fmt.format(3, 1.0, 4, 2) == f"{3}: {{raw}} {1.0:.2f}\t'q\" {{lit}} 4 2"
    assert [ast.unparse(a) for a in call.args[1:]] == ["i", "x.sum().item()", "x.shape[0]", "len(ys)"]


@pytest.mark.parametrize("text", ["a", 'a"b', "a'b", "both ' and \" \\ end", "tab\tnew\nline", "\\'"])
def test_literal_round_trips(text: str) -> None:
    literal = string_literal(text)
    assert literal.startswith('"') and ast.literal_eval(literal) == text


def test_counter_rebound_elsewhere_is_not_a_counter() -> None:
    source = "def f(x):\n    for i in range(3):\n        i = x\n        print(f'{i}')\n"
    assert isinstance(run_codemod("BF501", source, 4), TransformSkip)


@pytest.mark.parametrize(
    ("call", "numbers"),
    [
        ('logger.info("step %d loss %.4f (%s) %5.1f%%", step, loss, name, pct)', ".nn.n"),
        ('logger.info(f"loss {loss:.3f} acc {acc} {loss!r:>9} {loss:e}")', ".n..n"),
        ('logger.info("loss {1:.2f} at {0}".format(step, loss))', "..n"),
        ('logger.info("loss %.4f" % loss)', ".n"),
        ('logger.info("%(loss).4f", values)', ".."),  # a mapping key: no value per conversion
        ("logger.info(message, loss)", ".."),  # not a literal template
        ('logger.info("loss %.4f %d", loss)', ".."),  # fewer values than conversions
    ],
)
def test_a_value_formatted_as_a_number_is_marked_so(call: str, numbers: str) -> None:
    """The values the message formats as numbers are passed detached: a tensor's number is the
    same as its detached copy's, where its %s or {} text (a grad_fn) is not."""
    source = f"import logging\nlogger = logging.getLogger(__name__)\n\ndef f(step, loss, acc, name, pct, message, values):\n    {call}\n"
    result = run_codemod("BF503", source, 5)
    assert isinstance(result, TransformSuccess), result
    rewritten = next(line for line in result.code.splitlines() if line.strip().startswith("_log_in_graph("))
    assert ast.literal_eval(ast.parse(rewritten.strip()).body[0].value.args[2]) == numbers, rewritten


def test_numeric_conversions_read_a_format_template() -> None:
    template = cst.SimpleString('"{0:.2f} {0} {:d}"')
    assert numeric_conversions("format", [template, cst.Name("a"), cst.Name("b")]) == "..."  # {0} both ways; mixed
