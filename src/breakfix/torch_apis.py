"""Which of the torch APIs that codemods write the installed torch has.

A codemod declares the APIs its rewrite calls (``BreakfixCodemod.REQUIRES``); one whose APIs are
missing is not offered. Availability is looked up on the installed torch itself (the attribute
exists), never inferred from its version number: private APIs move between releases in both
directions. Imports torch only when asked about an API.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable

# The oldest release measured to have each API that a supported torch lacks (docs/compatibility.md,
# benchmarks/results/torch-matrix.md): only what the report says to a user who lacks it.
ADDED_IN: dict[str, str] = {
    "torch._higher_order_ops.print": "2.11",  # absent from 2.9.1, present in 2.11.0 (2.10 not measured)
}


def torch_version() -> str:
    """The installed torch's version, read from its metadata (torch is not imported)."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def has_api(name: str) -> bool:
    """Whether the dotted ``name`` (``torch._higher_order_ops.print``) resolves on the installed
    torch: attribute by attribute, importing a submodule where an attribute is not set yet."""
    parts = name.split(".")
    try:
        value = importlib.import_module(parts[0])
    except ImportError:
        return False
    for index, part in enumerate(parts[1:], start=2):
        try:
            value = getattr(value, part)
        except AttributeError:
            try:
                value = importlib.import_module(".".join(parts[:index]))
            except ImportError:
                return False
    return True


def missing_apis(names: Iterable[str]) -> tuple[str, ...]:
    """The ``names`` the installed torch lacks, sorted."""
    return tuple(sorted(name for name in set(names) if not has_api(name)))


def needs(missing: Iterable[str]) -> str:
    """The missing APIs with the release that brought each, e.g. "torch._higher_order_ops.print
    (torch >= 2.12)"."""
    return ", ".join(f"{name} (torch >= {ADDED_IN[name]})" if name in ADDED_IN else name for name in sorted(missing))


def unavailable(code: str, missing: Iterable[str], version: str) -> str:
    """Why a codemod is not offered, e.g. "BF501 needs torch._higher_order_ops.print (torch >= 2.12);
    you have 2.11.0"."""
    return f"{code} needs {needs(missing)}; you have {version}"
