"""Long-running operations: the `Azure-AsyncOperation` / `Location` status resources ARMPolling reads.

An operation stays running until its duration has passed AND it was polled `min_polls` times; then
its success (or failure) callback runs and the status becomes `Succeeded` (or `Failed` with an ARM
error). `fail_next(substring, code, message, times)` arms failures for the next `times` operations
whose target path contains `substring`.

Status bodies follow the recordings per service (../shared/reference/azure-recordings/):
* Azure ML online endpoints/deployments ("mfe"): `{id, name, startTime, percentComplete, status}`,
  status `Updating` while running -- also for deletes -- and `endTime` + percentComplete 100.0 at the
  end (R01 #2, #12, #18; R05 endpoint_2026, deployment_update_2025);
* Azure ML computes: `{status, percentComplete}` only (R05 amlcompute_2022 #3);
* ARM template deployments: status `Running` while running (R05 workspace_create_2024 #3);
* anything else: the ARM async-operation shape `{id, name, status, startTime}` with `InProgress`
  (guess: ARM's async-operations contract allows any non-terminal value; none recorded here).

Durations: `durations` ({type segment: seconds}) as before, or `timing="realistic"` whose table
(`REALISTIC`) follows the recorded wall times, multiplied by `time_scale`.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

# Test-speed deviation, not Azure: real status answers carry NO Retry-After (R01, R03, R05), so the SDK's own
# interval applies (azure-ai-ml 1.35: 5 s). A fractional value keeps tests fast; `Settings.retry_after=None`
# reproduces the recorded headers exactly.
STATUS_RETRY_AFTER = "0.05"     # fractional is fine on status responses; `0` would mean "default 30 s"
INITIAL_RETRY_AFTER = "1"       # generated begin_delete deserializes the initial Retry-After as int
MIN_POLLS = 2                   # guess: ensures pollers see at least one running answer
GET_SETTLE_SECONDS = 0.3        # a plain GET of the resource completes an unpolled operation after this

# Recorded wall times (seconds) per (type segment, operation). "create"/"update" are PUTs on a missing /
# existing resource.
REALISTIC: dict[tuple[str, str], float] = {
    ("onlineendpoints", "create"): 90.0,     # R01 #2: 19:14:54 -> 19:16:24
    ("onlineendpoints", "update"): 20.0,     # R01 #14: traffic PUT Succeeded ~20 s later
    ("onlineendpoints", "delete"): 60.0,     # guess: R01 #18 shows the first poll only
    ("deployments", "create"): 582.0,        # R01 #12: 19:16:36 -> 19:26:18 (R03 #5: 551 s)
    ("deployments", "update"): 300.0,        # R05 deployment_update_2025: still Updating after 4+ min (lower bound)
    ("deployments", "delete"): 120.0,        # guess: no deployment DELETE recorded
    ("computes", "create"): 10.0,            # R05 amlcompute_2022: Succeeded at the first poll, 30 s in (bound)
    ("computes", "update"): 10.0,            # R05 amlcompute_2022 #5 (same bound)
    ("computes", "delete"): 30.0,            # guess
    ("managedclusters", "create"): 360.0,    # guess: no AKS recording (docs say "a few minutes")
    ("managedclusters", "update"): 120.0,    # guess
    ("managedclusters", "delete"): 300.0,    # guess
    ("extensions", "create"): 180.0,         # guess: no KubernetesConfiguration recording
    ("extensions", "update"): 60.0,          # guess
    ("extensions", "delete"): 60.0,          # guess
    ("resourcegroups", "delete"): 60.0,      # guess
}
# the workspace ARM template deployment shares the "deployments" type segment with online deployments:
TEMPLATE_DEPLOYMENT_SECONDS = 60.0          # guess: R05 workspace_create_2024 shows "Running" polls only


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def status_style(target: str) -> str:
    """Which recorded status-body shape an operation on `target` uses (see the module docstring)."""
    low = target.lower()
    if "/microsoft.machinelearningservices/" in low and "/onlineendpoints/" in low:
        return "mfe"
    if "/microsoft.machinelearningservices/" in low and "/computes/" in low:
        return "compute"
    if "/microsoft.resources/deployments/" in low:
        return "template"
    return "arm"


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
        return self.status not in ("InProgress",)

    def status_body(self, url: str) -> dict:
        style = status_style(self.target)
        running = {"mfe": "Updating", "template": "Running"}.get(style, "InProgress")
        status = running if not self.done else self.status
        percent = 100.0 if self.done else 0.0
        if style == "compute":
            body = {"status": status, "percentComplete": percent}
        elif style == "mfe":
            body = {"id": url.split("?")[0], "name": self.id, "startTime": iso(self.started),
                    "percentComplete": percent, "status": status}
            if self.ended:
                body["endTime"] = iso(self.ended)
        else:
            body = {"id": url.split("?")[0], "name": self.id, "status": status, "startTime": iso(self.started)}
            if self.ended:
                body["endTime"] = iso(self.ended)
        if self.error:
            body["error"] = self.error
        return body


@dataclass
class Operations:
    durations: dict[str, float] = field(default_factory=dict)
    timing: str = "fast"                 # "fast" (durations only) or "realistic" (REALISTIC x time_scale)
    time_scale: float = 1.0
    _ops: dict[str, Operation] = field(default_factory=dict)
    _armed: list[list] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def duration_for(self, type_segment: str, kind: str = "create", target: str = "") -> float:
        """Seconds an operation stays running: an explicit `durations` entry wins, then the realistic table."""
        lowered = {k.lower(): v for k, v in self.durations.items()}
        if type_segment.lower() in lowered:
            return float(lowered[type_segment.lower()])
        if self.timing != "realistic":
            return 0.0
        if "/microsoft.resources/deployments/" in target.lower():
            return TEMPLATE_DEPLOYMENT_SECONDS * self.time_scale
        return REALISTIC.get((type_segment.lower(), kind), 0.0) * self.time_scale

    # -- failure arming ----------------------------------------------------------------------------
    def fail_next(self, path_substring: str, code: str, message: str, times: int = 1) -> None:
        with self._lock:
            self._armed.append([path_substring.lower(), code, message, int(times)])

    def has_armed_failure(self, path: str) -> bool:
        with self._lock:
            return any(sub in path.lower() for sub, _, _, _ in self._armed)

    def _take_failure(self, path: str) -> dict | None:
        with self._lock:
            for i, armed in enumerate(self._armed):
                sub, code, message, times = armed
                if sub in path.lower():
                    if times <= 1:
                        del self._armed[i]
                    else:
                        armed[3] = times - 1
                    return {"code": code, "message": message}
        return None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, method: str, target: str, type_segment: str, on_success: Callable[[], None],
              on_failure: Callable[[dict], None], failure: dict | None = None, kind: str = "create") -> Operation:
        """`failure` makes the operation end Failed with that error (else an armed failure may apply)."""
        op = Operation(uuid.uuid4().hex, method, target, time.time(), self.duration_for(type_segment, kind, target),
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

    def pending_under(self, prefix_key: str) -> list[Operation]:
        """Running operations on `prefix_key` or anything below it (an endpoint and its deployments)."""
        from .ids import key

        with self._lock:
            return [o for o in self._ops.values() if not o.done
                    and (key(o.target) == prefix_key or key(o.target).startswith(prefix_key + "/"))]

    def _finish(self, op: Operation) -> None:
        with self._lock:
            if op.done:
                return
            op.ended = time.time()
            op.status = "Failed" if op.failure else "Succeeded"
        if op.failure:
            op.error = op.failure
            op.on_failure(op.failure)
        else:
            op.on_success()
