"""The engine: manifest -> resources -> graph -> observe -> diff -> plan -> apply.

Backend-blind: it talks to whatever `reconcilers.load_backend` returns and only asks it
which kinds it supports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconcilers import load_backend
from reconcilers.base import Backend, Reconciler

from rtsctl.observe.applied import carried, read_record, record_path, update_record
from rtsctl.apply.run import ApplyResult, Reporter, apply_plan
from rtsctl.desired.build import build_resources, settings_for
from rtsctl.support.errors import ManifestError, RtsctlError
from rtsctl.desired.graph import Graph
from rtsctl.manifest import Manifest, load_manifest
from rtsctl.observe.read import discover_orphans, observe_all
from rtsctl.plan.actions import ActionKind, Plan
from rtsctl.plan.decide import build_destroy_plan, build_plan, mark_smoke_failures


@dataclass
class Session:
    manifest: Manifest
    graph: Graph
    backend: Backend
    reconcilers: dict[str, Reconciler]

    @property
    def parallelism(self) -> int:
        return int(self.backend.settings.provider.get("max_parallel", 8))

    def endpoints(self) -> list[str]:
        return [r.name for r in self.graph.nodes.values() if r.kind == "endpoint"]


@contextmanager
def open_session(manifest_path: str, variables: Mapping[str, str] | None = None) -> Iterator[Session]:
    """`variables` (from --var/--var-file) are read by `${KEY}` before the environment."""
    from rtsctl.manifest.variables import environment

    manifest = load_manifest(manifest_path, env=environment(variables))
    resources = build_resources(manifest)
    from rtsctl.plan.trust import mark_prevent_destroy

    mark_prevent_destroy(manifest, resources)
    graph = Graph(resources)
    backend = load_backend(settings_for(manifest))
    try:
        reconcilers = backend.reconcilers()
        for res in resources:
            if res.kind not in reconcilers:
                line = res.source.line if res.source else None
                raise ManifestError(f"{res.kind} {res.name!r} is not supported by the {backend.name} backend "
                                    f"(it manages: {', '.join(sorted(reconcilers))})", manifest.display, line)
        yield Session(manifest, graph, backend, reconcilers)
    finally:
        backend.close()


def make_plan(session: Session, destroy: bool = False, targets: Sequence[str] = (),
              refresh_only: bool = False) -> Plan:
    """The plan, each change labelled drift or edit, with preflight warnings, cut down to `targets`;
    refused when it would destroy a resource marked prevent_destroy (rtsctl.plan.trust)."""
    from rtsctl.plan import trust

    # Resources the manifest adopts (`existing: true`) are never destroyed, so destroy need not find them.
    skip = {a for a, r in session.graph.nodes.items() if r.inputs.get("existing")} if destroy else set()
    with session.backend.snapshot():  # one picture of the world: each remote resource read once
        observed = observe_all(session.graph, session.reconcilers, session.parallelism, skip)
        orphans = discover_orphans(session.graph, session.reconcilers)
        preflight = [] if destroy else session.backend.preflight(list(session.graph.nodes.values()), observed)
    # this machine's record, overridden by what the resources carry themselves (newer, and shared)
    recorded = {**read_record(applied_record(session)), **carried(observed, session.graph.nodes)}
    owner, display = session.manifest.name, session.manifest.display
    if destroy:
        plan = build_destroy_plan(session.graph, observed, session.reconcilers, orphans, owner, display)
    else:
        plan = build_plan(session.graph, observed, orphans, session.reconcilers, owner, display)
        from rtsctl.plan.contents import explain, snapshot_all

        snapshot_all(session.graph.nodes.values())  # what this plan sees, so a later one can say what changed
        explain(plan.actions)
        trust.label_origins(plan, recorded)
        plan.warnings = preflight
        mark_smoke_failures(plan, smoke_record(session).read())
    plan = trust.select_targets(plan, targets)
    if refresh_only:
        plan = trust.drift_only(plan, recorded)
    trust.check_prevent_destroy(plan)
    return plan


def applied_record(session: Session) -> Path:
    settings = session.backend.settings
    return record_path(settings.provider, settings.resource_group, settings.workspace)


def record_applied(session: Session, plan: Plan, result: ApplyResult) -> None:
    """What succeeded is what the world now holds from the manifest (`rtsctl.observe.applied`), failures or not."""
    done = set(result.timings)
    kept = {a.address: a.resource.spec for a in plan.actions if a.resource is not None
            and a.kind is not ActionKind.DELETE and (a.address in done or not a.changes_world)}
    deleted = [a.address for a in plan.actions if a.kind is ActionKind.DELETE and a.address in done]
    update_record(applied_record(session), kept, deleted)
    if deleted:
        smoke_record(session).update({}, deleted)


def apply(session: Session, plan: Plan, report: Reporter) -> ApplyResult:
    for action in plan.pending:
        if action.successor is not None:  # its smoke test goes through the backend's TLS settings
            action.successor.verify = session.backend.smoke_context().get("verify", True)
    from rtsctl.rollout.gates import RolloutContext

    rollout = RolloutContext(session.reconcilers, session.backend, session.graph, report)
    return apply_plan(plan, session.reconcilers, report, session.parallelism, rollout, session.backend.step)


def endpoint_outputs(session: Session, endpoint: str | None = None) -> list[dict[str, Any]]:
    """Scoring URI, keys and deployment names of each (or one) endpoint, as observed now."""
    names = session.endpoints()
    if endpoint is not None:
        if endpoint not in names:
            raise RtsctlError(f"no endpoint {endpoint!r} in {session.manifest.display} (declared: {', '.join(names)})")
        names = [endpoint]
    verify = session.backend.smoke_context().get("verify", True)
    out = []
    for name in names:
        res = session.graph.nodes[f"endpoint.{name}"]
        observed = session.reconcilers["endpoint"].observe(res)
        if observed is None:
            raise RtsctlError(f"endpoint {name} does not exist yet: run rtsctl apply {session.manifest.display}")
        deployments = list(deployments_of(session, name))
        out.append({"endpoint": name, "scoring_uri": observed.outputs.get("scoring_uri"),
                    "primary_key": observed.outputs.get("primary_key"),
                    "secondary_key": observed.outputs.get("secondary_key"),
                    "deployments": deployments, "traffic": _traffic(session, name), "verify": verify,
                    "state": observed.outputs.get("provisioning_state")})
    return out


def deployments_of(session: Session, endpoint: str) -> dict[str, Any]:
    """An endpoint's declared deployments by manifest name, in manifest order."""
    return {r.name.split("/", 1)[1]: r for r in session.graph.nodes.values()
            if r.kind == "deployment" and r.spec["endpoint"] == endpoint}


