"""Regional quota of Azure ML: `GET /subscriptions/{s}/providers/Microsoft.MachineLearningServices/locations/{loc}/usages`
and `.../vmSizes` (what `MLClient.compute.list_usage` / `list_sizes` call).

Shapes: azure-rest-api-specs machinelearningservices stable/2024-04-01 examples Usage/list.json (Usage: id ending
/usages/Standard_<F>_Family_Cluster_Dedicated_vCPUs, type .../vmFamily/usages, name.value "Standard <F> Family Cluster
Dedicated vCPUs", currentValue, limit, unit "Count"; plus a "Total Cluster Dedicated Regional vCPUs" entry) and
VirtualMachineSize/list.json (name, family "standardDSv2Family", vCPUs, supportedComputeTypes, "MIR" = managed online
endpoints). Quota is shared by a VM family's computes and managed online deployments (how-to-manage-quotas.md:
"Azure Machine Learning managed online endpoints ... VM quota"); current usage here is the cores of the managed
deployments the emulator holds (instance count x vCPUs; guess: the real figure also holds the 20 % upgrade reserve
and training clusters). Limits: `Settings.quota` {family: limit}; otherwise 24 per family and 100 regional
(the spec example's figures; guess as defaults).
"""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..errors import json_response

DEFAULT_FAMILY_LIMIT = 24
DEFAULT_REGIONAL_LIMIT = 100

# (name, family, vCPUs, memoryGB, supportedComputeTypes): DSv2 rows from the spec example VirtualMachineSize/list.json;
# the FSv2 rows are a guess from the VM size docs (fsv2-series.md), added because shipped manifests use Standard_F4s_v2.
SIZES: tuple[tuple[str, str, int, float, tuple[str, ...]], ...] = (
    ("Standard_DS1_v2", "standardDSv2Family", 1, 3.5, ("AmlCompute", "ComputeInstance")),
    ("Standard_DS2_v2", "standardDSv2Family", 2, 7.0, ("AmlCompute", "ComputeInstance", "MIR")),
    ("Standard_DS3_v2", "standardDSv2Family", 4, 14.0, ("AmlCompute", "ComputeInstance", "MIR")),
    ("Standard_DS4_v2", "standardDSv2Family", 8, 28.0, ("AmlCompute", "ComputeInstance", "MIR")),
    ("Standard_DS5_v2", "standardDSv2Family", 16, 56.0, ("AmlCompute", "ComputeInstance", "MIR")),
    ("Standard_DS11_v2", "standardDSv2Family", 2, 14.0, ("AmlCompute", "ComputeInstance")),
    ("Standard_DS12_v2", "standardDSv2Family", 4, 28.0, ("AmlCompute", "ComputeInstance")),
    ("Standard_F2s_v2", "standardFSv2Family", 2, 4.0, ("AmlCompute", "ComputeInstance", "MIR")),
    ("Standard_F4s_v2", "standardFSv2Family", 4, 8.0, ("AmlCompute", "ComputeInstance", "MIR")),
    ("Standard_F8s_v2", "standardFSv2Family", 8, 16.0, ("AmlCompute", "ComputeInstance", "MIR")),
)


def usage_key(family: str) -> str:
    """standardDSv2Family -> DSv2 (the part both the vmSizes family and the usage name carry)."""
    core = family[len("standard"):] if family.lower().startswith("standard") else family
    return core[: -len("Family")] if core.endswith("Family") else core


