"""The orchestrator machinery of recipes 1 and 4 (BF101, BF301), on LibCST alone: no torch.

Live values decide what each piece takes and returns; a wrong answer would read a stale or unbound
value in a compiled piece, so the analysis is pinned down here case by case, with the cases it
must refuse.
"""

from __future__ import annotations

import textwrap

import libcst as cst
import libcst.matchers as m
import pytest
import torch

from breakfix.codemods._flow import Flow
from breakfix.codemods._orchestration import NotSplittable, function_site
from breakfix.codemods.io_split import split_around
from breakfix.codemods.iterators import Helper, consumption_of, iterator_parameter, pass_as_list


def _module(source: str) -> cst.Module:
    return cst.parse_module(textwrap.dedent(source).lstrip("\n"))


def _line_of(module: cst.Module, text: str) -> int:
    return next(i for i, line in enumerate(module.code.splitlines(), start=1) if text in line)


def _cut(source: str, eager: str):
    module = _module(source)
    line = _line_of(module, eager)
    flow = Flow(module, function_site(module, line).function)
    return flow.cut(flow.index_at(line))


def _split(source: str, eager: str) -> str:
    module = _module(source)
    return split_around(module, _line_of(module, eager)).code


# --- live values -------------------------------------------------------------------------------


def test_seed_passes_exactly_the_live_values() -> None:
    cut = _cut(
        """
        def f(x):
            y = x ** 2 / 2
            torch.save(y, "foo.pt")
            z = y ** 3 / 6
            return z
    """,
        "torch.save",
    )
    assert (cut.head_inputs, cut.head_outputs, cut.tail_inputs) == (["x"], ["y"], ["y"])
    assert cut.tail_returns


def test_dead_and_overwritten_names_are_not_returned() -> None:
    cut = _cut(
        """
        def f(x, scale):
            tmp = x * 2
            y = tmp + 1
            w = x.sin()
            y = log(w)
            return y + x
    """,
        "y = log(w)",
    )
    # tmp dies in the head; y is rebound by the eager statement before anything reads it.
    assert (cut.head_inputs, cut.head_outputs, cut.tail_inputs) == (["x"], ["w"], ["x", "y"])


def test_a_rebound_parameter_is_returned() -> None:
    cut = _cut(
        """
        def f(x):
            x = x + 1
            print(x)
            return x * 2
    """,
        "print",
    )
    assert (cut.head_inputs, cut.head_outputs, cut.tail_inputs) == (["x"], ["x"], ["x"])


def test_names_bound_by_the_eager_statement_flow_into_the_tail() -> None:
    cut = _cut(
        """
        def f(x):
            y = x.cos()
            t0 = time.time()
            y += 1
            return y, t0
    """,
        "time.time",
    )
    assert cut.head_outputs == ["y"]
    assert cut.tail_inputs == ["y", "t0"]  # `y += 1` reads y


def test_unused_parameters_are_not_passed() -> None:
    cut = _cut(
        """
        def f(x, unused, k=3):
            y = x * k
            print(y)
            return y
    """,
        "print",
    )
    assert cut.head_inputs == ["x", "k"] and cut.tail_inputs == ["y"]


def test_a_name_bound_in_both_branches_is_bound() -> None:
    cut = _cut(
        """
        def f(x, flag):
            if flag:
                y = x + 1
            else:
                y = x - 1
            print(y)
            return y
    """,
        "print",
    )
    assert cut.head_outputs == ["y"]


def test_a_name_bound_in_one_branch_only_is_refused() -> None:
    with pytest.raises(NotSplittable, match="cannot prove y is bound"):
        _cut(
            """
            def f(x, flag):
                if flag:
                    y = x + 1
                print(x)
                return y
        """,
            "print",
        )


def test_a_loop_variable_is_not_provably_bound() -> None:
    with pytest.raises(NotSplittable, match="cannot prove"):
        _cut(
            """
            def f(xs):
                for t in xs:
                    last = t
                print(xs)
                return last
        """,
            "print",
        )


def test_comprehension_variables_are_not_locals() -> None:
    cut = _cut(
        """
        def f(xs, w):
            ys = [x * w for x in xs]
            print(len(ys))
            return [y + 1 for y in ys]
    """,
        "print",
    )
    assert (cut.head_inputs, cut.head_outputs, cut.tail_inputs) == (["xs", "w"], ["ys"], ["ys"])


