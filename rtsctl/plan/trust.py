"""Plans users can trust: `prevent_destroy`, `--target`, and drift told apart from edits.

* `prevent_destroy: true` on a manifest block guards every resource built from it (a kubernetes compute's
  cluster and extension too): a plan that would delete or replace one fails, naming it and why, like
  Terraform's `lifecycle.prevent_destroy`. Removing the block removes its guard, as in Terraform.
* `--target ADDRESS` narrows a plan to those resources and what they need: their dependencies for
  plan/apply, their dependents for destroy (what hangs on a resource goes first).
* Each pending action is labelled `drift` (the world moved: a dead process, a field changed outside
  rtsctl, a Failed state, something deleted) or `edit` (the manifest moved), from the spec digests
  recorded by the last apply (`rtsctl.observe.applied`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rtsctl.observe.applied import field_digest, spec_digest
from rtsctl.plan.diff import Change
from rtsctl.support.errors import RtsctlError
from rtsctl.desired.graph import Graph
from rtsctl.manifest import Manifest
from rtsctl.plan.actions import Action, ActionKind, Plan
from rtsctl.desired.resources import Resource

DRIFT, EDIT, BOTH = "drift", "edit", "drift+edit"
MAX_LISTED = 20  # addresses named in one error line
#: what leaves a resource in place; every other kind (delete, replace, and any later kind that removes
#: the old resource, such as a successor rollout) is what prevent_destroy refuses
KEEPS = frozenset({ActionKind.CREATE, ActionKind.UPDATE, ActionKind.NOOP, ActionKind.CLAIM, ActionKind.NOT_OWNED})


def mark_prevent_destroy(manifest: Manifest, resources: Sequence[Resource]) -> None:
    """Copy each block's `prevent_destroy` onto the resources built from it (`inputs["prevent_destroy"]`)."""
    data = manifest.data
    guarded: set[str] = set()

    def block(entry: Any, *addresses: str) -> None:
        if isinstance(entry, dict) and entry.get("prevent_destroy") is True:
            guarded.update(addresses)

    ws = data.get("workspace") or {}
    block(ws, f"workspace.{ws.get('name')}")
    testing = data.get("load_testing") or {}
    block(testing, f"load_testing.{testing.get('name')}")
    for model in data.get("models") or []:
        block(model, f"model.{model.get('name')}")
    for env in data.get("environments") or []:
        block(env, f"environment.{env.get('name')}")
    for compute in data.get("computes") or []:
        cluster = (compute.get("cluster") or {}).get("name")
        block(compute, f"compute.{compute.get('name')}",
              *((f"aks_cluster.{cluster}", f"k8s_extension.{cluster}") if cluster else ()))
    for endpoint in data.get("endpoints") or []:
        block(endpoint, f"endpoint.{endpoint.get('name')}")
        for dep in endpoint.get("deployments") or []:
            block(dep, f"deployment.{endpoint.get('name')}/{dep.get('name')}")
    for res in resources:
        if res.address in guarded:
            res.inputs["prevent_destroy"] = True


def check_prevent_destroy(plan: Plan) -> None:
    """Raise when the plan would delete or replace a guarded resource (every offender, one line each)."""
    refused = [a for a in plan.actions if a.kind not in KEEPS and a.resource is not None
               and a.resource.inputs.get("prevent_destroy")]
    if not refused:
        return
    lines = [f"{a.address}: prevent_destroy is set, but this plan would {_what(a)}" for a in refused]
    where = refused[0].resource.source if refused[0].resource else None
    hint = (f"; remove prevent_destroy at {where} to allow it" if where
            else "; remove prevent_destroy from the manifest to allow it")
    if len(lines) == 1:
        raise RtsctlError(lines[0] + hint)
    raise RtsctlError(f"the plan would destroy {len(lines)} protected resources:\n  " + "\n  ".join(lines)
                      + "\n" + hint.lstrip("; "))


def _what(action: Action) -> str:
    if action.kind is ActionKind.DELETE:
        return "destroy it"
    forcing = [c.path for c in action.changes if c.forces_replacement]
    because = f" ({', '.join(forcing)} cannot change in place)" if forcing else ""
    return f"{action.kind.value} it{because}"


