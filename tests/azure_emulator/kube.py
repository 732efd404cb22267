"""AKS (Microsoft.ContainerService/managedClusters) and cluster extensions (Microsoft.KubernetesConfiguration)."""

from __future__ import annotations

import uuid

from .errors import bad_request as bad
from .kinds import Kind, fill_defaults, props, register, same


class ManagedClusterKind(Kind):
    """AKS clusters: defaults as in the containerservice spec's ManagedClusters_CreateOrUpdate example
    (azure-rest-api-specs containerservice/resource-manager/Microsoft.ContainerService/aks/stable/*/examples;
    version numbers, fqdn form and node resource group name `MC_{rg}_{name}_{location}` as Azure names it; the
    concrete values are guesses -- no AKS traffic was recorded). LocationRequired: ARM."""

    type_key = "microsoft.containerservice/managedclusters"

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        if not out.get("location"):
            raise bad("LocationRequired", "The location property is required for this definition.")
        p = props(out)
        location = out["location"]
        dns = p.get("dnsPrefix") or f"{path.name}-dns"
        pools = p.get("agentPoolProfiles") or [{"name": "nodepool1", "count": 3, "vmSize": "Standard_DS3_v2"}]
        for pool in pools:
            fill_defaults(pool, {"mode": "System", "osType": "Linux", "type": "VirtualMachineScaleSets",
                                 "provisioningState": "Succeeded", "powerState": {"code": "Running"},
                                 "orchestratorVersion": "1.30.6"})
        p["agentPoolProfiles"] = pools
        fill_defaults(out, {"identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid4()),
                                         "tenantId": ctx.settings.tenant_id},
                            "sku": {"name": "Base", "tier": "Free"}, "tags": {}})
        fill_defaults(p, {"kubernetesVersion": "1.30.6", "currentKubernetesVersion": "1.30.6", "dnsPrefix": dns,
                          "fqdn": f"{dns}-{uuid.uuid5(uuid.NAMESPACE_URL, path.key).hex[:8]}.hcp.{location}.azmk8s.io",
                          "nodeResourceGroup": f"MC_{path.resource_group}_{path.name}_{location}",
                          "enableRBAC": True, "powerState": {"code": "Running"}, "maxAgentPools": 100})
        return out, None


AZUREML_EXTENSION_TYPE = "microsoft.azureml.kubernetes"
# Source for the read-back shape: an `az k8s-extension create` answer published in
# Kyrsang/Azure-ML-automation-research (2024-10, README): extensionType lower-case, configurationProtectedSettings {}
# (values never come back), identity null, version null + currentVersion, errorInfo null, statuses [],
# scope {cluster: {releaseNamespace: azureml}, namespace: null}, aksAssignedIdentity.principalId.


def _true(value) -> bool:
    return str(value).strip().lower() == "true"


