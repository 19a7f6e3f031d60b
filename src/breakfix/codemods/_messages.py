"""What a print or log call says, read off its source (BF501, BF503): the message as a ``str.format``
template and its values, and whether each value's text is the same inside a compiled graph."""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Callable

import libcst as cst
import libcst.matchers as m

from breakfix.codemods._base import Refused

# Values whose text is the same inside a compiled graph as in eager code: Python scalars read
# off tensors, sizes, and what describes a tensor without printing it. A tensor itself is not one
# (inside the graph its repr loses `grad_fn=`/`requires_grad=`); formatted with a spec it is, as
# Tensor.__format__ then formats its item().
_SCALAR_METHODS = frozenset({"item", "size", "dim", "ndimension", "numel", "nelement", "element_size"})
_DESCRIPTIONS = frozenset({"dtype", "device", "ndim", "is_cuda"})


def fstring_template(string: cst.FormattedString, field) -> str:
    """The f-string as a ``str.format`` template; ``field(expression, spec, conversion)`` gives each
    field's text."""
    prefix = string.prefix.lower().replace("f", "")
    if "b" in prefix:
        raise Refused("a bytes literal")

    def text(raw: str) -> str:
        # The f-string's text is already a format string ({{ and }} escaped the same way).
        try:
            return ast.literal_eval(f"{prefix}{string.start[len(string.prefix) :]}{raw}{string.end}")
        except (SyntaxError, ValueError) as e:  # a part that is no literal on its own (`f"\\{x}"`)
            raise Refused(f"cannot read the f-string's text {raw!r}") from e

    out = []
    for part in string.parts:
        if isinstance(part, cst.FormattedStringText):
            out.append(text(part.value))
            continue
        if part.equal is not None:
            raise Refused("a {x=} in the f-string (an implicit !r conversion)")
        spec_parts = part.format_spec or ()
        if any(not isinstance(p, cst.FormattedStringText) for p in spec_parts):
            raise Refused("a nested format spec in the f-string")
        out.append(field(part.expression, text("".join(p.value for p in spec_parts)), part.conversion or ""))
    return "".join(out)


def refuse(why: str) -> str:
    raise Refused(why)


def prints_the_same(expression: cst.BaseExpression, counters: set[str]) -> bool:
    """Whether ``str(expression)`` is the same text in a graph as in eager code, by its form."""
    if isinstance(expression, (cst.Integer, cst.Float, cst.SimpleString)):
        return True
    if isinstance(expression, cst.Name):
        return expression.value in counters or expression.value in {"True", "False", "None"}
    if m.matches(expression, m.Call(func=m.Attribute(attr=m.Name(m.MatchIfTrue(lambda n: n in _SCALAR_METHODS))))):
        return True
    if m.matches(expression, m.Call(func=m.Name("len"), args=[m.Arg(keyword=None, star="")])):
        return True
    if m.matches(
        expression,
        m.Subscript(
            value=m.Attribute(attr=m.Name("shape")), slice=[m.SubscriptElement(slice=m.Index(value=m.Integer()))]
        ),
    ):
        return True
    return m.matches(expression, m.Attribute(attr=m.Name(m.MatchIfTrue(lambda n: n in _DESCRIPTIONS))))


def loop_counters(function: cst.FunctionDef | None) -> set[str]:
    """Names that only ever hold ints: targets of ``for i in range(...)`` and indices of
    ``for i, v in enumerate(...)`` that nothing else in the function binds."""
    if function is None:
        return set()
    counters: set[str] = set()
    elsewhere: set[str] = set()
    for loop in m.findall(function, m.For()):
        if m.matches(loop, m.For(target=m.Name(), iter=m.Call(func=m.Name("range")))):
            counters.add(loop.target.value)
        elif m.matches(
            loop,
            m.For(target=m.Tuple(elements=[m.Element(m.Name()), m.Element()]), iter=m.Call(func=m.Name("enumerate"))),
        ):
            counters.add(loop.target.elements[0].value.value)
            elsewhere |= {n.value for n in m.findall(loop.target.elements[1], m.Name())}
        else:
            elsewhere |= {n.value for n in m.findall(loop.target, m.Name())}
    binders = m.AssignTarget() | m.AnnAssign() | m.AugAssign() | m.AsName() | m.NamedExpr() | m.CompFor() | m.Param()
    for node in m.findall(function, binders):
        target = node.name if isinstance(node, (cst.AsName, cst.Param)) else node.target
        elsewhere |= {n.value for n in m.findall(target, m.Name())}
    return counters - elsewhere


def string_literal(text: str) -> str:
    """A Python string literal for ``text``, in double quotes."""
    quoted = repr(text)
    inner = quoted[1:-1].replace("\\'", "'") if quoted[0] == "'" else quoted[1:-1]
    return '"' + inner.replace('"', '\\"') + '"'


