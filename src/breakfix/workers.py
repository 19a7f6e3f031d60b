"""Parent side of the worker protocol: start ``python -m breakfix._worker``, enforce the timeout."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from breakfix.errors import TargetError, WorkerCrashed, WorkerTimeout


def run_worker(request: dict, timeout: float) -> dict:
    """Run one worker process on ``request``; return its result or raise a BreakfixError."""
    with tempfile.TemporaryDirectory(prefix="breakfix-worker-") as tmp:
        request_path, response_path = Path(tmp, "request.json"), Path(tmp, "response.json")
        stderr_path = Path(tmp, "stderr.txt")
        request_path.write_text(json.dumps(request))
        # PYTHONHASHSEED is left alone: each worker hashes strings differently, as the user's own runs
        # do, so a target whose results depend on set order never matches and is never rewritten.
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        # The worker leads its own process group so a timeout kills everything the target started.
        # What the target prints outside its captured calls is not the user's terminal's business:
        # stdout is dropped and stderr goes to a file, so megabytes of output cost no memory and
        # cannot block the worker on a full pipe; stdin is closed (input() gets EOF).
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "breakfix._worker", str(request_path), str(response_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                start_new_session=True, env=env, cwd=request["root"],
            )
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise WorkerTimeout(f"the target did not finish within --timeout {timeout:g}s") from None
            finally:
                # Also on Ctrl-C: the worker is in its own session, so the terminal's SIGINT missed it.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if not response_path.exists():
            raise WorkerCrashed(_crash_message(process.returncode, _tail(stderr_path), request["root"]))
        response = json.loads(response_path.read_text())
    if "error" in response:
        raise TargetError(response["error"])
    return response["result"]


def _tail(path: Path, size: int = 16384) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - size))
        return f.read().decode(errors="replace")


_FAULT_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<name>\S+)', re.M)


def _crash_message(returncode: int, stderr: str, root: str) -> str:
    """One line for a worker that died without answering: by which signal or exit code, and, from
    the Python stack faulthandler prints on a fatal signal, the innermost frame of the user's code."""
    # faulthandler lists the most recent call first; breakfix's own frames are not the user's.
    breakfix_dir = str(Path(__file__).resolve().parent)
    user = next((m for m in _FAULT_FRAME.finditer(stderr)
                 if m["file"].startswith(root + os.sep) and not m["file"].startswith(breakfix_dir)), None)
    where = f" (in {user['name']} at {user['file']}:{user['line']})" if user else ""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the target crashed the worker process: {name}{where}"
    return f"the worker process exited with code {returncode} before answering: the target ended it (os._exit?){where}"
