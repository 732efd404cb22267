"""What an Azure plan can tell before anything changes: instance types the region does not offer to managed
online endpoints, and VM-family quota too small for the instances the plan adds.

Both come from the workspace-level Azure ML APIs azure-ai-ml exposes: `compute.list_sizes(location)` (spec
VirtualMachineSizes_List: name, family, vCPUs, supportedComputeTypes, where "MIR" marks sizes managed online
endpoints can use) and `compute.list_usage(location)` (spec Usages_List: per family "Standard <F> Family Cluster
Dedicated vCPUs", currentValue / limit). Managed online deployments draw on that family quota, and Azure ML
reserves 20 % of the compute for upgrades on some VM SKUs (how-to-manage-quotas.md, virtual machine quota for
managed online endpoints: a deployment of N instances needs ceil(1.2 x N) x the SKU's cores), so a
deployment needs ceil(1.2 x instance_count) x vCPUs. Kubernetes deployments run on the cluster's nodes and
use no Azure ML quota. Best effort: when the APIs cannot be read, nothing is said.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rtsctl.resources import Observed, Resource

UPGRADE_RESERVE = 1.2
MANAGED = "MIR"


def _family_usage_key(family: str) -> str:
    """standardDSv2Family -> "dsv2": the part a usage's name ("Standard DSv2 Family Cluster Dedicated vCPUs") shares."""
    core = family[len("standard"):] if family.lower().startswith("standard") else family
    return (core[: -len("Family")] if core.endswith("Family") else core).lower()


def _attr(obj: Any, *names: str) -> Any:
    """A field of an SDK entity whichever spelling its version keeps (VmSize/Usage copy the REST model's
    `as_dict()`, camelCase in azure-ai-ml 1.2x: `vCPUs`, `supportedComputeTypes`, `currentValue`)."""
    for name in names:
        source = obj if isinstance(obj, dict) else getattr(obj, "__dict__", {})
        if name in source and source[name] is not None:
            return source[name]
    return None


def _types(size: Any) -> list[str]:
    return list(_attr(size, "supported_compute_types", "supportedComputeTypes") or [])


def _instances(count: int) -> int:
    return math.ceil(count * UPGRADE_RESERVE - 1e-9)


def quota_warnings(ml: Any, location: str, resources: Sequence[Resource],
                   observed: Mapping[str, Observed | None]) -> list[str]:
    managed_endpoints = {r.name for r in resources if r.kind == "endpoint" and not r.spec.get("compute")}
    deployments = [r for r in resources if r.kind == "deployment" and r.spec.get("endpoint") in managed_endpoints
                   and r.spec.get("instance_type")]
    if not deployments:
        return []
    try:
        sizes = {str(_attr(s, "name")).lower(): s for s in ml.compute.list_sizes(location=location)}
    except Exception:  # preflight never fails a plan: the apply will say what the service says
        return []
    out: list[str] = []
    need: dict[str, int] = {}
    for res in deployments:
        size = sizes.get(str(res.spec["instance_type"]).lower())
        if size is None or MANAGED not in _types(size):
            offered = sorted(str(_attr(s, "name")) for s in sizes.values() if MANAGED in _types(s))
            out.append(f"{res.address}: instance_type {res.spec['instance_type']} is not offered for managed online "
                       f"endpoints in {location} (offered: {', '.join(offered[:8])}{', …' if len(offered) > 8 else ''})")
            continue
        cores = int(_attr(size, "v_cp_us", "vCPUs") or 0)
        name, family = str(_attr(size, "name")), str(_attr(size, "family"))
        before = observed.get(res.address)
        had = 0
        if before is not None and str(before.spec.get("instance_type", "")).lower() == name.lower():
            had = _instances(int(before.spec.get("instance_count") or 0)) * cores
        extra = _instances(int(res.spec.get("instance_count", 1))) * cores - had
        if extra > 0:
            need[family] = need.get(family, 0) + extra
    if not need:
        return out
    try:
        usages = list(ml.compute.list_usage(location=location))
    except Exception:
        return out
    for family, extra in sorted(need.items()):
        key = _family_usage_key(family)
        usage = next((u for u in usages if _usage_name(u).lower() == f"standard {key} family cluster dedicated vcpus"),
                     None)
        limit = _attr(usage, "limit") if usage is not None else None
        if limit is None or int(limit) < 0:
            continue
        left = int(limit) - int(_attr(usage, "current_value", "currentValue") or 0)
        if extra > left:
            out.append(f"quota: this plan needs {extra} more {family} vCPUs in {location} (instance_count x vCPUs, "
                       f"+20 % that managed endpoints reserve for upgrades) but {left} of {limit} are left: "
                       "apply would fail with OutOfQuota; lower instance_count, pick another instance_type, or "
                       "request more quota")
    return out


def _usage_name(usage: Any) -> str:
    name = _attr(usage, "name")
    if isinstance(name, str):
        return name
    return str(_attr(name, "value") or "") if name is not None else ""
