"""resource_group.<name>: an Azure resource group (azure-mgmt-resource). Location is immutable.

A resource group that existed before rtsctl (no `managed-by: rtsctl` tag) is only referenced: destroy
leaves it. An owned one is deleted only when nothing foreign lives in it.
"""

from __future__ import annotations

from rtsctl.errors import ResourceError
from rtsctl.normalize import location
from rtsctl.resources import Observed, Resource

from .common import AzureReconciler, is_managed, is_smart_detection, managed_tags


class ResourceGroupReconciler(AzureReconciler):
    kind = "resource_group"
    immutable = frozenset({"location"})
    normalize = {"location": location}

    def observe(self, res: Resource) -> Observed | None:
        rg = self.get_or_none(res.address, self.clients.resources.resource_groups.get, res.name)
        if rg is None:
            return None
        return Observed(
            address=res.address,
            spec={"location": rg.location},
            owned=is_managed(rg.tags),
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
