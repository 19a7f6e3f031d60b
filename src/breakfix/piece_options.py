"""The ``torch.compile`` options of the compiled pieces breakfix writes when the target's own are
unknown (it is compiled by its caller, not by a decorator or a ``torch.compile(target, ...)`` call
in its file): ``--piece-options 'mode="max-autotune", dynamic=False'``, else ``[tool.breakfix]
piece-options = {mode = "max-autotune", dynamic = false}`` in pyproject.toml. Every piece is
compiled with ``fullgraph=True``; that option is not one of these."""

from __future__ import annotations

import ast

PieceOptions = tuple[tuple[str, str], ...]  # (keyword, the Python source of its literal value)

COMPILE_KEYWORDS = ("backend", "mode", "dynamic", "options", "disable")  # torch.compile's, but fullgraph


def parse(text: str) -> PieceOptions:
    """``key=value, ...`` as in a call to torch.compile; values are literals. ValueError says what is wrong."""
    try:
        call = ast.parse(f"compile({text})", mode="eval").body
    except SyntaxError:
        raise ValueError(
            f'expected keyword arguments of torch.compile such as mode="max-autotune", got {text!r}'
        ) from None
    if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
        raise ValueError(f"expected only keyword arguments (key=value, ...), got {text!r}")
    options = []
    for keyword in call.keywords:
        try:
            value = ast.literal_eval(keyword.value)
        except ValueError:
            raise ValueError(f"{keyword.arg}: expected a literal value, got {ast.unparse(keyword.value)!r}") from None
        options.append((keyword.arg, value))
    return _checked(options)


def from_table(table: object) -> PieceOptions:
    """The ``piece-options`` table of ``[tool.breakfix]``."""
    if not isinstance(table, dict):
        raise ValueError(f'piece-options must be a table such as {{mode = "max-autotune"}}, got {table!r}')
    return _checked(list(table.items()))


def _checked(options: list[tuple[str, object]]) -> PieceOptions:
    for key, _ in options:
        if key == "fullgraph":
            raise ValueError("fullgraph: every compiled piece has fullgraph=True; it is not an option")
        if key not in COMPILE_KEYWORDS:
            raise ValueError(f"{key!r} is not an option of torch.compile ({', '.join(COMPILE_KEYWORDS)})")
    return tuple((key, repr(value)) for key, value in options)
