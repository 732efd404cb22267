"""Asset containers and versions (models, environments, codes): versions are immutable; codes get upload URLs."""

from __future__ import annotations

import uuid

from ..errors import conflict, json_response
from ..kinds import Kind, fill_defaults, props, register
from .common import BLOB_SUFFIX, NS
from .workspace import default_datastore


class AssetContainerKind(Kind):
    """`models/{n}`, `environments/{n}`, `codes/{n}`: created implicitly by the first version PUT."""

    lro_put = lro_delete = False

    def __init__(self, asset: str):
        self.asset = asset
        self.type_key = f"{NS}/{asset}"

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        fill_defaults(props(out), {"isArchived": False, "tags": {}, "properties": {}, "description": None})
        return out, None

    def view(self, ctx, record):
        out = super().view(ctx, record)
        versions = ctx.store.children(record.id + "/versions")
        if versions:
            names = [r.body["name"] for r in versions]
            numeric = [int(n) for n in names if n.isdigit()]
            props(out)["latestVersion"] = str(max(numeric)) if numeric else names[-1]
            props(out)["nextVersion"] = str(max(numeric) + 1) if numeric else None
        return out


class AssetVersionKind(Kind):
    """An immutable asset version: content fields cannot change, description/tags/stage/archive can."""

    lro_put = lro_delete = False
    implicit_parent = True

    def __init__(self, asset: str, label: str, content: tuple[str, ...], defaults: dict):
        self.asset, self.label, self.content, self.defaults = asset, label, content, defaults
        self.type_key = f"{NS}/{asset}/versions"

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        p = props(out)
        fill_defaults(p, {"isArchived": False, "isAnonymous": False, "tags": {}, "properties": {},
                          "description": None, **self.defaults})
        if existing is not None:
            old = props(existing.body)
            for field in self.content:
                if not _same_content(old.get(field), p.get(field)):
                    raise conflict("Conflict",
                                   f"{self.label} version '{path.segs[-3]}:{path.name}' already exists with different "
                                   f"content ({field}: existing {old.get(field)!r}, requested {p.get(field)!r}). "
                                   f"Asset versions are immutable; register a new version instead.")
        return out, None

    def filter(self, ctx, records, query):
        view = (query.get("listViewType") or "ActiveOnly").lower()
        if view == "activeonly":
            records = [r for r in records if not props(r.body).get("isArchived")]
        elif view == "archivedonly":
            records = [r for r in records if props(r.body).get("isArchived")]
        wanted_hash = query.get("hash")
        if wanted_hash:
            records = [r for r in records
                       if (props(r.body).get("properties") or {}).get("hash_sha256") == wanted_hash]
        return records


def _same_content(a, b) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().replace("\r\n", "\n").rstrip("/").lower() == b.strip().replace("\r\n", "\n").rstrip("/").lower()
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_content(a[k], b[k]) for k in a)
    return a == b


def start_pending_upload(ctx, path, record, body, base_url):
    ws = path.workspace()
    ds = default_datastore(ctx, ws)
    container = f"azureml-code-{uuid.uuid4()}"
    account = ds["accountName"]
    ctx.blobs.containers.add((account.lower(), container))
    blob_uri = f"https://{account}.{BLOB_SUFFIX}/{container}"
    sas = "sv=2021-08-06&sr=c&sp=rcwl&se=2099-01-01T00%3A00%3A00Z&sig=emulated"
    return json_response({
        "blobReferenceForConsumption": {
            "blobUri": blob_uri,
            "storageAccountArmId": f"/subscriptions/{ws.subscription}/resourceGroups/{ws.resource_group}/providers/"
                                   f"Microsoft.Storage/storageAccounts/{account}",
            "credential": {"credentialType": "SAS", "sasUri": f"{blob_uri}?{sas}"},
        },
        "pendingUploadId": str(uuid.uuid4()),
        "pendingUploadType": "TemporaryBlobReference",
    })


class CodeVersionKind(AssetVersionKind):
    actions = {"startPendingUpload": start_pending_upload}
    actions_on_missing = frozenset({"startpendingupload"})


register(
    AssetContainerKind("models"), AssetContainerKind("environments"), AssetContainerKind("codes"),
    AssetVersionKind("models", "Model", ("modelUri", "modelType"), {"flavors": {}, "stage": "Development"}),
    AssetVersionKind("environments", "Environment", ("image", "condaFile", "build", "inferenceConfig"),
                     {"osType": "Linux", "environmentType": "UserCreated", "autoRebuild": "Disabled"}),
    CodeVersionKind("codes", "Code", ("codeUri",), {}),
)
