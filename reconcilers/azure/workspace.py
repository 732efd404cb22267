"""workspace.<name>: an Azure ML workspace (azure-ai-ml `workspaces`).

Creation is an ARM template deployment run by the SDK (storage, key vault, app insights come with it).
The seed's "experiment" has no real-time-scoring meaning in SDK v2; its name is kept as a tag.
Location is immutable. Destroy (owned workspaces only) purges it, the resources its template created
(storage, key vault, app insights, ...) and the template's deployment record, so the name can be reused at
once (a soft-deleted workspace otherwise blocks re-creation).
"""

from __future__ import annotations

import re
from typing import Any

from rtsctl.plan.diff import project
from rtsctl.support.errors import ResourceError
from rtsctl.plan.normalize import location
from rtsctl.observe.ownership import held
from rtsctl.desired.resources import Observed, Resource

from .common import (
    SMART_GROUP_API,
    SMART_GROUP_TYPE,
    SMART_RULE_API,
    SMART_RULE_PREFIX,
    SMART_RULE_TYPE,
    AzureReconciler,
    drop_none,
    is_managed,
    is_smart_detection,
    managed_tags,
    owner_of,
)

EXPERIMENT_TAG = "rtsctl.experiment"

def deployments_api_version() -> str:
    """The ARM deployments API version azure-ai-ml's own workspace template deployment uses (installed SDK)."""
    from azure.ai.ml.constants._common import ArmConstants

    return ArmConstants.AZURE_MGMT_RESOURCE_API_VERSION


