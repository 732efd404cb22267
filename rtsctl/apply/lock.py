"""One writer at a time: who holds a lock, and waiting for it.

Two kinds of lock share this: a file lock (`exclusive`), which excludes other rtsctl runs on this machine (its
holder dies with its process: the kernel drops a flock), and a backend's lock that spans machines (the Azure
backend's blob lease, `reconcilers/azure/lock.py`), whose holder is described by the same `Holder` record so
both refuse alike: who holds it, since when, for what, and the id `rtsctl force-unlock` takes.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from rtsctl.support.errors import RtsctlError

T = TypeVar("T")
MAX_FIELD = 200  # a holder's fields come from another machine: bounded before they are shown


def _clean(text: str) -> str:
    """Printable ASCII only (blob metadata is ASCII; a hostile value must not drive the terminal)."""
    return "".join(c if " " <= c <= "~" else "?" for c in str(text))[:MAX_FIELD]


@dataclass(frozen=True)
class Holder:
    """Who holds a lock and why, as stored beside it."""

    who: str
    since: str
    operation: str
    lock_id: str = ""

    @classmethod
    def me(cls, operation: str, lock_id: str = "") -> Holder:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = f"uid {os.getuid()}"
        return cls(_clean(f"{user}@{socket.gethostname()} (pid {os.getpid()})"),
                   datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), _clean(operation), _clean(lock_id))

    def metadata(self) -> dict[str, str]:
        return {"rtsctl_holder": self.who, "rtsctl_since": self.since, "rtsctl_operation": self.operation,
                "rtsctl_lock_id": self.lock_id}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> Holder:
        get = {k.lower(): v for k, v in (metadata or {}).items()}.get
        return cls(_clean(get("rtsctl_holder") or "another rtsctl"), _clean(get("rtsctl_since") or "an unknown time"),
                   _clean(get("rtsctl_operation") or "an unknown operation"), _clean(get("rtsctl_lock_id") or ""))

    def describe(self) -> str:
        return f"{self.who}, since {self.since}, for {self.operation}" + (
            f" (lock id {self.lock_id})" if self.lock_id else "")


class LockHeld(RtsctlError):
    """Someone else holds the lock (and we were not asked to wait, or waited long enough)."""


def wait_for(try_once: Callable[[], T | None], what: str, holder: Callable[[], str], timeout: float,
             hint: str = "", interval: float = 1.0) -> T:
    """Call `try_once` until it returns something, for at most `timeout` seconds (0: once), then refuse naming
    the holder. `interval` paces retries of a lock held elsewhere (each try may be a network call)."""
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        got = try_once()
        if got is not None:
            return got
        if time.monotonic() >= deadline:
            waited = f" (waited {timeout:g}s)" if timeout > 0 else ""
            raise LockHeld(f"{what} is locked by {holder()}{waited}; nothing was changed. Try again when it has "
                           f"finished, or wait for it with --lock-timeout SECONDS{hint}")
        time.sleep(min(interval, max(0.05, deadline - time.monotonic())))


@contextlib.contextmanager
def exclusive(path: Path, what: str, operation: str = "a change", timeout: float = 0.0) -> Iterator[None]:
    """A lock among rtsctl runs on this machine: refused at once (or after `timeout` s), naming its holder."""
    from rtsctl.support.home import open_lock

    fd = open_lock(path)  # 0600 in a 0700 folder: nobody else can flock it; unbuffered, so a full disk fails
    try:                  # only the courtesy write below, never the close

        def try_once() -> bool | None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return None

        def holder() -> str:
            text = os.pread(fd, 4 * MAX_FIELD, 0).decode("utf-8", "replace")
            return _clean(text.strip()) or "another rtsctl on this machine"

        wait_for(try_once, what, holder, timeout, interval=0.2)
        with contextlib.suppress(OSError):  # who holds it is a courtesy: a full disk must not stop the run
            os.ftruncate(fd, 0)
            os.pwrite(fd, Holder.me(operation).describe().encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock
