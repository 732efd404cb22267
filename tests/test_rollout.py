"""Progressive rollout with gates on the local backend: the CLI as a user runs it, real HTTP on 127.0.0.1.

blue serves 100 %; the manifest adds green and moves the traffic to it through steps, each held behind a short
bench run against green alone. A green whose run() fails some requests (or is slow) must end with blue's 100 %
restored, a non-zero exit and the gate's report; a good green ends at 100 %.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter

import pytest

from tests.helpers import edit_yaml, post
from tests.poller import Poller
from tests.test_azure_e2e import azure_cli  # noqa: F401  (fixture)

pytest_plugins = ["tests.azure_emulator.fixtures"]

FAILING_RUN = '''
import itertools
_count = itertools.count()


def run(raw_data):
    if next(_count) % 3 == 0:
        raise ValueError("green breaks every third request")
    return {"GoAway": "green"}
'''

SLOW_RUN = '''
import time


def run(raw_data):
    time.sleep(0.3)
    print("green answered slowly", flush=True)
    return {"GoAway": f"{json.loads(raw_data).get('name', 'green')}'s not here."}
'''

DYING_INIT = '''
import os
import threading


def run(raw_data):
    return {"GoAway": "green"}


def _die():
    print("green dies on its own", flush=True)
    os._exit(1)


_timer = threading.Timer(1.5, _die)
_timer.daemon = True
_timer.start()
'''


def _green_code(project, code, run_source: str | None) -> None:
    """A copy of the seed's code at `code` (kept if there), its run() replaced by `run_source` when given."""
    if not code.exists():
        shutil.copytree(project / "seed" / "src", code)
    if run_source is not None:
        script = code / "score.py"
        text = script.read_text()
        script.write_text(text[:text.index("def run(")] + run_source)


def _add_green(project, run_source: str | None, gate: dict, on_failure: str = "keep") -> None:
    """green beside blue, with its own code (the seed's init() plus `run_source`), traffic moved to it in steps
    (green's entry replaced if the manifest has one already: a test may chain rollouts)."""
    _green_code(project, project / "green-src", run_source)

    def change(d: dict) -> None:
        ep = d["endpoints"][0]
        ep["deployments"] = [dep for dep in ep["deployments"] if dep["name"] != "green"]
        blue = ep["deployments"][0]
        blue["instance_count"] = 1
        green = {**blue, "name": "green", "code_configuration": {"code": "green-src", "scoring_script": "score.py"}}
        ep["deployments"].append(green)
        ep["traffic"] = {"green": 100}  # blue: 0 implied (the full map is always written)
        ep["rollout"] = {"steps": [10, 50, 100], "gate": gate, "on_failure": on_failure}
        ep.pop("smoke_test", None)  # green answers differently from blue's expected response

    edit_yaml(project / "dev.yaml", change)


def _served(out: dict, n: int = 20) -> Counter:
    return Counter(post(out["scoring_uri"], {"name": "a"}, out["primary_key"])[1]["azureml-model-deployment"]
                   for _ in range(n))


def _seed_run(project) -> None:
    """green's code back to the seed's run() (a new revision of an existing green: a rolling update)."""
    shutil.copy(project / "seed" / "src" / "score.py", project / "green-src" / "score.py")


# Each test below applies dev.yaml once and chains rollouts whose end state is the next one's start (a failed
# gate restores blue 100 %): one base apply instead of one per scenario, the suite's CPU budget (issue 16).
# Bench gates run 0.5 s (the schema's minimum) instead of 1 s, and open loop at 20 req/s (10 requests) where green
# answers at once: a closed loop there sends hundreds of requests through the front for the same verdict. A green
# failing every third request crosses max_error_rate within them, one answering in 300 ms crosses max_p99_ms
# (closed loop: a few requests), and a good one's clean run is judged on them all the same.

