"""Size-capped, rotated log files: `X.log`, then `X.log.1`, `X.log.2` (oldest dropped).

The front writes its own log and copies each instance's stdout/stderr (a pipe) into
one of these, so nothing a scoring script prints can fill the disk. Paths are agreed
with `rtsctl logs` (see reconcilers/local/state.py Layout.logs).
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_BYTES = 5 * 1024 * 1024
BACKUPS = 2


class RotatingFile:
    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS, stdio: bool = False):
        """`stdio`: also point this process's fds 1 and 2 at the current file (for the front's own log)."""
        self.path, self.max_bytes, self.backups, self.stdio = path, max_bytes, backups, stdio
        self.fd, self.dropped = -1, 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._open()

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(self.fd).st_size
        if self.stdio:
            os.dup2(self.fd, 1)
            os.dup2(self.fd, 2)

    def write(self, data: bytes) -> None:
        """Append `data`; on a full disk the lines are dropped (and counted), never raised: a log must not
        stop the supervisor that restarts instances or the copy of an instance's output."""
        try:
            if self.fd < 0:
                self._open()
            if self.size + len(data) > self.max_bytes and self.size:
                self.rotate()
            os.write(self.fd, data[: self.max_bytes])
            self.size += min(len(data), self.max_bytes)
        except OSError:
            self.dropped += len(data)
            return
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            self.write(f"--- {dropped} bytes of log dropped: the disk was full\n".encode())

    def rotate(self) -> None:
        os.close(self.fd)
        self.fd = -1
        for n in range(self.backups, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            newer = self.path.with_name(f"{self.path.name}.{n - 1}") if n > 1 else self.path
            if newer.exists():
                os.replace(newer, older)
        self._open()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def tail(path: Path, lines: int = 10) -> list[str]:
    """The last `lines` non-empty lines of a log (and of its previous rotation when short)."""
    found: list[str] = []
    for candidate in (path, path.with_name(path.name + ".1")):
        try:
            with open(candidate, "rb") as handle:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - 64 * 1024))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
        found = [line for line in text.splitlines() if line.strip()] + found
        if len(found) >= lines:
            break
    return found[-lines:]
