#!/usr/bin/env bash
# Set up a local virtual environment and show breakfix's proposed fix for a bundled example.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
cd examples
echo "$ breakfix run crop.py:f   (a dry run: the diff is shown, nothing is written)"
# A dry run that proposes a fix exits 1, as `ruff --diff` does; only 2 (an error) fails the demo.
status=0
../.venv/bin/breakfix run crop.py:f || status=$?
test "$status" -le 1
