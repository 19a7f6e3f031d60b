"""Which files belong to the project: the one test both the engine and the worker apply."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent  # breakfix's own code is never the user's
LIBRARY_DIRS = frozenset({"site-packages", "dist-packages"})  # installed code, even inside the root


def is_project_file(path: str, root: str | Path) -> bool:
    """True when ``path`` (resolved) lies under ``root`` and is neither installed code nor breakfix's."""
    if not os.path.isabs(path):
        return False  # "<string>", "<frozen ...>": code that no file holds
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(root) or real.is_relative_to(PACKAGE_DIR):
        return False
    return not LIBRARY_DIRS.intersection(real.parts)
