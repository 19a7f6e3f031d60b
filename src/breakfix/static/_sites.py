"""Where in a compiled function a pattern of ``PATTERNS`` stands: the sites ``breakfix check`` reports."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from breakfix.codemods._base import parameters
from breakfix.static._index import DISABLE, Function, ScannedModule, findall
from breakfix.static.patterns import BY_CALL, BY_SLUG, LOGGING_FUNCTIONS, Pattern

# Tensor methods and torch functions whose result, tested by `if`/`while`, depends on tensor data.
_REDUCTIONS = frozenset({"sum", "mean", "max", "min", "any", "all", "norm", "prod", "isfinite", "isnan", "isinf"})
_ITERATOR_ANNOTATIONS = frozenset(
    {f"{m}.{t}" for m in ("typing", "collections.abc") for t in ("Iterator", "Generator")}
)


@dataclass(frozen=True)
class Site:
    """A pattern found in a compiled function; ``calls`` lead from the compiled function to it."""

    pattern: Pattern
    node: cst.CSTNode
    name: str  # what the message names ({name})
    function: Function
    calls: tuple[tuple[Function, cst.Call], ...]


def _call_name(call: cst.Call) -> str:
    """The callee as written (``t.save``): what the message names."""
    return cst.Module([]).code_for_node(call.func)


def _is_parameter(module: ScannedModule, function: Function, name: cst.Name) -> bool:
    """``name`` is a parameter of ``function`` that its body never rebinds."""
    scope = module.scopes.get(name)
    if scope is None:
        return False
    assignments = list(scope[name.value])
    return (
        bool(assignments)
        and all(isinstance(getattr(a, "node", None), cst.Param) for a in assignments)
        and any(p.name.value == name.value for p in parameters(function.node, variadic=False))
    )


def _sites_in(module: ScannedModule, function: Function, calls: tuple, root: bool) -> Iterator[Site]:
    def site(slug: str, node: cst.CSTNode, name: str = "") -> Site:
        return Site(BY_SLUG[slug], node, name, function, calls)

    opaque = _opaque_locals(module, function)
    arguments = _example_arguments(module, function) if root else {}
    for call in findall(function.node.body, cst.Call):
        names = module.names(call.func, external=True)
        pattern = next((BY_CALL[n] for n in names if n in BY_CALL), None)
        if pattern is not None:
            yield site(pattern.slug, call, _call_name(call))
            continue
        if isinstance(call.func, cst.Attribute):
            attr = call.func.attr.value
            receiver = call.func.value
            if attr == "tolist" and not call.args and not _integer_valued(module, receiver, arguments):
                yield site("float-tolist", call)
                continue
            if attr in LOGGING_FUNCTIONS and (
                module.names(receiver) & module.index.loggers
                or (isinstance(receiver, cst.Call) and "logging.getLogger" in module.names(receiver.func))
            ):
                yield site("logger-method", call, attr)
                continue
            method = _method_pattern(attr, receiver, names, opaque)
            if method is not None:
                yield site(method, call, _call_name(call) if method != "path-io" else attr)
                continue
        passed = next(
            (
                a.value.value
                for a in call.args
                if isinstance(a.value, cst.Name) and opaque.get(a.value.value) == "opaque-generator"
            ),
            None,
        )
        if passed is not None:  # ``torch.randint(..., generator=gen)`` with ``gen = torch.Generator()``
            yield site("opaque-generator", call, _call_name(call))
        elif any(n.startswith("PIL.") for n in names):
            yield site("pil", call, _call_name(call))
        elif any(re.fullmatch(r"torch\.nn\.[A-Z]\w*", n) for n in names):
            yield site("module-construction", call, _call_name(call))
        elif (
            "builtins.next" in names
            and call.args
            and isinstance(call.args[0].value, cst.Name)
            and root
            and _is_parameter(module, function, call.args[0].value)
        ):
            yield site("iterator-next", call, call.args[0].value.value)
        else:
            callee = next((module.by_qualname[q] for q in module.names(call.func) if q in module.by_qualname), None)
            if callee is not None and callee.decorators & DISABLE:
                yield site("disabled-call", call, callee.qualname)
    for node in findall(function.node.body, (cst.If, cst.While, cst.IfExp)):
        keyword = {cst.If: "if", cst.While: "while", cst.IfExp: "if"}[type(node)]
        if _item_call(node.test) or any(_item_call(v) for v in _bound_values(module, node.test)):
            yield site("data-dependent-guard", node.test, keyword)
        elif _reduces(module, node.test):
            yield site("data-dependent-branch", node.test, keyword)
    for node in findall(function.node.body, cst.Assert):
        # A constant message needs no branch: dynamo traces such an assert (torch._check).
        if node.msg is not None and not _constant_string(node.msg) and _reduces(module, node.test):
            yield site("assert-message", node.test)
    if root:
        iterator_params = {
            p.name.value
            for p in parameters(function.node, variadic=False)
            if p.annotation is not None and _iterator_annotation(module, p.annotation.annotation)
        }
        iterator_params |= {name for name, value in arguments.items() if _makes_iterator(module, value)}
        for loop in findall(function.node.body, cst.For):
            if (
                isinstance(loop.iter, cst.Name)
                and loop.iter.value in iterator_params
                and _is_parameter(module, function, loop.iter)
            ):
                yield site("iterator-for", loop.iter, loop.iter.value)
        # A yield in a nested function or lambda makes that one a generator, not the compiled function.
        found = findall(function.node.body, (cst.Yield, cst.FunctionDef, cst.Lambda))
        nested = [n for n in found if not isinstance(n, cst.Yield)]
        direct = [y for y in found if isinstance(y, cst.Yield) and not any(_contains(n, y) for n in nested)]
        if direct:  # dynamo reports it at the def line
            yield site("generator", function.node.name)


_PATH_IO = frozenset({"open", "read_text", "write_text", "read_bytes", "write_bytes"})
_OPTIMIZER = re.compile(r"optim|^opt$", re.I)
_UFUNC_METHOD = re.compile(r"numpy\.\w+\.(at|reduceat|outer|accumulate)")
# Patterns whose calls return an object dynamo cannot trace: a method called on it breaks too.
_OPAQUE_RESULTS = frozenset({"pil", "untraceable-object", "numpy-unsupported", "opaque-generator", "host-state"})


def _method_pattern(attr: str, receiver: cst.BaseExpression, names: set[str], opaque: dict[str, str]) -> str | None:
    """The pattern of a method call ``receiver.attr(...)``, or None."""
    if isinstance(receiver, cst.Name) and receiver.value in opaque:
        return opaque[receiver.value]  # ``buffer.seek(0)`` on ``buffer = io.BytesIO()``
    if any(_UFUNC_METHOD.fullmatch(n) for n in names):
        return "numpy-ufunc-method"
    if any(n.startswith("PIL.") for n in names):
        return None  # the PIL pattern
    if attr == "backward":
        return "backward"
    if attr == "zero_grad":
        return "zero-grad"
    last = receiver.attr.value if isinstance(receiver, cst.Attribute) else getattr(receiver, "value", "")
    if attr == "step" and isinstance(last, str) and _OPTIMIZER.search(last):
        return "optimizer-step"
    if attr in _PATH_IO and all(n.startswith("pathlib.") for n in names):  # a path, not ``gzip.open``
        return "path-io"
    return None


def _opaque_locals(module: ScannedModule, function: Function) -> dict[str, str]:
    """Local names ``function`` binds (``name = call(...)``) to an object dynamo cannot trace, with
    the pattern of the call that made it."""
    found = {}
    for statement in findall(function.node.body, cst.Assign):
        if len(statement.targets) != 1 or not isinstance(statement.targets[0].target, cst.Name):
            continue
        value = statement.value
        while (
            isinstance(value, cst.Call)
            and isinstance(value.func, cst.Attribute)
            and isinstance(value.func.value, cst.Call)
        ):
            value = value.func.value  # ``Image.open(b).convert("RGB")``: what made it
        if not isinstance(value, cst.Call):
            continue
        names = module.names(value.func, external=True)
        slug = next((BY_CALL[n].slug for n in names if n in BY_CALL), None)
        if slug is None and any(n.startswith("PIL.") for n in names):
            slug = "pil"
        if slug in _OPAQUE_RESULTS:
            found[statement.targets[0].target.value] = slug
    return found


def _contains(outer: cst.CSTNode, inner: cst.CSTNode) -> bool:
    return any(n is inner for n in findall(outer, type(inner)))


# Tensor methods whose result is an integer (or bool) tensor, and those that keep the dtype: the
# `.tolist()` of such a value compiles under fullgraph=True.
_INTEGER_RESULTS = frozenset({"argmax", "argmin", "argsort", "long", "int", "short", "bool", "nonzero", "bincount"})
_SAME_DTYPE = frozenset(
    {"squeeze", "unsqueeze", "flatten", "view", "reshape", "t", "contiguous", "cpu", "detach", "clone", "T", "mT"}
)


_INTEGER_FACTORIES = frozenset({"torch.randint", "torch.randint_like", "torch.randperm"})
_INTEGER_DTYPES = frozenset(f"torch.{t}" for t in ("long", "int", "int64", "int32", "int16", "int8", "uint8", "bool"))


def _integer_valued(module: ScannedModule, value: cst.BaseExpression, arguments: dict[str, cst.BaseExpression]) -> bool:
    """``value`` is an integer tensor as far as the source shows: ``x.argmax(-1).T``,
    ``torch.randint(...)``, anything made with an integer ``dtype=``, a local name bound once to
    one, or a parameter ``example_inputs`` passes one to (``arguments``)."""
    while True:
        if isinstance(value, cst.Subscript):
            value = value.value
        elif isinstance(value, cst.Attribute) and value.attr.value in _SAME_DTYPE:
            value = value.value
        elif (
            isinstance(value, cst.Call)
            and isinstance(value.func, cst.Attribute)
            and value.func.attr.value in _SAME_DTYPE
        ):
            value = value.func.value
        else:
            break
    if isinstance(value, cst.Call):
        if any(
            arg.keyword is not None and arg.keyword.value == "dtype" and module.names(arg.value) & _INTEGER_DTYPES
            for arg in value.args
        ):
            return True
        names = module.names(value.func)
        if names & _INTEGER_FACTORIES or (
            "torch.tensor" in names and value.args and _integer_literals(value.args[0].value)
        ):
            return True
        return isinstance(value.func, cst.Attribute) and value.func.attr.value in _INTEGER_RESULTS
    if isinstance(value, cst.Name) and (scope := module.scopes.get(value)) is not None:
        assignments = list(scope[value.value])
        if len(assignments) == 1 and isinstance(getattr(assignments[0], "node", None), cst.Param):
            argument = arguments.get(value.value)
            return argument is not None and _integer_valued(module, argument, {})
        if len(assignments) == 1:
            bound = _bound_value(module, assignments[0])
            return bound is not None and _integer_valued(module, bound, arguments)
    return False


def _integer_literals(node: cst.BaseExpression) -> bool:
    if isinstance(node, (cst.List, cst.Tuple)):
        return bool(node.elements) and all(_integer_literals(e.value) for e in node.elements)
    return isinstance(node, cst.Integer)


def _bound_value(module: ScannedModule, assignment: object) -> cst.BaseExpression | None:
    """The value of ``name = value``, when ``assignment`` is that one binding."""
    node = getattr(assignment, "node", None)
    parent = module.parents.get(node)
    statement = module.parents.get(parent) if isinstance(parent, cst.AssignTarget) else None
    if isinstance(statement, cst.Assign) and len(statement.targets) == 1 and statement.targets[0].target is node:
        return statement.value
    return None


def _bound_values(module: ScannedModule, test: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The values of the local names ``test`` reads, each bound once (``v = t.item()`` then ``if v > 0:``)."""
    values = []
    for name in findall(test, cst.Name):
        scope = module.scopes.get(name)
        assignments = list(scope[name.value]) if scope is not None else []
        value = _bound_value(module, assignments[0]) if len(assignments) == 1 else None
        if value is not None:
            values.append(value)
    return values


