"""Side effects kept exact inside compiled code: printing through torch's ordered print operator."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import ParentNodeProvider, PositionProvider, QualifiedNameProvider

from breakfix.codemods._base import (
    BreakfixCodemod,
    Refused,
    SiteCodemod,
    existing_helper,
    insert_top_level,
)
from breakfix.codemods._log_calls import InGraphLogs, bound_locally
from breakfix.codemods._messages import (
    fstring_template,
    loop_counters,
    prints_the_same,
    refuse,
    string_literal,
)
from breakfix.types import Applicability, ValueKind

ORDERED_PRINT = "torch._higher_order_ops.print"
# What a value measured at the break (BreakFacts.values) may have held for its text to be the same
# in a graph: Python scalars and strings, which torch.compile passes to the print operator as they are.
# A list or tuple of ints is not: torch's print operator takes no structured argument.
_SAME_TEXT_KINDS = frozenset({ValueKind.INT, ValueKind.FLOAT, ValueKind.BOOL, ValueKind.STR, ValueKind.NONE})


class PrintInCompiledRegion(SiteCodemod):
    """Print through torch's ordered print operator, so the print is part of the compiled graph.

    ## What it fixes
    A ``print(...)`` inside compiled code, directly in the compiled function or in a helper, a
    method or a child module it calls (in this file or another, 1-3 calls deep), inside a loop or
    a branch too, when what it prints is text, numbers read off tensors (``loss.item()``,
    ``x.norm().item():.3f``, ``x.shape[0]``, ``x.size(1)``, ``len(batch)``), loop counters of
    ``range``/``enumerate``, dtypes and devices, any value formatted with a format spec
    (``{loss:.4f}``), or a name, attribute or subscript (``self.step``, ``lr``, ``cfg["name"]``)
    that the worker measured holding an int, float, bool, str or None every time the line ran
    during the eager run of the target. Any other print (a tensor, a tuple of sizes, a name
    whose type was not measured, ``!r``) goes through BF503's log operator instead, which decides
    from each value while torch.compile traces the call.

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
    same point. Torch's print operator is used only where every value prints the same inside a
    graph: not a tensor without a format spec (its repr inside a graph has no ``grad_fn=``), nor a
    name or attribute measured holding one, a list of tensors, a module or any other object (their
    text is not the graph's, and torch's print operator takes no list or tuple), nor one whose
    type was not measured (an expression that calls something is not evaluated to measure it, but
    for a question about a shape, ``x.size(0)``, ``len(self.layers)``, ``x.dim()``, asked of a
    tensor, a ``torch.Size``, a list or a tuple); the measure is the example inputs' run, and the
    rewrite is verified on the same inputs. Those prints, and ``!r``/``!s`` conversions, become
    ``_log_in_graph("_print", "format", ...)``: one ``str.format`` template of the line print
    writes (each plain argument as ``{n!s}``, an f-string's fields as written, which
    ``str.format`` formats as the f-string did), whose values go to BF503's ordered operator as
    they are when torch.compile traces the call, and are printed from the graph when it runs:
    a plain tensor is the same tensor there, so its text is eager's; a value the operator cannot
    take, or whose text would differ (a tensor that requires grad or is a subclass, a list of
    tensors, a module), is printed by a direct call, which breaks the graph as the print did, and
    such a rewrite is not written. Not ``{x=}``, nested format specs, or
    ``sep``/``end``/``file``/``flush`` arguments; those prints are kept eager by BF301 instead.
    Logging and ``warnings.warn`` are BF503's (an ordered custom op makes the original call when
    the graph runs), ``logger.warning_once`` is BF502's; progress bars are kept eager by BF301. The operator is a private torch API
    (``torch._higher_order_ops``); the rewrite is verified with the torch it runs on.
    """

    CODE = "BF501"
    FIX_TITLE = "Print through torch's ordered print operator"
    REQUIRES = (ORDERED_PRINT,)
    GB_IDS = frozenset({"GB0059"})
    APPLICABILITY = Applicability.SAFE

    SITE = "print(...) statement"

    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider, ParentNodeProvider)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.logs = InGraphLogs(self, prints=True)  # the prints whose text is decided as they are traced

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if not self.spans_break(original):
            return updated
        names = {q.name for q in self.get_metadata(QualifiedNameProvider, original.func, set())}
        if "builtins.print" not in names or not isinstance(self.get_metadata(ParentNodeProvider, original), cst.Expr):
            return updated
        try:
            text, values = self._format(original)
        except Refused as why:
            # Values whose text inside a graph is not known here (a tensor, a tuple, an unmeasured
            # name) go to BF503's log operator, which decides from each value as torch.compile
            # traces it: real tensors print as in eager, and what it cannot take prints directly.
            try:
                logged = cst.ensure_type(self.logs.in_graph(original, updated), cst.Call)
            except Refused as also:
                self.refused = f"{why}; the log operator: {also}"
                return updated
            self.rewritten += 1
            return logged
        self.rewritten += 1
        args = [cst.Arg(cst.SimpleString(string_literal(text))), *(cst.Arg(v) for v in values)]
        return cst.Call(func=cst.parse_expression(ORDERED_PRINT), args=args)

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        updated = super().leave_Module(original, updated)
        return self.logs.with_helpers(updated) if self.logs.emitters else updated

    def _format(self, call: cst.Call) -> tuple[str, list[cst.BaseExpression]]:
        """The format string and the arguments that print the same text as ``call``."""
        if any(arg.keyword is not None or arg.star for arg in call.args):
            raise Refused("print is given sep/end/file/flush or *args")
        counters = loop_counters(self._enclosing_function(call))
        pieces: list[str] = []
        values: list[cst.BaseExpression] = []

        def field(expression: cst.BaseExpression, spec: str, conversion: str = "") -> str:
            if conversion:
                raise Refused("a !r/!s/!a conversion in the f-string")
            if not spec and not prints_the_same(expression, counters):
                text = cst.Module([]).code_for_node(expression)
                kinds = self.request.facts.kinds_of(text)
                if not kinds:
                    raise Refused(
                        f"`{text}` may be a tensor, whose repr differs inside a graph (its runtime type "
                        "was not measured)"
                    )
                if not set(kinds) <= _SAME_TEXT_KINDS:
                    shown = " or ".join(k.value for k in kinds)
                    raise Refused(f"`{text}` held a {shown} at the break, whose text differs inside a graph")
            values.append(expression)
            return "{" + str(len(values) - 1) + (":" + spec if spec else "") + "}"

        for arg in call.args:
            value = arg.value
            if isinstance(value, cst.SimpleString):
                if "\\N" in value.value:
                    raise Refused("a named unicode escape in the printed string")
                pieces.append(
                    value.evaluated_value.replace("{", "{{").replace("}", "}}")
                    if isinstance(value.evaluated_value, str)
                    else refuse("a bytes literal")
                )
            elif isinstance(value, cst.FormattedString):
                pieces.append(fstring_template(value, field))
            else:
                pieces.append(field(value, ""))
        return " ".join(pieces), values

    def _enclosing_function(self, node: cst.CSTNode) -> cst.FunctionDef | None:
        while not isinstance(node, (cst.FunctionDef, cst.Module)):
            node = self.get_metadata(ParentNodeProvider, node)
        return node if isinstance(node, cst.FunctionDef) else None


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
    cannot do: they are BF503's.
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
        if any(
            arg.star or not isinstance(arg.value, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString))
            for arg in original.args
        ):
            self.refused = "warning_once is given something other than string literals and f-strings"
            return updated
        logger = original.func.value.value
        if bound_locally(self, original, logger):
            self.refused = f"`{logger}` is a local name where warning_once is called, not the module's logger"
            return updated
        self.loggers.append(logger)
        return updated.with_changes(func=cst.Name(_warning_once_helper(logger)))

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.loggers:
            raise self.skip(
                self.refused or f"no <logger>.warning_once(...) call at line {self.request.brk.site.lineno}"
            )
        body = list(updated.body)
        for logger in dict.fromkeys(self.loggers):
            body = self._with_helper(body, logger, updated.config_for_parsing)
        AddImportsVisitor.add_needed_import(self.context, "torch")
        return updated.with_changes(body=body)

    def _with_helper(self, body: list[cst.CSTNode], logger: str, config) -> list[cst.CSTNode]:
        helper = cst.parse_statement(
            _WARNING_ONCE_SOURCE.format(helper=_warning_once_helper(logger), logger=logger), config=config
        )
        if existing_helper(body, helper):
            return body
        binding = m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(target=m.Name(logger))])])
        at = next((i + 1 for i, s in enumerate(body) if m.matches(s, binding)), None)
        if at is None:
            raise self.skip(f"`{logger}` is not assigned at module level")
        return insert_top_level(body, at, helper)


# The helper's exact text: a module that already has it is reused, a different function of that
# name is never overwritten.
_WARNING_ONCE_SOURCE = """\
@torch.compiler.assume_constant_result
def {helper}(*args):
    # {logger}.warning_once(...), called by torch.compile while it traces: the message is logged
    # once per process, during the first call that reaches it, as in eager code.
    {logger}.warning_once(*args)