class WorkspaceReconciler(AzureReconciler):
    kind = "workspace"
    immutable = frozenset({"location"})
    normalize = {"location": location}
    shared = True

    def observe(self, res: Resource) -> Observed | None:
        ws = self.read(res.address, ("workspace", res.name.casefold()), self.ml.workspaces.get, res.name)
        if ws is None:
            return None
        tags = dict(ws.tags or {})
        spec: dict[str, Any] = {"location": ws.location, "description": ws.description}
        if EXPERIMENT_TAG in tags:
            spec["experiment_name"] = tags[EXPERIMENT_TAG]
        spec["tags"] = project(tags, res.spec.get("tags") or {})
        return Observed(
            address=res.address,
            spec=drop_none(spec),
            owned=is_managed(tags),
            owner=owner_of(tags),
            outputs={"id": ws.id, "location": ws.location},
            handle=ws,
        )

    def _tags(self, res: Resource, existing: dict[str, Any] | None = None) -> dict[str, str]:
        extra = {EXPERIMENT_TAG: res.spec["experiment_name"]} if res.spec.get("experiment_name") else {}
        tags = dict(existing or {})
        tags.update({str(k): str(v) for k, v in (res.spec.get("tags") or {}).items()})
        tags.update(extra)
        return tags

    def create(self, res: Resource) -> None:
        from azure.ai.ml.entities import Workspace

        ws = Workspace(
            name=res.name,
            location=res.spec.get("location") or self.clients.location,
            description=res.spec.get("description"),
            tags=managed_tags(self.settings.tags, self._tags(res)),
        )
        self.wait(res.address, self.ml.workspaces.begin_create(ws))

    def update(self, res: Resource, observed: Observed) -> None:
        ws = self.read(res.address, ("workspace", res.name.casefold()), self.ml.workspaces.get, res.name)
        if ws is None:
            raise ResourceError(res.address, f"workspace {res.name} vanished during the apply", "ResourceNotFound")
        # keep every tag already there; set the declared ones and this manifest's ownership (only the owner updates)
        self.patch_workspace(res.address, {**self._tags(res, ws.tags), **self.settings.tags},
                             res.spec.get("description") if "description" in res.spec else None)

    def holds(self, observed: Observed, owner: str) -> list[str]:
        """Endpoints, computes and model/environment versions in the workspace another manifest or nobody owns."""
        from .compute import COMPUTE_OWNER_TAG

        found: list[str] = []
        with self.errors(observed.address):
            for ep in self.ml.online_endpoints.list():
                if owner_of(ep.tags) != owner:
                    found.append(held("endpoint", ep.name, owner_of(ep.tags)))
            for compute in self.ml.compute.list():
                who = (observed.handle.tags or {}).get(COMPUTE_OWNER_TAG + compute.name)
                if who != owner:
                    found.append(held("compute", compute.name, who))
            for kind, operations in (("model", self.ml.models), ("environment", self.ml.environments)):
                for container in operations.list():
                    owners = {owner_of(v.tags) for v in operations.list(name=container.name)}
                    found += [held(kind, container.name, who) for who in sorted(owners - {owner}, key=str)]
        return found

    def delete(self, observed: Observed) -> None:
        if not observed.owned:
            return
        name = observed.address.split(".", 1)[1]
        ws = self.get_or_none(observed.address, self.ml.workspaces.get, name)
        if ws is None:
            return
        # The SDK's delete_dependent_resources=True stops at the first dependent that is already gone (a 404
        # on the app insights GET), before the workspace itself is deleted; so the workspace goes first and
        # the resources its creation template made for it follow, each tolerating "already gone".
        self.wait_delete(observed.address, self.ml.workspaces.begin_delete, name,
                         delete_dependent_resources=False, permanently_delete=True)
        for arm_id, api_version in self._dependents(observed.address, ws):
            self.wait_delete(observed.address, self.clients.resources.resources.begin_delete_by_id,
                             arm_id, api_version=api_version)
        if ws.application_insights:
            self._delete_smart_detection(observed.address, ws.application_insights)
        self._delete_creation_records(observed.address, name)

    def _delete_smart_detection(self, address: str, component_id: str) -> None:
        """What the App Insights component created by itself (untagged): its "Failure Anomalies" rule, and the
        group's "Application Insights Smart Detection" action group once no smart-detector rule is left to use it."""
        parts = component_id.strip("/").split("/")
        lowered = [p.lower() for p in parts]
        if "resourcegroups" not in lowered:
            return
        rg, component = parts[lowered.index("resourcegroups") + 1], parts[-1]
        listing = self.clients.resources.resources.list_by_resource_group
        with self.errors(address):
            found = [r for r in listing(rg) if is_smart_detection(r.type, r.name)]
        rules = [r for r in found if r.type.lower() == SMART_RULE_TYPE]
        mine = [r for r in rules if r.name == f"{SMART_RULE_PREFIX}{component}"]
        for rule in mine:
            self.wait_delete(address, self.clients.resources.resources.begin_delete_by_id, rule.id,
                             api_version=SMART_RULE_API)
        if len(mine) == len(rules):  # no other component's rule still points at the shared action group
            for group in (r for r in found if r.type.lower() == SMART_GROUP_TYPE):
                self.wait_delete(address, self.clients.resources.resources.begin_delete_by_id, group.id,
                                 api_version=SMART_GROUP_API)

    def _delete_creation_records(self, address: str, name: str) -> None:
        """The ARM deployment records `workspaces.begin_create` left in the resource group (`<ws>-<digits>`,
        deploying this workspace): history rtsctl made, so destroy clears it too."""
        from azure.core.exceptions import HttpResponseError
        from azure.core.rest import HttpRequest

        rg = self.settings.resource_group
        api_version = deployments_api_version()
        pattern = re.compile(rf"^{re.escape(name)}-\d+$")
        scope = f"/subscriptions/{self.clients.subscription_id}/resourcegroups/{rg}/providers/Microsoft.Resources/deployments"
        # azure-mgmt-resource 26 ships deployments as a separate package; the resources client's
        # send_request (same pipeline: auth, retries) lists them without another dependency
        with self.errors(address):
            response = self.clients.resources.send_request(
                HttpRequest("GET", f"{scope}?api-version={api_version}")
            )
            if response.status_code == 404:
                return
            if response.status_code >= 300:
                raise HttpResponseError(response=response)
            records = response.json().get("value") or []
        for record in records:
            parameters = (record.get("properties") or {}).get("parameters") or {}
            target = (parameters.get("workspaceName") or {}).get("value")
            if pattern.match(record.get("name") or "") and target == name:
                self.wait_delete(address, self.clients.resources.resources.begin_delete_by_id,
                                 record["id"], api_version=api_version)

    def _dependents(self, address: str, ws: Any) -> list[tuple[str, str]]:
        from azure.ai.ml.constants._common import ArmConstants as C

        found: list[tuple[str, str]] = []
        if ws.application_insights:
            insights = self.get_or_none(address, self.clients.resources.resources.get_by_id,
                                        ws.application_insights, api_version=C.AZURE_MGMT_APPINSIGHT_API_VERSION)
            log_analytics = ((insights.properties or {}) if insights is not None else {}).get("WorkspaceResourceId")
            if insights is not None:
                found.append((ws.application_insights, C.AZURE_MGMT_APPINSIGHT_API_VERSION))
            if log_analytics:
                found.append((log_analytics, C.AZURE_MGMT_LOGANALYTICS_API_VERSION))
        for arm_id, version in ((ws.storage_account, C.AZURE_MGMT_STORAGE_API_VERSION),
                                (ws.key_vault, C.AZURE_MGMT_KEYVAULT_API_VERSION),
                                (ws.container_registry, C.AZURE_MGMT_CONTAINER_REG_API_VERSION)):
            if arm_id:
                found.append((arm_id, version))
        return found