def test_failing_gates_restore_the_old_traffic_map_and_keep_or_delete_the_new_deployment(cli, project):
    """A slow green fails its p99 gate and is deleted as declared (on_failure: delete); then a green failing
    every third request fails its error-rate gate: the old traffic map is restored and green is kept at 0 %."""
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()

    # a slow new version fails its p99 gate and is deleted as declared
    _add_green(project, SLOW_RUN, {"duration": 0.5, "concurrency": 1, "max_p99_ms": 150}, on_failure="delete")
    result = cli("apply", "dev.yaml", "-y")
    assert result.code != 0, result
    assert "max_p99_ms" in result.err and "CROSSED" in result.err, result
    assert "green deleted (on_failure: delete)" in result.err
    assert "green answered slowly" in result.err
    assert _served(out) == {"blue": 20}
    status, _, _ = post(out["scoring_uri"], {"name": "a"}, out["primary_key"], {"azureml-model-deployment": "green"})
    assert status == 404  # gone
    replanned = cli("plan", "dev.yaml").out
    assert "+ deployment.rts-score/green" in replanned
    assert "then gate: 0.5 s at 1 connection(s) on green alone, max_p99_ms 150" in replanned  # closed loop

    # a failing one: the old traffic map is restored and the new deployment kept (on_failure: keep)
    _green_code(project, project / "green-src", FAILING_RUN)
    _add_green(project, None, {"duration": 0.5, "rate": 20, "max_error_rate": 0.05})
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2, plan
    assert "traffic: blue 100 → 0, green 0 → 100" in plan.out
    assert "step 1/3: blue 100 → 90, green 0 → 10, then gate: 0.5 s at 20 req/s on green alone" in plan.out
    assert "step 2/3: blue 90 → 50, green 10 → 50" in plan.out and "step 3/3: blue 50 → 0, green 50 → 100" in plan.out
    assert "on a failed gate: back to blue 100, green 0, green kept at 0 %" in plan.out

    result = cli("apply", "dev.yaml", "-y")
    assert result.code != 0, result
    assert "rollout gate failed at step 1/3 (blue 100 → 90, green 0 → 10) on deployment green" in result.err, result
    assert "max_error_rate" in result.err and "CROSSED" in result.err
    assert "gate report:" in result.err and "424 x" in result.err
    assert "green breaks every third request" in result.err  # the deployment's last log lines
    assert "green kept at 0 % for inspection" in result.err and "Traceback (most recent" not in result.err.split(
        "last log lines")[0]
    assert _served(out) == {"blue": 20}  # the old map is back
    status, headers, _ = post(out["scoring_uri"], {"name": "a"}, out["primary_key"],
                              {"azureml-model-deployment": "green"})
    assert headers.get("azureml-model-deployment") == "green" and status in (200, 424)  # kept for inspection


def test_watch_gate_fails_when_green_turns_unhealthy_then_a_fixed_green_passes_to_100_percent(cli, project):
    """A green that dies while held fails its watch gate (blue's 100 % back, green kept at 0 %); green's fixed
    code (a new revision) then passes a bench + watch gate at every step and ends at 100 %."""
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()

    # the watch gate fails when the new deployment turns unhealthy while held
    _add_green(project, DYING_INIT, {"watch": 4})
    plan = cli.ok("plan", "dev.yaml")
    assert "step 1/3: blue 100 → 90, green 0 → 10, then gate: hold 4 s watching green's health" in plan.out, plan
    result = cli("apply", "dev.yaml", "-y", timeout=120)
    assert result.code != 0, result
    assert "rollout gate failed at step" in result.err and "unhealthy while held 4 s: instance 0" in result.err, result
    assert "green dies on its own" in result.err  # its last log lines
    assert _served(out) == {"blue": 20}

    # a passing rollout ends at 100 % (rate 20 for 0.5 s: 10 requests, none may fail)
    _seed_run(project)
    _add_green(project, None, {"duration": 0.5, "rate": 20, "max_error_rate": 0, "max_p99_ms": 2000,
                               "request": {"name": "gate"}, "watch": 1})
    planned = json.loads(cli.ok("plan", "dev.yaml", "-o", "json").out)
    traffic = next(a for a in planned["actions"] if a["address"] == "traffic.rts-score")
    assert [step["to"] for step in traffic["traffic_steps"]] == [{"blue": 90, "green": 10}, {"blue": 50, "green": 50},
                                                                  {"blue": 0, "green": 100}]
    result = cli.ok("apply", "dev.yaml", "-y")
    for step in ("step 1/3 (blue 100 → 90, green 0 → 10)", "step 2/3 (blue 90 → 50, green 10 → 50)",
                 "step 3/3 (blue 50 → 0, green 50 → 100)"):
        assert f"traffic.rts-score: {step}" in result.out, result
    assert result.out.count(": passed") == 3 and result.out.count("held 1 s: live answers: none reached green while held") == 3
    assert _served(out) == {"green": 20}
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0


