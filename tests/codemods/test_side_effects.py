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
        ('print(f"{x.sum().item()=}")', "conversion"),
        ('print(f"{x.sum():.{p}f}")', "nested format spec"),
        ('print("loss", x.sum().item(), sep=",")', "sep/end/file/flush"),
    ],
)
def test_print_refusals(statement: str, why: str) -> None:
    source = f"def f(x, p, steps):\n    for step in steps:\n        {statement}\n"
    result = run_codemod("BF501", source, 3)
    assert isinstance(result, TransformSkip) and why in result.skip_description


@pytest.mark.parametrize(
    ("statement", "logged"),
    [
        # The text of a value torch's print operator cannot show the same is decided as it is traced.
        ('print(f"x={x}")', '_log_in_graph("_print", "format", "..", "x={0}", x)'),
        ('print(f"{x.sum().item()!r}")', '_log_in_graph("_print", "format", "..", "{0!r}", x.sum().item())'),
        ('print(f"{step}")', '_log_in_graph("_print", "format", "..", "{0}", step)'),  # a loop over a list
        (
            'print("ema", x, x.shape)',
            '_log_in_graph("_print", "format", "....", "{0!s} {1!s} {2!s}", "ema", x, x.shape)',
        ),
    ],
)
def test_prints_whose_text_is_decided_when_traced_go_to_the_log_operator(statement: str, logged: str) -> None:
    source = f"def f(x, p, steps):\n    for step in steps:\n        {statement}\n"
    result = run_codemod("BF501", source, 3)
    assert isinstance(result, TransformSuccess), getattr(result, "skip_description", "")
    assert f"        {logged}\n" in result.code and "def _print(*args):\n    print(*args)" in result.code


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
    # `i` may be a tensor here: not torch's print operator, the log operator that decides as it traces.
    source = "def f(x):\n    for i in range(3):\n        i = x\n        print(f'{i}')\n"
    result = run_codemod("BF501", source, 4)
    assert isinstance(result, TransformSuccess) and "_higher_order_ops.print" not in result.code
    assert '_log_in_graph("_print", "format", "..", "{0}", i)' in result.code


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


def test_a_rewritten_warning_warns_from_its_own_line_once_per_site_as_warnings_warn_does() -> None:
    """warnings.warn(message, category) is warn_explicit with the caller's file, line, module and
    registry: the rewrite passes the line of its call, so the default filter still warns once per
    site, and two sites with the same text warn once each."""
    import warnings

    source = (
        "import warnings\n\n\ndef f(x):\n    if x > 1:\n        warnings.warn(f'x={x} is big', RuntimeWarning)\n"
        "    warnings.warn(f'x={x} is big', RuntimeWarning)\n    warnings.warn('done')\n    return x\n"
    )
    code = source
    # One site per rewrite, as breaks are fixed: the third inserts UserWarning's emitter above the
    # sites rewritten before, whose lines it sets again.
    for _ in range(3):
        line = next(i for i, text in enumerate(code.splitlines(), start=1) if "warnings.warn(" in text)
        result = run_codemod("BF503", code, line)
        assert isinstance(result, TransformSuccess), result
        code = result.code
    sites = [i for i, text in enumerate(code.splitlines(), start=1) if '_log_in_graph("_warnings_warn_' in text]
    assert [f':{line}"' in code.splitlines()[line - 1] for line in sites] == [True, True, True], code
    runs = []
    for text, name in ((source, "warn_sites_original"), (code, "warn_sites_rewritten")):
        namespace: dict = {"__name__": name}
        exec(compile(text, f"/project/{name}.py", "exec"), namespace)  # noqa: S102 (the test's source and its rewrite)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            for _ in range(3):
                namespace["f"](2)
        runs.append([(w.category, str(w.message), w.filename, w.lineno) for w in caught])
    original, rewritten = runs
    assert (
        [(c, t) for c, t, _, _ in rewritten]
        == [(c, t) for c, t, _, _ in original]
        == [
            (RuntimeWarning, "x=2 is big"),
            (RuntimeWarning, "x=2 is big"),
            (UserWarning, "done"),
        ]
    )
    assert [(f, n) for _, _, f, n in rewritten] == [("/project/warn_sites_rewritten.py", line) for line in sites]