def test_a_closure_in_one_piece_over_its_own_locals_is_allowed() -> None:
    cut = _cut(
        """
        def f(x):
            scale = 2
            g = lambda t: t * scale
            print(x)
            return g(x)
    """,
        "print",
    )
    assert cut.head_outputs == ["g"]


def test_a_closure_over_a_local_rebound_in_another_piece_is_refused() -> None:
    with pytest.raises(NotSplittable, match="nested function reads scale"):
        _cut(
            """
            def f(x):
                scale = 2
                g = lambda t: t * scale
                print(x)
                scale = 3
                return g(x)
        """,
            "print",
        )


def test_the_docstring_stays_with_the_orchestrator() -> None:
    cut = _cut(
        '''
        def f(x):
            """Doc."""
            y = x + 1
            print(y)
            return y
    ''',
        "print",
    )
    assert len(cut.prologue) == 1 and len(cut.head) == 1


def test_a_global_rebound_in_the_head_is_passed_in_and_returned() -> None:
    """The orchestrator keeps the declaration; the head takes the global and returns its new value
    even when nothing after the eager statement reads it: the module's name must still change."""
    cut = _cut(
        '''
        def f(x):
            """Doc."""
            global COUNT, TOTAL
            COUNT += 1
            y = x * TOTAL
            print(y)
            return y + 1
    ''',
        "print",
    )
    assert len(cut.prologue) == 2 and len(cut.head) == 2
    assert cut.head_inputs == ["x", "COUNT", "TOTAL"] and cut.head_outputs == ["COUNT", "y"]
    assert cut.tail_inputs == ["y"]


# --- what is refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "why"),
    [
        (
            """
        def f(x):
            for i in range(3):
                torch.save(x, "a.pt")
            return x
     """,
            "nothing in f is left to compile",
        ),
        (
            """
        def f(x):
            y = x * 2
            return y
            torch.save(x, "a.pt")
     """,
            "returns before the statement to keep eager, which never runs",
        ),
        (
            """
        def f(x):
            y = x + 1
            torch.save(y, "a.pt")
            yield y
     """,
            "generator",
        ),
        (
            """
        def outer(w):
            def f(x):
                y = x * w
                torch.save(y, "a.pt")
                return y
            return f
     """,
            "nested in another function",
        ),
        (
            """
        class M(Base):
            def forward(self, x):
                y = super().forward(x)
                torch.save(y, "a.pt")
                return y
     """,
            "super()",
        ),
        (
            """
        def f(x):
            global COUNT
            y = x + 1
            torch.save(x, "a.pt")
            COUNT += 1
            return y
     """,
            "global COUNT is rebound after",
        ),
        (
            """
        def f(x):
            global COUNT
            g = lambda t: t * COUNT
            torch.save(x, "a.pt")
            return g(x)
     """,
            "nested function reads the global COUNT",
        ),
        (
            """
        def f(x):
            y = x + 1
            global COUNT
            torch.save(x, "a.pt")
            return y
     """,
            "declares globals after its first statement",
        ),
        (
            """
        def f(x):
            y = x + 1
            del x
            torch.save(y, "a.pt")
            return y
     """,
            "deletes",
        ),
        (
            """
        def f(x):
            y = x + 1
            torch.save(locals(), "a.pt")
            return y
     """,
            "introspects",
        ),
        (
            """
        def f(x):
            torch.save(x, "a.pt")
     """,
            "nothing",
        ),
        (
            """
        @torch.compiler.disable
        def f(x):
            y = _f_piece(x)
            torch.save(y, "a.pt")
            return y
     """,
            "already runs eagerly",
        ),
        (
            """
        def f(x):
            y = torch.save(x, "a.pt") or x
            return y
     """,
            "nothing in f is left to compile",
        ),
        # Found by the codemod fuzzer (torch/fx/passes/graph_drawer.py): the split used to return the
        # module unchanged but for ``import torch``.
        (
            """
        if HAS_PYDOT:
            def f(x):
                y = x + 1
                torch.save(y, "a.pt")
                return y * 2
     """,
            "inside an if, try or with block",
        ),
        (
            """
        class M:
            if FAST:
                def forward(self, x):
                    y = x + 1
                    torch.save(y, "a.pt")
                    return y * 2
     """,
            "inside an if, try or with block",
        ),
    ],
)
def test_refuses(source: str, why: str) -> None:
    with pytest.raises(NotSplittable, match=why.replace("(", r"\(").replace(")", r"\)")):
        _split(source, "torch.save")