def _live_answers(text: str) -> dict[int, int]:
    """The gate report's `live answers: N (200 x a, 424 x b)` as {200: a, 424: b}, checked against N."""
    found = re.search(r"live answers: (\d+) \(([^)]*)\)", text)
    assert found, text
    counted = {int(code): int(n) for code, n in re.findall(r"(\d+) x (\d+)", found[2])}
    assert sum(counted.values()) == int(found[1]), found[0]
    return counted


def test_watch_gate_judges_the_answers_live_clients_get_and_needs_enough_of_them(cli, project):
    """No bench: the gate only holds each step while a client (not rtsctl) scores the endpoint, and judges the
    answers the front gave that client from green. green fails every third request: the live error rate
    crosses max_error_rate, blue's 100 % comes back. Then green's fixed code: with nobody scoring, too few live
    answers to judge (min_requests) fails the gate; under a live client the same gate passes at every step.
    The client scores every 0.05 s (not 0.02): ~10 answers from green per held second at 50 %, many times
    min_requests 5 and, failing every third, several 424s."""
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()

    # the watch gate fails on the errors live clients get from the new version
    _add_green(project, FAILING_RUN, {"watch": 3, "max_error_rate": 0.05})
    ep_rollout = {"steps": [50, 100], "gate": {"watch": 3, "max_error_rate": 0.05}}
    edit_yaml(project / "dev.yaml", lambda d: d["endpoints"][0].update(rollout=ep_rollout))
    plan = cli.ok("plan", "dev.yaml")
    assert ("step 1/2: blue 100 → 50, green 0 → 50, then gate: hold 3 s watching green's health and live answers "
            "(max_error_rate 0.05)") in plan.out, plan
    with Poller(out["scoring_uri"], out["primary_key"], {"name": "live"}, pause=0.05) as live:
        result = cli("apply", "dev.yaml", "-y", timeout=120)
    assert result.code != 0, result
    assert "rollout gate failed at step 1/2 (blue 100 → 50, green 0 → 50) on deployment green: live error rate" \
        in result.err, result
    counted = _live_answers(result.err)
    assert counted.get(424, 0) > 0 and set(counted) <= {200, 424}, result.err
    assert live.failures.get("424", 0) >= counted[424]  # the client saw (at least) the errors the gate counted
    assert "green breaks every third request" in result.err  # its last log lines
    assert _served(out) == {"blue": 20}

    # the watch gate passes on clean live traffic and needs enough of it
    _seed_run(project)
    _add_green(project, None, {"watch": 2, "max_error_rate": 0, "min_requests": 5})
    edit_yaml(project / "dev.yaml", lambda d: d["endpoints"][0]["rollout"].update(steps=[50, 100]))
    idle = cli("apply", "dev.yaml", "-y", timeout=120)  # nobody scores the endpoint: too little traffic to judge
    assert idle.code != 0, idle
    assert "only 0 live answer(s) from green while held 2 s (min_requests 5)" in idle.err, idle
    assert _served(out) == {"blue": 20}
    with Poller(out["scoring_uri"], out["primary_key"], {"name": "live"}, pause=0.05) as live:
        result = cli("apply", "dev.yaml", "-y", timeout=120)
    assert result.code == 0, result
    assert not live.failures, live.statuses
    counted = [int(n) for n in re.findall(r"held 2 s: live answers: (\d+) \(200 x \d+\), error rate 0.0 %",
                                          result.out)]
    assert len(counted) == 2 and all(n >= 5 for n in counted), result.out
    assert _served(out) == {"green": 20}


