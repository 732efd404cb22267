"""AKS (Microsoft.ContainerService/managedClusters) and cluster extensions (Microsoft.KubernetesConfiguration)."""

from __future__ import annotations

import uuid

from .errors import bad_request as bad
from .kinds import Kind, fill_defaults, props, register, same


class ManagedClusterKind(Kind):
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
        protected = p.get("configurationProtectedSettings") or {}
        p["configurationProtectedSettings"] = {k: None for k in protected}
        fill_defaults(p, {"version": "1.1.60", "releaseTrain": "stable", "autoUpgradeMinorVersion": True,
                          "configurationSettings": {}, "statuses": [],
                          "scope": {"cluster": {"releaseNamespace": "azureml"}},
                          "currentVersion": "1.1.60", "isSystemExtension": False})
        return out, None


register(ManagedClusterKind(), ExtensionKind())
