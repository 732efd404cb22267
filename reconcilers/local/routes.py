"""What an endpoint's front serves (routes.json, written here) and what it reports (status.json, read here).

Reconcilers only record intent: they edit routes.json under a lock and signal the front
(SIGHUP), which converges its instances and routing to it without dropping connections;
the front writes status.json (instances, readiness, crash loops) for observe() to read.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import procs
from .state import locked, read_json, write_json

ROUTES = "routes.json"
STATUS = "status.json"
RECORD = "endpoint.json"


def read_routes(endpoint_dir: Path) -> dict[str, Any]:
    return read_json(endpoint_dir / ROUTES) or {"deployments": {}, "traffic": {}}


def edit_routes(endpoint_dir: Path, change: Callable[[dict[str, Any]], None]) -> int:
    """Apply `change` and signal the front; returns the new revision, which the front's status echoes
    once it has loaded it (so a reader never mistakes the status of the previous routes for an answer)."""
    path = endpoint_dir / ROUTES
    with locked(path):
        routes = read_routes(endpoint_dir)
        change(routes)
        routes["revision"] = routes.get("revision", 0) + 1
        write_json(path, routes)
    reload_front(endpoint_dir)
    return routes["revision"]


def front_pid(endpoint_dir: Path) -> int | None:
    """The front's keeper (serving.keeper): of the processes running serving.front for this endpoint, the one
    whose parent is not one of them (its worker has the same command line)."""
    fronts = [pid for pid in procs.owned_by(endpoint_dir) if _is_front(pid)]
    keepers = [pid for pid in fronts if _parent(pid) not in fronts]
    return (keepers or fronts or [None])[0]


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _is_front(pid: int) -> bool:
    try:
        return b"serving.front" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


def reload_front(endpoint_dir: Path) -> None:
    pid = front_pid(endpoint_dir)
    if pid is not None:
        os.kill(pid, signal.SIGHUP)


def read_status(endpoint_dir: Path) -> dict[str, Any] | None:
    """The running front's report, or None when no front runs (a stale file is ignored)."""
    status = read_json(endpoint_dir / STATUS)
    if status is None or status.get("pid") != front_pid(endpoint_dir):
        return None
    return status
