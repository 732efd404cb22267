"""The plan: one action per resource, decided from desired x observed.

create     +   absent, will be created
update     ~   exists, declared fields differ or it is unhealthy (healed in place)
replace   -/+  an immutable field differs (declared by the reconciler as data)
delete     -   owned by rtsctl, no longer declared (or `destroy`)
noop           converged
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from reconcilers.base import Reconciler

from .diff import Change, diff_specs
from .errors import RtsctlError
from .graph import Graph
from .resources import Observed, Resource
from .rollout.successor import mark_successors


class ActionKind(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "no-op"


@dataclass
class Action:
    kind: ActionKind
    address: str
    resource: Resource | None
    observed: Observed | None
    changes: list[Change] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    #: the reconciler's sensitive fields: masked wherever this action's values are shown
    sensitive: frozenset[str] = frozenset()
    #: a replacement carried out create-before-destroy (rtsctl.rollout.successor.Successor), else None
    successor: Any = None
    #: "drift" (the world moved) or "edit" (the manifest moved), set by rtsctl.trust.label_origins
    origin: str | None = None

    @property
    def changes_world(self) -> bool:
        return self.kind is not ActionKind.NOOP

    @property
    def notes(self) -> list[str]:
        """What the reconciler says about the resource as it is (Observed.notes): shown, never part of the
        plan's identity (a saved plan stays valid when a count in a note moves)."""
        return list(self.observed.notes) if self.observed is not None else []


@dataclass
class Plan:
    actions: list[Action]
    graph: Graph
    destroy: bool = False
    #: what preflight checks found before anything changes (capacity, quota, instance types): shown, not fatal
    warnings: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[Action]:
        return [a for a in self.actions if a.changes_world]

    @property
    def has_changes(self) -> bool:
        return bool(self.pending)

    def counts(self) -> dict[str, int]:
        out = {k.value: 0 for k in ActionKind}
        for action in self.actions:
            out[action.kind.value] += 1
        return out


def decide(resource: Resource, observed: Observed | None, reconciler: Reconciler) -> Action:
    """The one action that converges `resource`."""
    warnings = list(resource.inputs.get("warnings") or [])  # said whenever the resource is written
    if observed is None:
        return Action(ActionKind.CREATE, resource.address, resource, None, reasons=warnings,
                      sensitive=reconciler.sensitive)
    changes = diff_specs(resource.spec, observed.spec, reconciler.immutable, reconciler.sensitive,
                         reconciler.normalize)
    if changes:
        refused = reconciler.guard(resource, observed, changes)
        if refused:
            raise RtsctlError(f"{resource.address}: refused: {refused}")
    if any(c.forces_replacement for c in changes):
        return Action(ActionKind.REPLACE, resource.address, resource, observed, changes)
    if changes or observed.problems:
        return Action(ActionKind.UPDATE, resource.address, resource, observed, changes,
                      list(observed.problems) + warnings)
    return Action(ActionKind.NOOP, resource.address, resource, observed)


def build_plan(graph: Graph, observed: dict[str, Observed | None], orphans: list[Observed],
               reconcilers: dict[str, Reconciler]) -> Plan:
    actions = {a: decide(graph.nodes[a], observed.get(a), reconcilers[graph.nodes[a].kind]) for a in graph.order}
    mark_successors(graph, actions, orphans, reconcilers)
    _reapply_dependents_of_replacements(graph, actions)
    deletes = [Action(ActionKind.DELETE, o.address, None, o, reasons=["no longer declared in the manifest"])
               for o in orphans if o.owned]
    return Plan(list(actions.values()) + deletes, graph)


def _reapply_dependents_of_replacements(graph: Graph, actions: dict[str, Action]) -> None:
    """Deleting a resource to replace it takes what hangs on it along (an endpoint's deployments,
    a deployment's share of traffic): everything downstream is applied again."""
    dependents = graph.dependents()
    cause = {a: a for a, action in actions.items() if action.kind is ActionKind.REPLACE and action.successor is None}
    for address in graph.order:  # dependencies first, so a cause reaches everything downstream
        if address not in cause:
            continue
        for child in dependents[address]:
            if actions[child].kind is ActionKind.NOOP:
                actions[child] = Action(ActionKind.UPDATE, child, actions[child].resource, actions[child].observed,
                                        reasons=[f"re-applied because {cause[address]} is replaced"])
            cause.setdefault(child, cause[address])


def build_destroy_plan(graph: Graph, observed: dict[str, Observed | None],
                       reconcilers: dict[str, Reconciler], orphans: list[Observed] = ()) -> Plan:
    """Delete what exists and rtsctl owns, dependents first; report the rest as kept."""
    actions = [Action(ActionKind.DELETE, o.address, None, o, reasons=["no longer declared in the manifest"])
               for o in orphans if o.owned]
    for address in reversed(graph.order):
        res, obs = graph.nodes[address], observed.get(address)
        if obs is None or not reconcilers[res.kind].destroyable:
            continue
        if obs.owned:
            actions.append(Action(ActionKind.DELETE, address, res, obs))
        else:
            actions.append(Action(ActionKind.NOOP, address, res, obs, reasons=["not created by rtsctl: kept"]))
    return Plan(actions, graph, destroy=True)
