"""Check a target or inputs spec in the parent, before any worker starts: a file that is missing
or a qualname that is certainly not defined is reported at once (with "did you mean"), not after a
worker has imported torch. Reads the source with ``ast`` and runs nothing: a name the file may
define at run time (``from x import *``, ``globals()``, a module ``__getattr__``, an attribute a
class inherits from another module) is left to the worker."""

from __future__ import annotations

import ast
import difflib
import os
from pathlib import Path

from breakfix.batch import TargetJob
from breakfix.errors import TargetError
from breakfix.types import TargetSpec


def check_job(job: TargetJob, root: Path) -> None:
    """Check a job's target and its ``--inputs`` spec."""
    check_spec(job.target, job.base, root)
    if job.inputs:
        check_spec(job.inputs, job.base, root, "--inputs")


def check_spec(spec: str, base: str, root: Path, option: str = "") -> None:
    """Raise TargetError when ``spec`` (as typed; file specs relative to ``base``) certainly names
    nothing. ``option`` (e.g. ``"--inputs"``) prefixes the message: the user sees which spec failed."""
    parsed = TargetSpec.parse(spec)
    prefix = f"{option} {spec}: " if option else ""
    path = _file_of(parsed, base, root)
    if path is None:
        if parsed.is_file:
            raise TargetError(f"{prefix}file {parsed.location!r} not found")
        return  # an installed module, or one only the worker's sys.path finds
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as e:
        raise TargetError(f"{prefix}syntax error in {os.path.abspath(path)}:{e.lineno}: {e.msg}") from None
    except (OSError, ValueError):
        return  # unreadable or odd bytes: the worker reports it as it imports the file
    body, where = tree.body, parsed.location
    for depth, part in enumerate(parsed.qualname.split(".")):
        names = _bindings(body)
        if names is None:
            return
        if part not in names:
            close = difflib.get_close_matches(part, [n for n in names if not n.startswith("__")], n=1)
            hint = f" (did you mean {'.'.join([*parsed.qualname.split('.')[:depth], close[0]])!r}?)" if close else ""
            raise TargetError(f"{prefix}{parsed.qualname!r} not found in {where!r}{hint}")
        node = names[part]
        if not isinstance(node, ast.ClassDef) or node.bases or node.keywords or node.decorator_list:
            return  # a function's attribute, an instance, or what a class inherits: the worker knows
        body, where = node.body, f"{where}:{'.'.join(parsed.qualname.split('.')[: depth + 1])}"


def _file_of(spec: TargetSpec, base: str, root: Path) -> Path | None:
    if spec.is_file:
        path = Path(base, spec.location)
        return path if path.is_file() else None
    relative = Path(*spec.location.split("."))
    for folder in (root, Path(base)):
        for candidate in (folder / relative.with_suffix(".py"), folder / relative / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _bindings(body: list[ast.stmt]) -> dict[str, ast.AST] | None:
    """Names a module or class body binds (the node that binds each last), or None when it may
    bind names no reading of the source can see."""
    names: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names):
            return None
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "__getattr__":
            return None
        for child in ast.walk(node):
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Name)
                and child.func.id in ("globals", "setattr", "exec", "vars", "locals")
            ):
                return None
        for bound, binder in _bound_by(node):
            names[bound] = binder
    return names


def _bound_by(node: ast.stmt) -> list[tuple[str, ast.AST]]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [(node.name, node)]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [((alias.asname or alias.name).split(".")[0], node) for alias in node.names]
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [item.optional_vars for item in node.items if item.optional_vars]
            if isinstance(node, (ast.With, ast.AsyncWith))
            else [node.target]
        )
        found = [(n.id, node) for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        if isinstance(node, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
            found += [b for stmt in node.body + getattr(node, "orelse", []) for b in _bound_by(stmt)]
        return found
    if isinstance(node, (ast.If, ast.While)):
        return [b for stmt in node.body + node.orelse for b in _bound_by(stmt)]
    if isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
        blocks = node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
        return [b for stmt in blocks for b in _bound_by(stmt)]
    if isinstance(node, ast.Match):
        return [b for case in node.cases for stmt in case.body for b in _bound_by(stmt)]
    return [
        (n.target.id, node) for n in ast.walk(node) if isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name)
    ]
