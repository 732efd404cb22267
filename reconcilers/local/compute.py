"""Local compute: a recorded capacity (max instances), checked when the manifest is validated."""

from __future__ import annotations

from rtsctl.desired.resources import Observed, Resource

from ..base import Reconciler
from .state import Layout, read_json, write_json


class ComputeReconciler(Reconciler):
    kind = "compute"
    immutable = frozenset({"type"})

    def __init__(self, layout: Layout):
        self.layout = layout

    def observe(self, res: Resource) -> Observed | None:
        record = read_json(self.layout.compute(res.name))
        if record is None:
            return None
        return Observed(res.address, record["spec"], owned=record.get("managed_by") == "rtsctl",
                        handle=self.layout.compute(res.name), owner=record.get("owner"))

    def create(self, res: Resource) -> None:
        write_json(self.layout.compute(res.name), self.layout.mark({"spec": res.spec}))

    def delete(self, observed: Observed) -> None:
        observed.handle.unlink(missing_ok=True)
