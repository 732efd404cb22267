"""Traffic split of an endpoint: its own step, after the deployments it names are healthy.

Always written as the full map (deployments not named get 0), the rule that keeps an
Azure endpoint update from resetting traffic; locally it is the front's routing table.
"""

from __future__ import annotations

from typing import Any

from rtsctl.normalize import traffic_weights
from rtsctl.resources import Observed, Resource

from ..base import Reconciler
from .routes import RECORD, edit_routes, read_routes
from .state import Layout


class TrafficReconciler(Reconciler):
    kind = "traffic"
    destroyable = False
    normalize = {"weights": traffic_weights}  # a deployment at 0 is one the manifest may name or leave out

    def __init__(self, layout: Layout):
        self.layout = layout

    def observe(self, res: Resource) -> Observed | None:
        folder = self.layout.endpoint(res.name)
        if not (folder / RECORD).exists():
            return None
        traffic = read_routes(folder).get("traffic", {})
        return Observed(res.address, {"weights": {k: v for k, v in traffic.items() if v}}, handle=folder)

    def create(self, res: Resource) -> None:
        weights = res.spec["weights"]

        def shift(routes: dict[str, Any]) -> None:
            routes["traffic"] = {name: weights.get(name, 0) for name in {*routes["deployments"], *weights}}

        edit_routes(self.layout.endpoint(res.name), shift)

    def delete(self, observed: Observed) -> None:
        """Traffic goes with its endpoint."""
