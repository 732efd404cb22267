"""Observe every node of the graph through its kind's reconciler, concurrently."""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor

from reconcilers.base import Reconciler

from rtsctl.desired.graph import Graph
from rtsctl.desired.resources import Observed
from rtsctl.support.retry import call_with_retry


#: observing threads at most (each holds one connection to the service while it waits)
MAX_READERS = 32


def observe_all(graph: Graph, reconcilers: dict[str, Reconciler], max_workers: int = 8,
                skip: Collection[str] = ()) -> dict[str, Observed | None]:
    """The observed world, by address (None where a resource does not exist or was skipped)."""
    addresses = [a for a in graph.order if a not in skip]
    # reads only wait on the network: every node at once (bounded), whatever the write parallelism is
    max_workers = max(max_workers, min(len(addresses), MAX_READERS))
    with ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="observe") as pool:
        results = pool.map(lambda a: call_with_retry(reconcilers[graph.nodes[a].kind].observe, graph.nodes[a]),
                           addresses)
        return dict(zip(addresses, results))


def discover_orphans(graph: Graph, reconcilers: dict[str, Reconciler]) -> list[Observed]:
    """Owned resources in the manifest's scope that it no longer declares."""
    desired = list(graph.nodes.values())
    orphans: list[Observed] = []
    for reconciler in reconcilers.values():
        orphans += [o for o in call_with_retry(reconciler.discover, desired) if o.address not in graph.nodes]
    return orphans