def _numbered_field(values: list[cst.BaseExpression]) -> Callable[[cst.BaseExpression, str, str], str]:
    """The ``field`` of ``fstring_template`` that appends each field's expression to ``values`` and
    writes it as a numbered ``str.format`` field with its conversion and spec."""

    def field(expression: cst.BaseExpression, spec: str, conversion: str) -> str:
        values.append(expression)
        conversion = f"!{conversion}" if conversion else ""
        return "{" + str(len(values) - 1) + conversion + (f":{spec}" if spec else "") + "}"

    return field


def message_values(args: list[cst.Arg]) -> tuple[str, list[cst.BaseExpression]]:
    """(style, values) that ``_emit`` turns back into the message arguments ``args``: the style is
    "" (passed as they are), "format" (a ``str.format`` template and its values), "percent" (a
    ``%`` template and its tuple's values) or "percent-one" (a ``%`` template and its one value)."""
    if not args:
        raise Refused("the log call has no message")
    message, rest = args[0].value, [a.value for a in args[1:]]
    if isinstance(message, cst.FormattedString) and not rest:
        values: list[cst.BaseExpression] = []
        template = fstring_template(message, _numbered_field(values))
        return "format", [cst.SimpleString(string_literal(template)), *values]
    if m.matches(message, m.Call(func=m.Attribute(value=m.SimpleString(), attr=m.Name("format")))) and not rest:
        if any(a.keyword is not None or a.star for a in message.args):
            raise Refused("the message's .format is given keywords or *args")
        return "format", [message.func.value, *(a.value for a in message.args)]
    if m.matches(message, m.BinaryOperation(left=m.SimpleString(), operator=m.Modulo())) and not rest:
        if "%(" in message.left.evaluated_value:
            raise Refused("a %(name)s template takes a mapping, which a graph's operator cannot take")
        right = message.right
        if isinstance(right, cst.Tuple) and not any(isinstance(e, cst.StarredElement) for e in right.elements):
            return "percent", [message.left, *(e.value for e in right.elements)]
        return "percent-one", [message.left, right]
    return "", [message, *rest]


def print_values(args: list[cst.Arg]) -> tuple[str, list[cst.BaseExpression]]:
    """(style, values) of ``print(*args)`` for ``_emit``: one ``str.format`` template of what print
    writes, each argument's text joined by a space (print's default ``sep``), an f-string's fields in
    place, any other argument as ``{n!s}`` (print writes ``str`` of it, which ``{}`` is not for a
    0-d tensor), so ``print(template.format(*values))`` writes the same line."""
    if not args:
        raise Refused("print with no arguments")
    values: list[cst.BaseExpression] = []
    field = _numbered_field(values)
    parts = [
        fstring_template(a.value, field) if isinstance(a.value, cst.FormattedString) else field(a.value, "", "s")
        for a in args
    ]
    return "format", [cst.SimpleString(string_literal(" ".join(parts))), *values]


# A %-conversion: flags, width, precision, length modifier, and its type (``%%`` is none).
_PERCENT = re.compile(r"%(\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)")
_NUMERIC_PERCENT = frozenset("dieEfFgG")
_NUMERIC_SPEC = frozenset("deEfFgGn%")


def numeric_conversions(style: str, values: list[cst.BaseExpression]) -> str:
    """One character per value of ``message_values``: ``n`` where the message formats it as a
    number (``%.4f``, ``%d``, ``{:.3f}``, ``{:e}``), ``.`` elsewhere (the template itself, ``%s``,
    ``{}``, ``{!r}``, a template that is not a plain literal). A tensor's number is the same
    detached, where its text (``grad_fn=``) is not."""
    plain = "." * len(values)
    template = values[0] if values else None
    if not isinstance(template, cst.SimpleString) or not isinstance(template.evaluated_value, str):
        return plain
    text = template.evaluated_value
    if style == "format":
        automatic = 0
        try:
            fields = list(string.Formatter().parse(text))
        except ValueError:
            return plain
        numbered: dict[int, bool] = {}
        for _, name, spec, conversion in fields:
            if name is None:
                continue  # the literal text after the last field
            spec = spec or ""
            if name == "":
                index, automatic = automatic, automatic + 1
            elif name.isdigit():
                index = int(name)
            else:
                return plain  # a keyword or an attribute of a value: not one value per field
            numeric = conversion is None and bool(spec) and spec[-1] in _NUMERIC_SPEC and "{" not in spec
            numbered[index] = numbered.get(index, True) and numeric
        flags = ["n" if numbered.get(i, False) else "." for i in range(len(values) - 1)]
        return "." + "".join(flags)
    # A %-template: the message of a "percent" style, or a logger's message with lazy arguments.
    conversions = [c for c in _PERCENT.finditer(text) if c.group(4) != "%"]
    if any(c.group(1) or c.group(2) == "*" or c.group(3) == "*" for c in conversions):
        return plain  # a mapping key or a * width takes arguments another way
    if len(conversions) != len(values) - 1:
        return plain
    return "." + "".join("n" if c.group(4) in _NUMERIC_PERCENT else "." for c in conversions)
