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

# the local backend's files go through these (rtsctl/support/home.py): private, atomic, named on failure
from rtsctl.support.home import (home, open_lock, out_of_space, private_copy, private_dir, private_root, write_atomic,  # noqa: F401
                                 write_json)


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


def write_secret(path: Path, value: str) -> None:
    """A key: 0600, atomic (a full disk leaves the old key or none, never an empty one)."""
    write_atomic(path, value, "key")


def new_key() -> str:
    return secrets.token_urlsafe(32)


class Layout:
    """Paths of one manifest's scope (resource group + workspace)."""

    def __init__(self, resource_group: str, workspace: str, owner: str = ""):
        self.group = home() / "local" / resource_group
        self.workspace = self.group / "workspaces" / workspace
        #: the manifest identity every record written through this layout carries (rtsctl.observe.ownership)
        self.owner = owner

    def mark(self, record: dict[str, Any]) -> dict[str, Any]:
        """`record` as rtsctl writes it for this manifest: made by rtsctl, owned by the layout's owner."""
        return {**record, "managed_by": "rtsctl", "owner": self.owner}

    def holdings(self, workspace: Path) -> list[str]:
        """What a workspace folder holds that another manifest or nobody owns (`Reconciler.holds`)."""
        from rtsctl.observe.ownership import held

        found: list[str] = []
        records = [("endpoint", p.parent.name, p) for p in workspace.glob("endpoints/*/endpoint.json")]
        records += [("deployment", f"{p.parent.parent.parent.name}/{p.parent.name}", p)
                    for p in workspace.glob("endpoints/*/deployments/*/deployment.json")]
        records += [("model", p.parent.parent.name, p) for p in workspace.glob("models/*/*/version.json")]
        records += [("environment", p.parent.name, p) for p in workspace.glob("environments/*/*.json")]
        records += [("compute", p.stem, p) for p in workspace.glob("computes/*.json")]
        for kind, name, path in records:
            owner = (read_json(path) or {}).get("owner")
            entry = held(kind, name, owner)
            if owner != self.owner and entry not in found:
                found.append(entry)
        return found

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
