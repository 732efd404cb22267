"""What a local plan can tell before anything runs: instance counts beyond this machine's capacity.

The deployment reconciler refuses, at apply, more instances than CPU cores when the endpoint's compute
declares no max_instances (`deployment.local_capacity`); the plan says so first, with the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from rtsctl.resources import Resource

from .deployment import local_capacity


def capacity_warnings(resources: Sequence[Resource]) -> list[str]:
    by_address = {r.address: r for r in resources}
    limit = local_capacity()
    out = []
    for res in resources:
        if res.kind != "deployment":
            continue
        endpoint = by_address.get(f"endpoint.{res.spec['endpoint']}")
        compute = (endpoint.spec.get("compute") if endpoint else None)
        declared = by_address.get(f"compute.{compute}") if compute else None
        if declared is not None and "max_instances" in declared.spec:
            continue  # validate checks the count against the compute's own capacity
        count = res.spec.get("instance_count", 1)
        if count > limit:
            out.append(f"{res.address}: instance_count {count} exceeds the local capacity of {limit} (one "
                       f"instance per CPU core): apply will refuse it; lower instance_count or give the endpoint "
                       f"a compute with max_instances")
    return out
