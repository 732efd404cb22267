"""Everything a scoring instance starts dies with it, even what left its process group or session.

A process group cannot catch a child that calls setsid() (`subprocess.Popen(..., start_new_session=True)`),
and a double fork hands a grandchild to init. Linux's PR_SET_CHILD_SUBREAPER changes where orphans go: to
the nearest ancestor that is a subreaper instead of init. The keeper, the front and every host are
subreapers, so whatever a scoring script starts stays below its host while the host lives, and comes to
the front (or, when the front itself dies, to the keeper) when the host dies. There, every child that is
not one of the front's own instances is an orphan of a dead instance: it is killed and reaped (end_adopted).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0


def become_subreaper() -> bool:
    """Orphans of our descendants become our children (not init's). False where Linux does not offer it."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(parent: int) -> Callable[[], None]:
    """A preexec_fn (or a post-fork step): SIGKILL when `parent` dies, and exit at once if it already has."""
    def setup() -> None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return setup


def children() -> set[int]:
    """PIDs of our live children (adopted ones included), from /proc/self/task/*/children."""
    found: set[int] = set()
    try:
        tasks = list(Path("/proc/self/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def end_adopted(keep: Callable[[], set[int]], timeout: float = 2.0) -> int:
    """SIGKILL and reap every child not in keep() (re-read each round: a killed orphan's own children come to us
    next). Returns how many were ended."""
    ended: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        strays = children() - keep()
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            ended.add(pid)
        if not strays:
            break
    return len(ended)
