"""traffic.<endpoint>: the endpoint's traffic split, its own step once the deployments are up.

Always written as the FULL map (every deployment of the endpoint, 0 where the manifest gives none) in
an endpoint PUT that keeps the endpoint's other fields as they are. Traffic is not destroyable: it goes
with its endpoint.
"""

from __future__ import annotations

from rtsctl.resources import Observed, Resource

from .common import AzureReconciler


class TrafficReconciler(AzureReconciler):
    kind = "traffic"
    destroyable = False

    def observe(self, res: Resource) -> Observed | None:
        ep = self.get_or_none(res.address, self.ml.online_endpoints.get, res.name)
        if ep is None:
            return None
        desired = res.spec.get("weights") or {}
        current = {k: int(v) for k, v in (ep.traffic or {}).items()}
        # zero entries are noise unless the manifest names that deployment
        weights = {k: v for k, v in current.items() if v or k in desired}
        return Observed(address=res.address, spec={"weights": weights}, outputs={"traffic": current}, handle=ep)

    def create(self, res: Resource) -> None:
        with self.clients.lock_for(f"endpoint:{res.name}"):
            with self.errors(res.address):
                ep = self.ml.online_endpoints.get(res.name)  # carries every deployment (0 where no traffic)
            desired = {k: int(v) for k, v in (res.spec.get("weights") or {}).items()}
            ep.traffic = {name: desired.get(name, 0) for name in (ep.traffic or {})} | desired
            with self.errors(res.address):
                poller = self.ml.online_endpoints.begin_create_or_update(ep)
            self.wait(res.address, poller)

    def delete(self, observed: Observed) -> None:
        return None  # goes with its endpoint
