"""Resource group and workspace: folders with a record; experiment name kept as a tag.

Log retention: instance and front logs live in the workspace's `logs/` folder, not under their endpoint or
deployment, so destroying an endpoint or deployment (or a replacement) keeps them for `rtsctl logs`; deleting
the workspace deletes its folder and the logs with it. Local environments are not here: they are a cache
shared by every workspace (reconcilers/local/envs.py) and outlive any one of them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rtsctl.desired.resources import Observed, Resource

from ..base import Reconciler
from .state import Layout, read_json, write_json


class _FolderReconciler(Reconciler):
    """A folder holding `record`; owned when rtsctl wrote the record."""

    record_name: str

    def __init__(self, layout: Layout):
        self.layout = layout

    def folder(self, res: Resource) -> Path:
        raise NotImplementedError

    def observe(self, res: Resource) -> Observed | None:
        record = read_json(self.folder(res) / self.record_name)
        if record is None:
            return None
        return Observed(res.address, record["spec"], owned=record.get("managed_by") == "rtsctl",
                        handle=self.folder(res), owner=record.get("owner"))

    def create(self, res: Resource) -> None:
        write_json(self.folder(res) / self.record_name, self.layout.mark({"spec": res.spec}))

    def delete(self, observed: Observed) -> None:
        shutil.rmtree(observed.handle, ignore_errors=True)


class ResourceGroupReconciler(_FolderReconciler):
    kind = "resource_group"
    immutable = frozenset({"location"})
    shared = True
    record_name = "group.json"

    def folder(self, res: Resource) -> Path:
        return self.layout.group

    def holds(self, observed: Observed, owner: str) -> list[str]:
        from rtsctl.observe.ownership import held

        found: list[str] = []
        for record in sorted(Path(observed.handle).glob("workspaces/*/workspace.json")):
            ws_owner = (read_json(record) or {}).get("owner")
            if ws_owner != owner:  # one it owns is kept by the engine if it holds others' (then named so)
                found.append(held("workspace", record.parent.name, ws_owner))
        return found


class WorkspaceReconciler(_FolderReconciler):
    kind = "workspace"
    immutable = frozenset({"location"})
    shared = True
    record_name = "workspace.json"

    def folder(self, res: Resource) -> Path:
        return self.layout.workspace

    def holds(self, observed: Observed, owner: str) -> list[str]:
        return self.layout.holdings(Path(observed.handle))
