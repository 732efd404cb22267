"""The resource graph: references become edges; order, reverse order and critical path."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rtsctl.support.errors import RtsctlError
from rtsctl.desired.resources import Resource


class Graph:
    """A DAG over resource addresses. Edges point from a resource to what it depends on."""

    def __init__(self, resources: Iterable[Resource]):
        self.nodes: dict[str, Resource] = {}
        for res in resources:
            self.nodes[res.address] = res
        self.deps: dict[str, tuple[str, ...]] = {
            a: tuple(d for d in r.depends_on if d in self.nodes) for a, r in self.nodes.items()
        }
        self.order = self._topological()

    def _topological(self) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(address: str, trail: list[str]) -> None:
            if state.get(address) == 2:
                return
            if state.get(address) == 1:
                cycle = " -> ".join(trail[trail.index(address):] + [address])
                raise RtsctlError(f"dependency cycle: {cycle}")
            state[address] = 1
            for dep in self.deps[address]:
                visit(dep, trail + [address])
            state[address] = 2
            order.append(address)

        for address in self.nodes:
            visit(address, [])
        return order

    def dependents(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {a: set() for a in self.nodes}
        for address, deps in self.deps.items():
            for dep in deps:
                out[dep].add(address)
        return out

    def critical_path(self, durations: Mapping[str, float]) -> tuple[float, list[str]]:
        """Longest chain of `durations` through the DAG: the best wall time any parallel apply can reach."""
        best: dict[str, tuple[float, list[str]]] = {}
        for address in self.order:
            before = max((best[d] for d in self.deps[address]), key=lambda t: t[0], default=(0.0, []))
            best[address] = (before[0] + durations.get(address, 0.0), before[1] + [address])
        return max(best.values(), key=lambda t: t[0], default=(0.0, []))
