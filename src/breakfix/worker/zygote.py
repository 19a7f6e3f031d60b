"""The worker process, child side: the zygote and the job each forked child runs.

``python -m breakfix.worker --zygote`` imports torch once and forks one child per job (driven by
``breakfix.worker.pool``); ``python -m breakfix.worker REQUEST.json RESPONSE.json`` runs one job in
a fresh process. A job reads its request (``protocol``), runs its mode (``modes``) and writes the
response; everything the user's code prints goes to captured buffers or to this process's own
stdout, never into the protocol.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import linecache
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from breakfix.worker import modes
from breakfix.worker.loader import OverlayFinder
from breakfix.worker.protocol import CheckRequest, CheckResult, request_from_json
from breakfix.worker.sandbox import UserCodeError, last_user_frame, one_line


def main(argv: list[str]) -> int:
    request_path, response_path = argv
    request = request_from_json(json.loads(Path(request_path).read_text()))
    root = Path(request.root).resolve()
    sys.path.insert(0, str(root))
    sys.meta_path.insert(0, OverlayFinder(request.overlay))
    for path, source in request.overlay.items():
        # Stack frames of rewritten files must show the rewritten lines, not the ones on disk.
        linecache.cache[os.path.realpath(path)] = (len(source), None, source.splitlines(True), path)
    sys.dont_write_bytecode = True
    faulthandler.enable()  # a segfault in the target prints its Python stack: the parent names the frame
    try:
        response: dict[str, Any] = {"result": modes.run(request, root).to_json()}
    except UserCodeError as e:
        response = {"error": str(e)}
    except SyntaxError as e:
        response = {"error": f"syntax error in {e.filename}:{e.lineno}: {e.msg}"}
    except SystemExit as e:
        response = {"error": f"the target's code called sys.exit({e.code!r}){last_user_frame(e)}"}
    except Exception as e:
        if isinstance(request, CheckRequest):
            response = {"result": CheckResult(ok=False, fullgraph=False, reason=one_line(e)).to_json()}
        else:
            response = {"error": f"importing or running the target failed: {one_line(e)}{last_user_frame(e)}"}
    Path(response_path).write_text(json.dumps(response, default=str))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown of torch's threads: it can take seconds


# --- the zygote --------------------------------------------------------------------------------


def _preload() -> None:
    """Import what every job needs and nothing of the user's. Importing starts no torch thread
    (the intra-op pool starts at the first parallel op), so forking afterwards is safe; OpenBLAS's
    pool, started by numpy, shuts down and restarts around fork by itself."""
    import torch
    import torch._dynamo
    import torch._dynamo.utils
    import torch._functorch.aot_autograd
    import torch.testing  # noqa: F401

    import breakfix.worker.facts  # noqa: F401

    _warm_up()


def _warm_up() -> None:
    """Explain and compile a function of ours once, so dynamo's and aot_eager's lazy imports and
    one-time setup are paid here, not in every job (about half a second each); then forget it.
    Only ``torch.ones``: the random generators are left as a fresh process has them, and no op is
    big enough to start torch's intra-op thread pool."""
    import torch

    from breakfix.worker import torch_compat

    def ours(x: Any) -> Any:
        y = x.sin()
        torch._dynamo.graph_break()
        return y.cos()

    torch._dynamo.explain(ours)(torch.ones(2))
    torch._dynamo.reset()
    torch.compile(lambda x: x.sin() + 1, fullgraph=True, backend="aot_eager")(torch.ones(2))
    torch._dynamo.reset()
    torch_compat.clear_counters()


def serve() -> None:
    """Zygote loop (``python -m breakfix.worker --zygote``), driven by ``breakfix.worker.pool``.

    Reads one JSON line per job from stdin (``{"id", "dir"}``: a folder holding request.json),
    forks a child that runs :func:`main` on it, and writes ``{"id", "pid"}`` when the child is
    started and ``{"id", "returncode"}`` when it has exited. No thread is ever started here: a
    SIGCHLD wake-up file descriptor lets one ``select`` wait for both. At end of input, every
    child still running is killed with its process group.
    """
    import select
    import signal

    events = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # a stray print during import must not corrupt the protocol
    _preload()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    running: dict[int, int] = {}  # pid -> job id
    pending = b""
    reading = True
    while reading or running:
        ready, _, _ = select.select([0, wake_read] if reading else [wake_read], [], [])
        if wake_read in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 512)
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                reading = False
                for pid in running:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                job = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _run_forked_job(job["dir"], devnull, (0, wake_read, wake_write, events.fileno()))
                running[pid] = job["id"]
                events.write(json.dumps({"id": job["id"], "pid": pid}) + "\n")
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            if pid in running:
                exited = {"id": running.pop(pid), "returncode": os.waitstatus_to_exitcode(status)}
                events.write(json.dumps(exited) + "\n")
    os._exit(0)  # skip interpreter teardown of torch: it can take seconds


def _run_forked_job(job_dir: str, devnull: int, zygote_fds: tuple[int, ...]) -> None:
    """In the forked child: become what ``python -m breakfix.worker REQUEST RESPONSE`` started in
    the root would be, then run the job. Never returns into the zygote's loop."""
    import signal

    try:
        os.setsid()  # its own process group: a timeout kills everything the target starts
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in zygote_fds:
            os.close(fd)
        # stdin closed (input() gets EOF); what the target prints outside its captured calls is
        # dropped, so megabytes of it cost nothing; stderr is kept for the parent's crash message.
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        err = os.open(os.path.join(job_dir, "stderr"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(err, 2)
        os.close(err)
        request_path, response_path = os.path.join(job_dir, "request.json"), os.path.join(job_dir, "response.json")
        root = json.loads(Path(request_path).read_text())["root"]
        os.chdir(root)
        sys.path[0] = root  # as ``python -m`` started in the root would have it
        sys.argv = [__file__, request_path, response_path]
        main([request_path, response_path])
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(1)
