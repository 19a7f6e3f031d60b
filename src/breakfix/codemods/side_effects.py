"""Side effects kept exact inside compiled code: printing through torch's ordered print operator."""

from __future__ import annotations

import ast

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import ParentNodeProvider, PositionProvider, QualifiedNameProvider

from breakfix.codemods._base import BreakfixCodemod, existing_helper, insert_top_level
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
    those prints are kept eager by BF301 instead. Logging, ``warnings.warn`` and progress bars
    are not rewritten: their handlers, filters and once-per-process registries are Python state
    that no graph operator reproduces, so the exact fix for them is BF301's split, which runs them
    eagerly (``logger.warning_once`` has its own exact fix, BF502). The operator is a private torch API
    (``torch._higher_order_ops``); the rewrite is verified with the torch it runs on.
    """

    CODE = "BF501"
    FIX_TITLE = "Print through torch's ordered print operator"
    REQUIRES = (ORDERED_PRINT,)
    GB_IDS = frozenset({"GB0059"})
    APPLICABILITY = Applicability.SAFE

    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider, ParentNodeProvider)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.rewritten = 0
        self.refused = ""  # why a print at the site was not rewritten

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if not self.spans_break(original):
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


class WarningOnceInCompiledRegion(BreakfixCodemod):
    """Emit a ``logger.warning_once(...)`` while torch.compile traces it, which is once, as in eager.

    ## What it fixes
    A ``logger.warning_once("...")`` (the once-per-process warning transformers adds to
    ``logging.Logger``) inside compiled code, directly in the compiled function or in a method deep
    inside a model, where the logger is a module-level global and the message is text: string
    literals and f-strings.

    ## Why it breaks
    Dynamo does not trace ``logging.Logger`` methods (GB0291). Ignoring logging functions drops the
    line and reordering them is not defined for Logger methods, but ``warning_once`` has a rule a
    compiler can keep: it logs a message at most once per process (its arguments are an LRU cache
    key). A function marked ``torch.compiler.assume_constant_result`` is called by dynamo while it
    traces, with the message as a constant, and left out of the graph. So the warning is logged
    during the first call that reaches it, the call dynamo traces, and a later retrace asks the
    same cache and logs nothing, exactly as eager code does.

    ## Example
    ```python
    logger = logging.get_logger(__name__)

    def forward(self, hidden, past_key_values):
        if not isinstance(past_key_values, Cache):
            logger.warning_once("Passing a tuple of `past_key_values` is deprecated.")
        return self.layer(hidden)
    ```
    becomes
    ```python
    logger = logging.get_logger(__name__)


    @torch.compiler.assume_constant_result
    def _logger_warning_once(*args):
        # logger.warning_once(...), called by torch.compile while it traces: the message is logged
        # once per process, during the first call that reaches it, as in eager code.
        logger.warning_once(*args)


    def forward(self, hidden, past_key_values):
        if not isinstance(past_key_values, Cache):
            _logger_warning_once("Passing a tuple of `past_key_values` is deprecated.")
        return self.layer(hidden)
    ```

    ## Fix safety
    Safe: the same record (logger, level, text) is logged once per process, during the same call
    as in eager code. Within that call it is logged when the call is traced, so before the compiled
    code's own output, not between it. Only messages made of string literals and f-strings, and
    only loggers bound at module level, are rewritten (the helper reads the global, as the call
    did); a message that is not a constant while tracing fails the verification, and the call is
    left as it was. Plain ``logger.warning``/``info`` log on every call, which a trace-time call
    cannot do, so they are not rewritten.
    """

    CODE = "BF502"
    FIX_TITLE = "Log warning_once while torch.compile traces the call"
    REQUIRES = ("torch.compiler.assume_constant_result",)
    GB_IDS = frozenset({"GB0291"})
    APPLICABILITY = Applicability.SAFE

    METADATA_DEPENDENCIES = (PositionProvider, ParentNodeProvider)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.loggers: list[str] = []  # the module-level loggers whose calls were rewritten
        self.refused = ""

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if not self.spans_break(original):
            return updated
        if not m.matches(original.func, m.Attribute(value=m.Name(), attr=m.Name("warning_once"))):
            return updated
        if not isinstance(self.get_metadata(ParentNodeProvider, original), cst.Expr):
            self.refused = "the value of warning_once(...) is used"
            return updated
        if any(arg.star or not isinstance(arg.value, (cst.SimpleString, cst.ConcatenatedString,
                                                      cst.FormattedString)) for arg in original.args):
            self.refused = "warning_once is given something other than string literals and f-strings"
            return updated
        logger = original.func.value.value
        if self._bound_locally(original, logger):
            self.refused = f"`{logger}` is a local name where warning_once is called, not the module's logger"
            return updated
        self.loggers.append(logger)
        return updated.with_changes(func=cst.Name(_warning_once_helper(logger)))

    def _bound_locally(self, node: cst.CSTNode, name: str) -> bool:
        binders = m.Param(name=m.Name(name)) | m.AssignTarget(target=m.Name(name)) | m.AsName(name=m.Name(name)) \
            | m.For(target=m.Name(name))
        while not isinstance(node, cst.Module):
            node = self.get_metadata(ParentNodeProvider, node)
            if isinstance(node, (cst.FunctionDef, cst.Lambda)) and m.findall(node, binders):
                return True
        return False

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.loggers:
            raise self.skip(self.refused or f"no <logger>.warning_once(...) call at line {self.request.brk.site.lineno}")
        body = list(updated.body)
        for logger in dict.fromkeys(self.loggers):
            body = self._with_helper(body, logger, updated.config_for_parsing)
        AddImportsVisitor.add_needed_import(self.context, "torch")
        return updated.with_changes(body=body)

    def _with_helper(self, body: list[cst.CSTNode], logger: str, config) -> list[cst.CSTNode]:
        helper = cst.parse_statement(_WARNING_ONCE_SOURCE.format(helper=_warning_once_helper(logger), logger=logger),
                                     config=config)
        if existing_helper(body, helper):
            return body
        binding = m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(target=m.Name(logger))])])
        at = next((i + 1 for i, s in enumerate(body) if m.matches(s, binding)), None)
        if at is None:
            raise self.skip(f"`{logger}` is not assigned at module level")
        return insert_top_level(body, at, helper)


# The helper's exact text: a module that already has it is reused, a different function of that
# name is never overwritten.
_WARNING_ONCE_SOURCE = '''\
@torch.compiler.assume_constant_result
def {helper}(*args):
    # {logger}.warning_once(...), called by torch.compile while it traces: the message is logged
    # once per process, during the first call that reaches it, as in eager code.
    {logger}.warning_once(*args)
'''


def _warning_once_helper(logger: str) -> str:
    return f"_{logger.lstrip('_')}_warning_once"
