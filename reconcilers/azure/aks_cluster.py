"""aks_cluster.<name>: the AKS cluster behind a kubernetes compute (azure-mgmt-containerservice).

Either rtsctl creates it (`existing: false`, tagged `managed-by: rtsctl`) or it adopts one that already
exists, by resource group + name (`existing: true`, the seed's "attach"): an adopted cluster is never
created, resized or deleted -- only referenced -- and a missing one is a clear error at plan time.
Location and node VM size are immutable (a node pool's VM size cannot change); node_count scales and
kubernetes_version upgrades in place.
"""

from __future__ import annotations

from typing import Any

from rtsctl.support.errors import ResourceError
from rtsctl.plan.normalize import casefold, location
from rtsctl.desired.resources import Observed, Resource

from .common import AzureReconciler, failed_problem, is_managed, managed_tags, owner_of

DEFAULT_VM_SIZE = "Standard_DS3_v2"
SIZING = ("node_count", "vm_size", "location", "kubernetes_version")


class AksClusterReconciler(AzureReconciler):
    kind = "aks_cluster"
    immutable = frozenset({"location", "vm_size", "resource_group"})
    # ARM ids and names are case-insensitive; VM sizes come back as the service spells them
    normalize = {"location": location, "vm_size": casefold, "resource_group": casefold}

    def _rg(self, res: Resource) -> str:
        return res.spec.get("resource_group") or self.settings.resource_group

    def _missing(self, res: Resource) -> ResourceError:
        return ResourceError(
            res.address,
            f"AKS cluster {res.name} not found in resource group {self._rg(res)} "
            "(existing: true adopts a cluster, it never creates one)",
            "ResourceNotFound",
        )

    def observe(self, res: Resource) -> Observed | None:
        rg = self._rg(res)
        existing = bool(res.inputs.get("existing"))
        mc = self.read(res.address, ("aks", rg.casefold(), res.name.casefold()), self.clients.aks.managed_clusters.get,
                       rg, res.name)
        if mc is None:
            if existing:
                raise self._missing(res)
            return None
        pools = list(mc.agent_pool_profiles or [])
        system = next((p for p in pools if (p.mode or "").lower() == "system"), pools[0] if pools else None)
        spec: dict[str, Any] = {"resource_group": rg, "location": mc.location, "kubernetes_version": mc.kubernetes_version}
        if system is not None:
            spec.update(node_count=system.count, vm_size=system.vm_size)
        owned = is_managed(mc.tags) and not existing
        if not owned:
            # an adopted cluster's shape is not rtsctl's to manage: never plan a resize or replacement of it
            spec.update({k: res.spec[k] for k in SIZING if k in res.spec})
        problems = []
        if (mc.provisioning_state or "").lower() == "failed":
            status = getattr(mc, "status", None)  # ManagedClusterStatus.provisioning_error (newer API versions)
            problems.append(failed_problem("AKS cluster", mc.provisioning_state,
                                           getattr(status, "provisioning_error", None)))
        return Observed(
            address=res.address,
            spec=spec,
            owned=owned,
            owner=owner_of(mc.tags),
            problems=problems,
            outputs={"id": mc.id, "provisioning_state": mc.provisioning_state},
            handle=mc,
        )

    def create(self, res: Resource) -> None:
        if res.inputs.get("existing"):
            raise self._missing(res)
        body = {
            "location": res.spec.get("location") or self.clients.location,
            "tags": managed_tags(self.settings.tags),
            "identity": {"type": "SystemAssigned"},
            "properties": {
                **({"kubernetesVersion": res.spec["kubernetes_version"]} if res.spec.get("kubernetes_version") else {}),
                "dnsPrefix": f"{res.name}-dns"[:54],
                "agentPoolProfiles": [
                    {
                        "name": "system",
                        "mode": "System",
                        "osType": "Linux",
                        "type": "VirtualMachineScaleSets",
                        "count": int(res.spec.get("node_count") or 3),
                        "vmSize": res.spec.get("vm_size") or DEFAULT_VM_SIZE,
                    }
                ],
            },
        }
        with self.errors(res.address):
            poller = self.clients.aks.managed_clusters.begin_create_or_update(self._rg(res), res.name, body)
        self.wait(res.address, poller)

    def update(self, res: Resource, observed: Observed) -> None:
        if not observed.owned:
            if observed.problems:  # an adopted cluster is someone else's to repair
                raise ResourceError(res.address, f"{'; '.join(observed.problems)} -- but rtsctl does not manage an "
                                    "adopted cluster: repair it with `az aks update` and apply again", "ClusterFailed")
            return
        rg = self._rg(res)
        with self.errors(res.address):
            mc = self.clients.aks.managed_clusters.get(rg, res.name)
            mc.tags = {**(mc.tags or {}), **self.settings.tags}  # only its owner updates it (or claims it)
            if res.spec.get("kubernetes_version"):
                mc.kubernetes_version = res.spec["kubernetes_version"]  # an in-place upgrade
            for pool in mc.agent_pool_profiles or []:
                if "node_count" in res.spec and ((pool.mode or "").lower() == "system" or len(mc.agent_pool_profiles) == 1):
                    pool.count = int(res.spec["node_count"])
                    break
            poller = self.clients.aks.managed_clusters.begin_create_or_update(rg, res.name, mc)
        self.wait(res.address, poller)

    def delete(self, observed: Observed) -> None:
        if not observed.owned:
            return
        rg = observed.spec.get("resource_group") or self.settings.resource_group
        name = observed.address.split(".", 1)[1]
        self.wait_delete(observed.address, self.clients.aks.managed_clusters.begin_delete, rg, name)
