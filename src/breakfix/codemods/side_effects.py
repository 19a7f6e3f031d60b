"""Side effects kept exact inside compiled code: printing through torch's ordered print operator."""

from __future__ import annotations

import ast

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import ParentNodeProvider, PositionProvider, QualifiedNameProvider

from breakfix.codemods._base import BreakfixCodemod
from breakfix.types import Applicability

ORDERED_PRINT = "torch._higher_order_ops.print"

# Values whose text is the same inside a compiled graph as in eager code: Python scalars read
# off tensors, sizes, and what describes a tensor without printing it. A tensor itself is not one
# (inside the graph its repr loses `grad_fn=`/`requires_grad=`); formatted with a spec it is, as
# Tensor.__format__ then formats its item().
_SCALAR_METHODS = frozenset({"item", "size", "dim", "ndimension", "numel", "nelement", "element_size"})
_DESCRIPTIONS = frozenset({"dtype", "device", "ndim", "is_cuda"})


class PrintInCompiledRegion(BreakfixCodemod):
    """Print through torch's ordered print operator, so the print is part of the compiled graph.

    ## What it fixes
    A ``print(...)`` inside compiled code, directly in the compiled function or in a helper it
    calls, inside a loop or a branch too, when what it prints is text, numbers read off tensors
    (``loss.item()``, ``x.norm().item():.3f``, ``x.shape[0]``, ``x.size(1)``, ``len(batch)``),
    loop counters of ``range``/``enumerate``, dtypes and devices, or any value formatted with a
    format spec (``{loss:.4f}``).

    ## Why it breaks
    Dynamo cannot put the builtin ``print`` into a graph, so it stops there (GB0059). Torch has a
    print operator that is part of the graph, ``torch._higher_order_ops.print(format, *args)``:
    it is ordered with the graph's other effects and prints ``format.format(*args)`` with the run
    time values on every call, under every backend. Registering ``print`` as a reorderable logging
    function instead prints the values as they are *after* the graph (wrong after an in-place
    update), and ignoring it drops the line; neither is exact. The print call becomes one call of
    the operator: the f-string's text becomes the format string and each interpolated expression
    an argument, evaluated at the same point as before.

    ## Example
    ```python
    for i, layer in enumerate(self.layers):
        x = F.gelu(layer(x)) + x
        print(f"layer {i}: |x|={x.norm().item():.3f}")
    ```
    becomes
    ```python
    for i, layer in enumerate(self.layers):
        x = F.gelu(layer(x)) + x
        torch._higher_order_ops.print("layer {0}: |x|={1:.3f}", i, x.norm().item())
    ```

    ## Fix safety
    Safe: the same text is printed, on every call, in the same order, from values computed at the
    same point. Only prints whose every value prints the same inside a graph are rewritten: not a
    tensor without a format spec (its repr inside a graph has no ``grad_fn=``), not ``!r``/``!s``
    conversions, ``{x=}``, nested format specs, or ``sep``/``end``/``file``/``flush`` arguments;
    those prints are kept eager by BF301 instead. Logging (``logger.warning_once`` included),
    ``warnings.warn`` and progress bars are not rewritten: their handlers, filters and
    once-per-process registries are Python state that no graph operator reproduces, so the exact
    fix for them is BF301's split, which runs them eagerly. The operator is a private torch API
    (``torch._higher_order_ops``); the rewrite is verified with the torch it runs on.
    """

    CODE = "BF501"
    FIX_TITLE = "Print through torch's ordered print operator"
    GB_IDS = frozenset({"GB0059"})
    APPLICABILITY = Applicability.SAFE

    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider, ParentNodeProvider)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.rewritten = 0
        self.refused = ""  # why a print at the site was not rewritten

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        position = self.get_metadata(PositionProvider, original)
        if not position.start.line <= self.request.brk.site.lineno <= position.end.line:
            return updated
        names = {q.name for q in self.get_metadata(QualifiedNameProvider, original.func, set())}
        if "builtins.print" not in names or not isinstance(self.get_metadata(ParentNodeProvider, original), cst.Expr):
            return updated
        try:
            text, values = self._format(original)
        except _Refused as why:
            self.refused = str(why)
            return updated
        self.rewritten += 1
        args = [cst.Arg(cst.SimpleString(_literal(text))), *(cst.Arg(v) for v in values)]
        return cst.Call(func=cst.parse_expression(ORDERED_PRINT), args=args)

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.rewritten:
            raise self.skip(self.refused or f"no print(...) statement at line {self.request.brk.site.lineno}")
        AddImportsVisitor.add_needed_import(self.context, "torch")
        return updated

    def _format(self, call: cst.Call) -> tuple[str, list[cst.BaseExpression]]:
        """The format string and the arguments that print the same text as ``call``."""
        if any(arg.keyword is not None or arg.star for arg in call.args):
            raise _Refused("print is given sep/end/file/flush or *args")
        counters = _loop_counters(self._enclosing_function(call))
        pieces: list[str] = []
        values: list[cst.BaseExpression] = []

        def field(expression: cst.BaseExpression, spec: str) -> str:
            if not spec and not _prints_the_same(expression, counters):
                raise _Refused(f"`{cst.Module([]).code_for_node(expression)}` may be a tensor, whose repr "
                               "differs inside a graph")
            values.append(expression)
            return "{" + str(len(values) - 1) + (":" + spec if spec else "") + "}"

        for arg in call.args:
            value = arg.value
            if isinstance(value, cst.SimpleString):
                if "\\N" in value.value:
                    raise _Refused("a named unicode escape in the printed string")
                pieces.append(value.evaluated_value.replace("{", "{{").replace("}", "}}")
                              if isinstance(value.evaluated_value, str) else _refuse("a bytes literal"))
            elif isinstance(value, cst.FormattedString):
                pieces.append(self._fstring(value, field))
            else:
                pieces.append(field(value, ""))
        return " ".join(pieces), values

    def _fstring(self, string: cst.FormattedString, field) -> str:
        prefix = string.prefix.lower().replace("f", "")
        if "b" in prefix:
            raise _Refused("a bytes literal")

        def text(raw: str) -> str:
            # The f-string's text is already a format string ({{ and }} escaped the same way).
            try:
                return ast.literal_eval(f"{prefix}{string.start[len(string.prefix):]}{raw}{string.end}")
            except (SyntaxError, ValueError) as e:  # a part that is no literal on its own (`f"\\{x}"`)
                raise _Refused(f"cannot read the f-string's text {raw!r}") from e

        out = []
        for part in string.parts:
            if isinstance(part, cst.FormattedStringText):
                out.append(text(part.value))
                continue
            if part.conversion is not None or part.equal is not None:
                raise _Refused("a !r/!s/!a conversion or {x=} in the f-string")
            spec_parts = part.format_spec or ()
            if any(not isinstance(p, cst.FormattedStringText) for p in spec_parts):
                raise _Refused("a nested format spec in the f-string")
            out.append(field(part.expression, text("".join(p.value for p in spec_parts))))
        return "".join(out)

    def _enclosing_function(self, node: cst.CSTNode) -> cst.FunctionDef | None:
        while not isinstance(node, (cst.FunctionDef, cst.Module)):
            node = self.get_metadata(ParentNodeProvider, node)
        return node if isinstance(node, cst.FunctionDef) else None