# --- the rewrite -------------------------------------------------------------------------------


def test_a_return_before_the_statement_is_returned_by_the_first_piece() -> None:
    # Every way out before the eager statement, run for real: the rewrite returns the same values,
    # and the eager statement runs exactly on the calls that reached it.
    source = textwrap.dedent(
        """
        import torch

        seen = []


        def f(x, mode):
            h = x * 2
            if mode == "raw":
                return h
            for step in range(2):
                if mode == f"stop{step}":
                    return h + step, step
            if mode == "none":
                return
            seen.append(h.sum().item())
            return torch.tanh(h) - 1
        """
    ).lstrip("\n")
    module = cst.parse_module(source)
    rewritten = split_around(module, _line_of(module, "seen.append")).code
    assert "if _returned:\n        return _returned_value" in rewritten
    assert "return True, (h + step, step), None" in rewritten  # None stands for h, the output
    original: dict = {}
    exec(compile(source, "before.py", "exec"), original)  # noqa: S102 (the test's own source)
    split: dict = {}
    exec(  # noqa: S102 (runs the rewrite, which the test wrote)
        compile(rewritten.replace("fullgraph=True", 'fullgraph=True, backend="aot_eager"'), "after.py", "exec"), split
    )
    x = torch.randn(3)
    for mode in ("raw", "stop0", "stop1", "none", "go"):
        want, got = original["f"](x, mode), split["f"](x, mode)
        torch.testing.assert_close(got, want)
        assert split["seen"] == original["seen"], mode


def test_a_compound_statement_with_the_break_stays_eager_as_a_whole() -> None:
    result = _split(
        """
        import torch


        def train_step(model, x, step):
            loss = model(x).pow(2).mean()
            if step % 10 == 0:
                torch.save(loss, "loss.pt")
                return loss
            return loss * 2
    """,
        "torch.save",
    )
    assert result == textwrap.dedent("""\
        import torch


        @torch.compiler.disable
        def train_step(model, x, step):
            loss = _train_step_piece_1(model, x)
            if step % 10 == 0:
                torch.save(loss, "loss.pt")
                return loss
            return _train_step_piece_2(loss)


        @torch.compile(fullgraph=True)
        def _train_step_piece_1(model, x):
            loss = model(x).pow(2).mean()
            return loss


        @torch.compile(fullgraph=True)
        def _train_step_piece_2(loss):
            return loss * 2
    """)


def test_method_pieces_take_self_and_follow_the_class() -> None:
    result = _split(
        """
        import torch


        class Model(torch.nn.Module):
            @torch.no_grad()
            def forward(self, x):
                h = self.lin(x)
                print(h.sum())
                return self.out(h)


        def other():
            pass
    """,
        "print",
    )
    assert result == textwrap.dedent("""\
        import torch


        class Model(torch.nn.Module):
            @torch.no_grad()
            @torch.compiler.disable
            def forward(self, x):
                h = _forward_piece_1(self, x)
                print(h.sum())
                return _forward_piece_2(self, h)


        @torch.compile(fullgraph=True)
        def _forward_piece_1(self, x):
            h = self.lin(x)
            return h


        @torch.compile(fullgraph=True)
        def _forward_piece_2(self, h):
            return self.out(h)


        def other():
            pass
    """)


def test_a_second_split_is_inlined_and_pieces_renumbered() -> None:
    source = """
        import torch


        def f(x):
            y = x + 1
            torch.save(y, "a.pt")
            z = y * 2
            torch.save(z, "b.pt")
            return z - 1
    """
    module = split_around(_module(source), 6)
    module = split_around(module, _line_of(module, '"b.pt"'))
    assert module.code == textwrap.dedent("""\
        import torch


        @torch.compiler.disable
        def f(x):
            y = _f_piece_1(x)
            torch.save(y, "a.pt")
            z = _f_piece_2(y)
            torch.save(z, "b.pt")
            return _f_piece_3(z)


        @torch.compile(fullgraph=True)
        def _f_piece_1(x):
            y = x + 1
            return y


        @torch.compile(fullgraph=True)
        def _f_piece_2(y):
            z = y * 2
            return z


        @torch.compile(fullgraph=True)
        def _f_piece_3(z):
            return z - 1
    """)


