"""Parent side of the worker protocol: zygote processes, one forked worker per job, the timeout.

Starting a worker costs about 2.5 s, nearly all of it ``import torch`` and ``torch._dynamo``. A
*zygote* (``python -m breakfix.worker --zygote``) pays that once: it imports torch and nothing of
the user's, then forks one child per job. Each child is a fresh process from the user code's point
of view (no user module was ever imported before the fork), leads its own process group (so a
timeout kills everything the target started), and runs ``breakfix.worker.zygote.main`` on a request file
exactly as a freshly started worker would.

There are two zygotes per parent process, one per role, shared by every root (a child moves to
its job's root and puts it first on ``sys.path``): the reference run is recorded by a ``locate`` child
and compared by ``check`` children, and children of one zygote share its ``str`` hash seed. With
separate interpreters, code whose output depends on hash order still differs between the
reference and the check, as it did with one fresh process per job. Both start at once, so the
check zygote imports torch while the reference is being recorded.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from breakfix.errors import TargetError, WorkerCrashed, WorkerTimeout
from breakfix.project import PACKAGE_DIR, is_project_file
from breakfix.worker.protocol import Mode, Result, WorkerRequest

ROLES = (Mode.LOCATE, Mode.CHECK)  # repeat jobs, rare, get a zygote of their own when asked
_KILLED_GRACE = 30.0  # seconds to wait for a killed child to be reaped before giving up on it
_CLOSE_GRACE = 5.0  # seconds a zygote gets to kill its children and exit once its input ends


class _Job:
    def __init__(self) -> None:
        self.pid: int | None = None
        self.returncode: int | None = None
        self.done = threading.Event()


class _Zygote:
    """One zygote process and the jobs it is running; safe to use from several threads."""

    def __init__(self) -> None:
        self._stderr = tempfile.TemporaryFile()
        # PYTHONHASHSEED is left alone: each zygote hashes strings differently, as the user's own runs
        # do, so a target whose results depend on set order never matches its reference.
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "breakfix.worker", "--zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            # Started next to the breakfix package, so the sys.path entry ``-m`` adds is one that is
            # already there: nothing of a project's can shadow what the zygote imports.
            start_new_session=True,
            env=env,
            cwd=PACKAGE_DIR.parent,
        )
        self._lock = threading.Lock()
        self._jobs: dict[int, _Job] = {}
        self._next_id = 0
        self._reader = threading.Thread(target=self._read_events, daemon=True)
        self._reader.start()

    def _read_events(self) -> None:
        for line in self.process.stdout:
            event = json.loads(line)
            with self._lock:
                job = self._jobs.get(event["id"])
            if job is None:
                continue
            if "pid" in event:
                job.pid = event["pid"]
            else:
                job.returncode = event["returncode"]
                job.done.set()
        with self._lock:  # the zygote is gone: every job it was running is gone with it
            for job in self._jobs.values():
                job.done.set()

    def run(self, job_dir: Path, timeout: float) -> int | None:
        """Run the request in ``job_dir``; its exit code, or None when the zygote died.

        Raises WorkerTimeout after killing the child's process group."""
        job = _Job()
        with self._lock:
            job_id, self._next_id = self._next_id, self._next_id + 1
            self._jobs[job_id] = job
            try:
                self.process.stdin.write((json.dumps({"id": job_id, "dir": str(job_dir)}) + "\n").encode())
                self.process.stdin.flush()
            except (BrokenPipeError, ValueError):
                job.done.set()
        try:
            if not job.done.wait(timeout):
                if job.pid is not None:
                    _kill_group(job.pid)
                job.done.wait(_KILLED_GRACE)
                raise WorkerTimeout(f"the target did not finish within --timeout {timeout:g}s")
            return job.returncode
        finally:
            # Also on Ctrl-C: the child leads its own session, so the terminal's SIGINT missed it.
            if not job.done.is_set() and job.pid is not None:
                _kill_group(job.pid)
            with self._lock:
                del self._jobs[job_id]

    def last_error_line(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exit code {self.process.poll()}"

    def end_input(self) -> None:
        """Ask the zygote to end: at the end of its input it kills every child still running."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()

    def close(self) -> None:
        """End the zygote. One still importing torch is not waited for: it has no child yet."""
        self.end_input()
        try:
            self.process.wait(_CLOSE_GRACE)
        except subprocess.TimeoutExpired:
            _kill_group(self.process.pid)
            self.process.wait()
        self._reader.join(_KILLED_GRACE)
        self._stderr.close()


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


_zygotes: dict[Mode, _Zygote] = {}
_zygotes_lock = threading.Lock()


def start() -> None:
    """Start the zygotes now, so they import torch while the caller does other work."""
    for role in ROLES:
        _zygote(role)


def _zygote(role: Mode) -> _Zygote:
    with _zygotes_lock:
        zygote = _zygotes.get(role)
        if zygote is None or zygote.process.poll() is not None:
            zygote = _zygotes[role] = _Zygote()
        return zygote


@atexit.register
def shutdown() -> None:
    """End every zygote (and so every worker) this process started."""
    with _zygotes_lock:
        zygotes = list(_zygotes.values())
        _zygotes.clear()
    for zygote in zygotes:  # all at once: each kills its own children
        zygote.end_input()
    for zygote in zygotes:
        zygote.close()


def run_worker(request: WorkerRequest[Result], timeout: float) -> Result:
    """Run one worker job on ``request``; return its response or raise a BreakfixError."""
    zygote = _zygote(request.mode)
    with tempfile.TemporaryDirectory(prefix="breakfix-worker-") as tmp:
        job_dir = Path(tmp)
        Path(job_dir, "request.json").write_text(json.dumps(request.to_json()))
        returncode = zygote.run(job_dir, timeout)
        response_path = Path(job_dir, "response.json")
        if not response_path.exists():
            if returncode is None:
                raise WorkerCrashed(f"the worker zygote died: {zygote.last_error_line()}")
            raise WorkerCrashed(_crash_message(returncode, _tail(Path(job_dir, "stderr")), request.root))
        response = json.loads(response_path.read_text())
    if "error" in response:
        raise TargetError(response["error"])
    return request.response.from_json(response["result"])


def _tail(path: Path, size: int = 16384) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - size))
        return f.read().decode(errors="replace")


_FAULT_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<name>\S+)', re.M)


def _crash_message(returncode: int, stderr: str, root: str) -> str:
    """One line for a worker that died without answering: by which signal or exit code, and, from
    the Python stack faulthandler prints on a fatal signal, the innermost frame of the user's code."""
    # faulthandler lists the most recent call first; breakfix's own frames are not the user's.
    user = next((m for m in _FAULT_FRAME.finditer(stderr) if is_project_file(m["file"], root)), None)
    where = f" (in {user['name']} at {user['file']}:{user['line']})" if user else ""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the target crashed the worker process: {name}{where}"
    return f"the worker process exited with code {returncode} before answering: the target ended it (os._exit?){where}"
