"""Loading user code in the worker: the overlay import hook and target resolution.

Rewritten sources are served from an in-memory overlay by an import hook, so no file is written
before verification and no stale bytecode can be loaded.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import io
import os
import sys
import tokenize
from pathlib import Path
from typing import Any, Callable

from breakfix.worker.protocol import Request
from breakfix.worker.sandbox import UserCodeError, last_user_frame, one_line
from breakfix.worker.torch_compat import as_written


class _OverlayLoader(importlib.machinery.SourceFileLoader):
    """Loads a module's source from the overlay and never reads or writes its bytecode."""

    def __init__(self, fullname: str, path: str, source: str) -> None:
        super().__init__(fullname, path)
        self._source = source

    def get_data(self, path: str) -> bytes:
        if os.path.abspath(path) == os.path.abspath(self.path):
            # Python decodes these bytes with the encoding the source declares (a latin-1 coding
            # cookie): encode in that one, or non-ASCII text would be verified as mojibake.
            declared, _ = tokenize.detect_encoding(io.BytesIO(self._source.encode("utf-8")).readline)
            return self._source.encode(declared)
        raise OSError(path)  # the .pyc: refuse, so the overlay is compiled from source

    def path_stats(self, path: str) -> dict:
        raise OSError(path)

    def set_data(self, *args: Any, **kwargs: Any) -> None:
        return None


class OverlayFinder(importlib.abc.MetaPathFinder):
    def __init__(self, overlay: dict[str, str]) -> None:
        self.overlay = {os.path.realpath(p): s for p, s in overlay.items()}

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin:
            return None
        source = self.overlay.get(os.path.realpath(spec.origin))
        if source is None:
            return None
        loader = _OverlayLoader(fullname, spec.origin, source)
        return importlib.util.spec_from_file_location(
            fullname,
            spec.origin,
            loader=loader,
            submodule_search_locations=spec.submodule_search_locations,
        )


def _module_name_for(path: Path, root: Path) -> str:
    """Dotted name of a file under the root (``pkg/mod.py`` -> ``pkg.mod``), else its stem."""
    try:
        rel = path.with_suffix("").relative_to(root)
    except ValueError:
        return path.stem
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_location(location: str, root: Path, overlay: dict[str, str]) -> Any:
    is_file = location.endswith(".py") or os.sep in location or "/" in location
    if not is_file:
        try:
            return importlib.import_module(location)
        except ModuleNotFoundError as e:
            if e.name and location.startswith(e.name):
                raise UserCodeError(f"module {location!r} not found under {root}") from e
            spec = importlib.util.find_spec(location.rpartition(".")[0]) if "." in location else None
            folder = Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else root
            raise _missing_sibling(e, folder, root) or e
    path = Path(location)
    path = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not path.is_file():
        raise UserCodeError(f"file {location!r} not found")
    name = _module_name_for(path, root)
    if name in sys.modules and os.path.realpath(getattr(sys.modules[name], "__file__", "") or "") == str(path):
        return sys.modules[name]
    if name == path.stem:
        sys.path.insert(0, str(path.parent))
    source = overlay.get(str(path))
    loader = _OverlayLoader(name, str(path), source) if source is not None else None
    spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as e:
        raise _missing_sibling(e, path.parent, root) or e
    return module


def _missing_sibling(e: ModuleNotFoundError, folder: Path, root: Path) -> UserCodeError | None:
    """The error for a module that imports a sibling by its top-level name (``import utils`` next
    to ``sub/model.py``): ``python sub/model.py`` finds it, because Python puts the script's folder
    on sys.path; breakfix imports the target as ``sub.model`` from the root, so say what to do."""
    missing = (e.name or "").partition(".")[0]
    if (
        not missing
        or str(folder) in sys.path
        or not ((folder / f"{missing}.py").is_file() or (folder / missing).is_dir())
    ):
        return None
    where = os.path.relpath(folder, root)
    return UserCodeError(
        f"importing the target failed: {one_line(e)}{last_user_frame(e)}; {missing!r} is in {where}/, "
        f"beside the target, which Python only finds when {where}/ is the script's folder: run "
        f"breakfix from there (cd {where}) or pass --root {where}"
    )


def resolve(spec: str, root: Path, overlay: dict[str, str]) -> tuple[Any, Callable, str]:
    location, _, qualname = spec.rpartition(":")
    module = _import_location(location, root, overlay)
    obj: Any = module
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise UserCodeError(f"{qualname!r} not found in {location!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserCodeError(f"{spec!r} is not callable")
    return module, as_written(obj), os.path.realpath(module.__file__)


def example_inputs(request: Request, module: Any, root: Path) -> Callable[[], tuple]:
    if request.inputs:
        try:
            _, inputs_fn, _ = resolve(request.inputs, root, request.overlay)
        except UserCodeError as e:
            raise UserCodeError(f"--inputs: {e}") from e
    else:
        inputs_fn = getattr(module, "example_inputs", None) or (lambda: ())

    def make() -> tuple:
        try:
            args = inputs_fn()
        except Exception as e:
            raise UserCodeError(f"inputs callable raised {one_line(e)}") from e
        if not isinstance(args, tuple):
            raise UserCodeError(f"inputs callable must return a tuple of arguments, got {type(args).__name__}")
        return args

    return make