def test_a_piece_called_twice_becomes_a_nested_orchestrator() -> None:
    module = _module("""
        import torch


        @torch.compiler.disable
        def f(x):
            a = _f_piece(x)
            return _f_piece(a)


        @torch.compile(fullgraph=True)
        def _f_piece(x):
            y = x + 1
            print(y)
            return y * 2
    """)
    result = split_around(module, _line_of(module, "print")).code
    assert "@torch.compiler.disable\ndef _f_piece(x):\n    y = _f_piece_piece_1(x)\n    print(y)\n" in result
    assert "def f(x):\n    a = _f_piece(x)\n    return _f_piece(a)\n" in result


def test_piece_names_avoid_existing_names() -> None:
    result = _split(
        """
        def _f_piece_1():
            pass


        def f(x):
            y = x + 1
            print(y)
            return y * 2
    """,
        "print",
    )
    assert "y = _f2_piece_1(x)" in result and "return _f2_piece_2(y)" in result


def test_a_compiled_target_gets_disable_instead_of_compile() -> None:
    result = _split(
        """
        @torch.compile(fullgraph=True)
        def f(x):
            y = x + 1
            print(y)
            return y
    """,
        "print",
    )
    assert result.startswith("@torch.compiler.disable\ndef f(x):\n")


def test_comments_move_with_their_statements() -> None:
    result = _split(
        """
        def f(x):
            # square it
            y = x ** 2  # elementwise

            # keep a copy
            torch.save(y, "y.pt")
            return y
    """,
        "torch.save",
    )
    assert '    # keep a copy\n    torch.save(y, "y.pt")' in result
    assert "def _f_piece(x):\n    # square it\n    y = x ** 2  # elementwise\n    return y\n" in result
    # ``return y`` alone would be a piece that compiles nothing: it stays in the orchestrator.
    assert '    torch.save(y, "y.pt")\n    return y\n' in result


def test_a_tail_of_attribute_reads_stays_in_the_orchestrator() -> None:
    result = _split(
        """
        def forward(model, x):
            h = x * 2
            out = model(h)
            print("ran")
            return out.logits, (out.hidden[0], h)
    """,
        "print",
    )
    assert "@torch.compiler.disable\ndef forward(model, x):\n    h, out = _forward_piece(model, x)\n" in result
    assert '    print("ran")\n    return out.logits, (out.hidden[0], h)\n' in result
    assert result.count("@torch.compile(fullgraph=True)") == 1


# --- iterators (BF101) -------------------------------------------------------------------------


def _consumption(source: str):
    module = _module(source)
    return consumption_of(module, function_site(module, 2).function, "xs")


@pytest.mark.parametrize(
    ("source", "template", "exact"),
    [
        (
            """
        def f(xs):
            a = next(xs)
            b, c = next(xs), next(xs, None)
            return a + b
     """,
            "list(itertools.islice({}, 3))",
            True,
        ),
        (
            """
        def f(xs):
            acc = 0
            for t in xs:
                for u in range(2):
                    if u:
                        break
                acc = acc + t
            return acc
     """,
            "list({})",
            True,
        ),
        (
            """
        def f(xs):
            first = next(xs)
            for t in xs:
                first = first + t
            return first
     """,
            "list({})",
            True,
        ),
        (
            """
        def f(xs):
            for t in xs:
                if t.sum() > 0:
                    break
            return t
     """,
            "list({})",
            False,
        ),
        (
            """
        def f(xs, flag):
            a = next(xs)
            if flag:
                a = a + next(xs)
            return a
     """,
            "list({})",
            False,
        ),
        (
            """
        def f(xs, flag):
            a = next(xs)
            b = next(xs) if flag else 0
            return a + b
     """,
            "list({})",
            False,
        ),
        (
            """
        def f(xs, flag):
            a = next(xs)
            if flag:
                return a
            return a + next(xs)
     """,
            "list({})",
            False,
        ),
        (
            """
        def f(xs, ys):
            return [a + b for a, b in zip(xs, ys)]
     """,
            "list({})",
            False,
        ),
    ],
)
def test_consumption(source: str, template: str, exact: bool) -> None:
    consumption = _consumption(source)
    assert (consumption.template, consumption.exact) == (template, exact)


