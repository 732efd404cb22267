"""Azure ML (Microsoft.MachineLearningServices) behaviour: defaults the SDK needs, service rules, actions.

Rules enforced (the service does this, not the SDK):
* asset versions (models, environments, codes) are immutable: a PUT that changes their content -> 409;
* a Kubernetes compute attach needs the AKS cluster and its Microsoft.AzureML.Kubernetes extension;
  resourceId / namespace cannot change in place; a compute used by an endpoint cannot be detached;
* endpoint `compute` (managed vs Kubernetes) is immutable; traffic names only existing deployments and
  sums to 0 or 100;
* a deployment's model / environment / code ids must exist; instanceType and endpointComputeType are
  immutable; a deployment with traffic (or mirror traffic) cannot be deleted.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import TYPE_CHECKING

from aiohttp import web

from .errors import bad_request as bad
from .errors import conflict, json_response
from .ids import ArmPath, key
from .kinds import PS, Kind, fill_defaults, props, register, same, state_of

if TYPE_CHECKING:
    from .context import Context
    from .store import Record

NS = "microsoft.machinelearningservices/workspaces"
BLOB_SUFFIX = "blob.core.windows.net"
DEFAULT_DATASTORE = "workspaceblobstore"


def ws_child(ws: ArmPath, *segs: str) -> str:
    return ws.child(*segs).path


def storage_account_name(workspace: str) -> str:
    alnum = "".join(c for c in workspace.lower() if c.isalnum())[:14] or "ws"
    return f"{alnum}{uuid.uuid5(uuid.NAMESPACE_URL, workspace).hex[:8]}"


# -- workspace ------------------------------------------------------------------------------------------

class WorkspaceKind(Kind):
    type_key = NS

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        p = props(out)
        old = props(existing.body) if existing else {}
        rg = ArmPath(path.segs[:4])
        account = storage_account_name(path.name)
        fill_defaults(out, {"kind": "Default", "sku": {"name": "Basic", "tier": "Basic"}, "tags": {},
                            "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid4()),
                                         "tenantId": ctx.settings.tenant_id}})
        location = out.get("location") or "westeurope"
        fill_defaults(p, {
            "friendlyName": path.name,
            "workspaceId": old.get("workspaceId") or str(uuid.uuid4()),
            "storageAccount": old.get("storageAccount")
            or rg.child("providers", "Microsoft.Storage", "storageAccounts", account).path,
            "keyVault": rg.child("providers", "Microsoft.KeyVault", "vaults", f"kv{account}"[:24]).path,
            "applicationInsights": rg.child("providers", "Microsoft.Insights", "components", f"ai{account}").path,
            "discoveryUrl": f"{ctx.url}/discovery",
            "mlFlowTrackingUri": f"azureml://{location}.api.azureml.ms/mlflow/v1.0{path.path}",
            "hbiWorkspace": False, "publicNetworkAccess": "Enabled", "v1LegacyMode": False,
            "storageHnsEnabled": False, "enableDataIsolation": False, "systemDatastoresAuthMode": "accesskey",
            "allowPublicAccessWhenBehindVnet": False, "imageBuildCompute": None,
        })
        return out, None

    def on_ready(self, ctx, path, record):
        ensure_default_datastore(ctx, path, record)


def ensure_default_datastore(ctx: "Context", ws: ArmPath, record: "Record") -> None:
    ds_path = ws_child(ws, "datastores", DEFAULT_DATASTORE)
    if ctx.store.exists(ds_path):
        return
    account = props(record.body)["storageAccount"].rstrip("/").split("/")[-1]
    container = f"azureml-blobstore-{props(record.body)['workspaceId']}"
    body = {"properties": {"datastoreType": "AzureBlob", "accountName": account, "containerName": container,
                           "endpoint": "core.windows.net", "protocol": "https",
                           "credentials": {"credentialsType": "AccountKey"}, "isDefault": True,
                           "serviceDataAccessAuthIdentity": "None", "description": None, "tags": {},
                           "properties": {}}}
    path = ArmPath.parse(ds_path)
    stored, _ = DATASTORES.prepare(ctx, path, body, None)
    props(stored)[PS] = "Succeeded"
    ctx.store.put(ds_path, stored)
    ctx.blobs.containers.add((account.lower(), container))


def materialise_workspace(ctx: "Context", ws_path: str, params: dict) -> None:
    """What the workspace ARM template would create: the workspace and its default datastore."""
    ws = ArmPath.parse(ws_path)
    existing = ctx.store.get(ws_path)
    body = {"location": params.get("location") or "westeurope", "tags": params.get("tagValues") or {},
            "kind": params.get("kind") or "Default",
            "properties": {"friendlyName": params.get("friendlyName") or ws.name,
                           "description": params.get("description") or ""}}
    if params.get("storageAccountName"):
        rg = params.get("storageAccountResourceGroupName") or ws.resource_group
        sub = params.get("storageAccountSubscriptionId") or ws.subscription
        props(body)["storageAccount"] = (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/"
                                         f"storageAccounts/{params['storageAccountName'].lower()}")
    stored, _ = WORKSPACES.prepare(ctx, ws, body, existing)
    props(stored)[PS] = "Succeeded"
    rec = ctx.store.put(ws_path, stored)
    WORKSPACES.on_ready(ctx, ws, rec)


# -- datastores -----------------------------------------------------------------------------------------

def list_secrets(ctx, path, record, body, base_url):
    if ctx.settings.datastore_secret.lower() == "sas":
        return json_response({"secretsType": "Sas", "sasToken": "sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&sig=emulated"})
    return json_response({"secretsType": "AccountKey", "key": ctx.settings.storage_key})


class DatastoreKind(Kind):
    type_key = NS + "/datastores"
    lro_put = lro_delete = False
    actions = {"listSecrets": list_secrets}

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        p = props(out)
        creds = p.get("credentials") or {}
        creds.pop("secrets", None)            # secrets go in, never come back out
        p["credentials"] = creds or {"credentialsType": "None"}
        fill_defaults(p, {"isDefault": False, "tags": {}, "properties": {}, "endpoint": "core.windows.net",
                          "protocol": "https"})
        return out, None

    def filter(self, ctx, records, query):
        wanted = query.get("isDefault")
        if wanted is None:
            return records
        flag = wanted.lower() == "true"
        return [r for r in records if bool(props(r.body).get("isDefault")) == flag]


def default_datastore(ctx: "Context", ws: ArmPath) -> dict:
    rec = ctx.store.get(ws_child(ws, "datastores", DEFAULT_DATASTORE))
    if rec is None:
        raise bad("DatastoreNotFound", f"The workspace '{ws.name}' has no default datastore.")
    return props(rec.body)


# -- assets ---------------------------------------------------------------------------------------------

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


# -- computes -------------------------------------------------------------------------------------------

AZUREML_EXTENSION = "microsoft.azureml.kubernetes"


class ComputeKind(Kind):
    type_key = NS + "/computes"

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        p = props(out)
        ctype = p.get("computeType") or ""
        inner = p.get("properties") if isinstance(p.get("properties"), dict) else {}
        if existing is not None:
            old = props(existing.body)
            old_inner = old.get("properties") or {}
            for label, a, b in (("computeType", old.get("computeType"), ctype),
                                ("resourceId", old.get("resourceId"), p.get("resourceId")),
                                ("namespace", old_inner.get("namespace"), inner.get("namespace"))):
                if not same(a, b):
                    raise conflict("ComputeAlreadyExists",
                                   f"Compute '{path.name}' already exists with {label} {a!r}; it cannot change to "
                                   f"{b!r} in place. Detach the compute and attach it again.")
        if ctype.lower() == "kubernetes":
            self.check_cluster(ctx, path, p.get("resourceId"))
            inner.setdefault("namespace", "default")
            p["properties"] = inner
        fill_defaults(p, {"computeLocation": out.get("location"), "description": None,
                          "isAttachedCompute": ctype.lower() in ("kubernetes", "aks"), "disableLocalAuth": False,
                          "provisioningErrors": None})
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())
        p.setdefault("createdOn", props(existing.body).get("createdOn", now) if existing else now)
        p["modifiedOn"] = now
        return out, None

    @staticmethod
    def check_cluster(ctx, path, resource_id):
        if not resource_id:
            raise bad("BadArgument", f"Compute '{path.name}': properties.resourceId (the AKS cluster id) is required.")
        cluster = ctx.store.get(resource_id)
        if cluster is None or "managedclusters" not in key(resource_id):
            raise bad("KubernetesClusterNotFound",
                      f"Cannot attach compute '{path.name}': Kubernetes cluster '{resource_id}' was not found.")
        if state_of(cluster.body) != "Succeeded":
            raise bad("KubernetesClusterNotReady",
                      f"Cannot attach compute '{path.name}': cluster '{cluster.body['name']}' is in state "
                      f"{state_of(cluster.body)!r}.")
        extensions = ctx.store.children(cluster.id + "/providers/Microsoft.KubernetesConfiguration/extensions")
        ready = [e for e in extensions if str(props(e.body).get("extensionType", "")).lower() == AZUREML_EXTENSION
                 and state_of(e.body) == "Succeeded"]
        if not ready:
            raise bad("AzureMLExtensionNotInstalled",
                      f"Cannot attach compute '{path.name}': the Microsoft.AzureML.Kubernetes extension is not "
                      f"installed (or not ready) on cluster '{cluster.body['name']}'. Install it before attaching.")

    def check_delete(self, ctx, path, record):
        ws = path.workspace()
        users = [e.body["name"] for e in ctx.store.children(ws_child(ws, "onlineEndpoints"))
                 if _compute_key(ws, props(e.body).get("compute")) == path.key]
        if users:
            raise conflict("ComputeInUse", f"Compute '{path.name}' is used by online endpoint(s) "
                                           f"{', '.join(users)}; delete them before detaching the compute.")


def _compute_key(ws: ArmPath, compute: str | None) -> str | None:
    if not compute:
        return None
    if compute.startswith("/"):
        return key(compute)
    name = compute.split(":", 1)[1] if compute.lower().startswith("azureml:") else compute
    return key(ws_child(ws, "computes", name))


# -- online endpoints -----------------------------------------------------------------------------------

def _keys(record: "Record") -> dict:
    return record.private.setdefault("keys", {"primaryKey": secrets.token_urlsafe(24),
                                              "secondaryKey": secrets.token_urlsafe(24)})


def list_keys(ctx, path, record, body, base_url):
    if str(props(record.body).get("authMode", "")).lower() != "key":
        raise bad("BadArgument", f"Endpoint '{path.name}' does not use key authentication.")
    return json_response(dict(_keys(record)))


def get_token(ctx, path, record, body, base_url):
    if str(props(record.body).get("authMode", "")).lower() != "amltoken":
        raise bad("BadArgument", f"Endpoint '{path.name}' does not use AML token authentication.")
    token, expiry = secrets.token_urlsafe(32), int(time.time()) + 3600
    tokens = record.private.setdefault("tokens", {})
    tokens[token] = expiry
    ctx.store.save()
    return json_response({"accessToken": token, "tokenType": "Bearer", "expiryTimeUtc": expiry,
                          "refreshAfterTimeUtc": expiry - 1800})


def regenerate_keys(ctx, path, record, body, base_url):
    which = "primaryKey" if str(body.get("keyType", "Primary")).lower() == "primary" else "secondaryKey"
    _keys(record)[which] = body.get("keyValue") or secrets.token_urlsafe(24)
    ctx.store.save()
    return web.Response(status=200)


class EndpointKind(Kind):
    type_key = NS + "/onlineendpoints"
    actions = {"listKeys": list_keys, "token": get_token, "regenerateKeys": regenerate_keys}

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        p = props(out)
        ws = path.workspace()
        compute = p.get("compute")
        if compute:
            ck = _compute_key(ws, compute)
            rec = ctx.store.get(ck)
            if rec is None:
                raise bad("ComputeNotFound", f"Endpoint '{path.name}': compute '{compute}' does not exist in "
                                             f"workspace '{ws.name}'.")
            if str(props(rec.body).get("computeType", "")).lower() != "kubernetes":
                raise bad("BadArgument", f"Endpoint '{path.name}': compute '{compute}' is not a Kubernetes compute.")
        if existing is not None:
            old = props(existing.body)
            if _compute_key(ws, old.get("compute")) != _compute_key(ws, compute):
                raise bad("BadArgument",
                          f"Endpoint '{path.name}': compute cannot be changed (from {old.get('compute') or 'managed'!r} "
                          f"to {compute or 'managed'!r}); it is immutable. Delete and recreate the endpoint.")
            if not ctx.settings.endpoint_auth_mode_mutable and not same(old.get("authMode"), p.get("authMode")):
                raise bad("BadArgument", f"Endpoint '{path.name}': authMode is immutable.")
            for field in ("scoringUri", "swaggerUri"):
                p[field] = old.get(field)
        self.check_traffic(ctx, path, p.get("traffic") or {}, "traffic")
        self.check_traffic(ctx, path, p.get("mirrorTraffic") or {}, "mirrorTraffic")
        fill_defaults(out, {"identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid4()),
                                         "tenantId": ctx.settings.tenant_id}, "tags": {}})
        fill_defaults(p, {"authMode": "Key", "traffic": {}, "mirrorTraffic": {}, "publicNetworkAccess": "Enabled",
                          "description": None, "properties": {},
                          "scoringUri": f"{ctx.url}/endpoints/{path.name}/score",
                          "swaggerUri": f"{ctx.url}/endpoints/{path.name}/swagger.json"})
        private = dict(existing.private) if existing else {}
        private.setdefault("keys", {"primaryKey": secrets.token_urlsafe(24),
                                    "secondaryKey": secrets.token_urlsafe(24)})
        return out, private

    @staticmethod
    def check_traffic(ctx, path, traffic: dict, field: str) -> None:
        existing = {r.body["name"].lower(): r.body["name"] for r in ctx.store.children(path.path + "/deployments")}
        unknown = [name for name in traffic if name.lower() not in existing]
        if unknown:
            raise bad("BadArgument",
                      f"Endpoint '{path.name}': {field} names deployment(s) that do not exist: {', '.join(unknown)} "
                      f"(existing: {', '.join(sorted(existing.values())) or 'none'}).")
        bad_values = {k: v for k, v in traffic.items() if not isinstance(v, int) or not 0 <= v <= 100}
        if bad_values:
            raise bad("BadArgument", f"Endpoint '{path.name}': {field} values must be integers 0-100: {bad_values}.")
        total = sum(traffic.values())
        if field == "traffic" and total not in (0, 100):
            raise bad("BadArgument", f"Endpoint '{path.name}': traffic must sum to 0 or 100 over the endpoint's "
                                     f"deployments, got {total} ({traffic}).")
        if field == "mirrorTraffic" and any(v > 50 for v in traffic.values()):
            raise bad("BadArgument", f"Endpoint '{path.name}': mirror traffic cannot exceed 50%.")


# -- online deployments ---------------------------------------------------------------------------------

PROBE = {"failureThreshold": 30, "successThreshold": 1, "timeout": "PT2S", "period": "PT10S", "initialDelay": "PT10S"}


def get_logs(ctx, path, record, body, base_url):
    tail = body.get("tail")
    content = ctx.dataplane.logs(record.id) if ctx.dataplane else ""
    if isinstance(tail, int) and tail >= 0:
        content = "\n".join(content.splitlines()[-tail:]) if tail else ""
    return json_response({"content": content})


class DeploymentKind(Kind):
    type_key = NS + "/onlineendpoints/deployments"
    actions = {"getLogs": get_logs}

    async def provision(self, ctx, path, record):
        """Start the deployment's scoring container now, as the service does: a crash fails the operation."""
        if ctx.dataplane is None or not (props(record.body).get("codeConfiguration") or {}).get("codeId"):
            return None
        return await ctx.dataplane.provision(record)

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        p = props(out)
        endpoint = ctx.store.get(path.parent().path)
        on_k8s = bool(props(endpoint.body).get("compute"))
        ect = p.get("endpointComputeType") or ("Kubernetes" if on_k8s else "Managed")
        if on_k8s != (ect.lower() == "kubernetes"):
            raise bad("BadArgument", f"Deployment '{path.name}': endpointComputeType {ect!r} does not match endpoint "
                                     f"'{endpoint.body['name']}' ({'Kubernetes' if on_k8s else 'Managed'}).")
        p["endpointComputeType"] = ect
        self.check_refs(ctx, path, p)
        if existing is not None:
            old = props(existing.body)
            for field in ("instanceType", "endpointComputeType"):
                if old.get(field) and not same(old.get(field), p.get(field) or old.get(field)):
                    raise bad("BadArgument",
                              f"Deployment '{path.name}': {field} cannot be changed from {old.get(field)!r} to "
                              f"{p.get(field)!r}; it is immutable. Create a new deployment and shift traffic.")
        fill_defaults(out, {"sku": {"name": "Default", "tier": "Standard", "capacity": 1}, "tags": {}})
        fill_defaults(p, {
            "instanceType": "defaultinstancetype" if on_k8s else "Standard_DS3_v2",
            "scaleSettings": {"scaleType": "Default"},
            "requestSettings": {"requestTimeout": "PT5S", "maxConcurrentRequestsPerInstance": 1,
                                "maxQueueWait": "PT0.5S"},
            "livenessProbe": PROBE, "readinessProbe": PROBE,
            "appInsightsEnabled": False, "egressPublicNetworkAccess": "Enabled", "environmentVariables": {},
            "properties": {}, "description": None,
        })
        if on_k8s:
            fill_defaults(p, {"containerResourceRequirements": {
                "containerResourceRequests": {"cpu": "0.1", "memory": "0.5Gi"}, "containerResourceLimits": {}}})
        return out, None

    @staticmethod
    def check_refs(ctx, path, p) -> None:
        code = (p.get("codeConfiguration") or {}).get("codeId")
        for label, code_name, ref in (("model", "ModelNotFound", p.get("model")),
                                      ("environment", "EnvironmentNotFound", p.get("environmentId")),
                                      ("code", "CodeNotFound", code)):
            if ref and ref.startswith("/subscriptions/") and not ctx.store.exists(ref):
                raise bad(code_name, f"Deployment '{path.name}': {label} '{ref}' does not exist.")

    def check_delete(self, ctx, path, record):
        endpoint = ctx.store.get(path.parent().path)
        if endpoint is None:
            return
        p = props(endpoint.body)
        for field in ("traffic", "mirrorTraffic"):
            share = {k.lower(): v for k, v in (p.get(field) or {}).items()}.get(path.name.lower(), 0)
            if share:
                raise bad("BadArgument",
                          f"Deployment '{path.name}' has {share}% {field} on endpoint '{endpoint.body['name']}'; "
                          f"set its {field} to 0 before deleting it.")


WORKSPACES = WorkspaceKind()
DATASTORES = DatastoreKind()
register(
    WORKSPACES, DATASTORES, ComputeKind(), EndpointKind(), DeploymentKind(),
    AssetContainerKind("models"), AssetContainerKind("environments"), AssetContainerKind("codes"),
    AssetVersionKind("models", "Model", ("modelUri", "modelType"), {"flavors": {}, "stage": "Development"}),
    AssetVersionKind("environments", "Environment", ("image", "condaFile", "build", "inferenceConfig"),
                     {"osType": "Linux", "environmentType": "UserCreated", "autoRebuild": "Disabled"}),
    CodeVersionKind("codes", "Code", ("codeUri",), {}),
)
