"""Reading sources exactly and writing verified rewrites atomically.

A file is read with the encoding its coding cookie or BOM declares and with its newlines kept, so
everything outside the rewritten lines round-trips byte for byte. All files of one fix are written
together: every new version is staged next to its file first, then all are swapped in with
``os.replace``. Ctrl-C (SIGINT) and SIGTERM are held back until the writing is over, so every file
is either the old or the new version and no staged file is left behind.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import signal
import stat
import tempfile
import threading
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


@contextlib.contextmanager
def _interrupts_deferred():
    """Hold SIGINT and SIGTERM back until the block is over, then deliver them.

    Python runs signal handlers in the main thread whichever thread the kernel picked, so the
    handlers are swapped rather than the calling thread's signal mask."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    deferred = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in deferred}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(received):
            signal.raise_signal(s)


def write_all(changes: list[FileChange]) -> None:
    staged: list[tuple[str, Path]] = []
    with _interrupts_deferred():
        try:
            for change in changes:
                staged.append((_stage(change), change.path))
            for temp, path in staged:
                os.replace(temp, path)
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


def _stage(change: FileChange) -> str:
    """Write the new version next to its file, with the file's mode; return the staged path."""
    text, encoding = _decode(change.path.read_bytes())
    if text != change.before:
        raise FileChangedOnDisk(f"{change.path} changed on disk since it was analysed; not written")
    # os.access alone says yes to root; a file without write bits is read-only to its owner.
    if not os.access(change.path, os.W_OK) or not change.path.stat().st_mode & stat.S_IWUSR:
        raise WriteRefused(f"{change.path} is read-only; not written")
    try:
        data = change.after.encode(encoding)
    except UnicodeEncodeError as e:
        raise WriteRefused(
            f"{change.path}: the rewrite cannot be written in the file's encoding ({encoding}: {e.reason}); not written"
        ) from e
    fd, temp = tempfile.mkstemp(dir=change.path.parent, prefix=f".{change.path.name}.", suffix=".breakfix")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(temp, stat.S_IMODE(change.path.stat().st_mode))
    except OSError:
        os.unlink(temp)
        raise
    return temp
