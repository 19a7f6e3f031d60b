"""A module as ``breakfix check`` reads it: its functions and classes, the names its imports bind,
and which of its functions are compiled."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import (
    MetadataWrapper,
    ParentNodeProvider,
    PositionProvider,
    QualifiedNameProvider,
    QualifiedNameSource,
    ScopeProvider,
)

from breakfix.errors import BreakfixError

COMPILE = "torch.compile"
_MODULE_BASES = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})
# Functions dynamo does not trace into: an eager region (calling one is its own pattern) or an
# opaque op. Their bodies are not scanned as compiled code.
DISABLE = frozenset({"torch.compiler.disable", "torch._dynamo.disable"})
OPAQUE = frozenset(
    {
        "torch._dynamo.nonstrict_trace",
        "torch.library.custom_op",
        "torch._dynamo.allow_in_graph",
        "torch.compiler.allow_in_graph",
    }
)
_NEVER_COMPILED = frozenset({"__init__", "example_inputs"})


class CheckError(BreakfixError):
    """A file that cannot be read or parsed: reported, and the check exits 2."""


@dataclass
class Function:
    node: cst.FunctionDef
    qualname: str
    owner: cst.ClassDef | None
    decorators: set[str]


class _Index(cst.CSTVisitor):
    """One pass over the module: its functions, classes, torch.compile calls and logger names."""

    METADATA_DEPENDENCIES = (QualifiedNameProvider, ScopeProvider, ParentNodeProvider, PositionProvider)

    def __init__(self) -> None:
        super().__init__()
        self.functions: dict[cst.FunctionDef, Function] = {}
        self.classes: dict[str, cst.ClassDef] = {}
        self.class_bases: dict[str, set[str]] = {}
        self.compile_calls: list[cst.Call] = []  # torch.compile(x, ...)
        self.method_compiles: list[cst.Call] = []  # x.compile(): nn.Module.compile when x is a module
        self.loggers: set[str] = set()  # qualified names bound to logging.getLogger(...)
        self._path: list[str] = []

    def names(self, node: cst.CSTNode) -> set[str]:
        return {q.name for q in self.get_metadata(QualifiedNameProvider, node, set())}

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        qualname = ".".join([*self._path, node.name.value])
        self.classes[qualname] = node
        self.class_bases[qualname] = (
            set().union(*(self.names(base.value) for base in node.bases)) if node.bases else set()
        )
        self._path.append(node.name.value)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self._path.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        parent = self.get_metadata(ParentNodeProvider, node)
        owner = self.get_metadata(ParentNodeProvider, parent) if isinstance(parent, cst.IndentedBlock) else None
        decorators = set()
        for decorator in node.decorators:
            expression = decorator.decorator.func if isinstance(decorator.decorator, cst.Call) else decorator.decorator
            decorators |= self.names(expression)
        self.functions[node] = Function(
            node,
            ".".join([*self._path, node.name.value]),
            owner if isinstance(owner, cst.ClassDef) else None,
            decorators,
        )
        self._path += [node.name.value, "<locals>"]

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        del self._path[-2:]

    def visit_Call(self, node: cst.Call) -> None:
        if COMPILE in self.names(node.func) and node.args:
            self.compile_calls.append(node)
        elif isinstance(node.func, cst.Attribute) and node.func.attr.value == "compile":
            self.method_compiles.append(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        if isinstance(node.value, cst.Call) and "logging.getLogger" in self.names(node.value.func):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    self.loggers |= self.names(target.target)


class ScannedModule:
    """A parsed module and what the scan needs to know about it."""

    def __init__(self, source: str, path: str) -> None:
        try:
            self.wrapper = MetadataWrapper(cst.parse_module(source))
        except cst.ParserSyntaxError as e:
            raise CheckError(f"{path}:{e.editor_line}:{e.editor_column}: cannot parse: {e.message}") from None
        self.source = source
        self.path = path
        self.index = _Index()
        self.wrapper.visit(self.index)
        self.positions = self.wrapper.resolve(PositionProvider)
        self.scopes = self.wrapper.resolve(ScopeProvider)
        self.parents = self.wrapper.resolve(ParentNodeProvider)
        self._qualified_names = self.wrapper.resolve(QualifiedNameProvider)
        self.by_qualname = {f.qualname: f for f in self.index.functions.values()}
        self.modules = self._module_classes()

    @property
    def tree(self) -> cst.Module:
        return self.wrapper.module

    def names(self, node: cst.CSTNode, external: bool = False) -> set[str]:
        """Qualified names of ``node``; ``external``: only those of imports and builtins (a local
        class called ``time`` is not the time module)."""
        names = self._qualified_names.get(node, set())
        names = names() if callable(names) else names  # LibCST resolves qualified names lazily
        return {q.name for q in names if not external or q.source is not QualifiedNameSource.LOCAL}

    def _module_classes(self) -> set[str]:
        """Qualnames of the module's ``nn.Module`` subclasses (directly or through its own classes)."""
        found: set[str] = set()
        changed = True
        while changed:
            changed = False
            for qualname, bases in self.index.class_bases.items():
                if qualname not in found and bases & (_MODULE_BASES | found):
                    found.add(qualname)
                    changed = True
        return found

    def method(self, class_qualname: str, name: str) -> Function | None:
        """``name`` defined in the class or in one of its bases of this module."""
        seen: set[str] = set()
        todo = [class_qualname]
        while todo:
            current = todo.pop(0)
            if current in seen:
                continue
            seen.add(current)
            function = self.by_qualname.get(f"{current}.{name}")
            if function is not None:
                return function
            todo += [b for b in self.index.class_bases.get(current, ()) if b in self.index.classes]
        return None

    def _instance_class(self, expression: cst.BaseExpression) -> str | None:
        """The module class ``expression`` is an instance of: ``M(...)`` or a name assigned one."""
        if isinstance(expression, cst.Call):
            classes = self.names(expression.func) & self.modules
            return next(iter(classes), None)
        if isinstance(expression, cst.Name):
            scope = self.scopes.get(expression)
            for assignment in scope[expression.value] if scope is not None else ():
                statement = getattr(assignment, "node", None)
                parent = self.parents.get(statement)
                while parent is not None and not isinstance(parent, (cst.Assign, cst.AnnAssign)):
                    parent = self.parents.get(parent)
                if parent is not None and parent.value is not None:
                    found = self._instance_class(parent.value)
                    if found:
                        return found
        return None

    def compiled(self, all_functions: bool) -> list[Function]:
        """The functions compiled in this module (with ``all_functions``, every function but the
        ones nobody compiles: ``__init__``, which builds modules, and ``example_inputs``, which
        makes the inputs)."""
        if all_functions:
            return [f for f in self.index.functions.values() if f.node.name.value not in _NEVER_COMPILED]
        roots = [f for f in self.index.functions.values() if COMPILE in f.decorators]
        compiled_values = [call.args[0].value for call in self.index.compile_calls]
        compiled_values += [call.func.value for call in self.index.method_compiles]
        for value in compiled_values:
            if isinstance(value, cst.Name):
                roots += [self.by_qualname[q] for q in self.names(value) if q in self.by_qualname]
            cls = self._instance_class(value)
            forward = cls and self.method(cls, "forward")
            if forward:
                roots.append(forward)
        return list({id(r.node): r for r in roots}.values())

    def callees(self, function: Function) -> Iterator[tuple[Function, cst.Call]]:
        """The module's functions ``function`` calls by name, and methods of its class via ``self``."""
        for call in findall(function.node.body, cst.Call):
            target = None
            if isinstance(call.func, cst.Name):
                target = next((self.by_qualname[q] for q in self.names(call.func) if q in self.by_qualname), None)
            elif (
                function.owner is not None
                and isinstance(call.func, cst.Attribute)
                and isinstance(call.func.value, cst.Name)
                and call.func.value.value == "self"
            ):
                owner = next(q for q, c in self.index.classes.items() if c is function.owner)
                target = self.method(owner, call.func.attr.value)
            if target is not None:
                yield target, call

    def reachable(self, roots: list[Function]) -> list[tuple[Function, tuple[tuple[Function, cst.Call], ...]]]:
        """Every function dynamo traces from ``roots``, with the calls that lead there (first path)."""
        paths: dict[int, tuple[Function, tuple]] = {id(r.node): (r, ()) for r in roots}
        todo = list(roots)
        while todo:
            function = todo.pop(0)
            path = paths[id(function.node)][1]
            for callee, call in self.callees(function):
                if id(callee.node) in paths or callee.decorators & (DISABLE | OPAQUE | {COMPILE}):
                    continue
                paths[id(callee.node)] = (callee, (*path, (function, call)))
                todo.append(callee)
        return list(paths.values())


def findall(node: cst.CSTNode, kind: type) -> list:
    found = []

    class Collect(cst.CSTVisitor):
        def on_visit(self, n: cst.CSTNode) -> bool:
            if isinstance(n, kind):
                found.append(n)
            return not isinstance(n, cst.ClassDef)

    node.visit(Collect())
    return found
