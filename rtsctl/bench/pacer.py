"""Precise wake-ups for the open-loop pacer.

Event-loop timers (asyncio and uvloop alike) are millisecond-coarse: pacing 5,000 req/s with them either spins the
CPU (0 ms waits) or sends each request up to 1 ms late. On Linux a timerfd armed at an absolute CLOCK_MONOTONIC
time (the clock behind time.perf_counter) wakes the loop within microseconds; elsewhere the loop timer is used with a
1 ms floor. Either way latency is measured from the intended send time, so a late send is never hidden.
"""

from __future__ import annotations

import os
import sys
import time

MIN_GAP = 50e-6         # never re-arm closer than this: at higher rates requests are sent in small batches
LOOP_TICK = 0.001

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = 0o4000
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1


def _monotonic_is_perf_counter() -> bool:
    try:
        return time.get_clock_info("perf_counter").implementation.startswith("clock_gettime(CLOCK_MONOTONIC")
    except (ValueError, AttributeError):
        return False


class Waker:
    """call `callback` at (or just after) absolute perf_counter times; `at(t)` replaces the pending wake-up."""

    def __init__(self, loop, callback):
        self.loop, self.callback = loop, callback
        self.fd = -1
        self._handle = None
        if sys.platform.startswith("linux") and _monotonic_is_perf_counter():
            try:
                self._init_timerfd()
            except (OSError, AttributeError):
                self.fd = -1

    def _init_timerfd(self):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        self._settime = libc.timerfd_settime
        self._spec = (ctypes.c_long * 4)()        # struct itimerspec {interval {s, ns}, value {s, ns}}
        self._byref = ctypes.byref(self._spec)
        self.fd = fd
        self.loop.add_reader(fd, self._fired)

    def _fired(self):
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return
        self.callback()

    def at(self, t: float) -> None:
        now = time.perf_counter()
        if self.fd >= 0:
            t = max(t, now + MIN_GAP)
            sec = int(t)
            self._spec[2], self._spec[3] = sec, int((t - sec) * 1e9)
            self._settime(self.fd, _TFD_TIMER_ABSTIME, self._byref, None)
        else:
            self._handle = self.loop.call_later(max(t - now, LOOP_TICK), self.callback)

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
        if self._handle is not None:
            self._handle.cancel()
