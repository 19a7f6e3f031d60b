#!/usr/bin/env bash
# Run once on main after the branches of issue 17's round are merged, then commit the result:
# ruff's safe fixes (import order, unused noqa codes), the formatter over the whole tree, the mypy
# exceptions list as of the merge, and the docs pages regenerated; then the lint steps of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
.venv/bin/ruff check --fix .          # only fixes ruff marks safe: I001 and RUF100
.venv/bin/ruff format .
.venv/bin/python scripts/mypy_exceptions.py
.venv/bin/python scripts/gen_docs.py  # codemod docstrings may have been reformatted
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
echo 'lint.sh: clean. Commit: git add -A && git commit -m "ruff format and safe fixes over the tree; mypy exceptions as of the merge"'
