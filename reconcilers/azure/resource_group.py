"""resource_group.<name>: an Azure resource group (azure-mgmt-resource). Location is immutable.

A resource group that existed before rtsctl (no `managed-by: rtsctl` tag) is only referenced: destroy
leaves it. An owned one is deleted only when nothing foreign lives in it.
"""

from __future__ import annotations

from rtsctl.support.errors import ResourceError
from rtsctl.plan.normalize import location
from rtsctl.observe.ownership import held
from rtsctl.desired.resources import Observed, Resource

from .common import AzureReconciler, is_managed, is_smart_detection, managed_tags, owner_of


#: ARM deployment records (history, not resources): the workspace's own go with it (workspace.py)
DEPLOYMENT_RECORD_TYPE = "microsoft.resources/deployments"


#: what a workspace's creation template makes beside it (azure-ai-ml's workspace ARM template: storage, key vault,
#: Application Insights with its Log Analytics workspace, container registry), deleted with it (workspace.py)
WORKSPACE_PARTS = frozenset({"microsoft.storage/storageaccounts", "microsoft.keyvault/vaults",
                             "microsoft.insights/components", "microsoft.operationalinsights/workspaces",
                             "microsoft.containerregistry/registries"})


def _legacy_workspace_part(resource) -> bool:
    """Made by rtsctl with a workspace before owners existed (managed-by, no owner): it goes with that workspace,
    whoever claimed it, so it never makes the group look shared."""
    return is_managed(resource.tags) and owner_of(resource.tags) is None and \
        str(resource.type).lower() in WORKSPACE_PARTS


class ResourceGroupReconciler(AzureReconciler):
    kind = "resource_group"
    immutable = frozenset({"location"})
    normalize = {"location": location}
    shared = True

    def observe(self, res: Resource) -> Observed | None:
        rg = self.get_or_none(res.address, self.clients.resources.resource_groups.get, res.name)
        if rg is None:
            return None
        return Observed(
            address=res.address,
            spec={"location": rg.location},
            owned=is_managed(rg.tags),
            owner=owner_of(rg.tags),
            outputs={"id": rg.id},
            handle=rg.name,
        )

    def create(self, res: Resource) -> None:
        with self.errors(res.address):
            self.clients.resources.resource_groups.create_or_update(
                res.name,
                {"location": res.spec.get("location") or self.clients.location, "tags": managed_tags(self.settings.tags)},
            )

    def update(self, res: Resource, observed: Observed) -> None:
        # only the location could differ, and that forces a replacement: nothing to do in place
        return None

    def claim(self, res: Resource, observed: Observed) -> None:
        with self.errors(res.address):  # a PATCH of the tags alone (the resource-groups Update operation)
            rg = self.clients.resources.resource_groups.get(res.name)
            self.clients.resources.resource_groups.update(res.name, {"tags": {**(rg.tags or {}),
                                                                              **self.settings.tags}})

    def holds(self, observed: Observed, owner: str) -> list[str]:
        """Resources in the group another manifest or nobody owns (Application Insights' own smart-detection
        rule and action group aside: they go with the component that made them)."""
        name = observed.handle or observed.address.split(".", 1)[1]
        with self.errors(observed.address):
            found = list(self.clients.resources.resources.list_by_resource_group(name))
        return [held(str(r.type).rsplit("/", 1)[-1], r.name, owner_of(r.tags)) for r in found
                if owner_of(r.tags) != owner and not is_smart_detection(r.type, r.name)
                and str(r.type).lower() != DEPLOYMENT_RECORD_TYPE and not _legacy_workspace_part(r)]

    def delete(self, observed: Observed) -> None:
        name = observed.handle or observed.address.split(".", 1)[1]
        with self.errors(observed.address):
            # Application Insights' own smart-detection rule and action group are by-products of a resource rtsctl
            # made (or of one that is foreign anyway): they go with the group and never block it
            foreign = [
                r.id
                for r in self.clients.resources.resources.list_by_resource_group(name)
                if not is_managed(r.tags) and not is_smart_detection(r.type, r.name)
            ]
        if foreign:
            shown = ", ".join(f.rsplit("/providers/", 1)[-1] for f in foreign[:3])
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise ResourceError(
                observed.address,
                f"not deleted: it holds resources rtsctl did not create ({shown}{more}); remove them first",
                "ForeignResources",
            )
        self.wait_delete(observed.address, self.clients.resources.resource_groups.begin_delete, name)