def check_azureml_settings(name: str, settings: dict, protected: dict) -> None:
    """The AzureML extension's inference settings, as the Azure CLI checks them before it sends anything
    (Azure/azure-cli-extensions src/k8s-extension/.../partner_extensions/AzureMLKubernetes.py,
    `__validate_config` / `__validate_scoring_fe_settings`, commit 3f6c0dae). Whether the service itself refuses
    the same combination is not recorded (guess: it does, the extension cannot serve HTTPS without TLS material).
    On the wire the CLI has already turned sslCertPemFile/sslKeyPemFile into protected `scoringFe.sslCert` /
    `scoringFe.sslKey` (base64 PEM) and `sslSecret` into `scoringFe.sslSecret`."""
    merged = {**settings, **protected}
    dup = sorted(set(settings) & set(protected))
    if dup:
        raise bad("InvalidArgumentValueError", f"Extension '{name}': duplicate keys in configurationSettings and "
                                               f"configurationProtectedSettings: {', '.join(dup)}.")
    if not _true(merged.get("enableInference")):
        if not _true(merged.get("enableTraining")):
            raise bad("InvalidArgumentValueError",
                      f"Extension '{name}': enable Machine Learning training or inference "
                      f"(configurationSettings enableTraining=true or enableInference=true).")
        return
    ssl = (protected.get("scoringFe.sslCert") and protected.get("scoringFe.sslKey")) or \
        merged.get("scoringFe.sslSecret") or merged.get("sslSecret")
    if not ssl and not _true(merged.get("allowInsecureConnections")):
        raise bad("InvalidArgumentValueError",
                  f"Extension '{name}': to enable an HTTPS endpoint, provide the TLS certificate and key "
                  f"(protected settings scoringFe.sslCert and scoringFe.sslKey) or sslSecret (a Kubernetes secret "
                  f"with both, in the release namespace); otherwise set allowInsecureConnections=true for HTTP.")
    if ssl and not merged.get("sslCname"):
        raise bad("InvalidArgumentValueError", f"Extension '{name}': to enable an HTTPS endpoint, set sslCname.")
    service_type = str(merged.get("inferenceRouterServiceType") or "").lower()
    if service_type not in ("nodeport", "loadbalancer", "clusterip"):
        raise bad("InvalidArgumentValueError",
                  f"Extension '{name}': to use inference, set inferenceRouterServiceType to ClusterIP, NodePort or "
                  f"LoadBalancer.")


class ExtensionKind(Kind):
    type_key = "microsoft.kubernetesconfiguration/extensions"

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        p = props(out)
        if not p.get("extensionType"):
            raise bad("BadArgument", f"Extension '{path.name}': properties.extensionType is required.")
        if existing is not None and not same(props(existing.body).get("extensionType"), p["extensionType"]):
            raise bad("BadArgument", f"Extension '{path.name}': extensionType cannot be changed "
                                     f"({props(existing.body).get('extensionType')!r} -> {p['extensionType']!r}).")
        p["extensionType"] = str(p["extensionType"]).lower()      # read back lower-case (see above)
        # protected values go in and never come out. An update that sends protected settings REPLACES them whole:
        # "For `--configuration-protected-settings`, all settings are expected to be provided, even if only one
        # setting is being updated. If any of these settings are omitted, those settings will be considered
        # obsolete and deleted" (MicrosoftDocs azure-aks-docs articles/aks/cluster-extensions.md, "Update extension
        # instance"; azure-ai-docs machine-learning/how-to-deploy-kubernetes-extension.md: "For
        # ConfigurationProtectedSettings, ALL settings should be provided"). An update that sends none keeps them
        # (the CLI's Update() sends its input unchanged when empty).
        sent = {k: v for k, v in (p.get("configurationProtectedSettings") or {}).items() if v is not None}
        protected = sent if sent or existing is None else dict(existing.private.get("protected") or {})
        p["configurationProtectedSettings"] = {}
        settings = p.get("configurationSettings") or {}
        if p["extensionType"] == AZUREML_EXTENSION_TYPE:
            check_azureml_settings(path.name, settings, protected)
        p["version"] = p.get("version")
        fill_defaults(p, {"releaseTrain": "stable", "autoUpgradeMinorVersion": True,
                          "configurationSettings": {}, "statuses": [], "errorInfo": None,
                          "scope": {"cluster": {"releaseNamespace": "azureml"}, "namespace": None},
                          "currentVersion": "1.1.61", "isSystemExtension": False, "customLocationSettings": None,
                          "packageUri": None,
                          "aksAssignedIdentity": {"principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, path.key)),
                                                  "tenantId": None, "type": None}})
        out.setdefault("identity", None)       # the CLI creates no identity on an AKS extension
        out.setdefault("plan", None)
        private = dict(existing.private) if existing else {}
        private["protected"] = protected
        return out, private

    def on_failed(self, ctx, path, record, error):
        # guess: the spec's errorInfo field carries the failure (no failed extension recorded)
        props(record.body)["errorInfo"] = {"code": error.get("code"), "message": error.get("message")}

    def on_ready(self, ctx, path, record):
        props(record.body)["errorInfo"] = None


register(ManagedClusterKind(), ExtensionKind())