def _helper_consumption(target: str, *helpers: str):
    """The consumption of ``xs`` by ``f`` (the first function of ``target``), counting each of
    ``helpers`` (the first function of each source, the next one on the stack)."""
    module = _module(target)
    chain = []
    for source in helpers:
        helper_module = _module(source)
        function = next(n for n in m.findall(helper_module, m.FunctionDef()) if isinstance(n, cst.FunctionDef))
        called_at = next(i for i, line in enumerate(module.code.splitlines(), start=1) if i > 1 and "xs" in line)
        chain.append(Helper(helper_module, function, called_at=called_at))
    return consumption_of(module, function_site(module, 1).function, "xs", tuple(chain))


@pytest.mark.parametrize(
    ("target", "helpers", "template", "exact"),
    [
        # a helper that takes one item, then one more in the target
        (
            "def f(xs):\n    a = part(xs)\n    return a + next(xs)\n",
            ["def part(it):\n    return next(it)\n"],
            "list(itertools.islice({}, 2))",
            True,
        ),
        # two calls of the helper, each taking two items (passed by keyword once)
        (
            "def f(xs):\n    a = part(xs)\n    return a + part(it=xs)\n",
            ["def part(it):\n    return next(it) + next(it)\n"],
            "list(itertools.islice({}, 4))",
            True,
        ),
        # a method of another object, two calls deep, whose loop runs to the end
        (
            "def f(xs, w):\n    return steps.run(w, xs)\n",
            [
                "class Steps:\n    def run(self, w, it):\n        return inner(it) * w\n",
                "def inner(batches):\n    total = 0\n    for b in batches:\n        total = total + b\n    return total\n",
            ],
            "list({})",
            True,
        ),
        # a child module's forward, called through the module object
        (
            "def f(xs):\n    return block(xs) + next(xs)\n",
            ["class Block:\n    def forward(self, it):\n        return next(it)\n"],
            "list(itertools.islice({}, 2))",
            True,
        ),
        # the helper takes an item only sometimes
        (
            "def f(xs):\n    return part(xs, True)\n",
            ["def part(it, flag):\n    return next(it) if flag else 0\n"],
            "list({})",
            False,
        ),
        # the helper is called only sometimes
        (
            "def f(xs, flag):\n    a = next(xs)\n    if flag:\n        a = a + part(xs)\n    return a\n",
            ["def part(it):\n    return next(it)\n"],
            "list({})",
            False,
        ),
        # the helper keeps the iterator: what it takes later is unknown
        (
            "def f(xs):\n    return part(xs)\n",
            ["def part(it):\n    global kept\n    kept = it\n    return next(it)\n"],
            "list({})",
            False,
        ),
        # the iterator is unpacked into the call: the parameter it binds is unknown
        ("def f(xs):\n    return part(*[xs])\n", ["def part(it):\n    return next(it)\n"], "list({})", False),
    ],
)
def test_consumption_through_helpers(target: str, helpers: list[str], template: str, exact: bool) -> None:
    consumption = _helper_consumption(target, *helpers)
    assert (consumption.template, consumption.exact) == (template, exact)


@pytest.mark.parametrize(
    ("source", "template", "exact"),
    [
        # a loop over range() of a parameter: the orchestrator evaluates the same range
        (
            "def f(xs, n):\n    acc = 0\n    for _ in range(n):\n        acc = acc + next(xs)\n    return acc\n",
            "list(itertools.islice({}, len(range(n))))",
            True,
        ),
        # nested ranges, bounds from arithmetic on parameters, and a step outside the loops
        (
            "def f(xs, n, k):\n    a = next(xs)\n    for i in range(1, n + 1):\n"
            "        for j in range(2 * k):\n            a = a + next(xs) * 2\n    return a\n",
            "list(itertools.islice({}, len(range(1, n + 1)) * len(range(2 * k)) + 1))",
            True,
        ),
        # a continue before the step: some rounds take nothing
        (
            "def f(xs, n):\n    for i in range(n):\n        if i == 1:\n            continue\n        next(xs)\n",
            "list({})",
            False,
        ),
        # the bound is rebound in the function: the orchestrator would read another value
        (
            "def f(xs, n):\n    n = n * 2\n    for _ in range(n):\n        next(xs)\n",
            "list({})",
            False,
        ),
        # the bound is a global: what the function calls may rebind it
        ("STEPS = 2\n\n\ndef f(xs):\n    for _ in range(STEPS):\n        next(xs)\n", "list({})", False),
        # the bound is a call (it may have effects, or read what the function changes)
        ("def f(xs, ys):\n    for _ in range(len(ys)):\n        next(xs)\n", "list({})", False),
        # a loop with an else, and a while loop
        ("def f(xs, n):\n    for _ in range(n):\n        next(xs)\n    else:\n        pass\n", "list({})", False),
        ("def f(xs, n):\n    while n:\n        next(xs)\n        n = n - 1\n", "list({})", False),
    ],
)
def test_consumption_in_range_loops(source: str, template: str, exact: bool) -> None:
    module = _module(source)
    consumption = consumption_of(module, function_site(module, _line_of(module, "def f")).function, "xs")
    assert (consumption.template, consumption.exact) == (template, exact)


