"""TOML read one way on every supported Python: tomllib from 3.11, its backport tomli on 3.10
(a dependency there, pyproject.toml)."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

__all__ = ["tomllib"]