def _traffic(session: Session, endpoint: str) -> dict[str, int]:
    """The endpoint's live traffic share per deployment (manifest names; 0 for a declared one that gets none)."""
    res = session.graph.nodes.get(f"traffic.{endpoint}")
    seen = session.reconcilers["traffic"].observe(res) if res is not None else None
    weights = (seen.spec.get("weights") if seen else None) or {}
    return {n: int(weights.get(n) or 0) for n in dict.fromkeys([*deployments_of(session, endpoint), *weights])}


def await_scoring_uri(session: Session, out: dict[str, Any], timeout: float, report: Reporter | None = None,
                      interval: float = 2.0) -> dict[str, Any]:
    """`out` once its endpoint has a scoring URI. A real endpoint answers `scoringUri: null` while it is
    Creating (recordings 01, 03): wait for it, bounded, saying so; raise naming the state if it never comes."""
    deadline = time.monotonic() + timeout
    said = False
    while not out.get("scoring_uri"):
        if time.monotonic() >= deadline:
            raise RtsctlError(f"endpoint {out['endpoint']} has no scoring URI after {timeout:.0f}s (provisioning "
                              f"state: {out.get('state') or 'unknown'}); run rtsctl output "
                              f"{session.manifest.display} once it is ready")
        if report and not said:
            report(f"endpoint.{out['endpoint']}: waiting for the scoring URI (provisioning state "
                   f"{out.get('state') or 'unknown'})...")
            said = True
        time.sleep(interval)
        out = endpoint_outputs(session, out["endpoint"])[0]
    return out


def smoke_record(session: Session):
    from rtsctl.apply.smoke import SmokeRecord

    path = applied_record(session)
    return SmokeRecord(path.with_name(path.stem + ".smoke.json"))


