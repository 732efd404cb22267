"""load_testing.<name>: an Azure Load Testing resource (azure-mgmt-loadtesting `load_tests`), in which
`rtsctl bench --engine azure-load-testing` keeps its tests and runs them.

It is created with a system-assigned managed identity: that identity is what a test reads its Key Vault secret with
(the data plane's `keyvaultReferenceIdentityType: SystemAssigned`), so the endpoint key reaches the engines without
ever being written into the test. Location is immutable (a TrackedResource's location cannot move); description
and tags update in place (LoadTests_Update, a PATCH). Like every Azure kind, it carries `managed-by` and the
manifest's `rtsctl.owner` tag; destroy deletes only an owned one, and one this manifest no longer declares is
found by `discover` and planned as a delete.
"""

from __future__ import annotations

from typing import Any

from rtsctl.desired.resources import Observed, Resource
from rtsctl.plan.diff import project
from rtsctl.plan.normalize import location

from .common import (APPLIED_TAG, AzureReconciler, applied_tag, drop_none, failed_problem, is_managed, managed_tags,
                     owner_of, state_name)

#: the identity a test reads Key Vault secrets with (azure-rest-api-specs loadtestservice LoadTestResource.tsp:
#: ManagedServiceIdentityProperty; the data plane's Test.keyvaultReferenceIdentityType)
IDENTITY = "SystemAssigned"


class LoadTestingReconciler(AzureReconciler):
    kind = "load_testing"
    immutable = frozenset({"location"})
    normalize = {"location": location}

    def _get(self, address: str, name: str) -> Any:
        return self.read(address, ("load_testing", name.casefold()), self.clients.load_testing.load_tests.get,
                         self.settings.resource_group, name)

    def _observed(self, address: str, lt: Any, declared_tags: dict[str, Any]) -> Observed:
        tags = dict(lt.tags or {})
        problems = []
        if (state_name(lt.provisioning_state) or "").lower() == "failed":
            problems.append(failed_problem("load testing resource", lt.provisioning_state))
        identity = getattr(lt, "identity", None)
        return Observed(
            address=address,
            spec=drop_none({"location": lt.location, "description": lt.description,
                            "tags": project(tags, declared_tags)}),
            owned=is_managed(tags),
            owner=owner_of(tags),
            problems=problems,
            applied=tags.get(APPLIED_TAG),
            outputs=drop_none({"id": lt.id, "data_plane_uri": lt.data_plane_uri,
                               "principal_id": getattr(identity, "principal_id", None)}),
            handle=lt,
        )

    def observe(self, res: Resource) -> Observed | None:
        lt = self._get(res.address, res.name)
        return None if lt is None else self._observed(res.address, lt, res.spec.get("tags") or {})

    def _tags(self, res: Resource, existing: dict[str, Any] | None = None) -> dict[str, str]:
        return managed_tags(existing, res.spec.get("tags"), applied_tag(res), self.settings.tags)

    def create(self, res: Resource) -> None:
        from azure.mgmt.loadtesting.models import LoadTestResource, ManagedServiceIdentity

        body = LoadTestResource(location=res.spec.get("location") or self.clients.location, tags=self._tags(res),
                                identity=ManagedServiceIdentity(type=IDENTITY),
                                description=res.spec.get("description"))
        with self.errors(res.address):
            poller = self.clients.load_testing.load_tests.begin_create_or_update(
                self.settings.resource_group, res.name, body)
        self.wait(res.address, poller)
        self.clients.reads.forget()

    def update(self, res: Resource, observed: Observed) -> None:
        """Description, tags and the identity in one PATCH (LoadTests_Update); a Failed resource is written whole."""
        if observed.problems:
            return self.create(res)
        from azure.mgmt.loadtesting.models import LoadTestResourcePatchRequestBody, ManagedServiceIdentity

        current = observed.handle
        body = LoadTestResourcePatchRequestBody(tags=self._tags(res, getattr(current, "tags", None)),
                                                identity=ManagedServiceIdentity(type=IDENTITY),
                                                description=res.spec.get("description"))
        with self.errors(res.address):
            poller = self.clients.load_testing.load_tests.begin_update(self.settings.resource_group, res.name, body)
        self.wait(res.address, poller)
        self.clients.reads.forget()

    def claim(self, res: Resource, observed: Observed) -> None:
        """Only the ownership tags (and rtsctl's applied record), nothing else of someone else's resource."""
        from azure.mgmt.loadtesting.models import LoadTestResourcePatchRequestBody

        tags = managed_tags(getattr(observed.handle, "tags", None), self.settings.tags)
        with self.errors(res.address):
            poller = self.clients.load_testing.load_tests.begin_update(
                self.settings.resource_group, res.name, LoadTestResourcePatchRequestBody(tags=tags))
        self.wait(res.address, poller)

    def delete(self, observed: Observed) -> None:
        if not observed.owned:
            return
        name = observed.address.split(".", 1)[1]
        self.wait_delete(observed.address, self.clients.load_testing.load_tests.begin_delete,
                         self.settings.resource_group, name)
