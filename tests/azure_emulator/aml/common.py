"""Shared by the Azure ML kinds: the type prefix, workspace-relative ids, storage naming."""

from __future__ import annotations

import uuid

from ..ids import ArmPath

NS = "microsoft.machinelearningservices/workspaces"
BLOB_SUFFIX = "blob.core.windows.net"
DEFAULT_DATASTORE = "workspaceblobstore"


def ws_child(ws: ArmPath, *segs: str) -> str:
    return ws.child(*segs).path


def storage_account_name(workspace: str) -> str:
    alnum = "".join(c for c in workspace.lower() if c.isalnum())[:14] or "ws"
    return f"{alnum}{uuid.uuid5(uuid.NAMESPACE_URL, workspace).hex[:8]}"
