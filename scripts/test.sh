#!/usr/bin/env bash
# Set up a local virtual environment and run the whole test suite (what CI runs).
# `./scripts/test.sh --fast` runs the fast tier only: no torch worker tests, no fuzzer (tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
.venv/bin/python -m pytest "$@"
