"""Replace a deployment without an outage: create its successor beside it, then move the traffic, then delete it.

A deployment whose immutable field changes (or, where the backend says an in-place update takes minutes,
its code/model/environment) is not deleted and created again under the same name: that leaves the
endpoint without the deployment for as long as creating it takes (seconds locally, ~10 minutes on Azure).
Instead the plan carries one create-before-destroy step:

  1. the successor is created at 0 % traffic under a new live name and waits until it is healthy;
  2. the endpoint's smoke test is sent to it alone (`azureml-model-deployment: <successor>`);
  3. the full traffic map is written with the old one's share moved to the successor;
  4. the old deployment is deleted.

Naming: deployment names are visible and unique per endpoint on Azure, so a successor gets
`<manifest name>-<4 hex of its spec's digest>` (e.g. `blue-2f3a`; at most 32 characters, the name cut to
fit), avoiding every name the endpoint already has. The manifest name stays the user's handle: each live
deployment carries it as a label (`rtsctl.name` tag on Azure, `manifest_name` in the local record), and
`resolve` maps a manifest name to the live deployment that claims it (the one with most traffic when an
interrupted rollout left two; the other is then an orphan, deleted by the next apply).

An endpoint replacement has no such path (its scoring URI changes): the plan marks it `outage` and apply
refuses it unless `--allow-outage` is given.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rtsctl.support.errors import RtsctlError
from rtsctl.manifest.names import KUBERNETES_PAIR
from rtsctl.desired.resources import Resource

if TYPE_CHECKING:
    from reconcilers.base import Reconciler

    from rtsctl.desired.graph import Graph
    from rtsctl.plan.actions import Action, Plan
    from rtsctl.desired.resources import Observed

#: the label a live deployment carries: the manifest name it serves
LABEL = "rtsctl.name"
#: kinds whose replacement takes the service down for its clients (the scoring URI changes)
OUTAGE_KINDS = frozenset({"endpoint"})
#: Azure: deployment names are 3-32 characters, a letter first, then letters, digits and '-'
MAX_NAME = 32


@dataclass
class Successor:
    """What one create-before-destroy step needs at apply time, decided at plan time."""

    old: str  # live name of the deployment being replaced
    new: str  # live name of its successor
    manifest_name: str
    endpoint: Resource
    old_weight: int = 0
    verify: Any = True  # the smoke test's TLS verification (set by the engine from its backend)

    def phases(self) -> str:
        return (f"create before destroy: {self.old} → {self.new}, traffic {self.old_weight} → 0 / "
                f"0 → {self.old_weight}")


def successor_name(manifest_name: str, spec: Mapping[str, Any], taken: Iterable[str],
                   limit: int = MAX_NAME) -> str:
    """`<name>-<4 hex>` from the spec's digest, sliding along the digest past names already taken; at most
    `limit` characters (the name is cut to fit)."""
    taken = {t.casefold() for t in taken}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
    base = manifest_name[: max(limit, 8) - 5].rstrip("-")
    for start in range(0, len(digest) - 4):
        name = f"{base}-{digest[start:start + 4]}"
        if name.casefold() not in taken:
            return name
    raise RtsctlError(f"no free successor name for deployment {manifest_name}")


def choose(claims: Iterable[tuple[str, str, int]]) -> dict[str, str]:
    """Manifest name -> the live deployment serving it, from (live name, claimed name, traffic weight):
    the claimant with most traffic, then the one whose live name is the manifest name, then the latest name."""
    best: dict[str, tuple[int, bool, str]] = {}
    for live, claim, weight in claims:
        key = (int(weight or 0), live == claim, live)
        if claim not in best or key > best[claim]:
            best[claim] = key
    return {claim: key[2] for claim, key in best.items()}


def live_to_manifest(weights: Mapping[str, int], chosen: Mapping[str, str],
                     claims: Mapping[str, str]) -> dict[str, int]:
    """A live traffic map keyed by manifest names: chosen deployments under their manifest name,
    unlabelled ones under their own, other claimants (leftovers of an interrupted rollout) dropped."""
    out: dict[str, int] = {}
    for live, weight in weights.items():
        claim = claims.get(live, live)
        if chosen.get(claim, live) == live:
            out[claim] = weight
    return out


def manifest_to_live(weights: Mapping[str, int], chosen: Mapping[str, str]) -> dict[str, int]:
    return {chosen.get(name, name): weight for name, weight in weights.items()}


# ---------------------------------------------------------------------------------------------- plan
def mark_successors(graph: Graph, actions: dict[str, Action], orphans: Iterable[Observed],
                    reconcilers: Mapping[str, Reconciler]) -> None:
    """Turn each deployment replacement that can keep serving into a create-before-destroy step (and, where
    the backend declares `successor_fields`, an in-place update of those fields too)."""
    from rtsctl.plan.actions import ActionKind

    taken: dict[str, set[str]] = {}
    for action in actions.values():
        if action.address.startswith("deployment.") and action.observed is not None:
            endpoint = action.address.split(".", 1)[1].split("/", 1)[0]
            taken.setdefault(endpoint, set()).add(_live(action.observed, action.address))
    for orphan in orphans:
        if orphan.address.startswith("deployment."):
            endpoint, name = orphan.address.split(".", 1)[1].split("/", 1)
            taken.setdefault(endpoint, set()).add(name)
    for address, action in actions.items():
        res = action.resource
        if res is None or res.kind != "deployment" or action.observed is None:
            continue
        endpoint_name, manifest_name = res.name.split("/", 1)
        endpoint = actions.get(f"endpoint.{endpoint_name}")
        if endpoint is None or endpoint.kind in (ActionKind.CREATE, ActionKind.REPLACE) or endpoint.resource is None:
            continue  # the endpoint itself is (re)made: nothing is serving that could be kept
        slow = getattr(reconcilers["deployment"], "successor_fields", frozenset())
        # a value the service never recorded (old None: e.g. digest tags absent on a deployment made elsewhere) is
        # bookkeeping, not a new version: updated in place as before
        changed = sorted({c.path.split(".", 1)[0] for c in action.changes if c.old is not None} & slow)
        if action.kind is ActionKind.UPDATE and changed:
            action.kind = ActionKind.REPLACE
            action.reasons.append(f"{', '.join(changed)} changed: updated in place, the service would restart every "
                                  "instance for minutes, so a successor takes over")
        if action.kind is not ActionKind.REPLACE:
            continue
        traffic = actions.get(f"traffic.{endpoint_name}")
        weights = (traffic.observed.spec.get("weights") or {}) if traffic and traffic.observed else {}
        limit = MAX_NAME
        if endpoint.resource.spec.get("compute"):  # Kubernetes: endpoint + deployment names within 62 together
            limit = min(MAX_NAME, KUBERNETES_PAIR[1] - len(endpoint_name))
        new = successor_name(manifest_name, res.spec, taken.setdefault(endpoint_name, set()), limit)
        taken[endpoint_name].add(new)
        action.successor = Successor(_live(action.observed, address), new, manifest_name, endpoint.resource,
                                     int(weights.get(manifest_name, 0) or 0))


def _live(observed: Observed, address: str) -> str:
    return observed.outputs.get("name") or address.rsplit("/", 1)[-1]


def outages(plan: Plan) -> list[Action]:
    return [a for a in plan.actions if is_outage(a)]


def refuse_outage(plan: Plan, allowed: bool) -> None:
    """Apply stops before changing anything when the plan holds an outage the user did not accept (exit 1)."""
    found = outages(plan)
    if found and not allowed:
        names = ", ".join(a.address for a in found)
        raise RtsctlError(f"refused: replacing {names} is an outage (its scoring URI changes, so its clients get "
                          "errors until they are given the new one); apply again with --allow-outage to accept it")


# ---------------------------------------------------------------------------------------------- apply
def roll(action: Action, reconcilers: Mapping[str, Reconciler], report: Callable[[str], None],
         call: Callable[..., Any], rollout: Any = None) -> None:
    """Carry out one create-before-destroy step (see the module docstring). `call` retries transient errors.
    With `rollout` (rtsctl.rollout.gates.RolloutContext) the traffic moves by the endpoint's `rollout:` steps and
    gates; a failed gate restores the traffic and raises, so the old deployment is kept."""
    from rtsctl.support.errors import ResourceError, SmokeTestError
    from rtsctl.apply.smoke import run_smoke_test

    succ: Successor = action.successor
    res = action.resource
    assert res is not None and action.observed is not None
    deployments, traffic, endpoints = reconcilers["deployment"], reconcilers["traffic"], reconcilers["endpoint"]
    endpoint = succ.endpoint.name
    successor = Resource("deployment", f"{endpoint}/{succ.new}", dict(res.spec),
                         {**res.inputs, "live_name": succ.new, "manifest_name": succ.manifest_name},
                         res.depends_on, res.source)
    report(f"{action.address}: creating successor {succ.new} beside {succ.old} at 0% traffic...")
    call(deployments.create, successor)
    test = res.inputs.get("smoke_test") or succ.endpoint.inputs.get("smoke_test")  # its own, else the endpoint's
    if test:
        report(f"{action.address}: smoke test sent to {succ.new} alone...")
        observed = endpoints.observe(succ.endpoint)
        outputs = observed.outputs if observed else {}
        try:
            if not outputs.get("scoring_uri"):
                raise SmokeTestError(f"endpoint {endpoint} has no scoring URI")
            run_smoke_test(f"{endpoint}/{succ.new}", outputs["scoring_uri"], outputs.get("primary_key"),
                           {**test, "deployment": succ.new}, succ.verify)
        except SmokeTestError as exc:
            report(f"{action.address}: successor {succ.new} failed its smoke test; deleting it, {succ.old} "
                   "keeps its traffic")
            gone = deployments.observe(successor)
            if gone is not None:
                call(deployments.delete, gone)
            raise ResourceError(action.address, f"successor {succ.new}: {exc}") from None
    current = traffic.observe(Resource("traffic", endpoint, {"weights": {}}))
    live = dict((current.outputs.get("traffic") if current else None) or {})
    share = int(live.get(succ.old, 0) or 0)
    weights = {**live, succ.new: share + int(live.get(succ.new, 0) or 0), succ.old: 0}
    report(f"{action.address}: traffic {succ.old} {share} → 0, {succ.new} 0 → {weights[succ.new]}")
    if rollout is not None:
        from rtsctl.rollout.gates import run_traffic

        run_traffic(rollout, endpoint, live, weights, live_names=True)
    else:
        call(traffic.create, Resource("traffic", endpoint, {"weights": weights}, {"live_names": True}))
    report(f"{action.address}: deleting {succ.old}...")
    call(deployments.delete, action.observed)


# ---------------------------------------------------------------------------------------------- render
def style(action: Action, symbol: str, color: str, verb: str) -> tuple[str, str, str, str]:
    """How the plan shows a create-before-destroy step or an outage: (symbol, color, verb, text after the
    address), rich markup."""
    if action.successor is not None:
        return "+/-", "yellow", "will be replaced without an outage", f" ({action.successor.phases()})"
    if is_outage(action):
        return (symbol, color, f"{verb} [bold red]outage[/bold red]",
                " [bold red]outage: its scoring URI changes (apply needs --allow-outage)[/bold red]")
    return symbol, color, verb, ""


def is_outage(action: Action) -> bool:
    """A replacement that takes a serving resource away from its clients (no successor can stand in)."""
    from rtsctl.plan.actions import ActionKind

    return action.kind is ActionKind.REPLACE and action.address.split(".", 1)[0] in OUTAGE_KINDS


def json_fields(action: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"outage": is_outage(action)}
    if action.successor is not None:
        succ = action.successor
        out["successor"] = {"old": succ.old, "new": succ.new, "traffic": succ.old_weight,
                            "strategy": "create_before_destroy"}
    return out


# ---------------------------------------------------------------------------------------------- verbs
def live_deployments(session: Any, endpoint: str) -> dict[str, str]:
    """Manifest name -> live name of an endpoint's declared deployments that exist: what `invoke`,
    `bench` and `logs --deployment NAME` send or read, so the manifest name keeps working after a rollout."""
    reconciler = session.reconcilers["deployment"]
    out: dict[str, str] = {}
    for res in session.graph.nodes.values():
        if res.kind == "deployment" and res.name.split("/", 1)[0] == endpoint:
            observed = reconciler.observe(res)
            name = res.name.split("/", 1)[1]
            out[name] = (observed.outputs.get("name") if observed else None) or name
    return out
