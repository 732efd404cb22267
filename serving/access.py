"""The front's access log: one line per answered request, rate-limited, in a file of its own.

Azure's inference server logs every request; at thousands a second that would be megabytes a minute, and written
into an instance's log it would push out the lines that matter when the instance crashes (what `rtsctl logs`,
`plan` and the apply forensics read). So each deployment gets `access.log` beside its instance logs (rotated,
serving/logfile.py), at most RATE lines a second; the requests beyond are counted by status and summed up in one
line when their second is over, so every answer is accounted for, sampled or not.
"""

from __future__ import annotations

import time
from pathlib import Path

from .logfile import RotatingFile

RATE = 20  # lines a second per deployment, before sampling


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


class AccessLog:
    def __init__(self, path: Path, rate: int = RATE):
        self.path, self.rate = path, rate
        self.file: RotatingFile | None = None   # opened at the first answer: an idle deployment writes nothing
        self.second = 0
        self.written = 0
        self.skipped: dict[int, int] = {}

    def record(self, status: int, seconds: float, version: str) -> None:
        now = time.time()
        if int(now) != self.second:
            self.tick(now)
            self.second = int(now)
        if self.written < self.rate:
            self.written += 1
            self._write(f"{_stamp(now)} POST /score {status} {seconds * 1000:.1f}ms version {version[:10]}\n")
        else:
            self.skipped[status] = self.skipped.get(status, 0) + 1

    def tick(self, now: float | None = None) -> None:
        """Once a second is over, the line summing up the answers not logged in it."""
        now = time.time() if now is None else now
        if self.skipped and int(now) != self.second:
            counts = " ".join(f"{status}×{n}" for status, n in sorted(self.skipped.items()))
            self._write(f"{_stamp(self.second + 0.999)} ... {sum(self.skipped.values())} more answers in this second "
                        f"not logged one by one (at most {self.rate} a second): {counts}\n")
            self.skipped = {}
            self.written = 0

    def _write(self, line: str) -> None:
        try:
            if self.file is None:
                self.file = RotatingFile(self.path)
            self.file.write(line.encode())
        except OSError:
            pass  # a full disk must not fail a request

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
