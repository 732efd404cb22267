"""Long-running operations: the `Azure-AsyncOperation` / `Location` status resources ARMPolling reads.

An operation stays `InProgress` until its duration has passed AND it was polled `min_polls`
times; then its success (or failure) callback runs and the status becomes `Succeeded`
(or `Failed` with an ARM error). `fail_next(substring, code, message)` arms a one-shot
failure for the next operation whose target path contains `substring`.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

STATUS_RETRY_AFTER = "0.05"     # fractional is fine on status responses; `0` would mean "default 30 s"
INITIAL_RETRY_AFTER = "1"       # generated begin_delete deserializes the initial Retry-After as int
MIN_POLLS = 2
GET_SETTLE_SECONDS = 0.3        # a plain GET of the resource completes an unpolled operation after this


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Operation:
    id: str
    method: str
    target: str
    started: float
    duration: float
    on_success: Callable[[], None]
    on_failure: Callable[[dict], None]
    failure: dict | None = None          # {"code", "message"} when armed to fail
    polls: int = 0
    status: str = "InProgress"
    ended: float | None = None
    error: dict | None = None

    @property
    def done(self) -> bool:
        return self.status != "InProgress"

    def status_body(self, url: str) -> dict:
        body = {"id": url, "name": self.id, "status": self.status, "startTime": iso(self.started)}
        if self.ended:
            body["endTime"] = iso(self.ended)
        if self.error:
            body["error"] = self.error
        return body


@dataclass
class Operations:
    durations: dict[str, float] = field(default_factory=dict)
    _ops: dict[str, Operation] = field(default_factory=dict)
    _armed: list[tuple[str, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def duration_for(self, type_segment: str) -> float:
        lowered = {k.lower(): v for k, v in self.durations.items()}
        return float(lowered.get(type_segment.lower(), 0.0))

    # -- failure arming ----------------------------------------------------------------------------
    def fail_next(self, path_substring: str, code: str, message: str) -> None:
        with self._lock:
            self._armed.append((path_substring.lower(), code, message))

    def has_armed_failure(self, path: str) -> bool:
        with self._lock:
            return any(sub in path.lower() for sub, _, _ in self._armed)

    def _take_failure(self, path: str) -> dict | None:
        with self._lock:
            for i, (sub, code, message) in enumerate(self._armed):
                if sub in path.lower():
                    del self._armed[i]
                    return {"code": code, "message": message}
        return None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, method: str, target: str, type_segment: str, on_success: Callable[[], None],
              on_failure: Callable[[dict], None], failure: dict | None = None) -> Operation:
        """`failure` makes the operation end Failed with that error (else an armed failure may apply)."""
        op = Operation(uuid.uuid4().hex, method, target, time.time(), self.duration_for(type_segment),
                       on_success, on_failure, failure=failure or self._take_failure(target))
        with self._lock:
            self._ops[op.id] = op
        return op

    def get(self, op_id: str) -> Operation | None:
        with self._lock:
            return self._ops.get(op_id)

    def poll(self, op: Operation) -> Operation:
        op.polls += 1
        if not op.done and op.polls > MIN_POLLS and time.time() - op.started >= op.duration:
            self._finish(op)
        return op

    def settle(self, target_key: str) -> None:
        """A GET on the target: finish operations nobody polls once their time is up."""
        from .ids import key

        now = time.time()
        with self._lock:
            pending = [o for o in self._ops.values() if not o.done and key(o.target) == target_key]
        for op in pending:
            if now - op.started >= max(op.duration, GET_SETTLE_SECONDS):
                self._finish(op)

    def pending_for(self, target_key: str) -> list[Operation]:
        from .ids import key

        with self._lock:
            return [o for o in self._ops.values() if not o.done and key(o.target) == target_key]

    def _finish(self, op: Operation) -> None:
        op.ended = time.time()
        if op.failure:
            op.status, op.error = "Failed", op.failure
            op.on_failure(op.failure)
        else:
            op.status = "Succeeded"
            op.on_success()
