"""Workspaces (created through an ARM template deployment, see templates.py) and their datastores."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from ..errors import bad_request as bad
from ..errors import json_response
from ..ids import ArmPath
from ..kinds import PS, Kind, fill_defaults, props, register
from .common import DEFAULT_DATASTORE, NS, storage_account_name, ws_child

if TYPE_CHECKING:
    from ..context import Context
    from ..store import Record


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
        # field set: spec Workspace properties (machinelearningservices stable/2024-04-01 workspaceRP.json);
        # values: guesses shaped like a real workspace (mlFlowTrackingUri form azureml://{region}.api.azureml.ms/...;
        # discoveryUrl points at the emulator instead of https://{region}.api.azureml.ms/discovery -- a deviation)
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
    # R01 #4, R02 #2: the default datastore as the service shows it (tags/properties null, the workspace's
    # identity for data access; subscriptionId/resourceGroup since 2024)
    body = {"properties": {"datastoreType": "AzureBlob", "accountName": account, "containerName": container,
                           "endpoint": "core.windows.net", "protocol": "https",
                           "credentials": {"credentialsType": "AccountKey"}, "isDefault": True,
                           "serviceDataAccessAuthIdentity": "WorkspaceSystemAssignedIdentity", "description": None,
                           "subscriptionId": ws.subscription, "resourceGroup": ws.resource_group}}
    path = ArmPath.parse(ds_path)
    stored, _ = DATASTORES.prepare(ctx, path, body, None)
    props(stored).update({"tags": None, "properties": None})
    props(stored)[PS] = "Succeeded"
    ctx.store.put(ds_path, stored)
    ctx.blobs.containers.add((account.lower(), container))


# The workspace ARM template azure-ai-ml sends (azure/ai/ml/_arm_deployments/arm_templates/workspace_base.json in
# the installed SDK): with option "new" it creates these beside the workspace, each tagged `tagValues`.
TEMPLATE_RESOURCES = (
    # (option parameter, name parameter, resource-group parameter, provider, type)
    ("storageAccountOption", "storageAccountName", "storageAccountResourceGroupName", "Microsoft.Storage",
     "storageAccounts"),
    ("keyVaultOption", "keyVaultName", "keyVaultResourceGroupName", "Microsoft.KeyVault", "vaults"),
    ("applicationInsightsOption", "logAnalyticsName", "applicationInsightsResourceGroupName",
     "Microsoft.OperationalInsights", "workspaces"),
    ("applicationInsightsOption", "applicationInsightsName", "applicationInsightsResourceGroupName",
     "Microsoft.Insights", "components"),
)


def template_resource_ids(ws: ArmPath, params: dict) -> dict[str, str]:
    """{name parameter: ARM id} of what the template creates as "new" (its default option)."""
    out = {}
    for option, name_param, rg_param, provider, rtype in TEMPLATE_RESOURCES:
        name = params.get(name_param)
        if not name or (params.get(option) or "new").lower() != "new":
            continue
        rg = params.get(rg_param) or ws.resource_group
        out[name_param] = (f"/subscriptions/{ws.subscription}/resourceGroups/{rg}/providers/{provider}/{rtype}/"
                           f"{name}")
    return out


def materialise_workspace(ctx: "Context", ws_path: str, params: dict) -> None:
    """What the workspace ARM template would create: its new storage/key vault/log analytics/App Insights (and
    what App Insights creates by itself, insights.py), the workspace and its default datastore."""
    from ..insights import create_smart_detection
    from ..kinds import kind_for

    ws = ArmPath.parse(ws_path)
    location = params.get("location") or "westeurope"
    tags = params.get("tagValues") or {}
    created = template_resource_ids(ws, params)
    for arm_id in created.values():
        path = ArmPath.parse(arm_id)
        if ctx.store.exists(arm_id) or not ctx.store.exists(ArmPath(path.segs[:4]).path):
            continue
        body = {"location": location, "tags": dict(tags)}
        if path.type_key() == "microsoft.insights/components":
            # the template links the component to its Log Analytics workspace (what the SDK's
            # delete_dependent_resources follows to delete that workspace too)
            log_analytics = params.get("logAnalyticsArmId") or created.get("logAnalyticsName")
            body["properties"] = {"Application_Type": "web", "WorkspaceResourceId": log_analytics}
        if path.type_key() == "microsoft.keyvault/vaults":
            # the template's new vault uses Azure RBAC, no access policies (azure-ai-ml 1.35
            # _arm_deployments/arm_templates/workspace_base.json, Microsoft.KeyVault/vaults 2023-07-01)
            body["properties"] = {"tenantId": ctx.settings.tenant_id, "sku": {"name": "standard", "family": "A"},
                                  "accessPolicies": [], "enableRbacAuthorization": True}
        stored, private = kind_for(path).prepare(ctx, path, body, None)
        props(stored)[PS] = "Succeeded"
        ctx.store.put(arm_id, stored, private)
        if path.type_key() == "microsoft.insights/components":
            create_smart_detection(ctx, path)
    existing = ctx.store.get(ws_path)
    body = {"location": location, "tags": tags,
            "kind": params.get("kind") or "Default",
            "properties": {"friendlyName": params.get("friendlyName") or ws.name,
                           "description": params.get("description") or ""}}
    if params.get("storageAccountName"):
        rg = params.get("storageAccountResourceGroupName") or ws.resource_group
        sub = params.get("storageAccountSubscriptionId") or ws.subscription
        props(body)["storageAccount"] = (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/"
                                         f"storageAccounts/{params['storageAccountName'].lower()}")
    if "keyVaultName" in created:
        props(body)["keyVault"] = created["keyVaultName"]
    if "applicationInsightsName" in created:
        props(body)["applicationInsights"] = created["applicationInsightsName"]
    stored, _ = WORKSPACES.prepare(ctx, ws, body, existing)
    props(stored)[PS] = "Succeeded"
    rec = ctx.store.put(ws_path, stored)
    WORKSPACES.on_ready(ctx, ws, rec)


# -- datastores -----------------------------------------------------------------------------------------

def list_secrets(ctx, path, record, body, base_url):
    # R02 #3 (2026): a request asking for an expirable secret gets a SAS -- with a leading "?" -- even though the
    # datastore's credentialsType is AccountKey; R01 #5 (2022): no body -> the account key. Settings can force one.
    mode = ctx.settings.datastore_secret.lower()
    if mode == "sas" or (mode == "recorded" and body.get("expirableSecret")):
        sas = "?sv=2021-08-06&se=2099-01-01T00%3A00%3A00Z&srt=co&ss=bf&sp=rcuwdl&sig=emulated"
        return json_response({"secretsType": "Sas", "sasToken": sas})
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


WORKSPACES = WorkspaceKind()
DATASTORES = DatastoreKind()
register(WORKSPACES, DATASTORES)
