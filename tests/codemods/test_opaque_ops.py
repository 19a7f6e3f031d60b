"""The opaque_ops codemods on source text: BF203 (numpy integer math to math), BF204 (np.digitize as np.searchsorted). BF202's rendering is
tested with the facts it is derived from (tests/test_fakes.py)."""

from __future__ import annotations

import numpy as np
import pytest
from codemod_harness import PATH, line_of, run_codemod
from libcst.codemod import TransformSkip, TransformSuccess

from breakfix.codemods.opaque_ops import DIGITIZE_SOURCE


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
    result = run_codemod("BF203", source, line_of(source, "if pad:"))
    assert isinstance(result, TransformSuccess), result
    code = result.code
    assert "ab = math.lcm(a, b)" in code and "return math.lcm(ab, c)" in code and "step: int = math.gcd(n, 4)" in code
    assert "other = g(n, 6)" in code and "x * numpy.lcm(2, 3)" in code
    assert code.count("import math\n") == 1 and "from numpy import gcd as g" in code
    namespace: dict = {}
    exec(compile(code, PATH, "exec"), namespace)  # noqa: S102 (runs the rewrite, which the test wrote)
    assert type(namespace["chunk"]((4, 6, 10))) is int and namespace["chunk"]((4, 6, 10)) == 60
    assert isinstance(run_codemod("BF203", code, line_of(code, "if pad:")), TransformSkip), (
        "a second pass changes nothing"
    )


@pytest.mark.parametrize(
    ("source", "why"),
    [
        (
            "import numpy as np\n\ndef f(x, a, math):\n    n = np.lcm(a, 2)\n    if x.shape[0] > n:\n"
            "        x = x + math\n    return x\n",
            "math is bound",
        ),
        (
            "import numpy as np\n\ndef f(x, a):\n    n = np.lcm(a, 2, dtype=np.int32)\n    if x.shape[0] > n:\n"
            "        x = x + 1\n    return x\n",
            "other than two positional arguments",
        ),
        (
            "import numpy as np\n\ndef f(x, a):\n    n = np.sqrt(a)\n    if x.shape[0] > n:\n        x = x + 1\n"
            "    return x\n",
            "numpy.sqrt feeds the branch and has no exact Python counterpart",
        ),
        (
            "from math import lcm\n\ndef f(x, a):\n    n = lcm(a, 2)\n    if x.shape[0] > n:\n        x = x + 1\n"
            "    return x\n",
            "does not import numpy",
        ),
        (
            "import numpy as np\n\ndef f(x, a):\n    def inner():\n        n = np.lcm(a, 2)\n        return n\n"
            "    n = a\n"
            "    if x.shape[0] > n:\n        x = x + inner()\n    return x\n",
            "no np.lcm/np.gcd call feeds line 8",
        ),
    ],
)
def test_numpy_math_refusals(source: str, why: str) -> None:
    result = run_codemod("BF203", source, line_of(source, "if "))
    assert isinstance(result, TransformSkip) and why in result.skip_description, result


@pytest.mark.parametrize(
    ("call", "rewritten"),
    [
        ("np.digitize(x, edges)", "_np_digitize(x, edges)"),
        ("np.digitize(x, edges, right=True)", "_np_digitize(x, edges, right=True)"),
        ("np.digitize(x, bins=edges)", "_np_digitize(x, bins=edges)"),
        ("np.digitize(x, edges, True, 1)", None),
        ("np.digitize(*pair)", None),
        ("np.searchsorted(edges, x)", None),
    ],
)
def test_digitize_becomes_numpys_own_searchsorted_form(call: str, rewritten: str | None) -> None:
    source = f"import numpy as np\n\ndef f(x, edges, pair):\n    return {call}\n"
    result = run_codemod("BF204", source, 4)
    if rewritten is None:
        assert isinstance(result, TransformSkip), result
        return
    assert isinstance(result, TransformSuccess), result
    assert f"    return {rewritten}\n" in result.code and "import numpy\n" in result.code


@pytest.mark.parametrize("right", [False, True])
@pytest.mark.parametrize(
    "edges",
    [[0.1, 0.4, 0.4, 0.9], [0.9, 0.4, 0.4, 0.1], [0.5], [], [2.0, 2.0]],
    ids=["rise", "fall", "one", "none", "flat"],
)
def test_the_digitize_helper_gives_np_digitizes_indices(edges: list[float], right: bool) -> None:
    namespace: dict = {"numpy": np}
    exec(DIGITIZE_SOURCE, namespace)  # noqa: S102 (the helper the codemod writes)
    values = np.array([-1.0, 0.1, 0.25, 0.4, 0.5, 0.9, 2.0, 2.5, np.nan], dtype=np.float32)
    expected = np.digitize(values, np.array(edges), right=right)
    got = namespace["_np_digitize"](values, edges, right=right)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    scalar = namespace["_np_digitize"](0.4, edges, right=right)
    assert type(scalar) is type(np.digitize(0.4, edges, right=right)) and scalar == np.digitize(0.4, edges, right=right)
