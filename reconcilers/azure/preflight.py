"""What an Azure plan can tell before anything changes: instance types the region does not offer to managed
online endpoints, and VM-family quota too small for the instances the plan adds.

Both come from the workspace-level Azure ML APIs azure-ai-ml exposes: `compute.list_sizes(location)` (spec
VirtualMachineSizes_List: name, family, vCPUs, supportedComputeTypes, where "MIR" marks sizes managed online
endpoints can use) and `compute.list_usage(location)` (spec Usages_List: per family "Standard <F> Family Cluster
Dedicated vCPUs", currentValue / limit). Managed online deployments draw on that family quota, and Azure ML
reserves 20 % of the compute for upgrades on some VM SKUs (how-to-manage-quotas.md, virtual machine quota for
managed online endpoints: a deployment of N instances needs ceil(1.2 x N) x the SKU's cores), so a
deployment needs ceil(1.2 x instance_count) x vCPUs. A change that rolls out as a successor (code, model,
environment, scoring script, instance type) runs the new deployment BESIDE the old one, so its cores count in full:
"Each deployment subtracts from available quota and adds it back after deletion" (how-to-troubleshoot-online-
endpoints.md, ERROR: OutOfQuota). The family's row is picked by name AND type: Usage/list.json (spec 2024-04-01)
answers the same name at subscription (`.../vmFamily/usages`), workspace and compute scope; the regional
"Total Cluster Dedicated Regional vCPUs" limit is checked too. Kubernetes deployments run on the cluster's nodes
and use no Azure ML quota. Best effort: when the APIs cannot be read, nothing is said.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rtsctl.desired.resources import Observed, Resource

UPGRADE_RESERVE = 1.2
MANAGED = "MIR"
FAMILY_TYPE = "/vmfamily/usages"            # the subscription-level row of a VM family
REGIONAL = "total cluster dedicated regional vcpus"
#: fields whose change rolls out as a successor beside the live deployment (DeploymentReconciler.successor_fields)
SUCCESSOR_FIELDS = ("code", "model", "environment", "scoring_script")


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
        in_place = before is not None and all(before.spec.get(f) == res.spec.get(f) for f in SUCCESSOR_FIELDS)
        if in_place and str(before.spec.get("instance_type", "")).lower() == name.lower():
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
    rows = [(family, extra, f"standard {_family_usage_key(family)} family cluster dedicated vcpus")
            for family, extra in sorted(need.items())]
    rows.append(("regional (all families)", sum(need.values()), REGIONAL))
    for what, extra, label in rows:
        usage = _row(usages, label, family_row=label != REGIONAL)
        limit = _attr(usage, "limit") if usage is not None else None
        if limit is None or int(limit) < 0:
            continue
        left = int(limit) - int(_attr(usage, "current_value", "currentValue") or 0)
        if extra > left:
            out.append(f"quota: this plan needs {extra} more {what} vCPUs in {location} (instance_count x vCPUs, "
                       f"+20 % that managed endpoints reserve for upgrades; a successor counts in full beside the "
                       f"deployment it replaces) but {left} of {limit} are left: apply would fail with OutOfQuota; "
                       "lower instance_count, pick another instance_type, or request more quota")
    return out


def _row(usages: list[Any], label: str, family_row: bool) -> Any:
    """The usage row named `label`; for a VM family the subscription-level one (type `.../vmFamily/usages`)."""
    named = [u for u in usages if _usage_name(u).lower() == label]
    if family_row:
        typed = [u for u in named if str(_attr(u, "type") or "").lower().endswith(FAMILY_TYPE)]
        return typed[0] if typed else (named[0] if named else None)
    return named[0] if named else None


def _usage_name(usage: Any) -> str:
    name = _attr(usage, "name")
    if isinstance(name, str):
        return name
    return str(_attr(name, "value") or "") if name is not None else ""