class _Refused(Exception):
    pass


def _refuse(why: str) -> str:
    raise _Refused(why)


def _prints_the_same(expression: cst.BaseExpression, counters: set[str]) -> bool:
    """Whether ``str(expression)`` is the same text in a graph as in eager code, by its form."""
    if isinstance(expression, (cst.Integer, cst.Float, cst.SimpleString)):
        return True
    if isinstance(expression, cst.Name):
        return expression.value in counters or expression.value in {"True", "False", "None"}
    if m.matches(expression, m.Call(func=m.Attribute(attr=m.Name(m.MatchIfTrue(lambda n: n in _SCALAR_METHODS))))):
        return True
    if m.matches(expression, m.Call(func=m.Name("len"), args=[m.Arg(keyword=None, star="")])):
        return True
    if m.matches(expression, m.Subscript(value=m.Attribute(attr=m.Name("shape")),
                                         slice=[m.SubscriptElement(slice=m.Index(value=m.Integer()))])):
        return True
    return m.matches(expression, m.Attribute(attr=m.Name(m.MatchIfTrue(lambda n: n in _DESCRIPTIONS))))


def _loop_counters(function: cst.FunctionDef | None) -> set[str]:
    """Names that only ever hold ints: targets of ``for i in range(...)`` and indices of
    ``for i, v in enumerate(...)`` that nothing else in the function binds."""
    if function is None:
        return set()
    counters: set[str] = set()
    elsewhere: set[str] = set()
    for loop in m.findall(function, m.For()):
        if m.matches(loop, m.For(target=m.Name(), iter=m.Call(func=m.Name("range")))):
            counters.add(loop.target.value)
        elif m.matches(loop, m.For(target=m.Tuple(elements=[m.Element(m.Name()), m.Element()]),
                                   iter=m.Call(func=m.Name("enumerate")))):
            counters.add(loop.target.elements[0].value.value)
            elsewhere |= {n.value for n in m.findall(loop.target.elements[1], m.Name())}
        else:
            elsewhere |= {n.value for n in m.findall(loop.target, m.Name())}
    binders = m.AssignTarget() | m.AnnAssign() | m.AugAssign() | m.AsName() | m.NamedExpr() | m.CompFor() | m.Param()
    for node in m.findall(function, binders):
        target = node.name if isinstance(node, (cst.AsName, cst.Param)) else node.target
        elsewhere |= {n.value for n in m.findall(target, m.Name())}
    return counters - elsewhere


def _literal(text: str) -> str:
    """A Python string literal for ``text``, in double quotes."""
    quoted = repr(text)
    inner = quoted[1:-1].replace("\\'", "'") if quoted[0] == "'" else quoted[1:-1]
    return '"' + inner.replace('"', '\\"') + '"'
