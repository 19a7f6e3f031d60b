"""Reading sources exactly and writing verified rewrites atomically.

A file is read with the encoding its coding cookie or BOM declares and with its newlines kept, so
everything outside the rewritten lines round-trips byte for byte. All files of one fix are written
together: every new version is staged next to its file first, then all are swapped in with
``os.replace`` while SIGINT is blocked, so each file is either the old or the new version.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import signal
import stat
import tempfile
import tokenize
from pathlib import Path

from breakfix.errors import FileChangedOnDisk, WriteRefused
from breakfix.types import FileChange


def _decode(data: bytes) -> tuple[str, str]:
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding), encoding


def read_source(path: str | Path) -> str:
    try:
        return _decode(Path(path).read_bytes())[0]
    except (OSError, UnicodeDecodeError, SyntaxError) as e:
        raise WriteRefused(f"cannot read {path}: {e}") from e


def write_all(changes: list[FileChange]) -> None:
    staged: list[tuple[str, Path]] = []
    try:
        for change in changes:
            data = change.path.read_bytes()
            text, encoding = _decode(data)
            if text != change.before:
                raise FileChangedOnDisk(f"{change.path} changed on disk since it was analysed; not written")
            # os.access alone says yes to root; a file without write bits is read-only to its owner.
            if not os.access(change.path, os.W_OK) or not change.path.stat().st_mode & stat.S_IWUSR:
                raise WriteRefused(f"{change.path} is read-only; not written")
            fd, temp = tempfile.mkstemp(dir=change.path.parent, prefix=f".{change.path.name}.", suffix=".breakfix")
            staged.append((temp, change.path))
            with os.fdopen(fd, "wb") as f:
                f.write(change.after.encode(encoding))
            os.chmod(temp, stat.S_IMODE(change.path.stat().st_mode))
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            for temp, path in staged:
                os.replace(temp, path)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    except OSError as e:
        raise WriteRefused(f"cannot write {e.filename}: {e.strerror}") from e
    finally:
        for temp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
    for change in changes:
        # A same-size rewrite within the same second would otherwise load the old bytecode.
        with contextlib.suppress(OSError):
            os.unlink(importlib.util.cache_from_source(str(change.path)))
