"""compute.<name>: an AKS cluster attached to the workspace as a v2 `KubernetesCompute`.

(Not the legacy v1 AKS compute, which cannot host v2 online endpoints.) The attach needs the AzureML
extension on the cluster first -- the graph orders k8s_extension before it. The cluster and namespace
cannot change on an attached compute (detach + attach: a replacement). Destroy detaches; the cluster
itself is the aks_cluster reconciler's business.
"""

from __future__ import annotations

from typing import Any

from rtsctl.support.errors import ResourceError
from rtsctl.plan.normalize import casefold
from rtsctl.desired.resources import Observed, Resource

from .common import AzureReconciler, failed_problem, is_managed, managed_tags

#: Computes keep no tags of their own (azure-docs azure-resource-manager/management/tag-support.md,
#: Microsoft.MachineLearningServices: "workspaces / computes | No"), so the workspace carries each compute's
#: owner as a tag of its own: `rtsctl.owner.compute.<name>: <manifest>` (compute names have no character a
#: tag name refuses, rtsctl/manifest/names.py).
COMPUTE_OWNER_TAG = "rtsctl.owner.compute."


def aks_id(subscription: str, rg: str, cluster: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{cluster}"


def _parse_aks_id(resource_id: str | None) -> tuple[str | None, str | None]:
    parts = (resource_id or "").strip("/").split("/")
    lowered = [p.lower() for p in parts]
    rg = parts[lowered.index("resourcegroups") + 1] if "resourcegroups" in lowered else None
    cluster = parts[lowered.index("managedclusters") + 1] if "managedclusters" in lowered else None
    return rg, cluster


def _problems(compute) -> list[str]:
    state = getattr(compute, "provisioning_state", None)
    if (state or "").lower() != "failed":
        return []
    errors = getattr(compute, "provisioning_errors", None) or []
    first = errors[0] if errors else None
    return [failed_problem("compute", state, getattr(first, "error", first))]


class ComputeReconciler(AzureReconciler):
    kind = "compute"
    immutable = frozenset({"type", "namespace", "cluster", "cluster_resource_group"})
    normalize = {"type": casefold, "cluster": casefold, "cluster_resource_group": casefold}

    def _check_type(self, res: Resource) -> None:
        if res.spec.get("type", "kubernetes") != "kubernetes":
            raise ResourceError(
                res.address,
                f"compute type {res.spec.get('type')!r} is not available on Azure (use type: kubernetes, "
                "or omit compute on the endpoint for a managed endpoint)",
                "UnsupportedComputeType",
            )

    def observe(self, res: Resource) -> Observed | None:
        self._check_type(res)
        compute = self.get_or_none(res.address, self.ml.compute.get, res.name)
        if compute is None:
            return None
        rg, cluster = _parse_aks_id(getattr(compute, "resource_id", None))
        owner = self._owners().get(COMPUTE_OWNER_TAG + res.name)
        return Observed(
            address=res.address,
            spec={
                "type": compute.type,
                "namespace": getattr(compute, "namespace", None),
                "cluster": cluster,
                "cluster_resource_group": rg,
            },
            owned=self._owned(res, compute, rg, cluster) or owner is not None,
            owner=owner,
            problems=_problems(compute),
            outputs={"id": compute.id, "provisioning_state": getattr(compute, "provisioning_state", None)},
            handle=compute,
        )

    def _owned(self, res: Resource, compute: Any, rg: str | None, cluster: str | None) -> bool:
        """rtsctl's when it carries the ownership tag. The ARM tag-support table lists Microsoft.MachineLearningServices
        workspaces/computes as "Supports tags: No" (azure-resource-manager/management/tag-support.md), so a tag the
        compute RP drops must not make destroy leave the attach behind forever: an attach of a cluster rtsctl
        created (the cluster carries the tag: managedClusters support tags) is rtsctl's too."""
        if is_managed(compute.tags):
            return True
        if not (rg and cluster):
            return False
        mc = self.read(res.address, ("aks", rg.casefold(), cluster.casefold()), self.clients.aks.managed_clusters.get,
                       rg, cluster)
        return mc is not None and is_managed(mc.tags)

    def create(self, res: Resource) -> None:
        from azure.ai.ml.entities import KubernetesCompute

        self._check_type(res)
        rg = res.spec.get("cluster_resource_group") or self.settings.resource_group
        compute = KubernetesCompute(
            name=res.name,
            resource_id=aks_id(self.clients.subscription_id, rg, res.spec["cluster"]),
            namespace=res.spec.get("namespace") or "azureml",
            tags=managed_tags(self.settings.tags),
        )
        with self.errors(res.address):
            poller = self.ml.compute.begin_attach(compute)
        self.wait(res.address, poller)
        self._set_owner(res.address, res.name, self.settings.owner)

    def claim(self, res: Resource, observed: Observed) -> None:
        self._set_owner(res.address, res.name, self.settings.owner)

    def _owners(self) -> dict[str, str]:
        name = self.settings.workspace  # the workspace's one read of this plan (its reconciler reads it too)
        ws = self.read(f"workspace.{name}", ("workspace", name.casefold()), self.ml.workspaces.get, name)
        return dict((ws.tags if ws is not None else None) or {})

    def _set_owner(self, address: str, name: str, owner: str | None) -> None:
        """Write (or, with None, remove) the compute's owner tag on the workspace, keeping every other tag."""
        ws = self.read(address, ("workspace", self.settings.workspace.casefold()), self.ml.workspaces.get,
                       self.settings.workspace)
        if ws is None:
            return
        tags = {k: v for k, v in (ws.tags or {}).items() if k != COMPUTE_OWNER_TAG + name}
        if tags == (ws.tags or {}) and owner is None:
            return
        self.patch_workspace(address, {**tags, **({COMPUTE_OWNER_TAG + name: owner} if owner else {})})

    def update(self, res: Resource, observed: Observed) -> None:
        # every declared field is immutable (changes are replacements): an update only repairs a Failed attach,
        # by attaching again (an idempotent PUT)
        if observed.problems:
            self.create(res)

    def delete(self, observed: Observed) -> None:
        if not observed.owned:
            return
        name = observed.address.split(".", 1)[1]
        self.wait_delete(observed.address, self.ml.compute.begin_delete, name, action="Detach")
        self._set_owner(observed.address, name, None)  # unless the workspace is gone
