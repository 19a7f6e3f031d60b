#!/usr/bin/env bash
# Set up a local virtual environment and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
.venv/bin/python -m pytest "$@"