def _example_arguments(module: ScannedModule, function: Function) -> dict[str, cst.BaseExpression]:
    """Parameter -> the expression the module's ``example_inputs`` passes it (breakfix's inputs
    convention: a tuple of positional arguments, the instance first for a method)."""
    maker = module.by_qualname.get("example_inputs")
    returned = (
        next((r.value for r in findall(maker.node.body, cst.Return) if r.value is not None), None) if maker else None
    )
    if isinstance(returned, cst.Name) and (scope := module.scopes.get(returned)) is not None:
        assignments = list(scope[returned.value])
        returned = _bound_value(module, assignments[0]) if len(assignments) == 1 else None
    if not isinstance(returned, cst.Tuple):
        return {}
    values = []
    for element in returned.elements:
        value = element.value
        if isinstance(value, cst.Name) and (scope := module.scopes.get(value)) is not None:
            assignments = list(scope[value.value])
            value = (_bound_value(module, assignments[0]) if len(assignments) == 1 else None) or value
        values.append(value)
    return {param.name.value: value for param, value in zip(parameters(function.node, variadic=False), values)}


def _makes_iterator(module: ScannedModule, value: cst.BaseExpression) -> bool:
    """``(... for ...)``, ``iter(...)`` or a call to one of the module's generator functions."""
    if isinstance(value, cst.GeneratorExp):
        return True
    if not isinstance(value, cst.Call):
        return False
    if "builtins.iter" in module.names(value.func):
        return True
    called = [module.by_qualname[q] for q in module.names(value.func) if q in module.by_qualname]
    return any(findall(f.node.body, cst.Yield) for f in called)


