"""Long operations made visible while an apply waits on them.

A deployment on Azure takes ~10 minutes; a silent terminal for that long reads as a hang. While any
operation runs, a terminal gets a live line per resource with its elapsed time (rich Live, drawn under
the normal progress lines and gone when the apply ends); anything else (CI logs, pipes) gets one line
per running operation every RTSCTL_HEARTBEAT_SECONDS (default 10 s), like Terraform's
`aws_instance.web: Still creating... [2m10s elapsed]`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from rtsctl.support.envvars import env_number

DEFAULT_HEARTBEAT_S = 10.0
#: the doing-verb a progress line uses for each apply verb ("Creating" -> "still creating…")
_STILL = {"Creating": "creating", "Modifying": "modifying", "Replacing": "replacing", "Destroying": "destroying"}


_active: Progress | None = None  # the display of the apply now running (one per process)


def start(address: str, verb: str) -> None:
    """An operation began (called by the apply's workers); a no-op when nothing displays progress."""
    if _active is not None:
        _active.start(address, verb)


def finish(address: str) -> None:
    if _active is not None:
        _active.finish(address)


def close() -> None:
    """End the active display now (before an immediate exit: a live display hides the cursor until it stops)."""
    if _active is not None:
        _active.__exit__(None, None, None)


def heartbeat_seconds() -> float:
    """RTSCTL_HEARTBEAT_SECONDS (tests shorten it), bounded to [0.2 s, 1 h]; 10 s otherwise."""
    return env_number("RTSCTL_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT_S, 0.2, 3600.0)


def elapsed(seconds: float) -> str:
    """`2m10s`, `45s`, `1h02m`: how Terraform counts."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class Progress:
    """Running operations by address; `start`/`finish` are called from the apply's worker threads."""

    def __init__(self, console: Any, live: bool | None = None, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.interval = heartbeat_seconds() if interval is None else interval
        self.clock = clock
        self._running: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._display: Any = None

    def start(self, address: str, verb: str) -> None:
        with self._lock:
            self._running[address] = (_STILL.get(verb, verb.lower()), self.clock())

    def finish(self, address: str) -> None:
        with self._lock:
            self._running.pop(address, None)

    def running(self) -> list[tuple[str, str, float]]:
        """(address, verb, seconds so far), longest-running first."""
        now = self.clock()
        with self._lock:
            items = [(a, verb, now - t0) for a, (verb, t0) in self._running.items()]
        return sorted(items, key=lambda item: -item[2])

    def lines(self) -> list[str]:
        return [f"{address}: still {verb}… [{elapsed(seconds)} elapsed]" for address, verb, seconds in self.running()]

    # -- display ---------------------------------------------------------------------------------
    def __enter__(self) -> Progress:
        global _active
        _active = self
        if self.live:
            from rich.live import Live

            self._display = Live(_Renderable(self), console=self.console, transient=True, refresh_per_second=2)
            self._display.__enter__()
        else:
            self._thread = threading.Thread(target=self._beat, name="rtsctl-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        global _active
        _active = None
        self._stop.set()
        display, self._display = self._display, None
        if display is not None:
            display.__exit__(kind, exc, tb)
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            for line in self.lines():
                self.console.print(line, markup=False, highlight=False)


class _Renderable:
    """What Live redraws twice a second: one dim line per running operation (nothing when idle)."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def __rich__(self) -> Any:
        from rich.text import Text

        return Text("\n".join(self.progress.lines()), style="dim")
