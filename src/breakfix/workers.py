"""Parent side of the worker protocol: start ``python -m breakfix._worker``, enforce the timeout."""

from __future__ import annotations

import json
import os
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
        request_path.write_text(json.dumps(request))
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        # The worker leads its own process group so a timeout kills everything the target started.
        process = subprocess.Popen(
            [sys.executable, "-m", "breakfix._worker", str(request_path), str(response_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, env=env, cwd=request["root"],
        )
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise WorkerTimeout(f"the target did not finish within --timeout {timeout:g}s") from None
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if not response_path.exists():
            last = (stderr.decode(errors="replace").strip().splitlines() or [f"exit code {process.returncode}"])[-1]
            raise WorkerCrashed(f"the worker process died ({process.returncode}): {last}")
        response = json.loads(response_path.read_text())
    if "error" in response:
        raise TargetError(response["error"])
    return response["result"]
