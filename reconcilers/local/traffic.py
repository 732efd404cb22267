"""Traffic split of an endpoint: its own step, after the deployments it names are healthy.

Always written as the full map (deployments not named get 0), the rule that keeps an
Azure endpoint update from resetting traffic; locally it is the front's routing table.
"""

from __future__ import annotations

from typing import Any

from rtsctl.plan.normalize import traffic_weights
from rtsctl.desired.resources import Observed, Resource
from rtsctl.rollout.successor import live_to_manifest, manifest_to_live

from ..base import Reconciler
from .deployment import live_names
from .routes import RECORD, edit_routes, read_routes
from .state import Layout, read_json


class TrafficReconciler(Reconciler):
    kind = "traffic"
    normalize = {"weights": traffic_weights}  # a deployment at 0 is one the manifest may name or leave out

    def __init__(self, layout: Layout):
        self.layout = layout

    def observe(self, res: Resource) -> Observed | None:
        folder = self.layout.endpoint(res.name)
        if not (folder / RECORD).exists():
            return None
        traffic = read_routes(folder).get("traffic", {})
        chosen, claims = live_names(folder)
        weights = live_to_manifest(traffic, chosen, claims)  # keyed by manifest names, as declared
        owner = (read_json(folder / RECORD) or {}).get("owner")  # traffic is part of its endpoint: its owner's
        return Observed(res.address, {"weights": {k: v for k, v in weights.items() if v}}, handle=folder,
                        outputs={"traffic": dict(traffic)}, owner=owner)

    def create(self, res: Resource) -> None:
        """`res.spec["weights"]` by manifest names, or by live names when `inputs["live_names"]` (a successor
        taking over): always written as the full map."""
        weights = res.spec["weights"]
        if not res.inputs.get("live_names"):
            weights = manifest_to_live(weights, live_names(self.layout.endpoint(res.name))[0])

        def shift(routes: dict[str, Any]) -> None:
            routes["traffic"] = {name: weights.get(name, 0) for name in {*routes["deployments"], *weights}}

        edit_routes(self.layout.endpoint(res.name), shift)

    def claim(self, res: Resource, observed: Observed) -> None:
        """Owned with its endpoint (claimed there)."""

    def delete(self, observed: Observed) -> None:
        """Traffic goes with its endpoint."""
