"""Rewrite pyproject.toml's mypy exceptions: each module of src/breakfix that does not pass
``mypy --strict`` yet, with the error codes it fails (one ``[[tool.mypy.overrides]]`` per module).

    python scripts/mypy_exceptions.py

mypy runs with the exceptions block left out, so the list is exactly what fails today: a module
leaves it once its errors are fixed and this is run again. scripts/lint.sh runs it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PYPROJECT = PROJECT / "pyproject.toml"
BEGIN = "# BEGIN mypy exceptions"
END = "# END mypy exceptions"
ERROR = re.compile(r"^(?P<path>src/[^:]+\.py):\d+: error: .*\[(?P<code>[a-z-]+)\]$")


def module_name(path: str) -> str:
    parts = Path(path).with_suffix("").parts[1:]  # without src/
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def failing_codes(config: str) -> dict[str, set[str]]:
    """Module -> error codes, from a mypy run with ``config`` as pyproject.toml."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", dir=PROJECT, delete=False) as f:
        f.write(config)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file", f.name, "--no-error-summary"],
            cwd=PROJECT,
            capture_output=True,
            text=True,
        )
    finally:
        Path(f.name).unlink()
    if run.returncode not in (0, 1):
        sys.exit(f"mypy failed to run:\n{run.stdout}{run.stderr}")
    codes: dict[str, set[str]] = defaultdict(set)
    for line in run.stdout.splitlines():
        if match := ERROR.match(line):
            codes[module_name(match["path"])].add(match["code"])
    return codes


def block(codes: dict[str, set[str]]) -> str:
    lines = []
    for module in sorted(codes):
        listed = ", ".join(f'"{code}"' for code in sorted(codes[module]))
        lines += ["[[tool.mypy.overrides]]", f'module = "{module}"', f"disable_error_code = [{listed}]", ""]
    return "\n".join(lines)


def main() -> None:
    text = PYPROJECT.read_text(encoding="utf-8")
    head, found, rest = text.partition(BEGIN)
    if not found:
        sys.exit(f"no {BEGIN!r} line in {PYPROJECT}")
    comment, _, rest = rest.partition("\n")
    intro = [line for line in rest.partition(END)[0].splitlines() if line.startswith("#")]
    tail = rest.partition(END)[2]
    codes = failing_codes(head + tail)
    body = block(codes)
    PYPROJECT.write_text(head + BEGIN + comment + "\n" + "\n".join(intro) + "\n" + body + END + tail, encoding="utf-8")
    print(f"mypy exceptions: {len(codes)} modules, {sum(map(len, codes.values()))} module/code pairs")


if __name__ == "__main__":
    main()
