"""Pure unified diffs: colour is the renderer's business."""

from __future__ import annotations

import difflib
import os


def unified_diff(path: str, before: str, after: str, root: str) -> str:
    name = os.path.relpath(path, root)
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), fromfile=f"a/{name}", tofile=f"b/{name}"
        )
    )
