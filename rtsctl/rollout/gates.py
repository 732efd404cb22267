"""Progressive rollout: write the traffic steps one by one, hold each behind a gate, roll back by itself.

A gate is a short load run with the bench engine against the new version ALONE (the `azureml-model-deployment`
header, as `rtsctl bench --deployment` sends it), judged by the declared thresholds, and/or a `watch`: the step
is held while the new version serves its share of the live traffic, failing if it turns unhealthy or if the
answers it gave live clients (counted by the service: the local front's tallies, Azure Monitor's
RequestsPerMinute) cross `max_error_rate` or fall short of `min_requests`. A failed gate puts the
traffic map back as it was before the rollout, keeps the new deployment at 0 % for inspection (or deletes it,
as declared), and fails the apply with the gate's report and the deployment's last log lines.

Backend-blind: traffic is written through the backend's own traffic reconciler (the full map each time), the
target read from the endpoint reconciler's outputs, logs from `Backend.logs`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

from rich.markup import escape

from reconcilers.base import Backend, NotCounted, Reconciler

from rtsctl.support.errors import RtsctlError
from rtsctl.desired.graph import Graph
from rtsctl.desired.resources import Resource
from rtsctl.support.retry import call_with_retry
from rtsctl.rollout.steps import Weights, benches, full, render_shift, rising, traffic_steps

LOG_LINES = 20  # of the failing deployment's log, in the error
DEFAULT_GATE = {"duration": 2.0, "concurrency": 1}


@dataclass
class RolloutContext:
    """What a rollout reads and writes beside the plan: one per apply."""

    reconcilers: dict[str, Reconciler]
    backend: Backend | None
    graph: Graph
    report: Callable[[str], None]
    live_names: bool = False  # maps are keyed by live deployment names (a successor taking over), not manifest ones


def rollout_of(graph: Graph, endpoint: str) -> dict[str, Any] | None:
    res = graph.nodes.get(f"traffic.{endpoint}")
    return res.inputs.get("rollout") if res is not None else None


def run_traffic(ctx: RolloutContext, endpoint: str, old: Mapping[str, int], new: Mapping[str, int],
                live_names: bool = False) -> None:
    """Move the endpoint's traffic from `old` to `new`: in one write without `rollout:`, else step by step,
    gated. Raises RtsctlError (after restoring `old`) when a gate fails. Maps are keyed by manifest names,
    or by live deployment names with `live_names` (a successor taking over, rtsctl.rollout.successor)."""
    ctx = replace(ctx, live_names=live_names)
    rollout = rollout_of(ctx.graph, endpoint)
    pairs = traffic_steps(old, new, (rollout or {}).get("steps") or (100,))
    if not rollout or not any(full(old, new)[0].values()):
        for _, to in pairs or [(None, full(old, new)[1])]:
            _write(ctx, endpoint, to)
        return
    start = full(old, new)[0]
    candidates = rising(old, new)
    declared = rollout.get("gate") or {}
    gate = {**DEFAULT_GATE, **declared, "bench": benches(declared)}
    if rollout.get("mirror") and len(candidates) != 1:
        # mirror_traffic copies to a single deployment (reference-yaml-endpoint-online, REST OnlineEndpointProperties)
        raise RtsctlError(f"traffic.{endpoint}: rollout.mirror copies live traffic to ONE deployment, but the traffic "
                          f"rises for {', '.join(candidates)}; move one at a time or drop mirror")
    if rollout.get("mirror") and start[candidates[0]]:
        ctx.report(f"traffic.{endpoint}: no mirror step: {candidates[0]} already serves live traffic")
    elif rollout.get("mirror"):
        mirror = {name: int(rollout["mirror"]) for name in candidates}
        ctx.report(f"traffic.{endpoint}: mirroring {rollout['mirror']} % of live traffic to {', '.join(candidates)}")
        _write(ctx, endpoint, start, mirror=mirror)
        _hold(ctx, endpoint, gate, candidates, start, rollout, "mirror", mirror_on=True)
    for i, (before, after) in enumerate(pairs, 1):
        label = f"step {i}/{len(pairs)} ({render_shift(before, after)})"
        ctx.report(f"traffic.{endpoint}: {label}")
        _write(ctx, endpoint, after, mirror={} if rollout.get("mirror") else None)
        _hold(ctx, endpoint, gate, candidates, start, rollout, label)


def _write(ctx: RolloutContext, endpoint: str, weights: Weights, mirror: dict[str, int] | None = None) -> None:
    spec: dict[str, Any] = {"weights": dict(weights)}
    if mirror is not None:
        spec["mirror"] = mirror
    inputs = {"live_names": True} if ctx.live_names else {}
    call_with_retry(ctx.reconcilers["traffic"].create, Resource("traffic", endpoint, spec, inputs))


def _hold(ctx: RolloutContext, endpoint: str, gate: dict[str, Any], candidates: list[str], start: Weights,
          rollout: dict[str, Any], label: str, mirror_on: bool = False) -> None:
    """Run the gate against each new deployment; on a failure roll back and raise."""
    for name in candidates:
        verdict, report = None, []
        if gate["bench"]:
            doc = bench_gate(ctx, endpoint, name, gate, rollout)
            verdict, report = gate_verdict(doc), report_lines(doc, gate)
            ctx.report(f"traffic.{endpoint}: gate {label} on {name}: {summary_line(doc, gate)}")
        if verdict is None and gate.get("watch"):
            verdict, lines = watch_gate(ctx, endpoint, name, gate)
            report += lines
            ctx.report(f"traffic.{endpoint}: gate {label} on {name}: held {float(gate['watch']):g} s: "
                       f"{escape(lines[-1]) if verdict is None else 'FAILED'}")
        if verdict is None:
            continue
        ctx.report(f"[red]traffic.{endpoint}: gate failed ({escape(verdict)}): restoring {render_shift(start, start)}"
                   "[/red]")
        restored = f"traffic restored to {render_shift(start, start)}"
        fate = "kept at 0 % for inspection"
        try:  # the gate's report is said whatever happens to the rollback
            _write(ctx, endpoint, start, mirror={} if mirror_on or rollout.get("mirror") else None)
            if rollout.get("on_failure") == "delete":
                fate = _delete_deployments(ctx, endpoint, candidates)
        except RtsctlError as exc:
            restored, fate = f"rollback FAILED ({exc}); run apply again", "left as they are"
        lines = [f"traffic.{endpoint}: rollout gate failed at {label} on deployment {name}: {verdict}; "
                 f"{restored}; {', '.join(candidates)} {fate}",
                 "gate report:", *("  " + line for line in report)]
        lines += _last_logs(ctx, endpoint, name)
        raise RtsctlError("\n".join(lines))


def watch_gate(ctx: RolloutContext, endpoint: str, deployment: str,
               gate: dict[str, Any]) -> tuple[str | None, list[str]]:
    """Hold the step `gate["watch"]` seconds: the deployment must stay healthy, and the answers it gives live
    clients meanwhile (as the service counted them) must not cross `max_error_rate` nor fall short of
    `min_requests`. (verdict or None, report lines; the last line sums up the live answers)."""
    seconds = float(gate["watch"])
    limit, need = gate.get("max_error_rate"), int(gate.get("min_requests") or 0)
    judged = limit is not None or need > 0
    watch, why_not, blind = None, "", ""
    try:
        watch = ctx.backend.watch_traffic(endpoint, deployment) if ctx.backend else None
        why_not = "" if watch else "this backend keeps no count of live answers"
    except NotCounted as exc:  # by design (a Kubernetes endpoint on Azure): health (and the bench) judge instead
        blind = str(exc)
    except RtsctlError as exc:
        why_not = str(exc)
    problems = watch_health(ctx, endpoint, deployment, seconds,
                            interval=ctx.backend.poll_interval if ctx.backend else 0.2)
    report = [f"held {seconds:g} s watching {deployment}'s health (instances up, not restarting) and its answers "
              "to live traffic", *(f"problem: {p}" for p in problems)]
    if problems:
        return f"unhealthy while held {seconds:g} s: {problems[0]}", report
    if blind:
        instead = "health while held" + (" and the bench run" if gate.get("bench") else "")
        report.append(f"live answers: not judged: {blind}; judged on {instead} instead")
        return (f"min_requests cannot be met: {blind}" if need else None), report
    answers: dict[int, int] = {}
    if watch is not None:
        if watch.lag_s >= 1:  # worth a line (Azure Monitor's minutes); the local front's fraction of a second is not
            ctx.report(f"traffic.{endpoint}: waiting {watch.lag_s:g} s for the service to count {deployment}'s "
                       "answers of the window")
        time.sleep(watch.lag_s)
        try:
            answers = call_with_retry(watch.answers)
        except RtsctlError as exc:
            why_not = f"cannot read its answers: {exc}"
    if why_not:
        report.append(f"live answers: not judged ({why_not})")
        return (f"live answers not judged: {why_not}" if judged else None), report
    total = sum(answers.values())
    errors = sum(n for code, n in answers.items() if not 200 <= code < 300)
    by_status = ", ".join(f"{code} x {n}" for code, n in sorted(answers.items()))
    rate = errors / total if total else 0.0
    summary = (f"live answers: {total} ({by_status}), error rate {rate * 100:.1f} %" if total
               else f"live answers: none reached {deployment} while held")
    verdict = None
    if total < need:
        verdict = f"only {total} live answer(s) from {deployment} while held {seconds:g} s (min_requests {need})"
    elif limit is not None and total and rate > float(limit):
        verdict = f"live error rate {_num(round(rate, 4))} > {_num(float(limit))} ({errors} of {total} not 2xx)"
    return verdict, [*report, summary]


def watch_health(ctx: RolloutContext, endpoint: str, deployment: str, seconds: float,
                 interval: float = 0.2) -> list[str]:
    """Hold the step for `seconds`, observing the deployment as `plan` does (its health problems: an instance
    down, restarting or crash-looping); the first problems seen, or [] when it stayed healthy throughout."""
    reconciler = ctx.reconcilers["deployment"]
    res = _deployment_resource(ctx, endpoint, deployment)
    deadline = time.monotonic() + seconds
    while True:
        with ctx.backend.fresh() if ctx.backend else nullcontext():  # a poll: never what the step read before
            observed = call_with_retry(reconciler.observe, res)  # a throttled read is not an unhealthy deployment
        if observed is None:
            return [f"deployment {deployment} is gone"]
        if observed.problems:
            return list(observed.problems)
        if time.monotonic() >= deadline:
            return []
        time.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))


def bench_gate(ctx: RolloutContext, endpoint: str, deployment: str, gate: dict[str, Any],
               rollout: dict[str, Any]) -> dict[str, Any]:
    """A short bench run against `deployment` alone -> the bench result document (thresholds judged)."""
    from rtsctl.bench.config import BenchConfig
    from rtsctl.bench.session import measure
    from rtsctl.bench.summary import thresholds

    ep_res = ctx.graph.nodes[f"endpoint.{endpoint}"]
    observed = ctx.reconcilers["endpoint"].observe(ep_res)
    uri = observed.outputs.get("scoring_uri") if observed else None
    if not uri:
        raise RtsctlError(f"traffic.{endpoint}: cannot run the rollout gate: the endpoint has no scoring URI")
    verify = ctx.backend.smoke_context().get("verify", True) if ctx.backend else True
    body = gate.get("request", rollout.get("request"))
    cfg = BenchConfig(url=uri, key=observed.outputs.get("primary_key"), verify=verify, endpoint=endpoint,
                      deployment=deployment, bodies=[json.dumps(body if body is not None else {})],
                      duration=float(gate["duration"]), concurrency=int(gate.get("concurrency", 1)),
                      rate=float(gate["rate"]) if gate.get("rate") else None,
                      timeout=float(gate.get("timeout", 10)), progress=False, chart=False)
    try:
        doc, _ = measure(cfg) if gate.get("engine", "native") == "native" else cloud_gate(ctx, cfg, gate)
    except RtsctlError as exc:  # no connection at all: a failed gate, not a crash of the apply
        doc = {"requests": 0, "ok": 0, "errors": {"rate": 1.0, "by_status": {}, "by_kind": {"connect": 1}},
               "latency_ms": {}, "samples": {}, "duration_s": 0.0, "messages": [str(exc)]}
    doc["thresholds"] = thresholds(doc, gate.get("max_error_rate"), gate.get("max_p99_ms"))
    return doc


def cloud_gate(ctx: RolloutContext, cfg: Any, gate: dict[str, Any]) -> tuple[dict, list]:
    """The gate's load sent by the manifest's load testing service (`engine: azure-load-testing`): the same Locust
    test as `bench --engine azure-load-testing`, against the new deployment alone, judged on the service's figures."""
    from contextlib import closing

    from rtsctl.bench.cloud import CloudRun, default_test_id, measure

    testing = next((r for r in ctx.graph.nodes.values() if r.kind == "load_testing"), None)
    if ctx.backend is None or testing is None:
        raise RtsctlError("engine: azure-load-testing needs the manifest's load_testing: resource")
    with closing(ctx.backend.load_service(testing.name)) as service:
        run = CloudRun(engines=int(gate.get("engines", 1)), regions=tuple(gate.get("regions") or ()),
                       test_id=testing.inputs.get("test") or default_test_id(f"{cfg.endpoint}-gate"),
                       poll_s=service.poll_interval)
        return measure(cfg, service, run)


