"""k8s_extension.<cluster>: the AzureML extension (`Microsoft.AzureML.Kubernetes`) on an AKS cluster.

The v2 prerequisite for attaching a cluster to a workspace, installed the way `az k8s-extension create`
installs it (Azure/azure-cli-extensions, src/k8s-extension/azext_k8s_extension/partner_extensions/
AzureMLKubernetes.py `Create()`, and custom.py `__create_identity`):

* inference settings: `enableInference`, `inferenceRouterServiceType`, and either TLS (`sslCname` plus the PEM
  certificate and key base64-encoded as the protected settings `scoringFe.sslCert` / `scoringFe.sslKey`, or a
  Kubernetes secret as `scoringFe.sslSecret`) or `allowInsecureConnections=true` -- the CLI refuses anything else;
* what it derives from the cluster: `cluster_name` (its ARM id, also as `clusterId` and
  `prometheus.prometheusSpec.externalLabels.cluster_name`), `domain`, `location`, `jobSchedulerLocation`,
  `cluster_name_friendly`; `servicebus.enabled=false`, `relayserver.enabled=false` and
  `nginxIngress.enabled=true` on AKS; `clusterPurpose=DevTest` and `inferenceRouterHA=false` below 3 nodes;
* release train `stable`, cluster scope in the `azureml` namespace, and NO identity (the CLI creates none for
  managedClusters);
* an update is a PATCH of the settings (`begin_update`), never a full PUT, shaped like the CLI's `Update()`:
  `__normalize_config` re-derives `scoringFe.serviceType.nodePort` / `.internalLoadBalancer` from a declared
  `inferenceRouterServiceType` / `internalLoadBalancerProvider` (true OR false: NodePort -> LoadBalancer clears
  the flag); and protected settings are REPLACED WHOLE -- "For `--configuration-protected-settings`, all settings
  are expected to be provided, even if only one setting is being updated. If any of these settings are omitted,
  those settings will be considered obsolete and deleted" (azure-aks-docs articles/aks/cluster-extensions.md;
  azure-ai-docs how-to-deploy-kubernetes-extension.md: "For ConfigurationProtectedSettings, ALL settings should be
  provided"). A TLS update therefore always carries both `scoringFe.sslCert` and `scoringFe.sslKey`, and on an
  adopted extension whose settings show protected connection strings (relay, service bus, Log Analytics) the
  plan refuses and names them: Azure never returns protected values, so rtsctl cannot resend them.

Extensions carry no tags, so ownership follows the cluster: on a cluster rtsctl created the extension is
rtsctl's; on an adopted cluster the AzureML extension already there (found by type, whatever its name) is
used and left in place by destroy.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from rtsctl.plan.diff import Change
from rtsctl.plan.normalize import casefold, setting_strings
from rtsctl.desired.resources import Observed, Resource

from .common import AzureReconciler, failed_problem, is_managed, owner_of

DEFAULT_NAME = "azureml"
AZUREML_TYPE = "microsoft.azureml.kubernetes"
CLUSTER_RP = "Microsoft.ContainerService"
CLUSTER_TYPE = "managedClusters"
RELEASE_NAMESPACE = "azureml"
#: spec key carrying the digest of the TLS files; stored with the settings (protected ones never come back)
TLS_DIGEST_SETTING = "rtsctl.tlsDigest"
INSECURE = "allowInsecureConnections"
#: settings whose change the CLI's Update() says "will IMPACT your active Machine Learning ... online endpoints and
#: deployments" (AzureMLKubernetes.py, commit 3f6c0dae): set at all, or enableInference set to false; nodeSelector
#: keys too ("can't remove an existed node selector"). Its third case, installNvidiaDevicePlugin to false, is
#: qualified "if Nvidia GPU is used" -- not refused here (the scoring deployments rtsctl makes run on CPU)
IMPACTING = ("allowInsecureConnections", "inferenceRouterServiceType", "internalLoadBalancerProvider", "sslCname")
IMPACTING_WHEN_FALSE = ("enableInference",)
#: protected settings an AzureML extension holds when these settings say so (AzureMLKubernetes.py constants:
#: RELAY_CONNECTION_STRING_KEY, SERVICE_BUS_CONNECTION_STRING_KEY, AZURE_LOG_ANALYTICS_CONNECTION_STRING)
PROTECTED_BY_SETTING = (
    ("relayserver.enabled", "relayserver.relayConnectionString"),
    ("servicebus.enabled", "servicebus.connectionString"),
    ("azure_log_analytics.enabled", "azure_log_analytics.connection_string"),
)


def _as_setting(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def derived_settings(cluster_id: str, cluster_name: str, location: str, node_count: int,
                     declared: dict[str, Any]) -> dict[str, str]:
    """What `az k8s-extension create` adds for an AKS cluster (AzureMLKubernetes.Create), unless declared."""
    location = (location or "").replace(" ", "").lower()
    out = {
        "cluster_name": cluster_id,
        "clusterId": cluster_id,
        "prometheus.prometheusSpec.externalLabels.cluster_name": cluster_id,
        "domain": f"{location}.cloudapp.azure.com",
        "location": location,
        "jobSchedulerLocation": location,
        "cluster_name_friendly": cluster_name,
        "servicebus.enabled": "false",
        "relayserver.enabled": "false",          # "do not enable relay for managed cluster(AKS) by default"
        "nginxIngress.enabled": "true",
        "enableTraining": "false",
    }
    if node_count < 3:                           # isSmallScale: fewer than 3 nodes in all agent pools
        out.update({"clusterPurpose": "DevTest", "inferenceRouterHA": "false"})
    service_type = _as_setting(declared.get("inferenceRouterServiceType", "")).lower()
    if service_type == "nodeport":
        out["scoringFe.serviceType.nodePort"] = "true"
    elif _as_setting(declared.get("internalLoadBalancerProvider", "")).lower() == "azure":
        out["scoringFe.serviceType.internalLoadBalancer"] = "true"
    return {k: v for k, v in out.items() if k not in declared}


def normalized_settings(declared: dict[str, Any]) -> dict[str, str]:
    """What the CLI's `__normalize_config` adds on update: the scoring front's service-type flags, re-derived from
    a declared router type / load-balancer provider, true or false (so NodePort -> LoadBalancer clears nodePort)."""
    out: dict[str, str] = {}
    if declared.get("inferenceRouterServiceType"):
        out["scoringFe.serviceType.nodePort"] = _as_setting(
            _as_setting(declared["inferenceRouterServiceType"]).lower() == "nodeport")
    if declared.get("internalLoadBalancerProvider"):
        out["scoringFe.serviceType.internalLoadBalancer"] = _as_setting(
            _as_setting(declared["internalLoadBalancerProvider"]).lower() == "azure")
    return out


def impacting(changes: Sequence[Change]) -> list[str]:
    """The changed settings the CLI's Update() warns about (they re-configure the inference router)."""
    names = []
    for change in changes:
        if not change.path.startswith("configuration_settings."):
            continue
        key = change.path.split(".", 1)[1]
        new = _as_setting(getattr(change, "new", "")).lower()
        if key in IMPACTING or "nodeselector" in key.lower() or (key in IMPACTING_WHEN_FALSE and new == "false"):
            names.append(key)
    return names


