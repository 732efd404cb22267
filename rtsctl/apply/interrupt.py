"""Ctrl-C during an apply: the first lets running operations finish, the second stops waiting.

Operations already sent cannot be recalled (an ARM PUT, a front told to start instances), so the first
Ctrl-C starts nothing new and waits for what runs: nothing is left half-made, and the next apply
converges from there. A user who cannot wait presses Ctrl-C again: rtsctl then says what may still be
running (it goes on without us; the next plan shows where it ended) and exits 130 at once, without
joining the worker threads still blocked in those calls.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait

from rtsctl.apply import progress

EXIT_INTERRUPTED = 130


def finish_or_abandon(pool: ThreadPoolExecutor, running: Mapping[Future, str], report: Callable[[str], None]) -> None:
    """After a first KeyboardInterrupt: wait for `running` (address by future); on a second, abandon them."""
    try:  # the second Ctrl-C may come at once, even while this line is still being written
        names = ", ".join(sorted(running.values()))
        report(f"[yellow]Interrupted: waiting for {len(running)} running operation(s) to finish ({names}); nothing "
               "new is started. Press Ctrl-C again to stop waiting. Run apply again to converge.[/yellow]")
        wait(list(running))
        pool.shutdown(wait=True, cancel_futures=True)  # also joins one submitted as the first Ctrl-C came
    except KeyboardInterrupt:
        still = sorted(address for future, address in running.items() if not future.done())
        progress.close()  # give the terminal its cursor back before the immediate exit
        report(f"[red]Stopped waiting.[/red] May still be running: {', '.join(still) or 'nothing'}. "
               "They go on without rtsctl; run plan to see where they ended, then apply again.")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)  # worker threads are blocked in calls that cannot be cancelled


def exit_now_if_busy() -> None:
    """The last guard, for a Ctrl-C that escaped the handling above (one pressed twice in a row can land before
    it starts): with worker threads still blocked in calls, a normal exit would join them and hang, so exit 130
    at once instead."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        progress.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
