# Shared by the scripts: create .venv and install breakfix with its test extras.
# torch 2.13.0 (what CI runs; pyproject.toml declares torch>=2.13.0) is installed first, on its own, so
# that pip takes the local CPU build and never resolves a different (multi-GB CUDA) torch for breakfix.
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