"""


def _warning_once_helper(logger: str) -> str:
    return f"_{logger.lstrip('_')}_warning_once"


class LoggingInCompiledRegion(BreakfixCodemod):
    """Log through an ordered custom operator, so every log call is part of the compiled graph.

    ## What it fixes
    A log call inside compiled code: ``<logger>.debug/info/warning/warn/error/critical/fatal(...)``
    and ``<logger>.log(LEVEL, ...)`` on a logger bound at module level (``logger =
    logging.getLogger(__name__)``, transformers' ``logging.get_logger``), the module functions
    ``logging.info(...)`` and friends, and ``warnings.warn(...)``. The call may sit in the compiled
    function, in a helper, a method or a child module's ``forward`` (in this file or another, 1-3
    calls deep), in a loop or a branch. Its message may be a string literal or any expression with
    lazy ``%`` arguments (``logger.info("loss %.4f at step %d", loss, step)``), an f-string
    (``f"loss {loss.item():.4f}"``, ``!r``/``!s`` too), ``"...".format(a, b)`` or ``"..." % (a, b)``;
    its values may be tensors, ``.item()`` numbers, sizes, ints, floats, bools, strings, None.

    ## Why it breaks
    Dynamo does not trace ``logging.Logger`` methods (GB0291), the ``logging`` module functions
    (GB4841, on the root logger's handlers) or ``warnings.warn`` (GB0007, a skipped function).
    Ignoring them (``ignore_logging_functions``) drops the record; reordering them logs the values
    as they are *after* the graph. A custom operator registered as an ordered effect is kept by
    every backend and runs on every call, in program order with the graph's other effects, with the
    values of that point. The call becomes ``_log_in_graph("<emitter>", style, numbers, *values)``: while
    torch.compile traces it, the values go to the operator ``_log_op``, which makes the original
    call (through a small module-level emitter, ``_logger_info`` for ``logger.info``) when the
    graph runs; outside compiled code it makes the call directly. An f-string, ``.format`` or
    ``%`` message is passed as its template and values and formatted when the call is made, as
    before. ``numbers`` marks the values the message formats as numbers (``%.4f``, ``%d``,
    ``{:.3f}``, ``{:e}``): a tensor there is passed detached, the same number, so the loss of a
    training step, which requires grad, is logged from the graph too.

    ## Example
    ```python
    logger = logging.getLogger(__name__)

    def forward(self, x):
        loss = (self.proj(x) ** 2).mean()
        logger.info("loss %.4f", loss)
        return loss
    ```
    becomes
    ```python
    def forward(self, x):
        loss = (self.proj(x) ** 2).mean()
        _log_in_graph("_logger_info", "", ".n", "loss %.4f", loss)
        return loss
    ```
    with ``_log_in_graph``, ``_log_op`` and ``_logger_info`` defined once in the module.

    ## Fix safety
    Safe for logging: the same logger makes a record with the same level, message and arguments, on
    every call, in the same order, from the values computed at the same point (a tensor is passed
    by value into the graph's operator, so an in-place update after the call does not reach the
    record). The record's location fields (``pathname``, ``lineno``, ``funcName``) are the emitter's,
    as for BF502: a format showing them changes. Whether a value can go to the operator is decided
    while torch.compile traces, from the value itself: a tensor that requires grad (its text names
    a ``grad_fn``, which the graph's copy has not; formatted as a number it is passed detached,
    ``float(t)`` being ``float(t.detach())``), a parameter or tensor subclass (their text
    differs; as a number, the same), a list, a dict, a module or any other object is logged by the direct call instead,
    which breaks the graph as before; so a rewrite that only compiles for other inputs still logs
    the same text. Safe for ``warnings.warn(message, category)`` too: it is
    ``warnings.warn_explicit`` with the site it reads off its caller's frame (the file, the line,
    the module and its ``__warningregistry__``), and the emitter makes that call with the line of
    the rewritten call, which the rewrite writes into the call (``"_warnings_warn_UserWarning:42"``,
    set again by every later rewrite of the file, which may move the call):
    the filters, the once-per-location registry and the location shown are those of the call
    site. A ``stacklevel`` names another frame's line, which is not known where the call is
    written: refused. Refused: a logger that is an attribute, a call result
    or a local name (the operator reads a module global), ``logger.exception`` (it reads the
    exception being handled), ``.log`` with a level that is not a literal or a module-level
    constant, keyword arguments other than a warning's ``category`` (``stacklevel``, ``extra``,
    ``exc_info``, ``stack_info``), ``*args``, a used return value, a ``{x=}`` or a nested format
    spec in an f-string, ``.format`` with keywords and a ``%(name)s`` template. The operator is
    built with ``torch.library.custom_op`` and the private ``torch.library._register_effectful_op``;
    the rewrite is verified with the torch it runs on.
    """

    CODE = "BF503"
    FIX_TITLE = "Log through an ordered custom operator inside the graph"
    # GB0088: dynamo raised building the message (`"%.3f" % tensor`) on the line of the call.
    GB_IDS = frozenset({"GB0291", "GB0007", "GB4841", "GB0088"})
    APPLICABILITY = Applicability.SAFE

    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider, ParentNodeProvider)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.logs = InGraphLogs(self)
        self.refused = ""

    def visit_Module(self, node: cst.Module) -> None:
        self.logs.find_loggers(node)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if not self.spans_break(original):
            return updated
        try:
            if self.logs.emitter(original) is None:
                return updated
            if not isinstance(self.get_metadata(ParentNodeProvider, original), cst.Expr):
                raise Refused("the value of the log call is used")
            return cst.ensure_type(self.logs.in_graph(original, updated), cst.Call)
        except Refused as why:
            self.refused = str(why)
            return updated

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if not self.logs.emitters:
            raise self.skip(
                self.refused
                or f"no log call (logger method, logging function or warnings.warn) "
                f"at line {self.request.brk.site.lineno}"
            )
        return self.logs.with_helpers(updated)
