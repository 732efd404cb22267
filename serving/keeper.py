"""The front's own supervisor: a dead front is restarted on the same port within a moment, with no apply.

`python -m serving.front` is two processes with the same command line: this keeper, which holds the
endpoint's lock and its listening socket, and a forked worker, the front proper (serving.front.serve),
which its instances are children of. When the worker dies (SIGKILL, a bug, a scoring script that kills
its parent), the keeper forks a new one at once, as a kubelet restarts a container: the listening socket
never closes, so clients that connect meanwhile wait in its backlog instead of being refused, and the new
worker starts the instances again (they died with the old one by PR_SET_PDEATHSIG). Repeated deaths back
off as instances do (serving.supervisor.backoff); the count, the last exit and a crash loop go into
`front.json` beside status.json, for `plan` and forensics. SIGTERM/SIGINT stop the worker and the keeper;
SIGHUP is passed on to the worker.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import limits
from .reaper import become_subreaper, die_with_parent, end_adopted
from .supervisor import CRASH_LOOP, HEALTHY_RESET_S, backoff

RECORD = "front.json"

log = logging.getLogger("rtsctl.front")


def describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def write_record(folder: Path, record: dict[str, Any]) -> None:
    """front.json, atomically; a failed write is logged, never fatal (the keeper must keep keeping)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".front.json.")
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / RECORD)
    except OSError as exc:
        log.error("cannot write %s: %s", folder / RECORD, exc)
        try:
            os.unlink(tmp)
        except (OSError, UnboundLocalError):
            pass


def _wait(worker: int, record: dict[str, Any], began: float, folder: Path) -> int:
    """Wait for the worker to end and return its wait status; once it has run HEALTHY_RESET_S, a past crash loop
    is over (recorded at once, so `plan` stops reporting it)."""
    pidfd = os.pidfd_open(worker)
    try:
        while True:
            left = began + HEALTHY_RESET_S - time.monotonic()
            ready, _, _ = select.select([pidfd], [], [], max(left, 0.0) if record["failures"] else None)
            if ready:
                break
            if record["failures"] and time.monotonic() - began >= HEALTHY_RESET_S:
                record.update(failures=0, crash_loop=False)
                write_record(folder, record)
    finally:
        os.close(pidfd)
    while True:
        pid, status = os.waitpid(-1, 0)     # reaps what else was handed to us meanwhile, too
        if pid == worker:
            return status


def supervise(folder: Path, work: Callable[[dict[str, Any]], int]) -> int:
    """Run `work(record)` in a forked worker until told to stop, restarting it whenever it dies."""
    become_subreaper()
    keeper = os.getpid()
    record: dict[str, Any] = {"keeper": keeper, "restarts": 0, "failures": 0, "last_exit": None,
                              "crash_loop": False, "started": time.time()}
    worker = 0
    stopping = False

    def forward(sig: int, _frame: Any) -> None:
        nonlocal stopping
        if sig != signal.SIGHUP:
            stopping = True
        if worker:
            try:
                os.kill(worker, sig)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    write_record(folder, record)
    limits.sweep(str(folder))           # cgroups a killed keeper left
    while not stopping:
        began = time.monotonic()
        worker = os.fork()
        if worker == 0:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            die_with_parent(keeper)()
            code = 1
            try:
                code = work(record)
            except BaseException:
                log.exception("the front failed")
            finally:
                logging.shutdown()
                os._exit(code)
        status = _wait(worker, record, began, folder)
        worker = 0
        end_adopted(lambda: set())      # what the dead front's instances left behind
        limits.sweep(str(folder))       # and their cgroups
        if stopping:
            break
        reason = describe(status)
        record["failures"] += 1
        record["restarts"] += 1
        record["last_exit"] = reason
        record["last_exit_at"] = time.time()
        record["crash_loop"] = record["failures"] >= CRASH_LOOP
        delay = backoff(record["failures"])
        log.error("the front ended (%s); restarting it%s (restart %d)", reason,
                  f" in {delay:.1f}s: it keeps dying" if delay else "", record["restarts"])
        write_record(folder, record)
        wake = time.monotonic() + delay
        while not stopping and time.monotonic() < wake:
            time.sleep(min(0.05, wake - time.monotonic()))
    log.info("front stopped")
    return 0
