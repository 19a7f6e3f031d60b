"""BF604: a validation ``raise`` on a tensor's value becomes ``torch._check_value``."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.metadata import BuiltinAssignment, FunctionScope, PositionProvider, ScopeProvider

from breakfix.codemods._base import Refused, SiteCodemod
from breakfix.types import DATA_DEPENDENT_GUARD, Applicability


def _compiled_failure_changes(cls: str, message: cst.BaseExpression | None) -> str:
    """What a failing check does differently in compiled code, for this class and message (measured:
    the runtime assertion raises RuntimeError, with the message only when it is a constant string)."""
    literal = message is not None and not m.findall(message, m.FormattedStringExpression())
    raised = "RuntimeError" if cls == "RuntimeError" else f"RuntimeError instead of {cls}"
    text = "with the same message" if literal else "with a generic message"
    return (
        f"a check failing in compiled code raises {raised} {text}, and skips the in-place input updates made "
        "before it; eager code raises as before"
    )


# Which torch._check* raises each builtin exception class (torch/__init__.py: each is
# _check_with(<class>, cond, message)); a class not here has no check that raises it.
_CHECK_RAISING = {
    "RuntimeError": "_check",
    "ValueError": "_check_value",
    "TypeError": "_check_type",
    "IndexError": "_check_index",
    "NotImplementedError": "_check_not_implemented",
}


class ValidationRaise(SiteCodemod):
    """Turn ``if COND: raise ValueError("...")`` on a tensor's value into ``torch._check_value``.

    ## What it fixes
    A validation that raises a builtin exception when a value computed from tensors says the input
    is bad: ``if (x < 0).any(): raise ValueError("negative input")``, or a condition on an
    ``.item()``. The ``if`` has no ``else`` or ``elif``, its body is that one ``raise`` of
    ``RuntimeError``, ``ValueError``, ``TypeError``, ``IndexError`` or ``NotImplementedError``
    with a string literal, an f-string or no message.

    ## Why it breaks
    Dynamo traces one path through the code; whether the condition holds is only known when the
    graph runs, so the ``if`` stops it (GB0170, or a data-dependent guard with no GB id).
    ``torch._check_value(cond, message)`` (and ``_check``, ``_check_type``, ``_check_index``,
    ``_check_not_implemented`` for the other classes) states the condition instead of branching on
    it: traced, it becomes a runtime assertion inside the graph, so the code stays one graph and
    still fails on the same inputs. The condition is negated with ``torch.sym_not(bool(COND))``:
    ``bool`` is what ``if`` applies, and ``sym_not`` keeps a traced condition symbolic where
    ``not`` would guard on it and break again. The message becomes a lambda, evaluated only when
    the check fails, at the point the ``raise`` built it.

    ## Example
    ```python
    if (x < 0).any():
        raise ValueError("negative input")
    return x.sqrt()
    ```
    becomes
    ```python
    torch._check_value(torch.sym_not(bool((x < 0).any())), lambda: "negative input")
    return x.sqrt()
    ```

    ## Fix safety
    Unsafe, for what changes when the check fails in compiled code (measured on torch 2.13,
    aot_eager). Eager code behaves as before: the condition is evaluated once, at the same point,
    and on failure the same exception class is raised with the same message (the check raises
    ``E(message)``), after the same earlier effects; only the traceback ends in torch's
    ``_check_with`` frame, and ``raise E`` with no message raises ``E("")`` (same text, ``args``
    is ``("",)`` instead of ``()``). Compiled, the check passes on the same inputs and fails on
    the same inputs, but its failure is the graph's runtime assertion: it raises ``RuntimeError``
    whatever the class was (so an ``except ValueError`` around the compiled call no longer
    catches it), with the message for a string literal and a generic ``Runtime assertion failed
    for expression ...`` for an f-string (``Assertion is failed`` for no message); in-place
    updates of inputs made earlier in the compiled region are not applied when it fails (so even
    ``RuntimeError`` with a string literal, which raises the same class and text, is not exact).
    The report states, for each site, which of these apply. Inductor was not measured. A
    message reading anything but constants (``self.name``, a tensor) does not compile
    (``torch._check*`` needs a message closure of constants), so that rewrite is not written.
    Refused before trying: the ``if`` is an ``elif``, has an ``else``, or its body is more than
    the ``raise``; ``raise ... from ...``; a class that is not one of the five builtins (a custom
    class, ``KeyError``, ``AssertionError``, a name the module rebinds); a message that is not
    one string literal or f-string, or is a bytes literal, or awaits, yields, binds a name or
    calls ``super``; a bare ``raise``; an ``if`` outside a function body (a lambda in a class body
    does not see the class's names); code that rebinds ``bool``.
    """

    CODE = "BF604"
    FIX_TITLE = "State the validation as a torch._check inside the graph"
    REQUIRES = (*(f"torch.{check}" for check in _CHECK_RAISING.values()), "torch.sym_not")
    GB_IDS = frozenset({"GB0170", "GB0035"})
    GB_TYPES = frozenset({DATA_DEPENDENT_GUARD, "Data-dependent branching"})
    APPLICABILITY = Applicability.UNSAFE
    CHANGES = (
        "a check failing in compiled code raises RuntimeError instead of the exception class, with a generic "
        "message for an f-string or no message, and skips the in-place input updates made before it; eager "
        "code raises as before"
    )

    SITE = "`if ...: raise`"

    METADATA_DEPENDENCIES = (PositionProvider, ScopeProvider)

    def __init__(self, context, request) -> None:
        super().__init__(context, request)
        self.elifs: set[cst.If] = set()

    def visit_If(self, node: cst.If) -> None:
        if isinstance(node.orelse, cst.If):
            self.elifs.add(node.orelse)

    def leave_If(self, original: cst.If, updated: cst.If) -> cst.If | cst.SimpleStatementLine:
        if self.rewritten or not self.spans_break(original.test):
            return updated
        try:
            check, message = self._check_and_message(original)
        except Refused as why:
            self.refused = str(why)
            return updated
        negated = cst.Call(
            func=cst.parse_expression("torch.sym_not"),
            args=[cst.Arg(cst.Call(func=cst.Name("bool"), args=[cst.Arg(updated.test)]))],
        )
        call = cst.Call(
            func=cst.parse_expression(f"torch.{check}"),
            args=[cst.Arg(negated), cst.Arg(cst.Lambda(params=cst.Parameters(), body=message))],
        )
        # Comments above the `if`, on its line and above the `raise` go above the check; the `raise`
        # line's own stays on its line.
        body = original.body
        if isinstance(body, cst.IndentedBlock):
            header = [cst.EmptyLine(comment=body.header.comment)] if body.header.comment else []
            leading = [*updated.leading_lines, *header, *body.body[0].leading_lines]
            trailing = body.body[0].trailing_whitespace
        else:
            leading, trailing = list(updated.leading_lines), body.trailing_whitespace
        self.rewritten += 1
        return cst.SimpleStatementLine([cst.Expr(call)], leading_lines=leading, trailing_whitespace=trailing)

    def _check_and_message(self, node: cst.If) -> tuple[str, cst.BaseExpression]:
        """The torch._check* that raises the same class, and the message it must build."""
        if node in self.elifs:
            raise Refused("the if is an elif: its replacement would have to be an else block")
        if node.orelse is not None:
            raise Refused("the if has an else or elif: the check can only replace a branch that raises")
        scope = self.get_metadata(ScopeProvider, node)
        if not isinstance(scope, FunctionScope):
            raise Refused("the if is not in a function body: the message's lambda would not see the names around it")
        small = node.body.body
        if isinstance(node.body, cst.IndentedBlock):
            small = small[0].body if len(small) == 1 and isinstance(small[0], cst.SimpleStatementLine) else ()
        if len(small) != 1 or not isinstance(small[0], cst.Raise):
            raise Refused("the if's body is more than one raise")
        statement = small[0]
        if statement.cause is not None:
            raise Refused("raise ... from ...: no torch._check chains a cause")
        exc = statement.exc
        if exc is None:
            raise Refused("a bare raise re-raises the exception being handled")
        call_args = exc.args if isinstance(exc, cst.Call) else ()
        cls = exc.func if isinstance(exc, cst.Call) else exc
        if not isinstance(cls, cst.Name) or cls.value not in _CHECK_RAISING:
            shown = cst.Module([]).code_for_node(cls)
            raise Refused(f"raises {shown}: only {', '.join(_CHECK_RAISING)} have a torch._check* that raises them")
        for name in (cls.value, "bool"):
            if not all(isinstance(a, BuiltinAssignment) for a in scope[name]):
                raise Refused(f"the module rebinds {name}")
        if not call_args:
            self.changes = _compiled_failure_changes(cls.value, None)
            return _CHECK_RAISING[cls.value], cst.SimpleString('""')
        if len(call_args) != 1 or call_args[0].keyword is not None or call_args[0].star:
            raise Refused("the exception gets more than one positional message")
        message = call_args[0].value
        if not isinstance(message, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
            raise Refused("the message is not a string literal or f-string")
        if any("b" in s.prefix.lower() for s in m.findall(message, m.SimpleString() | m.FormattedString())):
            raise Refused("the message is a bytes literal")
        if m.findall(message, m.Await() | m.Yield() | m.NamedExpr() | m.Name("super")):
            raise Refused("the message awaits, yields, binds a name or calls super: it cannot move into a lambda")
        self.changes = _compiled_failure_changes(cls.value, message)
        return _CHECK_RAISING[cls.value], message