def test_a_shadowed_next_is_not_counted() -> None:
    assert not _consumption("""
        def f(xs):
            next = lambda it: 1
            return next(xs)
    """).exact


def test_iterator_input_rewrite() -> None:
    module = _module('''
        import torch


        def f(xs, w=2):
            """Sum two."""
            a = next(xs)
            b = next(xs)
            return (a + b) * w
    ''')
    result, consumption = pass_as_list(module, _line_of(module, "a = next"))
    assert consumption.exact and consumption.needs_itertools
    assert result.code == textwrap.dedent('''\
        import torch


        @torch.compiler.disable
        def f(xs, w=2):
            """Sum two."""
            return _f_piece(list(itertools.islice(xs, 2)), w)


        @torch.compile(fullgraph=True)
        def _f_piece(xs, w):
            xs = iter(xs)
            a = next(xs)
            b = next(xs)
            return (a + b) * w
    ''')


def test_a_for_loop_over_the_list_needs_no_iter() -> None:
    module = _module("""
        def f(xs):
            acc = 0
            for t in xs:
                acc = acc + t
            return acc
    """)
    result, _ = pass_as_list(module, _line_of(module, "for t"))
    assert "def _f_piece(xs):\n    acc = 0\n" in result.code and "iter(" not in result.code


def test_an_iterator_given_to_a_piece_is_listed_by_its_orchestrator() -> None:
    module = _module("""
        import torch


        @torch.compiler.disable
        def f(xs, x):
            y = _f_piece_1(x)
            print(y)
            return _f_piece_2(xs, y)


        @torch.compile(fullgraph=True)
        def _f_piece_1(x):
            return x + 1


        @torch.compile(fullgraph=True)
        def _f_piece_2(xs, y):
            return next(xs) + y
    """)
    result, consumption = pass_as_list(module, _line_of(module, "return next(xs)"))
    assert consumption.exact
    assert "return _f_piece_2(list(itertools.islice(xs, 1)), y)" in result.code
    assert "def _f_piece_2(xs, y):\n    xs = iter(xs)\n    return next(xs) + y\n" in result.code


def test_the_stepped_parameter_is_found_on_the_line() -> None:
    module = _module("""
        def f(xs, ys, zs):
            a = next(xs)
            for t in ys:
                a = a + t
            return next(xs) + next(zs)
    """)
    function = function_site(module, 2).function
    assert [iterator_parameter(module, function, line) for line in (2, 3)] == ["xs", "ys"]
    with pytest.raises(NotSplittable, match="which parameter"):
        iterator_parameter(module, function, 5)


# --- a loop over what dynamo cannot iterate: eager loop, compiled body --------------------------

PROGRESS_LOOP = """
    import torch
    from tqdm import tqdm


    def evaluate(model, batches):
        total, count = torch.zeros(()), 0
        for i, x in enumerate(tqdm(batches)):
            out = model(x)
            total = total + out.sum()
            count += x.shape[0]
        return total / count
"""


def _split_loop(source: str, line_text: str) -> str:
    module = _module(source)
    return split_around(module, _line_of(module, line_text), compile_loop_body=True).code


def test_a_loop_whose_iteration_breaks_compiles_its_body() -> None:
    result = _split_loop(PROGRESS_LOOP, "for i, x")
    # The values carried from one pass to the next go in and out; `out` lives in the piece; `i` is unused.
    assert (
        "    for i, x in enumerate(tqdm(batches)):\n        total, count = _evaluate_piece_2(model, total, count, x)\n"
        in result
    )
    assert (
        textwrap.dedent("""\
        @torch.compile(fullgraph=True)
        def _evaluate_piece_2(model, total, count, x):
            out = model(x)
            total = total + out.sum()
            count += x.shape[0]
            return total, count
    """)
        in result
    )
    assert "return _evaluate_piece_3(total, count)" in result


