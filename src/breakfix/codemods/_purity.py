"""A conservative static purity check for helper functions.

The escape hatches are only sound for pure code: ``nonstrict_trace`` runs its body at trace time
only (under aot_eager and inductor), and a custom op's side effects are invisible to the compiler.
The verifier catches a changed stdout or a missing file, but not a lost write to a global, so a
helper must also pass this check. It answers "no side effect is visible in the source", looking
into helpers defined in the same module and, given a reader of project files, in the project
modules it imports them from; library calls are assumed pure unless denylisted.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst
import libcst.matchers as m
from libcst.helpers import get_full_name_for_node

from breakfix.codemods._base import module_files

# Calls whose whole purpose is a side effect or host state.
IMPURE_CALLS = frozenset(
    {
        "print",
        "open",
        "input",
        "exec",
        "eval",
        "setattr",
        "delattr",
        "breakpoint",
        "torch.save",
        "torch.manual_seed",
        "torch.seed",
        "numpy.save",
        "np.save",
        "np.savez",
        "warnings.warn",
        "time.time",
        "time.perf_counter",
        "time.sleep",
        "random.random",
        "random.seed",
    }
)
IMPURE_PREFIXES = (
    "logging.",
    "logger.",
    "log.",
    "os.",
    "sys.",
    "shutil.",
    "subprocess.",
    "tqdm",
    "random.",
    "np.random.",
    "numpy.random.",
    "json.dump",
    "pickle.dump",
    "time.",
)
# Methods that mutate their receiver; an in-place tensor method ends with one underscore.
MUTATING_METHODS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "pop",
        "remove",
        "clear",
        "update",
        "setdefault",
        "add",
        "discard",
        "sort",
        "reverse",
        "register_buffer",
        "copy_",
    }
)


# Methods that do I/O whatever their receiver is (a local PIL image's .save() still writes a file).
IO_METHODS = frozenset({"save", "write", "writelines", "dump", "show", "flush", "savefig", "tofile", "to_csv"})


def _mutates(method: str) -> bool:
    return method in MUTATING_METHODS or (method.endswith("_") and not method.endswith("__"))


class _ImpurityFinder(cst.CSTVisitor):
    def __init__(self, local_names: set[str]) -> None:
        self.local_names = local_names
        self.reasons: list[str] = []
        self.called_names: set[str] = set()

    def visit_Global(self, node: cst.Global) -> None:
        self.reasons.append("declares a global")

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        self.reasons.append("declares a nonlocal")

    def _check_target(self, target: cst.BaseExpression) -> None:
        if isinstance(target, (cst.Attribute, cst.Subscript)):
            base = target.value
            while isinstance(base, (cst.Attribute, cst.Subscript)):
                base = base.value
            if not (isinstance(base, cst.Name) and base.value in self.local_names):
                self.reasons.append(f"assigns to {get_full_name_for_node(target) or 'a non-local object'}")
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._check_target(element.value)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._check_target(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._check_target(node.target)
        if isinstance(node.target, cst.Name) and node.target.value not in self.local_names:
            self.reasons.append(f"updates {node.target.value} in place")

    def visit_Call(self, node: cst.Call) -> None:
        name = get_full_name_for_node(node.func) or ""
        if name in IMPURE_CALLS or name.startswith(IMPURE_PREFIXES):
            self.reasons.append(f"calls {name}")
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in IO_METHODS:
            self.reasons.append(f"calls {name}, which does I/O")
        elif isinstance(node.func, cst.Attribute) and _mutates(node.func.attr.value):
            receiver = node.func.value
            if not (isinstance(receiver, cst.Name) and receiver.value in self.local_names):
                self.reasons.append(f"calls {name}, which mutates its receiver")
        if isinstance(node.func, cst.Name):
            self.called_names.add(node.func.value)

    def visit_Yield(self, node: cst.Yield) -> None:
        self.reasons.append("is a generator")


def _assigned_names(function: cst.FunctionDef) -> set[str]:
    """Names created inside the function (not its parameters: mutating those is a side effect)."""
    names: set[str] = set()
    binders = m.AssignTarget() | m.AnnAssign() | m.For() | m.AsName() | m.CompFor()
    for node in m.findall(function.body, binders):
        target = node.name if isinstance(node, cst.AsName) else node.target
        names |= _bound_names(target)
    return names


def _bound_names(target: cst.BaseExpression) -> set[str]:
    if isinstance(target, cst.Name):
        return {target.value}
    if isinstance(target, (cst.Tuple, cst.List)):
        return set().union(*(_bound_names(e.value) for e in target.elements))
    return set()


def module_functions(module: cst.Module) -> dict[str, cst.FunctionDef]:
    return {f.name.value: f for f in module.body if isinstance(f, cst.FunctionDef)}


def impurity(
    function: cst.FunctionDef,
    module: cst.Module,
    path: str = "",
    read: Callable[[str], cst.Module | None] | None = None,
    _seen: frozenset[tuple[str, str]] = frozenset(),
) -> list[str]:
    """Why ``function`` is not pure, or ``[]``: it, and the helpers it calls, show no side effect.
    The helpers are those defined in the same module and, given the module's ``path`` and a
    ``read`` of project files, those it imports from project modules; a project function whose
    definition cannot be read is a reason (its effects are unknown)."""
    finder = _ImpurityFinder(_assigned_names(function))
    function.body.visit(finder)
    reasons = [f"{function.name.value} {r}" for r in finder.reasons]
    helpers = module_functions(module)
    seen = _seen | {(path, function.name.value)}
    imported = _project_imports(path, module) if read is not None and path else {}
    for name in sorted(finder.called_names - {function.name.value}):
        if name in helpers:
            if (path, name) not in seen:
                reasons += impurity(helpers[name], module, path, read, seen)
        elif name in imported and read is not None:
            files, original = imported[name]
            other = read(files[0])
            definition = None if other is None else module_functions(other).get(original)
            if other is None or definition is None:
                reasons.append(f"{function.name.value} calls {name}, a function of {files[0]} whose code is not read")
            elif (files[0], original) not in seen:
                reasons += impurity(definition, other, files[0], read, seen)
    return reasons


def _project_imports(path: str, module: cst.Module) -> dict[str, tuple[list[str], str]]:
    """The names ``module`` (at ``path``) imports from project modules: the files each may come
    from, nearest first, and its name there."""
    imported: dict[str, tuple[list[str], str]] = {}
    for node in m.findall(module, m.ImportFrom()):
        node = cst.ensure_type(node, cst.ImportFrom)
        if isinstance(node.names, cst.ImportStar):
            continue
        files = module_files(path, node)
        if not files:
            continue  # a library
        for alias in node.names:
            original = get_full_name_for_node(alias.name) or ""
            local = get_full_name_for_node(alias.asname.name) if alias.asname else original
            imported[local or original] = (files, original)
    return imported