def test_a_slow_successor_fails_its_gate_then_a_good_one_takes_over_through_the_gates(cli, project):
    """10A's create-before-destroy successor is the new version: its takeover is gated like any rollout. A slow
    one fails its gate and the old deployment keeps serving; with the code fixed, a successor takes over through
    the gates and the old one goes."""
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()

    # a slow successor fails its gate and the old deployment keeps serving
    def slow(d: dict) -> None:
        ep = d["endpoints"][0]
        ep["deployments"][0]["instance_type"] = "local-large"  # immutable: a successor blue-xxxx beside blue
        ep["deployments"][0]["code_configuration"]["code"] = "green-src"
        ep["rollout"] = {"steps": [10], "gate": {"duration": 0.5, "concurrency": 1, "max_p99_ms": 150}}

    _green_code(project, project / "green-src", SLOW_RUN)
    edit_yaml(project / "dev.yaml", slow)
    result = cli("apply", "dev.yaml", "-y")
    assert result.code != 0, result
    failed = re.search(r"rollout gate failed at step 1/2 \(blue 100 → 90, (blue-[0-9a-f]{4}) 0 → 10\)", result.err)
    assert failed, result
    assert "max_p99_ms" in result.err and "CROSSED" in result.err
    assert _served(out) == {"blue": 20}  # the old deployment still serves everything, and was not deleted

    # fixed: the successor takes over through the rollout gates and the old one goes (so does the failed one,
    # kept at 0 % until now: no longer declared)
    def good(d: dict) -> None:
        ep = d["endpoints"][0]
        ep["deployments"][0]["code_configuration"]["code"] = "seed/src"
        ep["rollout"] = {"steps": [50], "gate": {"duration": 0.5, "rate": 20, "max_error_rate": 0}}

    edit_yaml(project / "dev.yaml", good)
    plan = cli.ok("plan", "dev.yaml")
    assert re.search(r"step 1/2: blue 100 → 50, blue-[0-9a-f]{4} 0 → 50, then gate: 0\.5 s at 20 req/s on "
                     r"blue-[0-9a-f]{4} alone, max_error_rate 0", plan.out), plan
    result = cli.ok("apply", "dev.yaml", "-y")
    step = re.search(rf"traffic\.rts-score: step 1/2 \(blue 100 → 50, {failed[1]} 0, (blue-[0-9a-f]{{4}}) 0 → 50\)",
                     result.out)
    assert step, result
    successor = step[1]
    assert f"traffic.rts-score: step 2/2 (blue 50 → 0, {failed[1]} 0, {successor} 50 → 100)" in result.out
    assert f"deployment.rts-score/{failed[1]}: Destruction complete" in result.out
    assert result.out.count(f"on {successor}: ") == 2 and result.out.count(": passed") == 2
    assert sorted(p.name for p in cli.home.rglob("endpoints/rts-score/deployments/*") if p.is_dir()) == [successor]
    assert _served(out) == {successor: 20}


@pytest.mark.parametrize("rollout, message", [
    ({"steps": [10, 50, 100], "mirror": 10},
     "endpoints[0].rollout.mirror: the local backend cannot mirror traffic"),
    ({"steps": [50, 10]}, "endpoints[0].rollout.steps: steps must rise, each once (e.g. [10, 50, 100]), got [50, 10]"),
    ({"steps": list(range(1, 12))}, "endpoints[0].rollout.steps"),
    ({"steps": [10], "gate": {"duration": 3600}}, "endpoints[0].rollout.gate.duration"),
    ({"steps": [10], "gate": {"min_requests": 5}},
     "endpoints[0].rollout.gate.min_requests: min_requests counts the live answers a watch sees"),
])
def test_rollout_is_checked_before_anything_changes(cli, project, rollout, message):
    edit_yaml(project / "dev.yaml", lambda d: d["endpoints"][0].update(rollout=rollout))
    for verb in ("validate", "plan"):
        result = cli(verb, "dev.yaml")
        assert result.code == 1 and message in result.err, result
        assert "Traceback" not in result.err


# -- Azure, through the wire-level emulator and the real SDKs ----------------------------------------------------

def _azure_green(project, run_source: str | None, traffic: dict, rollout: dict | None = None) -> str:
    """examples/azure-blue-green.yaml with green on its own code and the given traffic (and rollout)."""
    manifest = "examples/azure-blue-green.yaml"
    _green_code(project, project / "examples" / "green-src", run_source)

    def change(m: dict) -> None:
        ep = m["endpoints"][0]
        ep["deployments"][1]["code_configuration"] = {"code": "green-src", "scoring_script": "score.py"}
        ep["traffic"] = traffic
        ep.pop("smoke_test", None)
        if rollout is not None:
            ep["rollout"] = rollout

    edit_yaml(project / manifest, change)
    return manifest


def _azure_traffic(emu, field: str = "traffic") -> dict:
    sub = f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/rts-bg-rg"
    ep = emu.resource(f"{sub}/providers/Microsoft.MachineLearningServices/workspaces/rts-ws/onlineEndpoints/rts-bluegreen")
    return {k: v for k, v in ep["properties"][field].items() if v}  # a 0 entry may be left out


