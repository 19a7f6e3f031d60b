# Shared by the scripts: create .venv and install breakfix with its test extras.
# torch is pinned to 2.13.0 (pyproject.toml) and installed first, on its own, so that pip takes the
# CPU build and never resolves a different (multi-GB CUDA) torch for another package.
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