def select_targets(plan: Plan, targets: Iterable[str]) -> Plan:
    """The plan cut down to `targets` and what they need: dependencies, or dependents when destroying.
    An address the plan does not know is a one-line error listing what it does know."""
    targets = list(dict.fromkeys(targets))
    if not targets:
        return plan
    known = {a.address for a in plan.actions} | set(plan.graph.nodes)
    unknown = [t for t in targets if t not in known]
    if unknown:
        names = sorted(known)
        shown = ", ".join(names[:MAX_LISTED]) + (f", … ({len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")
        raise RtsctlError(f"--target {_printable(unknown[0])}: no such resource in this plan (known: {shown})")
    keep = _closure(plan.graph, targets, plan.graph.dependents() if plan.destroy else plan.graph.deps)
    actions = [a for a in plan.actions if a.address in keep]
    return _copy(plan, actions)


def _printable(text: str) -> str:
    """User input in an error line: bounded, no control characters (nothing a terminal would act on)."""
    return "".join(c if c.isprintable() else "?" for c in text[:200])


def _closure(graph: Graph, start: Sequence[str], edges: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    stack = list(start)
    while stack:
        address = stack.pop()
        if address in seen:
            continue
        seen.add(address)
        stack.extend(edges.get(address, ()))
    return seen


def _copy(plan: Plan, actions: list[Action]) -> Plan:
    """A plan like `plan` (every field kept, whoever added them) with other actions."""
    import dataclasses

    return dataclasses.replace(plan, actions=actions)


def label_origins(plan: Plan, recorded: Mapping[str, Mapping[str, Any]]) -> None:
    """Set `action.origin` on each pending action: drift when the fields that differ are still what the last
    apply applied (so the world moved), edit when the manifest moved them (or nothing was recorded),
    drift+edit when both."""
    for action in plan.actions:  # a claim or a not-owned resource is about ownership, neither drift nor edit
        if action.changes_world and action.kind not in (ActionKind.CLAIM, ActionKind.NOT_OWNED):
            action.origin = _origin(action, recorded)


def _drifted(action: Action, entry: Mapping[str, Any]) -> list[Change]:
    """The changes of `action` on fields whose desired value is what the last apply applied."""
    fields = entry.get("fields") or {}
    spec = action.resource.spec if action.resource is not None else {}
    return [c for c in action.changes
            if (top := c.path.split(".", 1)[0]) in spec and fields.get(top) == field_digest(spec[top])]


def _origin(action: Action, recorded: Mapping[str, Mapping[str, Any]]) -> str:
    entry = recorded.get(action.address)
    if action.resource is None or entry is None:
        return EDIT  # undeclared now, or never applied from here: the manifest's own doing as far as rtsctl knows
    if action.kind is ActionKind.CREATE:
        return DRIFT  # applied before, gone now: deleted outside rtsctl
    if entry.get("spec") == spec_digest(action.resource.spec):
        return DRIFT  # the same manifest as the last apply, yet a change: changed or unhealthy outside rtsctl
    drifted = _drifted(action, entry)
    unhealthy = bool(action.observed and action.observed.problems)
    edited = len(drifted) < len(action.changes) or not action.changes
    if (drifted or unhealthy) and edited and action.changes:
        return BOTH
    return DRIFT if drifted or (unhealthy and not action.changes) else EDIT


def drift_only(plan: Plan, recorded: Mapping[str, Mapping[str, Any]]) -> Plan:
    """`plan --refresh-only`: the actions that undo drift, with only their drifted changes; nothing the
    manifest asked for."""
    import dataclasses

    kept = []
    for action in plan.actions:
        if not action.changes_world or action.origin == DRIFT:
            kept.append(action)
        elif action.origin == BOTH:
            changes = _drifted(action, recorded.get(action.address) or {})
            kept.append(dataclasses.replace(action, kind=ActionKind.UPDATE if changes or action.observed else
                                            action.kind, changes=changes, origin=DRIFT))
    return _copy(plan, kept)


def targeted_endpoints(plan: Plan, endpoints: Sequence[str]) -> list[str]:
    """The endpoints a (targeted) plan covers: outputs and smoke tests skip the others, which may not exist."""
    covered = {a.address for a in plan.actions}
    return [e for e in endpoints if f"endpoint.{e}" in covered]