def test_azure_gates_watch_monitor_counts_restore_traffic_and_mirror_then_pass(azure_emulator_factory, azure_cli,
                                                                              project):
    """One emulator and one first apply (blue 100 %, green failing every third request at 0 %), then three rollouts,
    each starting where the last one ended (a failed gate restores blue 100 %):
    - a bench gate (0.5 s at 20 req/s: green fails every third request, crossed within the first ones)
      fails: blue's 100 % is restored, the report carries green's logs (getLogs), green is kept at 0 %;
    - a watch gate judges Azure Monitor's RequestsPerMinute of the endpoint, split by deployment and status, read
      through azure-mgmt-monitor after the ingestion delay (shortened here): the live error rate fails it, green is
      deleted as declared;
    - green, created again with the seed's code (not a code change of a live green: on Azure that is a successor,
      which cannot be mirrored), is mirrored then stepped to 100 %, every gate passing."""
    emu = azure_emulator_factory(lro_mode="sync")
    cli = azure_cli(emu, "rts-bluegreen")
    cli.env["RTSCTL_METRICS_LAG_SECONDS"] = "1"
    manifest = _azure_green(project, FAILING_RUN, {"blue": 100, "green": 0})
    cli.ok("apply", manifest, "-y")
    assert _azure_traffic(emu) == {"blue": 100}

    # a failing bench gate restores the traffic
    _azure_green(project, None, {"blue": 0, "green": 100},
                 {"steps": [50, 100], "gate": {"duration": 0.5, "rate": 20, "max_error_rate": 0.05}})
    plan = cli.ok("plan", manifest)
    assert "step 1/2: blue 100 → 50, green 0 → 50" in plan.out, plan
    result = cli("apply", manifest, "-y")
    assert result.code != 0, result
    assert "rollout gate failed at step 1/2 (blue 100 → 50, green 0 → 50) on deployment green" in result.err, result
    assert "max_error_rate" in result.err and "CROSSED" in result.err and "gate report:" in result.err
    assert "last log lines of green" in result.err and "green breaks every third request" in result.err  # getLogs
    assert _azure_traffic(emu) == {"blue": 100}

    # the watch gate judges Azure Monitor counts of live traffic; the client scores every 0.05 s (over TLS, a
    # handshake each): ~30 answers from green in the 3 s held at 50 %, a third of them 424
    _azure_green(project, None, {"blue": 0, "green": 100},
                 {"steps": [50, 100], "gate": {"watch": 3, "max_error_rate": 0.05}, "on_failure": "delete"})
    out = cli.outputs(manifest)
    with Poller(out["scoring_uri"], out["primary_key"], {"name": "live"}, cafile=emu.ca_path, pause=0.05):
        result = cli("apply", manifest, "-y")
    assert result.code != 0, result
    assert "waiting 1 s for the service to count green's answers of the window" in result.out, result
    assert "rollout gate failed at step 1/2 (blue 100 → 50, green 0 → 50) on deployment green: live error rate" \
        in result.err, result
    counted = _live_answers(result.err)
    assert counted.get(424, 0) > 0 and set(counted) <= {200, 424}, result.err
    assert _azure_traffic(emu) == {"blue": 100}
    assert "green deleted (on_failure: delete)" in result.err
    endpoint_id = (f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/rts-bg-rg/providers/"
                   "Microsoft.MachineLearningServices/workspaces/rts-ws/onlineEndpoints/rts-bluegreen")
    assert emu.resource(f"{endpoint_id}/deployments/blue") is not None
    assert emu.resource(f"{endpoint_id}/deployments/green") is None
    assert any(method == "GET" and path.endswith("/onlineEndpoints/rts-bluegreen/providers/Microsoft.Insights/metrics")
               and version == "2024-02-01" for method, path, version in emu.api_versions)

    # mirror, then passing steps end at 100 %
    shutil.copy(project / "seed" / "src" / "score.py", project / "examples" / "green-src" / "score.py")
    _azure_green(project, None, {"blue": 0, "green": 100},
                 {"steps": [50], "mirror": 20, "gate": {"duration": 0.5, "rate": 10, "max_error_rate": 0,
                                               "request": {"name": "gate"}}})
    result = cli.ok("apply", manifest, "-y")
    assert "mirroring 20 % of live traffic to green" in result.out, result
    assert "gate mirror on green" in result.out and result.out.count(": passed") == 3
    assert _azure_traffic(emu) == {"green": 100}
    assert _azure_traffic(emu, "mirrorTraffic") == {}
    assert cli("plan", manifest, "--detailed-exitcode").code == 0
