"""traffic.<endpoint>: the endpoint's traffic split, its own step once the deployments are up.

Always written as the FULL map (every deployment of the endpoint, 0 where the manifest gives none) in
an endpoint PUT that keeps the endpoint's other fields as they are. Destroying traffic deletes nothing: it goes
with its endpoint (the plan lists it, so destroy's count matches apply's).
"""

from __future__ import annotations

from rtsctl.support.errors import ResourceError
from rtsctl.plan.normalize import traffic_weights
from rtsctl.desired.resources import Observed, Resource
from rtsctl.rollout.successor import LABEL, live_to_manifest, manifest_to_live

from .common import TRAFFIC_APPLIED_TAG, AzureReconciler, applied_tag, is_managed, mirror_without_live, owner_of
from .deployment import live_names
from .reads import endpoint_idle, read_endpoint


class TrafficReconciler(AzureReconciler):
    kind = "traffic"
    normalize = {"weights": traffic_weights}

    def observe(self, res: Resource) -> Observed | None:
        ep = read_endpoint(self, res.address, res.name)
        if ep is None:
            return None
        current = {k: int(v) for k, v in (ep.traffic or {}).items()}
        chosen, claims = self._names(res.address, res.name)
        # keyed by manifest names, as declared
        weights = live_to_manifest({k.casefold(): v for k, v in current.items()}, chosen, claims)
        return Observed(address=res.address, spec={"weights": weights}, outputs={"traffic": current}, handle=ep,
                        applied=(ep.tags or {}).get(TRAFFIC_APPLIED_TAG), owned=is_managed(ep.tags),
                        owner=owner_of(ep.tags))  # part of its endpoint: its owner's

    def _names(self, address: str, endpoint: str) -> tuple[dict[str, str], dict[str, str]]:
        """(manifest name -> live name serving it, live name -> claimed manifest name), see
        DeploymentReconciler.live_names (the same choice: most traffic wins)."""
        chosen, deployments = live_names(self, address, endpoint)
        # azure-ai-ml lower-cases traffic keys: live names are compared case-insensitively
        return ({k: v.casefold() for k, v in chosen.items()},
                {d.name.casefold(): (d.tags or {}).get(LABEL) or d.name for d in deployments})

    def create(self, res: Resource) -> None:
        with self.clients.gate(res.name).exclusive(res.address, self.notify):
            ep = endpoint_idle(self, res.address, res.name)  # carries every deployment (0 where no traffic)
            if ep is None:
                raise ResourceError(res.address, f"endpoint {res.name} does not exist", "ResourceNotFound")
            desired = {k: int(v) for k, v in (res.spec.get("weights") or {}).items()}
            if not res.inputs.get("live_names"):  # manifest names -> the live deployments serving them
                desired = manifest_to_live(desired, self._names(res.address, res.name)[0])
            # the full map: every deployment the endpoint has at 0 unless named (names match case-insensitively,
            # as azure-ai-ml lower-cases traffic keys)
            traffic = {name: 0 for name in (ep.traffic or {})}
            known = {name.casefold(): name for name in traffic}
            for name, weight in desired.items():
                traffic[known.get(name.casefold(), name)] = weight
            ep.traffic = traffic
            ep.tags = {**(ep.tags or {}), **applied_tag(res, TRAFFIC_APPLIED_TAG)}
            if "mirror" in res.spec:  # a rollout's mirror step (rtsctl.rollout.gates); else kept as it is
                ep.mirror_traffic = {known.get(n.casefold(), n): int(v) for n, v in res.spec["mirror"].items()}
            # ...except for a deployment this write gives live traffic: live or mirrored, never both
            ep.mirror_traffic = mirror_without_live(ep.mirror_traffic, traffic)
            with self.errors(res.address):
                poller = self.ml.online_endpoints.begin_create_or_update(ep)
            self.wait(res.address, poller)

    def claim(self, res: Resource, observed: Observed) -> None:
        return None  # owned with its endpoint (claimed there)

    def delete(self, observed: Observed) -> None:
        return None  # goes with its endpoint