def protected_lost(settings: dict[str, Any]) -> list[str]:
    """Protected settings an (adopted) extension holds by its own settings, which a protected update would delete."""
    return [key for flag, key in PROTECTED_BY_SETTING if _as_setting(settings.get(flag, "false")).lower() == "true"]


class K8sExtensionReconciler(AzureReconciler):
    kind = "k8s_extension"
    immutable = frozenset({"extension_type", "cluster", "cluster_resource_group"})
    sensitive = frozenset({"tls_digest"})
    # read back lower-case ("microsoft.azureml.kubernetes"); settings are stored as strings
    normalize = {"extension_type": casefold, "cluster": casefold, "cluster_resource_group": casefold,
                 "configuration_settings": setting_strings}

    def _where(self, spec: dict[str, Any], address: str) -> tuple[str, str]:
        cluster = spec.get("cluster") or address.split(".", 1)[1]
        return spec.get("cluster_resource_group") or self.settings.resource_group, cluster

    def _find(self, address: str, rg: str, cluster: str, name: str) -> Any:
        """The extension by name, else (an adopted cluster's) AzureML extension by type, whatever its name."""
        ops = self.clients.extensions.extensions
        ext = self.get_or_none(address, ops.get, rg, CLUSTER_RP, CLUSTER_TYPE, cluster, name)
        if ext is not None:
            return ext
        found = self.get_or_none(address, lambda: list(ops.list(rg, CLUSTER_RP, CLUSTER_TYPE, cluster)))
        return next((e for e in found or [] if casefold(e.extension_type) == AZUREML_TYPE), None)

    def observe(self, res: Resource) -> Observed | None:
        rg, cluster = self._where(res.spec, res.address)
        ext = self._find(res.address, rg, cluster, res.inputs.get("name") or DEFAULT_NAME)
        if ext is None:
            return None
        mc = self.read(res.address, ("aks", rg.casefold(), cluster.casefold()), self.clients.aks.managed_clusters.get,
                       rg, cluster)
        settings = dict(ext.configuration_settings or {})
        desired = res.spec.get("configuration_settings") or {}
        spec: dict[str, Any] = {
            "cluster": cluster,
            "cluster_resource_group": rg,
            "extension_type": ext.extension_type,
            "configuration_settings": {k: settings[k] for k in desired if k in settings},
        }
        if TLS_DIGEST_SETTING in settings:
            spec["tls_digest"] = settings[TLS_DIGEST_SETTING]
        problems = []
        if (ext.provisioning_state or "").lower() == "failed":
            problems.append(failed_problem("extension", ext.provisioning_state, getattr(ext, "error_info", None)))
        return Observed(
            address=res.address,
            spec=spec,
            owned=mc is not None and is_managed(mc.tags) and not res.inputs.get("existing"),
            owner=owner_of(mc.tags) if mc is not None else None,  # extensions carry no tags: the cluster's
            problems=problems,
            outputs={"id": ext.id, "name": ext.name, "provisioning_state": ext.provisioning_state},
            handle=ext,
        )

    def _settings(self, res: Resource, rg: str, cluster: str) -> tuple[dict[str, str], dict[str, str]]:
        """(configurationSettings, configurationProtectedSettings) as the CLI would send them."""
        declared = dict(res.spec.get("configuration_settings") or {})
        with self.errors(res.address):
            mc = self.clients.aks.managed_clusters.get(rg, cluster)
        nodes = sum(int(p.count or 0) for p in (mc.agent_pool_profiles or []))
        settings = {**derived_settings(mc.id, cluster, mc.location, nodes, declared),
                    **{k: _as_setting(v) for k, v in declared.items()}}
        protected: dict[str, str] = {}
        pem = res.inputs.get("tls_pem")
        if pem:
            protected = {"scoringFe.sslCert": base64.b64encode(pem["cert_file"].encode()).decode(),
                         "scoringFe.sslKey": base64.b64encode(pem["key_file"].encode()).decode()}
            settings[TLS_DIGEST_SETTING] = res.spec["tls_digest"]
        return settings, protected

    def create(self, res: Resource) -> None:
        rg, cluster = self._where(res.spec, res.address)
        settings, protected = self._settings(res, rg, cluster)
        # installing on an adopted cluster: the manifest may declare nothing, the install still needs inference on
        # and a router type; TLS when given, else the documented dev/test default (plain HTTP)
        tls = bool(protected) or "sslCname" in settings
        settings = {"enableInference": "true", "inferenceRouterServiceType": "LoadBalancer",
                    INSECURE: _as_setting(not tls), **settings}
        body = {
            "properties": {
                "extensionType": res.spec.get("extension_type") or "Microsoft.AzureML.Kubernetes",
                "autoUpgradeMinorVersion": True,
                "releaseTrain": "stable",
                "scope": {"cluster": {"releaseNamespace": RELEASE_NAMESPACE}},
                "configurationSettings": settings,
                "configurationProtectedSettings": protected,
            },
        }
        with self.errors(res.address):
            poller = self.clients.extensions.extensions.begin_create(
                rg, CLUSTER_RP, CLUSTER_TYPE, cluster, res.inputs.get("name") or DEFAULT_NAME, body
            )
        self.wait(res.address, poller)

    def update(self, res: Resource, observed: Observed) -> None:
        if observed.problems:  # a Failed install is not patched into health: install it again
            self.create(res)
            return
        rg, cluster = self._where(res.spec, res.address)
        settings, protected = self._settings(res, rg, cluster)
        # only what rtsctl manages changes; settings someone else set on the extension stay as they are
        declared = res.spec.get("configuration_settings") or {}
        changed = {k: v for k, v in settings.items() if k in declared or k == TLS_DIGEST_SETTING}
        changed.update(normalized_settings(declared))
        # protected settings are replaced whole: `protected` is the complete set (the TLS pair) or nothing
        patch = {"properties": {"configurationSettings": changed,
                                **({"configurationProtectedSettings": protected} if protected else {})}}
        with self.errors(res.address):
            poller = self.clients.extensions.extensions.begin_update(
                rg, CLUSTER_RP, CLUSTER_TYPE, cluster, observed.outputs.get("name") or DEFAULT_NAME, patch
            )
        self.wait(res.address, poller)

    def guard(self, res: Resource, observed: Observed, changes: Sequence[Change]) -> str | None:
        """Refused: (1) a change the CLI's Update() warns will "IMPACT your active Machine Learning online endpoints
        and deployments" (IMPACTING) while endpoints run on this cluster; (2) a TLS update of an extension rtsctl
        did not install whose settings show protected connection strings: the update would delete them."""
        if any(c.path == "tls_digest" for c in changes) and not observed.owned:
            current = dict(getattr(observed.handle, "configuration_settings", None) or {})
            lost = protected_lost(current)
            if lost:
                return (f"a TLS update replaces the extension's protected settings whole, and this extension (not "
                        f"installed by rtsctl) holds {', '.join(lost)}, which Azure never returns: they would be "
                        "deleted. Update TLS with `az k8s-extension update` (it re-reads them), or drop `tls` here")
        names = impacting(changes)
        if not names:
            return None
        running = self._endpoints_on_cluster(res)
        if not running:
            return None
        return (f"changing {', '.join(names)} would interrupt the online endpoints on cluster {res.spec.get('cluster')} "
                f"({', '.join(running)}); delete them first, or keep {', '.join(names)} as it is")

    def _endpoints_on_cluster(self, res: Resource) -> list[str]:
        rg, cluster = self._where(res.spec, res.address)
        suffix = f"/resourcegroups/{rg}/providers/{CLUSTER_RP}/{CLUSTER_TYPE}/{cluster}".lower()
        computes = self.get_or_none(res.address, lambda: list(self.ml.compute.list())) or []
        names = {c.name.lower() for c in computes
                 if (getattr(c, "resource_id", None) or "").lower().endswith(suffix)}
        endpoints = self.get_or_none(res.address, lambda: list(self.ml.online_endpoints.list())) or []
        return sorted(e.name for e in endpoints
                      if (str(getattr(e, "compute", "") or "").rstrip("/").rsplit("/", 1)[-1].lower() in names))

    def claim(self, res: Resource, observed: Observed) -> None:
        """Extensions carry no tags: owned with their cluster (claimed there)."""

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
            observed.outputs.get("name") or DEFAULT_NAME,
        )

