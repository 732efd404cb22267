"""One endpoint, one write at a time: what the service allows, enforced before a request is sent.

Azure refuses a write to an online endpoint while another write to it or to one of its deployments is
running ("Cannot create a deployment in endpoint X because it is in Updating provisioning state",
azure-sdk-for-net#36961), and a deployment write while its endpoint is being written. Deployments of one
endpoint may be written side by side. So, per endpoint: endpoint writes (create, update, traffic, delete)
are exclusive; deployment writes are shared among themselves and exclusive with endpoint writes.

A write that has to wait says so, naming what it waits for -- on real Azure that can be ten minutes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Notify = Callable[[str], None]


class EndpointGate:
    """A readers-writer gate for one endpoint (readers = deployment writes, writer = endpoint writes)."""

    def __init__(self, endpoint: str, entered: Callable[[], None] = lambda: None):
        """`entered` is called by each holder once it holds the gate (ReadCache.entered: what its step read
        before may have been changed by the previous holder)."""
        self.endpoint = endpoint
        self._entered = entered
        self._cond = threading.Condition()
        self._exclusive: str | None = None
        self._shared: Counter[str] = Counter()

    def _holders(self) -> str:
        return ", ".join(sorted({*([self._exclusive] if self._exclusive else []), *self._shared}))

    @contextmanager
    def exclusive(self, who: str, notify: Notify) -> Iterator[None]:
        """An endpoint write: waits for every other write on the endpoint and its deployments."""
        with self._cond:
            if self._exclusive or self._shared:
                notify(f"{who}: waiting for {self._holders()} to finish (Azure accepts one write at a time on "
                       f"endpoint {self.endpoint})")
            self._cond.wait_for(lambda: not self._exclusive and not self._shared)
            self._exclusive = who
        try:
            self._entered()
            yield
        finally:
            with self._cond:
                self._exclusive = None
                self._cond.notify_all()

    @contextmanager
    def shared(self, who: str, notify: Notify) -> Iterator[None]:
        """A deployment write: waits only for an endpoint write."""
        with self._cond:
            if self._exclusive:
                notify(f"{who}: waiting for {self._exclusive} to finish (Azure refuses deployment writes while "
                       f"endpoint {self.endpoint} is being written)")
            self._cond.wait_for(lambda: not self._exclusive)
            self._shared[who] += 1
        try:
            self._entered()
            yield
        finally:
            with self._cond:
                self._shared[who] -= 1
                if not self._shared[who]:
                    del self._shared[who]
                self._cond.notify_all()
