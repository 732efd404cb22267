"""Reading the local backend's rotated logs for `rtsctl logs`: the last lines, then (with -f) new ones.

The supervisor writes each instance's output to `<workspace>/logs/<endpoint>/<deployment>/instance-<i>.log`
and rotates it by renaming (`X.log` -> `X.log.1` -> `X.log.2`, serving/logfile.py). A reader that only
reopened the path would lose what was written between its last read and the rename, so a follower keeps
its open file until it has read it to the end and the path names a new file (another inode), then
moves on to the new one from its start. The logs live under the workspace, not the endpoint, so they
outlive `destroy` of an endpoint or deployment and go with the workspace.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from rtsctl.support.errors import RtsctlError

BACKUPS = 2                 # rotations kept beside the current file (serving/logfile.py)
READ_CHUNK = 64 * 1024
MAX_LINE = 64 * 1024        # a longer "line" (no newline for 64 KiB) is cut, so memory stays bounded
POLL_S = 0.2
_INSTANCE = re.compile(r"^instance-(\d+)\.log$")
ACCESS_LOG = "access.log"
ACCESS_SOURCE = "access"  # the source label's last part: `rtsctl logs` shows it, forensics leaves it out


def instance_logs(folder: Path) -> dict[int, Path]:
    """The instance logs in a deployment's log folder, by instance number."""
    found = {}
    for path in folder.glob("instance-*.log") if folder.is_dir() else []:
        match = _INSTANCE.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def _generations(path: Path) -> list[Path]:
    """The rotated files of one log, oldest first."""
    return [p for p in (path.with_name(f"{path.name}.{n}") for n in range(BACKUPS, 0, -1)) if p.exists()] + \
        ([path] if path.exists() else [])


def last_lines(path: Path, count: int | None) -> list[str]:
    """The last `count` lines of a log across its rotations (all of them when `count` is None)."""
    lines: list[str] = []
    for generation in reversed(_generations(path)):
        lines = _read_tail(generation, None if count is None else count - len(lines)) + lines
        if count is not None and len(lines) >= count:
            break
    return lines[-count:] if count else ([] if count == 0 else lines)


def _read_tail(path: Path, count: int | None) -> list[str]:
    """The last `count` lines of one file, reading backwards in chunks so a 5 MB log costs little."""
    try:
        with open(path, "rb") as handle:
            end = os.fstat(handle.fileno()).st_size
            if count is None:
                data = handle.read()
            else:
                data, position = b"", end
                while position > 0 and data.count(b"\n") <= count:
                    step = min(READ_CHUNK, position)
                    position -= step
                    handle.seek(position)
                    data = handle.read(step) + data
    except OSError:
        return []
    lines = [_cut(line) for line in data.decode("utf-8", "replace").splitlines()]
    return lines if count is None else lines[-count:] if count else []


def _cut(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[:MAX_LINE] + " …[cut]"


def follow(path: Path, tail: int | None, poll_s: float = POLL_S) -> Iterator[str]:
    """The last `tail` lines (all when None), then every line appended later, across rotations, forever."""
    yield from last_lines(path, tail)
    handle = _open_at_end(path)
    pending = b""
    try:
        while True:
            chunk = handle.read(READ_CHUNK) if handle else b""
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield _cut(line.decode("utf-8", "replace"))
                if len(pending) > MAX_LINE:
                    yield _cut(pending.decode("utf-8", "replace"))
                    pending = b""
                continue
            replaced = _replaced(path, handle)
            if replaced:
                # rotated (or recreated): what is left in the old file was read above; start the new one
                if pending:
                    yield _cut(pending.decode("utf-8", "replace"))
                    pending = b""
                if handle:
                    handle.close()
                handle = _open(path)
                continue
            if handle and handle.tell() > os.fstat(handle.fileno()).st_size:   # truncated in place
                handle.seek(0)
            time.sleep(poll_s)
    finally:
        if handle:
            handle.close()


def _open(path: Path):
    try:
        return open(path, "rb")
    except OSError:
        return None


def _open_at_end(path: Path):
    handle = _open(path)
    if handle:
        handle.seek(0, os.SEEK_END)
    return handle


def _replaced(path: Path, handle) -> bool:
    """True when `path` now names another file than the one `handle` reads (or appeared meanwhile)."""
    try:
        now = os.stat(path)
    except OSError:
        return False
    if handle is None:
        return True
    mine = os.fstat(handle.fileno())
    return (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev)


def deployment_logs(folder: Path, deployment: str, instance: int | None, tail: int | None,
                    follow_: bool) -> dict[str, Iterator[str]]:
    """Line streams of one deployment's instances, labelled `<deployment>/<instance>`."""
    found = instance_logs(folder)
    if not found:
        raise RtsctlError(f"no logs for deployment {deployment} (none in {folder}): it has not been applied "
                          "in this workspace, or the workspace was destroyed")
    if instance is not None:
        if instance not in found:
            known = ", ".join(map(str, found)) or "none"
            raise RtsctlError(f"deployment {deployment} has no log for instance {instance} (instances with logs: "
                              f"{known}; folder {folder})")
        found = {instance: found[instance]}
    streams: dict[str, Iterator[str]] = {}
    for number, path in found.items():
        streams[f"{deployment}/{number}"] = follow(path, tail) if follow_ else iter(last_lines(path, tail))
    access = folder / ACCESS_LOG  # the front's rate-limited access log (serving/access.py): not an instance's
    if instance is None and (access.exists() or follow_):
        streams[f"{deployment}/{ACCESS_SOURCE}"] = follow(access, tail) if follow_ else iter(last_lines(access, tail))
    return streams


_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>.+)$')
_NOT_USER = ("<frozen ", "/serving/", "site-packages/", "/lib/python3")


def crash_summary(path: Path, lines: int = 200) -> str | None:
    """Why an instance died, in one line, from the end of its log: the exception, and where in the user's
    own code it was raised (`ModuleNotFoundError: No module named 'x' (at score.py:9: import x)`).
    Frames of the runtime, the standard library and installed packages are skipped, so a failure deep in
    a library still points at the user's line that called it. None when the log holds no traceback."""
    tail = last_lines(path, lines)
    starts = [i for i, line in enumerate(tail) if line.startswith("Traceback (most recent call last):")]
    if not starts:
        return None
    # a chained error (azmlinfsrv wraps the user's) prints several tracebacks; the block of this crash
    # begins at the first traceback after the last "--- starting" marker of the supervisor
    marker = max((i for i, line in enumerate(tail) if line.startswith("--- ") and "starting" in line), default=-1)
    first = next((i for i in starts if i > marker), starts[-1])
    block = tail[first:]
    where = None
    for i, line in enumerate(block):
        frame = _FRAME.match(line)
        if frame and not any(part in frame.group("file") for part in _NOT_USER):
            code = block[i + 1].strip() if i + 1 < len(block) and not _FRAME.match(block[i + 1]) else ""
            name = frame.group("file").split("/code-", 1)[-1].split("/", 1)[-1] if "/code-" in frame.group("file") \
                else frame.group("file")
            where = f"{name}:{frame.group('line')}" + (f": {code}" if code else "")
    error = next((line.strip() for line in reversed(block) if line and not line[0].isspace()
                  and not line.startswith(("Traceback", "---", "The above", "During handling"))
                  and re.match(r"^[A-Za-z_][\w.]*(: |$)", line)), None)
    if error is None:
        return None
    return error + (f" (at {where})" if where else "")
