"""A deployment's answers to live traffic, as the endpoint's front tallies them (status.json, `answers`)."""

from __future__ import annotations

import time
from pathlib import Path

from rtsctl.support.errors import RtsctlError
from serving.front import ANSWERS_WRITE_S

from ..base import TrafficWatch
from .routes import read_status


class FrontAnswers(TrafficWatch):
    """Counts since the watch began: the front's running tallies minus those seen at the start. A front that
    restarted in between (another pid) counts from zero, so nothing it answered before is lost or doubled."""

    lag_s = ANSWERS_WRITE_S + 0.2  # the front rewrites its tallies at most this often while answering

    def __init__(self, endpoint_dir: Path, deployment: str):
        self.endpoint_dir, self.deployment = endpoint_dir, deployment
        time.sleep(self.lag_s)  # the tallies of what came just before (a gate's bench run) are complete only now
        self.start_pid, self.start = self._read()

    def _read(self) -> tuple[int | None, dict[int, int]]:
        status = read_status(self.endpoint_dir)
        if status is None:
            raise RtsctlError(f"cannot count {self.deployment}'s answers: the endpoint's front is not running")
        tallies = (status.get("deployments", {}).get(self.deployment) or {}).get("answers") or {}
        return status.get("pid"), {int(code): int(n) for code, n in tallies.items()}

    def answers(self) -> dict[int, int]:
        pid, now = self._read()
        base = self.start if pid == self.start_pid else {}
        return {code: n - base.get(code, 0) for code, n in now.items() if n - base.get(code, 0) > 0}
