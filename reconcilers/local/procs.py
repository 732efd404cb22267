"""Detached processes for the local backend: spawn, find, probe and stop.

An endpoint's front outlives the `rtsctl` command that started it, in its own session;
its scoring instances are its children and die with it (PR_SET_PDEATHSIG). Both carry
the endpoint folder in their argv (`--dir` / `--owner`), so they are found again by
scanning /proc even when rtsctl was killed between spawning one and recording its PID:
no orphan can hide from a re-apply or a destroy.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rtsctl.support.home import private_dir


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def spawn(argv: list[str], log_path: Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `argv` detached in its own session, stdout and stderr appended to `log_path`."""
    private_dir(log_path.parent)
    with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600), "ab") as log:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a detached child: ours, plus `extra`, plus this package on PYTHONPATH
    (so children import it even when rtsctl runs from a checkout rather than an install)."""
    env = {**os.environ, **(extra or {})}
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


_SCAN_LOCK = threading.Lock()
_scan: dict[str, object] = {"depth": 0, "lines": None}


@contextmanager
def one_scan() -> Iterator[None]:
    """Within it, /proc is read once and every `command_lines()` reuses that picture: a plan observing N endpoints
    (each finding its front, each deployment its front's status) scans once, not 3 x N times over every process
    (issue 15: 64 endpoints planned 13x slower than one). Outside it every scan is fresh (waits, stops)."""
    with _SCAN_LOCK:
        _scan["depth"] = int(_scan["depth"]) + 1  # type: ignore[call-overload]
    try:
        yield
    finally:
        with _SCAN_LOCK:
            _scan["depth"] = int(_scan["depth"]) - 1  # type: ignore[call-overload]
            if not _scan["depth"]:
                _scan["lines"] = None


def command_lines() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, argv) of every process that runs as this user (one gone meanwhile is skipped); one scan per
    `one_scan()`. Another user's process is never ours, whatever its command line says: it is neither signalled
    nor trusted."""
    with _SCAN_LOCK:
        if _scan["depth"]:
            if _scan["lines"] is None:
                _scan["lines"] = list(_read_command_lines())
            return iter(_scan["lines"])  # type: ignore[call-overload]
    return _read_command_lines()


def _read_command_lines() -> Iterator[tuple[int, list[bytes]]]:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not is_mine(int(entry.name)):
                continue
            yield int(entry.name), (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue


def is_mine(pid: int) -> bool:
    """True if `pid` runs with this user's real and effective uid (/proc/PID/status `Uid:` line)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Uid:"):
                    real, effective = line.split()[1:3]
                    return int(real) == int(effective) == os.geteuid()
    except (OSError, ValueError, IndexError):
        return False
    return False


def listens_on(pid: int, port: int) -> bool:
    """True if `pid` holds a TCP socket listening on `port` (any address): the kernel's socket tables
    (/proc/net/tcp, tcp6) give the listener's inode, and the process's fds must include it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


def owned_by(folder: Path) -> list[int]:
    """PIDs of the front and scoring hosts serving the endpoint in `folder` (fronts first)."""
    marker = str(folder).encode()
    fronts, hosts = [], []
    for pid, argv in command_lines():
        if marker not in argv or start_time(pid) is None:
            continue
        if b"serving.front" in argv:
            fronts.append(pid)
        elif b"serving.host" in argv:
            hosts.append(pid)
    return fronts + hosts


def stop_owned(folder: Path, timeout: float = 5.0) -> None:
    """Stop every process serving `folder`: SIGTERM to fronts (they stop their instances), then SIGKILL."""
    pids = owned_by(folder)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    if wait_until(lambda: not owned_by(folder), timeout, interval=0.05):
        return
    for pid in owned_by(folder):
        _signal(pid, signal.SIGKILL)
    wait_until(lambda: not owned_by(folder), 2.0, interval=0.02)


def _signal(pid: int, sig: int) -> None:
    if not is_mine(pid):   # a PID reused by someone else's process since it was found
        return
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    _reap(pid)


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if unknown/absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie is dead for our purposes
        return None
    return int(fields[19])


def is_alive(pid: int | None, started: int | None = None) -> bool:
    """True if `pid` runs and, when `started` is given, is the same process we recorded."""
    if not pid:
        return False
    if Path("/proc").is_dir():
        now = start_time(pid)
        return now is not None and (started is None or now == started)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop(pid: int | None, started: int | None = None, timeout: float = 5.0) -> None:
    """Stop the process group led by `pid`: SIGTERM, then SIGKILL after `timeout`. Never another user's."""
    if not is_alive(pid, started) or not is_mine(pid):
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not is_alive(pid, started):
                return
            time.sleep(0.02)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """GET `url` and report whether it answered 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until(check, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
