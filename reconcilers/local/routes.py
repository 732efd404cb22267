"""The routing table an endpoint's front process serves: deployments, instances, traffic.

Reconcilers edit it under a lock and signal the front process (SIGHUP) to reload it,
so a traffic shift or a new instance set takes effect without dropping connections.
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
RECORD = "endpoint.json"


def read_routes(endpoint_dir: Path) -> dict[str, Any]:
    return read_json(endpoint_dir / ROUTES) or {"deployments": {}, "traffic": {}}


def edit_routes(endpoint_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = endpoint_dir / ROUTES
    with locked(path):
        routes = read_routes(endpoint_dir)
        change(routes)
        write_json(path, routes)
    reload_front(endpoint_dir)


def reload_front(endpoint_dir: Path) -> None:
    record = read_json(endpoint_dir / RECORD) or {}
    pid = record.get("pid")
    if procs.is_alive(pid, record.get("started")):
        os.kill(pid, signal.SIGHUP)
