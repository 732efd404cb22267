"""Asset containers and versions (models, environments, codes): versions are immutable; codes get upload URLs.

Service-side rewrites follow the recordings: model URIs get `resourceGroups` (R01 #10, R02 #5, R03 #4), a conda
file comes back as a JSON string (R01 #8, R04 environment_2024), an environment gains `azureml.labels: latest`
(R04). Listing the versions of a model container that does not exist is a 404 `UserError` with `ModelNotFound`
in details (R02 #1); the code hash lookup is workspace-wide (R04 code_2026 #1).
"""

from __future__ import annotations

import json
import re
import uuid

import yaml

from ..errors import ArmError, aml_error, conflict, json_response
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
            # spec ModelContainer/EnvironmentContainer: latestVersion / nextVersion (service-computed)
            props(out)["latestVersion"] = str(max(numeric)) if numeric else names[-1]
            props(out)["nextVersion"] = str(max(numeric) + 1) if numeric else None
        return out


class AssetVersionKind(Kind):
    """An immutable asset version: content fields cannot change, description/tags/stage/archive can."""

    lro_put = lro_delete = False
    implicit_parent = True

    def put_headers(self, path, location, created, lro):
        # R01 #8, R02 #5, R03 #4: a new version answers 201 + Location; an existing one 200 without (R01 #7, #10)
        return {"Location": location} if created else {}

    def normalise(self, p: dict) -> None:
        """What the service rewrites in a version it stores (subclasses)."""

    def __init__(self, asset: str, label: str, content: tuple[str, ...], defaults: dict):
        self.asset, self.label, self.content, self.defaults = asset, label, content, defaults
        self.type_key = f"{NS}/{asset}/versions"

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        p = props(out)
        fill_defaults(p, {"isArchived": False, "isAnonymous": False, "tags": {}, "properties": {},
                          "description": None, **self.defaults})
        self.normalise(p)
        if existing is not None:
            old = props(existing.body)
            for field in self.content:
                if field in ("modelUri", "codeUri") and not _same_content(old.get(field), p.get(field)):
                    # the service's own words, which azure-ai-ml matches (_artifacts/_constants.py
                    # ASSET_PATH_ERROR = "(UserError) Asset paths cannot be updated."); status 409: guess
                    raise ArmError(409, "UserError", "Asset paths cannot be updated.")
                if not _same_content(old.get(field), p.get(field)):
                    raise conflict("Conflict",
                                   f"{self.label} version '{path.segs[-3]}:{path.name}' already exists with different "
                                   f"content ({field}: existing {old.get(field)!r}, requested {p.get(field)!r}). "
                                   f"Asset versions are immutable; register a new version instead.")
        return out, None

    def filter(self, ctx, records, query):
        # spec *Versions_List: listViewType ActiveOnly (default) | ArchivedOnly | All; R02 #7 lists ActiveOnly
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


class ModelVersionKind(AssetVersionKind):
    def normalise(self, p):
        # R01 #10, R02 #5, R03 #4: `.../resourcegroups/...` comes back as `.../resourceGroups/...`. (R03, 2022, also
        # moved an mlflow folder to `paths/ServiceReplicated/{guid}/...`; R02, 2026, no longer does: not emulated.)
        uri = p.get("modelUri")
        if isinstance(uri, str):
            p["modelUri"] = re.sub(r"/resourcegroups/", "/resourceGroups/", uri, flags=re.I)
        # R02 #5 (2026): jobName, autoDeleteSetting and intellectualProperty null
        for field in ("jobName", "autoDeleteSetting", "intellectualProperty"):
            p.setdefault(field, None)

    def list_missing_parent(self, ctx, parent, query):
        # R02 #1: 404 UserError "The specified resource was not found." + details ModelNotFound
        raise aml_error(404, "ModelNotFound", f"Model container with name: {parent.name} not found.",
                        generic_message="The specified resource was not found.")


class EnvironmentVersionKind(AssetVersionKind):
    update_status = 201     # R01 #8: a PUT on an existing identical version still answered 201

    def put_headers(self, path, location, created, lro):
        return {"Location": location}     # R01 #8, R04: Location also on the 201 for an existing version

    def normalise(self, p):
        conda = p.get("condaFile")
        if isinstance(conda, str) and conda.strip():
            try:
                parsed = yaml.safe_load(conda)
            except yaml.YAMLError:
                parsed = None
            if isinstance(parsed, (dict, list)):
                p["condaFile"] = json.dumps(parsed, indent=2)   # R01 #8, R04: YAML in, 2-space JSON out
        labels = p.get("properties") if isinstance(p.get("properties"), dict) else {}
        labels.setdefault("azureml.labels", "latest")           # R04 environment_2024
        p["properties"] = labels
        for field in ("autoDeleteSetting", "intellectualProperty"):   # R04 environment_2024
            p.setdefault(field, None)


def _same_content(a, b) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().replace("\r\n", "\n").rstrip("/").lower() == b.strip().replace("\r\n", "\n").rstrip("/").lower()
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_content(a[k], b[k]) for k in a)
    return a == b


def start_pending_upload(ctx, path, record, body, base_url):
    # The answer's shape: spec PendingUploadResponseDto (this call is in no recording, README "Not reached"). The
    # container is named as R04 code_2026 #1's codeUri shows: `{workspaceId}-{30 random chars}`, `:443` in the URI.
    ws = path.workspace()
    ds = default_datastore(ctx, ws)
    ws_rec = ctx.store.get(ws.path)
    ws_id = (props(ws_rec.body).get("workspaceId") if ws_rec else None) or str(uuid.uuid4())
    container = f"{ws_id}-{uuid.uuid4().hex[:30]}"
    account = ds["accountName"]
    ctx.blobs.containers.add((account.lower(), container))
    blob_uri = f"https://{account}.{BLOB_SUFFIX}:443/{container}"
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

    def list_missing_parent(self, ctx, parent, query):
        return self.workspace_hash_matches(ctx, parent, query)

    @staticmethod
    def workspace_hash_matches(ctx, parent, query):
        """R04 code_2026 #1: `codes/{missing}/versions?hash=H` answers versions of OTHER containers with hash H."""
        wanted = query.get("hash")
        if not wanted:
            return []
        found = []
        for container in ctx.store.children(parent.workspace().child("codes").path):
            found += [r for r in ctx.store.children(container.id + "/versions")
                      if (props(r.body).get("properties") or {}).get("hash_sha256") == wanted
                      and not props(r.body).get("isArchived")]
        return found


register(
    AssetContainerKind("models"), AssetContainerKind("environments"), AssetContainerKind("codes"),
    # defaults: R01 #10 / R02 #5 (flavors {}, stage Development); R01 #8 / R04 (osType, environmentType, autoRebuild,
    # stage)
    ModelVersionKind("models", "Model", ("modelUri", "modelType"), {"flavors": {}, "stage": "Development"}),
    EnvironmentVersionKind("environments", "Environment", ("image", "condaFile", "build", "inferenceConfig"),
                           {"osType": "Linux", "environmentType": "UserCreated", "autoRebuild": "Disabled",
                            "stage": "Development"}),
    CodeVersionKind("codes", "Code", ("codeUri",), {}),
)