def _constant_string(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.SimpleString) or (
        isinstance(node, cst.ConcatenatedString) and _constant_string(node.left) and _constant_string(node.right)
    )


def _item_call(test: cst.BaseExpression) -> bool:
    return any(isinstance(c.func, cst.Attribute) and c.func.attr.value == "item" for c in findall(test, cst.Call))


def _reduces(module: ScannedModule, test: cst.BaseExpression) -> bool:
    """A reduction of a tensor in ``test``: ``x.sum()`` on a value (not ``np.any`` or another imported
    module's function), or ``torch.any(...)``."""
    torch_reductions = {f"torch.{r}" for r in _REDUCTIONS}
    for call in findall(test, cst.Call):
        names = module.names(call.func, external=True)
        if names & torch_reductions:
            return True
        if isinstance(call.func, cst.Attribute) and call.func.attr.value in _REDUCTIONS and not names:
            return True
    return False


def _iterator_annotation(module: ScannedModule, annotation: cst.BaseExpression) -> bool:
    base = annotation.value if isinstance(annotation, cst.Subscript) else annotation
    return bool(module.names(base) & _ITERATOR_ANNOTATIONS)


def sites_of(module: ScannedModule, all_functions: bool, entries: list[Function] | None = None) -> list[Site]:
    """The sites in the module's compiled code: what its compiled functions reach, and what
    ``entries`` (functions other modules' compiled code calls) reach."""
    roots = module.compiled(all_functions)
    reached = module.reachable(roots) if not all_functions else [(r, ()) for r in roots]
    known = {id(function.node) for function, _ in reached}
    reached += [
        (f, calls)
        for f, calls in module.reachable([e for e in entries or () if id(e.node) not in known])
        if id(f.node) not in known
    ]
    root_ids = {id(r.node) for r in roots}
    seen: set[int] = set()
    sites = []
    for function, calls in reached:
        for site in _sites_in(module, function, calls, root=not calls and id(function.node) in root_ids):
            if id(site.node) not in seen:
                seen.add(id(site.node))
                sites.append(site)
    return sites
