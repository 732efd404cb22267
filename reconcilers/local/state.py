"""Where the local backend keeps the world: folders and JSON records under RTSCTL_HOME.

RTSCTL_HOME/local/<resource group>/
  group.json
  workspaces/<workspace>/workspace.json
    models/<name>/<version>/{version.json, <files>}       content-addressed, immutable
    environments/<name>/<version>.json
    computes/<name>.json
    endpoints/<endpoint>/{endpoint.json, routes.json, keys/, logs/}
      deployments/<deployment>/{deployment.json, code-<digest>/}
    logs/<endpoint>/front.log, logs/<endpoint>/<deployment>/instance-<i>.log   (rotated .1 .2; kept
                                                                               until the workspace goes)
  runtime/serving-<digest>/serving/   the scoring host's code, alone on its PYTHONPATH

Every record is written atomically with mode 0600: some reveal ports or keys.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# the local backend's files go through these (rtsctl/home.py): private, atomic, named on failure
from rtsctl.home import (home, open_lock, out_of_space, private_copy, private_dir, private_root,  # noqa: F401
                         write_atomic, write_json)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock around read-modify-write of a record shared by concurrent reconcilers."""
    fd = open_lock(path.with_name(path.name + ".lock"))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)   # releases the lock


@contextlib.contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """A lock that fails at once, naming its holder, when another rtsctl already holds it."""
    from rtsctl.errors import RtsctlError

    fd = open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise RtsctlError(f"{what} is being changed by another rtsctl ({holder}); "
                              "try again when it has finished") from None
        with contextlib.suppress(OSError):  # who holds it is a courtesy: a full disk must not stop the apply
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def write_secret(path: Path, value: str) -> None:
    """A key: 0600, atomic (a full disk leaves the old key or none, never an empty one)."""
    write_atomic(path, value, "key")


def new_key() -> str:
    return secrets.token_urlsafe(32)


class Layout:
    """Paths of one manifest's scope (resource group + workspace)."""

    def __init__(self, resource_group: str, workspace: str):
        self.group = home() / "local" / resource_group
        self.workspace = self.group / "workspaces" / workspace

    def model(self, name: str) -> Path:
        return self.workspace / "models" / name

    def environment(self, name: str) -> Path:
        return self.workspace / "environments" / name

    def compute(self, name: str) -> Path:
        return self.workspace / "computes" / f"{name}.json"

    def endpoints(self) -> Path:
        return self.workspace / "endpoints"

    def endpoint(self, name: str) -> Path:
        return self.endpoints() / name

    def deployment(self, endpoint: str, name: str) -> Path:
        return self.endpoint(endpoint) / "deployments" / name

    def logs(self, endpoint: str, deployment: str | None = None) -> Path:
        """Log folder of an endpoint (front.log) or of one deployment (instance-<i>.log)."""
        folder = self.workspace / "logs" / endpoint
        return folder / deployment if deployment else folder

    def runtime(self) -> Path:
        return home() / "runtime"
