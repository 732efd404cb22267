"""k8s_extension.<cluster>: the AzureML extension (`Microsoft.AzureML.Kubernetes`) on an AKS cluster.

The v2 prerequisite for attaching a cluster to a workspace (what `az k8s-extension create` does), through
the Kubernetes-configuration extensions SDK. Extensions carry no tags, so ownership follows the cluster:
on a cluster rtsctl created, the extension is rtsctl's; on an adopted cluster it is left in place by
destroy (other workloads on that cluster may rely on it).
"""

from __future__ import annotations

from typing import Any

from rtsctl.resources import Observed, Resource

from .common import AzureReconciler, is_managed

EXTENSION_NAME = "azureml"
CLUSTER_RP = "Microsoft.ContainerService"
CLUSTER_TYPE = "managedClusters"
DEFAULT_SETTINGS = {
    "enableInference": "True",
    "inferenceRouterServiceType": "LoadBalancer",
    "allowInsecureConnections": "False",
    "inferenceRouterHA": "False",
}


def _as_setting(value: Any) -> str:
    return str(value) if not isinstance(value, bool) else ("True" if value else "False")


class K8sExtensionReconciler(AzureReconciler):
    kind = "k8s_extension"
    immutable = frozenset({"extension_type", "cluster", "cluster_resource_group"})

    def _where(self, spec: dict[str, Any], address: str) -> tuple[str, str]:
        cluster = spec.get("cluster") or address.split(".", 1)[1]
        return spec.get("cluster_resource_group") or self.settings.resource_group, cluster

    def observe(self, res: Resource) -> Observed | None:
        rg, cluster = self._where(res.spec, res.address)
        ext = self.get_or_none(
            res.address, self.clients.extensions.extensions.get, rg, CLUSTER_RP, CLUSTER_TYPE, cluster, EXTENSION_NAME
        )
        if ext is None:
            return None
        mc = self.get_or_none(res.address, self.clients.aks.managed_clusters.get, rg, cluster)
        settings = dict(ext.configuration_settings or {})
        desired = res.spec.get("configuration_settings") or {}
        # the service stores settings as strings: compare declared keys as strings
        observed_settings = {
            k: (desired[k] if _as_setting(desired[k]) == settings[k] else settings[k]) for k in desired if k in settings
        }
        return Observed(
            address=res.address,
            spec={
                "cluster": cluster,
                "cluster_resource_group": rg,
                "extension_type": ext.extension_type,
                "configuration_settings": observed_settings,
            },
            owned=mc is not None and is_managed(mc.tags),
            outputs={"id": ext.id, "provisioning_state": ext.provisioning_state},
            handle=ext,
        )

    def create(self, res: Resource) -> None:
        rg, cluster = self._where(res.spec, res.address)
        settings = {**DEFAULT_SETTINGS, **(res.spec.get("configuration_settings") or {})}
        body = {
            "identity": {"type": "SystemAssigned"},
            "properties": {
                "extensionType": res.spec.get("extension_type") or "Microsoft.AzureML.Kubernetes",
                "autoUpgradeMinorVersion": True,
                "releaseTrain": "stable",
                "scope": {"cluster": {"releaseNamespace": "azureml"}},
                "configurationSettings": {k: _as_setting(v) for k, v in settings.items()},
            },
        }
        with self.errors(res.address):
            poller = self.clients.extensions.extensions.begin_create(
                rg, CLUSTER_RP, CLUSTER_TYPE, cluster, EXTENSION_NAME, body
            )
        self.wait(res.address, poller)

    def delete(self, observed: Observed) -> None:
        if not observed.owned:
            return
        rg, cluster = self._where(observed.spec, observed.address)
        self.wait_delete(
            observed.address,
            self.clients.extensions.extensions.begin_delete,
            rg,
            CLUSTER_RP,
            CLUSTER_TYPE,
            cluster,
            EXTENSION_NAME,
        )