def test_bf301_keeps_the_same_loop_eager_as_a_whole() -> None:
    result = _split(PROGRESS_LOOP, "for i, x")
    assert "        out = model(x)\n" in result.split("def _evaluate_piece_1")[0]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("        if count > 8:\n            break\n", "returns, breaks or continues"),
        ("        if count > 8:\n            continue\n", "returns, breaks or continues"),
        ("        def scale(v):\n            return v * 2\n", "defines a function or class"),
        ("        scale = 2\n", "cannot prove scale is bound before the loop"),  # read above, in `out = ...`
    ],
)
def test_a_loop_body_that_cannot_be_a_piece_is_refused(change: str, why: str) -> None:
    count_line = "        count += x.shape[0]\n"
    source = textwrap.dedent(PROGRESS_LOOP).replace(count_line, count_line + change)
    source = source.replace("out = model(x)\n", "out = model(x) * scale\n") if "scale = 2" in change else source
    assert change in source
    with pytest.raises(NotSplittable, match=why):
        _split_loop(source, "for i, x")


def test_a_break_inside_the_loop_body_keeps_that_statement_eager_and_compiles_the_rest_of_the_body() -> None:
    source = (
        textwrap.dedent(PROGRESS_LOOP)
        .replace("enumerate(tqdm(batches))", "enumerate(batches)")
        .replace("        count += x.shape[0]\n", "        torch.save(out, 'out.pt')\n        count += x.shape[0]\n")
    )
    result = _split_loop(source, "torch.save")
    # The loop runs eagerly; each pass calls the body's orchestrator, which keeps the save eager
    # between the two compiled halves of the body.
    assert (
        "    for i, x in enumerate(batches):\n        total, count = _evaluate_piece_2(model, total, count, x)\n"
        in result
    )
    orchestrator = result.split("def _evaluate_piece_2(")[1].split("\n\n\n")[0]
    assert "torch.save(out, 'out.pt')" in orchestrator
    assert result.count("@torch.compile(fullgraph=True)") == 4  # before the loop, the body's two halves, after
    assert result.count("@torch.compiler.disable") == 2


def test_a_loop_body_of_the_breaking_statement_alone_is_not_split() -> None:
    # An orchestrator of that statement alone would compile nothing: BF301 keeps the loop eager.
    source = textwrap.dedent("""\
        def forward(self, hidden):
            for block in self.blocks:
                hidden = block(hidden)
            return hidden
    """)
    with pytest.raises(NotSplittable, match="nothing in the loop's body is left to compile"):
        _split_loop(source, "hidden = block")


def test_a_breaking_first_statement_of_a_loop_body_keeps_its_comment() -> None:
    source = (
        textwrap.dedent(PROGRESS_LOOP)
        .replace("enumerate(tqdm(batches))", "enumerate(batches)")
        .replace(
            "        out = model(x)\n", "        # where we are\n        print(json.dumps(i))\n        out = model(x)\n"
        )
    )
    result = _split_loop(source, "print(json")
    assert "    # where we are\n    print(json.dumps(i))\n" in result
    assert result.count("@torch.compile(fullgraph=True)") == 3  # before the loop, the body after the print, after


def test_a_break_in_a_loop_body_whose_statement_is_repeated_in_the_file_is_refused() -> None:
    source = (
        textwrap.dedent(PROGRESS_LOOP)
        .replace("enumerate(tqdm(batches))", "enumerate(batches)")
        .replace("        count += x.shape[0]\n", "        print(count)\n        count += x.shape[0]\n")
        .replace("    return total / count\n", "    print(count)\n    return total / count\n")
    )
    with pytest.raises(NotSplittable, match="is repeated in the file"):
        _split_loop(source, "print(count)")


def test_a_loop_body_holding_another_located_break_is_refused() -> None:
    module = _module(PROGRESS_LOOP)
    header, body_line = _line_of(module, "for i, x"), _line_of(module, "total = total + out.sum()")
    with pytest.raises(NotSplittable, match=f"the loop body breaks too \\(line {body_line}\\)"):
        split_around(module, header, compile_loop_body=True, breaking_lines={body_line})
    # a break outside the body does not matter
    assert (
        "_evaluate_piece_2(model, total, count, x)"
        in split_around(module, header, compile_loop_body=True, breaking_lines={header, body_line + 2}).code
    )
