"""A client that scores an endpoint in a loop on a thread, recording every answer: the outage detector."""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import Counter


class Poller:
    """POSTs `body` to `uri` with `key` back to back until stopped; `statuses` counts the answers
    (an exception counts as its type name, so a refused connection is a failure too)."""

    def __init__(self, uri: str, key: str, body: dict, cafile: str | None = None, pause: float = 0.005):
        self.uri, self.key, self.body, self.pause = uri, key, json.dumps(body).encode(), pause
        self.context = ssl.create_default_context(cafile=cafile) if uri.startswith("https") else None
        self.statuses: Counter[str] = Counter()
        self.deployments: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _one(self) -> None:
        request = urllib.request.Request(self.uri, data=self.body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.key}"})
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context) as resp:
                resp.read()
                self.statuses[str(resp.status)] += 1
                self.deployments[resp.headers.get("azureml-model-deployment", "?")] += 1
        except urllib.error.HTTPError as err:
            self.statuses[str(err.code)] += 1
        except OSError as exc:
            self.statuses[type(exc).__name__] += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._one()
            time.sleep(self.pause)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    @property
    def failures(self) -> dict[str, int]:
        return {s: n for s, n in self.statuses.items() if not s.startswith("2")}

    @property
    def total(self) -> int:
        return sum(self.statuses.values())
