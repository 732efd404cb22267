"""The plan: one action per resource, decided from desired x observed (the actions: rtsctl.plan.actions).

Ownership (rtsctl.observe.ownership) is decided first: nothing here plans a change to what another manifest, or
nobody, owns.
"""

from __future__ import annotations

from reconcilers.base import Reconciler

from rtsctl.plan.actions import Action, ActionKind, Plan
from rtsctl.plan.diff import diff_specs
from rtsctl.support.errors import RtsctlError
from rtsctl.desired.graph import Graph
from rtsctl.observe.ownership import LEGACY, MINE, NOBODY, import_hint, owner_words, whose
from rtsctl.desired.resources import Observed, Resource
from rtsctl.rollout.successor import mark_successors



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