def out_of_quota(ctx: Context, path: Any, instance_type: Any, capacity: int) -> str | None:
    """Why a managed deployment PUT cannot be served, or None. "Each deployment subtracts from available quota and
    adds it back after deletion" (azure-ai-docs how-to-troubleshoot-online-endpoints.md, ERROR: OutOfQuota, CPU
    quota): the deployment's cores come on top of every OTHER managed deployment's, against its family's limit and
    the regional total. The error is "reported as part of the deployment operation status" (same page); its wording
    follows the message users report (`Not enough quota available for <size> in SubscriptionId <s>. Current
    usage/limit: u/l. Additional needed: n`) -- a guess in detail."""
    by_size = {name.lower(): (family, cores) for name, family, cores, _, _ in SIZES}
    family, cores = by_size.get(str(instance_type or "").lower(), (None, 0))
    if family is None:
        return None
    sub = path.segs[1]
    used = _used_cores(ctx, sub, exclude=path.path.lower())
    need = cores * capacity
    limits = getattr(ctx.settings, "quota", None) or {}
    for label, current, limit in ((family, used.get(family, 0), int(limits.get(family, DEFAULT_FAMILY_LIMIT))),
                                  ("regional", sum(used.values()), int(limits.get("regional", DEFAULT_REGIONAL_LIMIT)))):
        if current + need > limit:
            return (f"Not enough quota available for {instance_type} in SubscriptionId {sub}. Current usage/limit: "
                    f"{current}/{limit} ({label}). Additional needed: {need} Please see troubleshooting guide, "
                    "available here: https://aka.ms/oe-tsg#error-outofquota")
    return None


def _used_cores(ctx: Context, sub: str, exclude: str = "") -> dict[str, int]:
    by_size = {name.lower(): (family, cores) for name, family, cores, _, _ in SIZES}
    used: dict[str, int] = {}
    for rec in ctx.store.find(lambda r: "/onlineendpoints/" in r.id.lower() and "/deployments/" in r.id.lower()
                              and r.id.lower().startswith(f"/subscriptions/{sub.lower()}/")):
        p = rec.body.get("properties") or {}
        if p.get("endpointComputeType") != "Managed" or rec.id.lower() == exclude:
            continue
        family, cores = by_size.get(str(p.get("instanceType", "")).lower(), (None, 0))
        if family:
            used[family] = used.get(family, 0) + cores * int((rec.body.get("sku") or {}).get("capacity") or 1)
    return used


def usages(ctx: Context, sub: str, location: str) -> Any:
    limits = getattr(ctx.settings, "quota", None) or {}
    used = _used_cores(ctx, sub)
    base = f"/subscriptions/{sub}/usages"
    value = [{"id": base, "type": "Microsoft.MachineLearningServices/dedicatedCores/usages",
              "currentValue": sum(used.values()), "limit": int(limits.get("regional", DEFAULT_REGIONAL_LIMIT)),
              "unit": "Count",
              "name": {"value": "Total Cluster Dedicated Regional vCPUs",
                       "localizedValue": "Total Cluster Dedicated Regional vCPUs"}}]
    for family in sorted({f for _, f, _, _, _ in SIZES}):
        short = usage_key(family)
        label = f"Standard {short} Family Cluster Dedicated vCPUs"
        value.append({"id": f"{base}/Standard_{short}_Family_Cluster_Dedicated_vCPUs",
                      "type": "Microsoft.MachineLearningServices/vmFamily/usages", "unit": "Count",
                      "currentValue": used.get(family, 0), "limit": int(limits.get(family, DEFAULT_FAMILY_LIMIT)),
                      "name": {"value": label, "localizedValue": label}})
        # the spec example answers the same name again at workspace scope (type .../workspaces/dedicatedCores/usages,
        # here with the family's limit and no usage): a reader must pick the subscription-level vmFamily row by type
        value.append({"id": f"{base}/workspaces/Standard_{short}_Family_Cluster_Dedicated_vCPUs",
                      "type": "Microsoft.MachineLearningServices/workspaces/dedicatedCores/usages", "unit": "Count",
                      "currentValue": 0, "limit": int(limits.get(family, DEFAULT_FAMILY_LIMIT)),
                      "name": {"value": label, "localizedValue": label}})
    return json_response({"value": value})


def vm_sizes(ctx: Context, location: str) -> Any:
    return json_response({"value": [
        {"name": name, "family": family, "vCPUs": cores, "gpus": 0, "memoryGB": memory, "lowPriorityCapable": True,
         "premiumIO": True, "supportedComputeTypes": list(types)}
        for name, family, cores, memory, types in SIZES]})