def gate_verdict(doc: dict[str, Any]) -> str | None:
    """None when the gate passes, else why not."""
    crossed = [f"{name} {_num(t['value'])} > {_num(t['limit'])}" for name, t in doc.get("thresholds", {}).items()
               if not t["ok"]]
    if crossed:
        return ", ".join(crossed)
    if not doc.get("requests"):
        return "no request was answered" + (f" ({doc['messages'][0]})" if doc.get("messages") else "")
    if not doc.get("ok"):
        return "no request succeeded"
    return None


def summary_line(doc: dict[str, Any], gate: dict[str, Any]) -> str:
    lat = doc.get("latency_ms") or {}
    p99 = lat.get("p99_ms")
    return (f"{doc.get('requests', 0)} requests in {doc.get('duration_s', 0):.1f}s, error rate "
            f"{doc['errors']['rate'] * 100:.1f} %, p99 {_num(p99) + ' ms' if p99 is not None else 'n/a'}: "
            f"{'passed' if gate_verdict(doc) is None else 'FAILED'}")


def report_lines(doc: dict[str, Any], gate: dict[str, Any]) -> list[str]:
    """The gate's report: load, counts, latency, thresholds, and a sample of each failing status."""
    load = (f"{gate['rate']:g} req/s" if gate.get("rate") else f"{gate.get('concurrency', 1)} connection(s)")
    if gate.get("engine") == "azure-load-testing":
        load += f" from Azure Load Testing ({int(gate.get('engines', 1))} engine(s))"
    out = [f"load: {load} for {float(gate['duration']):g} s against the deployment alone "
           "(azureml-model-deployment header)", summary_line(doc, gate)]
    statuses = ", ".join(f"{k} x {v}" for k, v in (doc.get("status") or {}).items())
    kinds = ", ".join(f"{k} x {v}" for k, v in doc["errors"].get("by_kind", {}).items())
    if statuses or kinds:
        out.append("answers: " + ", ".join(x for x in (statuses, kinds) if x))
    for name, t in doc.get("thresholds", {}).items():
        out.append(f"{name}: {_num(t['value'])} (limit {_num(t['limit'])}) {'ok' if t['ok'] else 'CROSSED'}")
    for status, sample in islice((doc.get("samples") or {}).items(), 3):
        text = sample.decode("utf-8", "replace") if isinstance(sample, bytes) else str(sample)
        out.append(f"sample {status}: {text[:200]}")
    return out


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _delete_deployments(ctx: RolloutContext, endpoint: str, names: list[str]) -> str:
    reconciler = ctx.reconcilers["deployment"]
    for name in names:
        observed = reconciler.observe(_deployment_resource(ctx, endpoint, name))
        if observed is not None:
            ctx.report(f"deployment.{endpoint}/{name}: deleting (rollout on_failure: delete)")
            reconciler.delete(observed)
    return "deleted (on_failure: delete)"


def _deployment_resource(ctx: RolloutContext, endpoint: str, name: str) -> Resource:
    """The deployment as declared (by manifest name), or a bare one (a successor, by live name)."""
    res = ctx.graph.nodes.get(f"deployment.{endpoint}/{name}")
    if res is not None:
        return res
    return Resource("deployment", f"{endpoint}/{name}", {"endpoint": endpoint}, {"live_name": name})


def _last_logs(ctx: RolloutContext, endpoint: str, deployment: str) -> list[str]:
    """The deployment's last log lines (bounded), or a line saying why there are none."""
    if ctx.backend is None:
        return []
    try:
        sources = ctx.backend.logs(endpoint, deployment, tail=LOG_LINES)
        out = []
        for source, lines in sources.items():
            got = [line.rstrip("\n")[:500] for line in islice(lines, LOG_LINES)]
            out += [f"last log lines of {source}:", *("  " + line for line in got)]
        return out
    except (RtsctlError, OSError) as exc:
        return [f"(no log lines of {deployment}: {exc})"]
