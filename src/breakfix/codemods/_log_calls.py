"""Log calls as calls of the graph's ordered log operator: what BF503 writes at a log call, BF501
at a print, and BF601 for the log calls and prints of a branch on a tensor."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import ParentNodeProvider, QualifiedNameProvider

from breakfix.codemods._base import (
    BreakfixCodemod,
    Refused,
    existing_helper,
    index_after_imports,
    insert_top_level,
)
from breakfix.codemods._logging_ops import EMITTER_SOURCE, LOG_SOURCES, WARNING_LINE
from breakfix.codemods._messages import message_values, numeric_conversions, print_values, string_literal


def bound_locally(codemod: BreakfixCodemod, node: cst.CSTNode, name: str) -> bool:
    """Whether a function or lambda around ``node`` binds ``name`` (the codemod declares ParentNodeProvider)."""
    binders = (
        m.Param(name=m.Name(name))
        | m.AssignTarget(target=m.Name(name))
        | m.AsName(name=m.Name(name))
        | m.For(target=m.Name(name))
    )
    while not isinstance(node, cst.Module):
        node = codemod.get_metadata(ParentNodeProvider, node)
        if isinstance(node, (cst.FunctionDef, cst.Lambda)) and m.findall(node, binders):
            return True
    return False


# Logger methods that make one record at their level; `exception` also reads the exception being
# handled (sys.exc_info()), which a graph's operator does not see, and `warning_once` is BF502's.
_LOGGER_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "critical", "fatal", "log"})
_LOGGING_FUNCTIONS = frozenset({f"logging.{name}" for name in _LOGGER_METHODS})
PRINT_EMITTER = "_print"
# The mark of the first value of a conditional log call: the condition it is made on.
CONDITION = "w"


class InGraphLogs:
    """Log calls written as ``_log_in_graph(...)`` calls of the graph's ordered operator, and the
    module-level helpers they need: what BF503 does at a log call, BF501 at a print whose values
    torch's print operator cannot show the same, and BF601 for the log calls and prints of a branch
    on a tensor (made on the branch's condition). The codemod declares QualifiedNameProvider and
    ParentNodeProvider, and calls ``find_loggers`` on the module first to take logger calls."""

    def __init__(self, codemod: BreakfixCodemod, prints: bool = False) -> None:
        self.codemod = codemod
        # Whether a print is a log call too: for BF501's prints that torch's print operator cannot
        # show the same, and the prints of a branch BF601 makes on its condition; BF503 takes none.
        self.prints = prints
        self.emitters: dict[str, str] = {}  # emitter name -> the call it makes
        self.loggers: set[str] = set()  # module-level names bound to getLogger(...)/get_logger(...)

    def find_loggers(self, module: cst.Module) -> None:
        getter = m.Call(func=m.Name("getLogger") | m.Attribute(attr=m.Name("getLogger") | m.Name("get_logger")))
        for statement in module.body:
            if m.matches(
                statement, m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(m.Name())], value=getter)])
            ):
                self.loggers.add(statement.body[0].targets[0].target.value)

    def in_graph(
        self, original: cst.Call, updated: cst.Call, condition: cst.BaseExpression | None = None
    ) -> cst.Call | None:
        """``updated`` as a ``_log_in_graph`` call (made only when the tensor ``condition`` is true,
        when given), or None when it is no log call; raises Refused for a log call it cannot take."""
        emitter = self.emitter(original)
        if emitter is None:
            return None
        name, call, message_args = emitter
        given = list(updated.args[message_args])
        style, values = print_values(given) if name == PRINT_EMITTER else message_values(given)
        self.emitters[name] = call
        # A warning's line is written once the module is whole (BreakfixCodemod.transform_module).
        site = f"{name}:{WARNING_LINE}" if name.startswith("_warnings_") else name
        numbers = numeric_conversions(style, values)
        if condition is not None:
            values, numbers = [condition, *values], CONDITION + numbers
        args = [
            cst.Arg(cst.SimpleString(string_literal(site))),
            cst.Arg(cst.SimpleString(string_literal(style))),
            cst.Arg(cst.SimpleString(string_literal(numbers))),
            *(cst.Arg(v) for v in values),
        ]
        return cst.Call(func=cst.Name("_log_in_graph"), args=args)

    def emitter(self, call: cst.Call) -> tuple[str, str, slice] | None:
        """(emitter name, the call it makes, which arguments the emitter is given: the message and
        its lazy arguments), or None when ``call`` is no log call."""
        names = {q.name for q in self.codemod.get_metadata(QualifiedNameProvider, call.func, set())}
        func = call.func
        if "warnings.warn" in names:
            return self._warning(call)
        if self.prints and "builtins.print" in names:
            if any(arg.star or arg.keyword is not None for arg in call.args):
                raise Refused("print is given sep, end, file, flush or *args")
            return PRINT_EMITTER, "print(*args)", slice(0, None)
        if names & _LOGGING_FUNCTIONS and m.matches(func, m.Attribute(value=m.Name("logging"))):
            owner, method = "logging", func.attr.value
        elif m.matches(func, m.Attribute(attr=m.Name("exception"))) or "logging.exception" in names:
            raise Refused("logger.exception reads the exception being handled, which a graph's operator does not see")
        elif m.matches(func, m.Attribute(attr=m.Name(m.MatchIfTrue(lambda n: n in _LOGGER_METHODS)))):
            owner, method = self.codemod.module.code_for_node(func.value), func.attr.value
            if not isinstance(func.value, cst.Name):
                if "log" not in owner.rpartition(".")[2].lower():
                    return None  # `torch.special.log(...)`, `self.norm.log(...)`: no logger
                raise Refused(
                    f"the logger `{owner}` is not a module-level name: the graph's operator reads a module global"
                )
            if owner not in self.loggers:
                return None  # `np.log(x)`, `math.log(x)`: a module-level name, but no logger
            if bound_locally(self.codemod, call, owner):
                raise Refused(f"`{owner}` is a local name where it logs, not the module-level logger")
        else:
            return None
        if any(arg.star or arg.keyword is not None for arg in call.args):
            raise Refused(f"{owner}.{method} is given keyword arguments or *args")
        base = f"_{owner.strip('_')}_{method}"
        if method != "log":
            return base, f"{owner}.{method}(*args)", slice(0, None)
        if not call.args:
            raise Refused(f"{owner}.log without a level")
        level = call.args[0].value
        if not (
            isinstance(level, cst.Integer)
            or m.matches(level, m.Attribute(value=m.Name(), attr=m.Name()))
            and not bound_locally(self.codemod, call, level.value.value)
        ):
            raise Refused("the level of .log is not a literal or a module-level constant")
        level_text = self.codemod.module.code_for_node(level)
        suffix = level.value if isinstance(level, cst.Integer) else level.attr.value
        return f"{base}_{suffix}", f"{owner}.log({level_text}, *args)", slice(1, None)

    def _warning(self, call: cst.Call) -> tuple[str, str, slice]:
        """``warnings.warn(message[, category][, stacklevel])`` as an emitter."""
        positional = [a for a in call.args if a.keyword is None]
        keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
        if (
            any(a.star for a in call.args)
            or set(keywords) - {"category", "stacklevel"}
            or len(positional) > 3
            or (len(positional) > 1 and "category" in keywords)
            or not positional
        ):
            raise Refused("warnings.warn is given *args, `source` or arguments in an unusual form")
        category = positional[1].value if len(positional) > 1 else keywords.get("category")
        if category is None:
            category_text, suffix = "UserWarning", "UserWarning"
        elif isinstance(category, cst.Name) and not bound_locally(self.codemod, call, category.value):
            category_text = suffix = category.value
        elif m.matches(category, m.Attribute(value=m.Name(), attr=m.Name())) and not bound_locally(
            self.codemod, call, category.value.value
        ):
            category_text, suffix = self.codemod.module.code_for_node(category), category.attr.value
        else:
            raise Refused("the warning's category is not a module-level class")
        if len(positional) > 2 or "stacklevel" in keywords:
            raise Refused("warnings.warn is given a stacklevel: the warning would be attributed to another frame")
        if call.args[0].keyword is not None:
            raise Refused("the warning's message is a keyword argument")
        # Only the message goes through the operator, with the line of the call (WARNING_LINE); the
        # category is the emitter's. warnings.warn(message, category) at a line is warn_explicit
        # with the site warn reads off its caller's frame: file, line, module, its registry.
        name = f"_warnings_warn_{suffix}"
        call_text = (
            f"warnings.warn_explicit(args[0], {category_text}, {name}.__code__.co_filename, args[-1], __name__, "
            'globals().setdefault("__warningregistry__", {}), globals())'
        )
        return name, call_text, slice(0, 1)

    def with_helpers(self, updated: cst.Module) -> cst.Module:
        """``updated`` with the shared helpers and the emitters of the calls written, once each."""
        body = list(updated.body)
        config = updated.config_for_parsing
        shared = [cst.parse_statement(text, config=config) for text in LOG_SOURCES]
        if all(existing_helper(body, h) for h in shared if isinstance(h, cst.FunctionDef)):
            # A fix applied before: the emitters go after the shared helpers it wrote.
            at = 1 + next(i for i, s in enumerate(body) if m.matches(s, m.FunctionDef(name=m.Name("_emit"))))
            helpers = []
        else:
            at, helpers = index_after_imports(body), shared
        helpers += [
            cst.parse_statement(EMITTER_SOURCE.format(name=name, call=call), config=config)
            for name, call in sorted(self.emitters.items())
        ]
        for helper in helpers:
            if isinstance(helper, cst.FunctionDef) and existing_helper(body, helper):
                continue
            body = insert_top_level(body, at, helper)
            at += 1
        AddImportsVisitor.add_needed_import(self.codemod.context, "torch")
        return updated.with_changes(body=body)
