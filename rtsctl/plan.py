"""The plan: one action per resource, decided from desired x observed.

create     +   absent, will be created
update     ~   exists, declared fields differ or it is unhealthy (healed in place)
replace   -/+  an immutable field differs (declared by the reconciler as data)
delete     -   owned by this manifest, no longer declared (or `destroy`)
claim      &   exists, made by rtsctl before owners: this manifest takes it, nothing else changes
not-owned  !   declared, exists, owned by another manifest or by nobody: apply refuses (`rtsctl import`)
noop           converged (or a shared parent another manifest owns: referenced, kept)

Ownership (rtsctl.ownership) is decided first: nothing here plans a change to what another manifest, or
nobody, owns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from reconcilers.base import Reconciler

from .diff import Change, diff_specs
from .errors import RtsctlError
from .graph import Graph
from .ownership import LEGACY, MINE, NOBODY, import_hint, owner_words, whose
from .resources import Observed, Resource
from .rollout.successor import mark_successors


class ActionKind(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    CLAIM = "claim"
    NOT_OWNED = "not-owned"
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
    #: the deployment failed its last smoke test (rtsctl.smoke.SmokeRecord): apply tests it again, changing nothing
    #: itself when nothing else changed
    smoke_failed: str | None = None

    @property
    def retest(self) -> bool:
        return self.kind is ActionKind.UPDATE and self.smoke_failed is not None and not self.changes \
            and len(self.reasons) == 1

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
    #: the manifest's identity and how to name it in a command line (for `rtsctl import` hints)
    owner: str = ""
    manifest: str = ""
    #: what preflight checks found before anything changes (capacity, quota, instance types): shown, not fatal
    warnings: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[Action]:
        return [a for a in self.actions if a.changes_world]

    @property
    def has_changes(self) -> bool:
        return bool(self.pending)

    @property
    def not_owned(self) -> list[Action]:
        """Declared resources this manifest does not own: apply refuses while there are any."""
        return [a for a in self.actions if a.kind is ActionKind.NOT_OWNED]

    def counts(self) -> dict[str, int]:
        """Per action kind; a deployment only smoke-tested again counts as `retest`, not as a change."""
        out = {k.value: 0 for k in ActionKind}
        out["retest"] = 0
        for action in self.actions:
            out["retest" if action.retest else action.kind.value] += 1
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


def decide_owned(resource: Resource, observed: Observed | None, reconciler: Reconciler, owner: str,
                 manifest: str) -> Action:
    """`decide`, for what this manifest owns; another manifest's or nobody's is never changed: a shared parent
    (or an adopted `existing` one) is referenced as it is, anything else is `not-owned` until imported."""
    if observed is None or resource.inputs.get("existing"):
        return decide(resource, observed, reconciler)
    status = whose(observed, owner)
    if status in (MINE, LEGACY):
        action = decide(resource, observed, reconciler)
        if status == LEGACY and action.kind is ActionKind.NOOP:
            return Action(ActionKind.CLAIM, resource.address, resource, observed, sensitive=reconciler.sensitive,
                          reasons=[f"made by rtsctl before manifests had owners: {owner!r} claims it"])
        if status == LEGACY and action.kind is not ActionKind.REPLACE:
            action.reasons.append(f"made by rtsctl before manifests had owners: {owner!r} claims it")
        return action
    if reconciler.shared:
        differs = [c.path for c in diff_specs(resource.spec, observed.spec, reconciler.immutable,
                                              reconciler.sensitive, reconciler.normalize)]
        note = f"; differs here ({', '.join(differs)}), which only its owner changes" if differs else ""
        return Action(ActionKind.NOOP, resource.address, resource, observed,
                      reasons=[f"shared, owned by {owner_words(observed)}: referenced, not changed{note}"])
    target = f"endpoint.{resource.name}" if resource.kind == "traffic" else resource.address
    hint = import_hint(manifest, target) if status == NOBODY else (
        f"exists, not owned: {owner_words(observed)} owns it "
        f"(rtsctl import {manifest} {target} --from {observed.owner})")
    # what apply would change once it is imported, shown beside the refusal (`rtsctl import` previews the same)
    changes = diff_specs(resource.spec, observed.spec, reconciler.immutable, reconciler.sensitive,
                         reconciler.normalize)
    return Action(ActionKind.NOT_OWNED, resource.address, resource, observed, changes, reasons=[hint],
                  sensitive=reconciler.sensitive)


def build_plan(graph: Graph, observed: dict[str, Observed | None], orphans: list[Observed],
               reconcilers: dict[str, Reconciler], owner: str = "", manifest: str = "") -> Plan:
    actions = {a: decide_owned(graph.nodes[a], observed.get(a), reconcilers[graph.nodes[a].kind], owner, manifest)
               for a in graph.order}
    mine = [o for o in orphans if whose(o, owner) == MINE]  # another manifest's, or nobody's, is not listed
    mark_successors(graph, actions, mine, reconcilers)
    _reapply_dependents_of_replacements(graph, actions)
    deletes = [Action(ActionKind.DELETE, o.address, None, o, reasons=["no longer declared in the manifest"])
               for o in mine]
    return Plan(list(actions.values()) + deletes, graph, owner=owner, manifest=manifest)


def mark_smoke_failures(plan: Plan, failing: dict[str, dict[str, str]]) -> None:
    """A deployment whose last smoke test failed is not converged, whatever its spec says: the plan shows it
    (and `--detailed-exitcode` exits 2) until an apply sees it pass."""
    for i, action in enumerate(plan.actions):
        seen = failing.get(action.address)
        if seen is None or action.resource is None or action.kind is ActionKind.DELETE:
            continue
        reason = f"failed its smoke test ({seen['at']}): {seen['reason']}; apply tests it again"
        if action.kind is ActionKind.NOOP:
            action = plan.actions[i] = Action(ActionKind.UPDATE, action.address, action.resource, action.observed,
                                              sensitive=action.sensitive, origin=action.origin)
        action.smoke_failed = reason
        action.reasons.append(reason)


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
                       reconcilers: dict[str, Reconciler], orphans: list[Observed] = (), owner: str = "",
                       manifest: str = "") -> Plan:
    """Delete what exists and this manifest owns (traffic records included), dependents first; keep the rest,
    and keep a shared parent that still holds what another manifest or nobody owns, saying why."""
    actions = [Action(ActionKind.DELETE, o.address, None, o, reasons=["no longer declared in the manifest"])
               for o in orphans if whose(o, owner) == MINE]
    kept: set[str] = set()
    dependents = graph.dependents()
    for address in reversed(graph.order):  # dependents first: a kept child keeps its parent
        res, obs = graph.nodes[address], observed.get(address)
        if obs is None:
            continue
        status = whose(obs, owner)
        if status not in (MINE, LEGACY) or (status == LEGACY and res.inputs.get("existing")):
            kept.add(address)
            reason = "not created by rtsctl: kept" if not obs.owned and not obs.owner else \
                f"owned by {owner_words(obs)}: kept"
            actions.append(Action(ActionKind.NOOP, address, res, obs, reasons=[reason]))
            continue
        holds = reconcilers[res.kind].holds(obs, owner) if reconcilers[res.kind].shared else []
        holds += sorted(f"{d} (kept)" for d in dependents[address]
                        if d in kept and reconcilers[graph.nodes[d].kind].shared)
        if holds:
            kept.add(address)
            shown = ", ".join(holds[:5]) + (f" and {len(holds) - 5} more" if len(holds) > 5 else "")
            actions.append(Action(ActionKind.NOOP, address, res, obs, reasons=[f"kept: it still holds {shown}"]))
            continue
        with_ = [f"goes with endpoint.{res.name}"] if res.kind == "traffic" else []  # its record, counted with it
        actions.append(Action(ActionKind.DELETE, address, res, obs, reasons=with_))
    return Plan(actions, graph, destroy=True, owner=owner, manifest=manifest)
