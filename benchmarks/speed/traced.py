"""Run the breakfix CLI in this process and record when each worker job ran.

    python benchmarks/speed/traced.py SPANS.json run TARGET ...

Same as ``python -m breakfix run TARGET ...``; on exit, SPANS.json holds one entry per worker job:
its mode (locate or check) and its start and end in seconds since this process started.
"""

from __future__ import annotations

import atexit
import json
import sys
import time

START = time.monotonic()

from breakfix.worker import pool  # noqa: E402
from breakfix.worker.protocol import Request, Response  # noqa: E402

spans: list[dict] = []
_run_worker = pool.run_worker


def _timed_run_worker(request: Request, timeout: float) -> Response:
    started = time.monotonic()
    try:
        return _run_worker(request, timeout)
    finally:
        spans.append({"mode": request.mode.value, "start": started - START, "end": time.monotonic() - START})


# locator.py and verifier.py bind run_worker when the engine is imported, after this patch.
pool.run_worker = _timed_run_worker
SPANS_PATH = sys.argv[1]
atexit.register(lambda: open(SPANS_PATH, "w").write(json.dumps({"spans": spans, "end": time.monotonic() - START})))

from breakfix.cli import main  # noqa: E402

sys.argv = ["breakfix", *sys.argv[2:]]
main()