def smoke_test(session: Session, outputs: list[dict[str, Any]], report: Reporter | None = None) -> list[str]:
    """Send each deployment that takes traffic its smoke test, addressed to it alone (rtsctl.apply.smoke); remember
    which failed so the next plan shows them. Returns the `endpoint/deployment` names that passed; raises
    SmokeTestError naming every deployment that failed."""
    from rtsctl.support.errors import SmokeTestError
    from rtsctl.rollout.successor import live_deployments
    from rtsctl.apply.smoke import run_targets, targets

    record = smoke_record(session)
    failing = record.read()
    tested: list[str] = []
    failures: dict[str, str] = {}
    forgotten: list[str] = []
    for i, out in enumerate(outputs):
        name = out["endpoint"]
        deployments = deployments_of(session, name)
        chosen = targets(name, session.graph.nodes[f"endpoint.{name}"].inputs.get("smoke_test"),
                         {d: r.inputs.get("smoke_test") for d, r in deployments.items()},
                         live_deployments(session, name), out.get("traffic") or {}, failing)
        forgotten += [f"deployment.{name}/{d}" for d in deployments]  # not tested now: no longer failing either
        if not chosen:
            continue
        timeout = max(float(t.test.get("timeout", 30)) for t in chosen)
        out = outputs[i] = await_scoring_uri(session, out, timeout, report)
        failed = run_targets(out["scoring_uri"], out["primary_key"], chosen, out["verify"])
        failures.update(failed)
        tested += [f"{t.endpoint}/{t.name}" for t in chosen if t.address not in failed]
    record.update(failures, forgotten)
    if failures:
        lines = list(failures.values())
        raise SmokeTestError(lines[0] if len(lines) == 1 else
                             f"{len(lines)} deployments failed their smoke test:\n" + "\n".join(f"  {l}" for l in lines))
    return tested


def require_scoring_uri(out: dict[str, Any]) -> dict[str, Any]:
    """`out`, if its endpoint can be called now. A verb that sends requests at once (bench, invoke) says why it
    cannot rather than wait: Azure leaves `scoringUri` null while the endpoint is Creating (recording 01)."""
    if not out.get("scoring_uri"):
        raise RtsctlError(f"endpoint {out['endpoint']} has no scoring URI yet (provisioning state: "
                          f"{out.get('state') or 'unknown'}); Azure sets it once the endpoint is created: try again "
                          "when `rtsctl output` shows it")
    return out


def smoke_requests(session: Session, endpoint: str) -> dict[str, Any]:
    """The smoke request of an endpoint ("" key) and of each deployment that declares its own (by manifest name):
    the body a load test sends when given none, as the rollout gate does."""
    out: dict[str, Any] = {}
    test = session.graph.nodes[f"endpoint.{endpoint}"].inputs.get("smoke_test")
    if test:
        out[""] = test["request"]
    for name, res in deployments_of(session, endpoint).items():
        if res.inputs.get("smoke_test"):
            out[name] = res.inputs["smoke_test"]["request"]
    return out


def _at_once(spec: Mapping[str, Any]) -> int:
    """Requests a deployment serves at once: max_concurrent_requests_per_instance (Azure's default 1, per the az ml
    deployment YAML reference) times its instances."""
    per = (spec.get("request_settings") or {}).get("max_concurrent_requests_per_instance", 1)
    return int(per) * int(spec.get("instance_count", 1))


def read_outputs(manifest_path: str, endpoint: str | None = None,
                 variables: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Connection info for one endpoint (the first when not named): for `rtsctl bench` and scripts."""
    with open_session(manifest_path, variables) as session:
        return _bench_outputs(session, endpoint)


def _bench_outputs(session: Session, endpoint: str | None) -> dict[str, Any]:
    out = require_scoring_uri(endpoint_outputs(session, endpoint)[0])
    from rtsctl.rollout.successor import live_deployments

    out["live_deployments"] = live_deployments(session, out["endpoint"])  # manifest -> live name
    out["smoke_requests"] = smoke_requests(session, out["endpoint"])
    out["serves_at_once"] = {n: _at_once(r.spec) for n, r in deployments_of(session, out["endpoint"]).items()}
    out.pop("state", None)
    return out


@contextmanager
def load_service(manifest_path: str, endpoint: str | None = None, variables: Mapping[str, str] | None = None,
                 resource: str | None = None) -> Iterator[tuple[dict[str, Any], Any, str | None]]:
    """(the endpoint's bench outputs, the backend's load testing service, the manifest's test id or None) for
    `bench --engine azure-load-testing`: the service is the manifest's `load_testing:` resource, or `resource`."""
    with open_session(manifest_path, variables) as session:
        declared = [r for r in session.graph.nodes.values() if r.kind == "load_testing"]
        name = resource or (declared[0].name if declared else None)
        if not name:
            raise RtsctlError(f"{manifest_path}: no load testing resource to run in: declare `load_testing:` in the "
                              "manifest (and apply it), or name an existing one with --load-testing NAME")
        test = declared[0].inputs.get("test") if declared and declared[0].name == name else None
        with closing(session.backend.load_service(name)) as service:
            yield _bench_outputs(session, endpoint), service, test
