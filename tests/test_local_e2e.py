"""The local backend end to end, through the CLI as a user runs it."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
from collections import Counter

from helpers import edit_yaml, port_open, post

from reconcilers.local import procs

GOAWAY = {"GoAway": "Daniel's not here."}


def first_deployment(data: dict) -> dict:
    return data["endpoints"][0]["deployments"][0]


def endpoint_dir(cli, name: str = "rts-score"):
    return cli.home / "local" / "rts-dev" / "workspaces" / "rts-workspace" / "endpoints" / name


def status(cli, name: str = "rts-score") -> dict:
    """What the endpoint's front reports about its instances."""
    return json.loads((endpoint_dir(cli, name) / "status.json").read_text())


def owned(cli, name: str = "rts-score") -> list[int]:
    """Live processes serving the endpoint (front and instances), found by their argv."""
    return procs.owned_by(endpoint_dir(cli, name))


def test_apply_serves_the_seed_contract_with_key_auth(cli):
    result = cli.ok("apply", "dev.yaml", "-y")
    assert "Smoke test passed: rts-score" in result.out
    assert "Plan: 8 to add, 0 to change, 0 to replace, 0 to destroy." in result.out
    out = cli.outputs()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/score", out["scoring_uri"])
    assert out["deployments"] == ["blue"]
    # the key is never printed in full unless asked
    assert out["primary_key"] not in result.out and out["primary_key"][:4] + "*" in result.out

    status, headers, body = post(out["scoring_uri"], {"name": "Daniel"}, out["primary_key"])
    assert (status, json.loads(body)) == (200, GOAWAY)
    assert headers["azureml-model-deployment"] == "blue"
    assert post(out["scoring_uri"], {"name": "Daniel"}, out["secondary_key"])[0] == 200
    status, headers, _ = post(out["scoring_uri"], {"name": "Daniel"}, "wrong-key")
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert post(out["scoring_uri"], {"name": "Daniel"}, None)[0] == 401

    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0
    # re-running on a converged world changes nothing and prints the connection info again
    again = cli.ok("apply", "dev.yaml", "-y")
    assert "No changes." in again.out and out["scoring_uri"] in again.out
    assert cli.outputs()["scoring_uri"] == out["scoring_uri"]


def test_keys_are_stored_private(cli):
    cli.ok("apply", "dev.yaml", "-y")
    keys = list(cli.home.rglob("keys/*"))
    assert {k.name for k in keys} == {"primary", "secondary"}
    assert all(oct(k.stat().st_mode & 0o777) == "0o600" for k in keys)


def test_scoring_host_mirrors_azmlinfsrv_behind_azures_front(cli, project):
    (project / "seed" / "src" / "score.py").write_text(
        (project / "seed" / "src" / "score.py").read_text()
        + "\n\n_run = run\n\ndef run(raw_data):\n    if 'boom' in raw_data:\n        raise ValueError('boom')\n"
          "    return _run(raw_data)\n")
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()
    uri, key = out["scoring_uri"], out["primary_key"]
    # azmlinfsrv's 500 reaches the client as Azure's front answers a non-200: 424, with the instance's body
    status, headers, body = post(uri, {"name": "boom"}, key)
    assert status == 424 and headers["x-ms-run-function-failed"] == "True"
    assert headers["ms-azureml-model-error-statuscode"] == "500"
    assert "unexpected error occurred in scoring script" in json.loads(body)["message"]
    assert post(uri, {"name": "Daniel"}, key)[0] == 200  # the server stays up
    status, headers, body = post(uri, b"\xff\xfe\xfa", key)
    assert status == 424 and headers["ms-azureml-model-error-statuscode"] == "400"
    assert "UTF-8" in json.loads(body)["message"]
    status, _, _ = post(uri, b"x" * (2 * 1024 * 1024), key)
    assert status == 413


def test_changed_field_is_planned_then_applied(cli, project):
    cli.ok("apply", "dev.yaml", "-y")
    edit_yaml(project / "dev.yaml", lambda d: first_deployment(d).update(instance_count=3))
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2, str(plan)
    assert "~ deployment.rts-score/blue" in plan.out and "instance_count: 2 -> 3" in plan.out
    assert "1 to change" in plan.out
    cli.ok("apply", "dev.yaml", "-y")
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0
    instances = status(cli)["deployments"]["blue"]["instances"]
    assert len(instances) == 3 and all(i["state"] == "ready" and procs.is_alive(i["pid"]) for i in instances)


def test_plan_json_lists_changes(cli, project):
    cli.ok("apply", "dev.yaml", "-y")
    edit_yaml(project / "dev.yaml", lambda d: first_deployment(d)["environment_variables"].update(GREETING_STYLE="x"))
    text = cli.ok("plan", "dev.yaml").out
    assert 'environment_variables.GREETING_STYLE: "seed" -> "x"' in text
    plan = json.loads(cli.ok("plan", "dev.yaml", "-o", "json").out)
    assert plan["changes"] is True
    (action,) = [a for a in plan["actions"] if a["action"] != "no-op"]
    assert action["address"] == "deployment.rts-score/blue" and action["action"] == "update"
    assert action["changes"] == [{"path": "environment_variables.GREETING_STYLE", "old": "seed", "new": "x",
                                  "forces_replacement": False}]


def test_immutable_field_is_replaced(cli, project):
    cli.ok("apply", "dev.yaml", "-y")
    edit_yaml(project / "dev.yaml", lambda d: first_deployment(d).update(instance_type="local-large"))
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2
    assert "+/- deployment.rts-score/blue (create before destroy: blue → blue-" in plan.out, plan.out
    assert "# forces replacement" in plan.out
    result = cli.ok("apply", "dev.yaml", "-y")
    assert "Replacement complete" in result.out and "Smoke test passed" in result.out
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0


def test_dead_instance_is_restarted_by_the_supervisor(cli):
    cli.ok("apply", "dev.yaml", "-y")
    victim = status(cli)["deployments"]["blue"]["instances"][1]
    os.kill(victim["pid"], signal.SIGKILL)
    assert procs.wait_until(lambda: status(cli)["deployments"]["blue"]["instances"][1]["restarts"] == 1 and
                            status(cli)["deployments"]["blue"]["ready"] == 2, 15)
    assert not procs.is_alive(victim["pid"])
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0
    out = cli.outputs()
    assert all(post(out["scoring_uri"], {"name": "Daniel"}, out["primary_key"])[0] == 200 for _ in range(6))


def test_dead_endpoint_is_restarted_on_the_same_port(cli):
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()
    front = status(cli)["pid"]
    os.kill(front, signal.SIGKILL)
    assert procs.wait_until(lambda: not owned(cli), 5)  # its instances die with it
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2 and "endpoint process" in plan.out and "is not running" in plan.out
    cli.ok("apply", "dev.yaml", "-y")
    assert cli.outputs()["scoring_uri"] == out["scoring_uri"]
    assert post(out["scoring_uri"], {"name": "Daniel"}, out["primary_key"])[0] == 200


def test_destroy_stops_everything_and_plan_shows_creates(cli):
    cli.ok("apply", "dev.yaml", "-y")
    port = int(cli.outputs()["scoring_uri"].rsplit(":", 1)[1].split("/")[0])
    pids = owned(cli)
    assert len(pids) == 4 and port_open(port)   # the front (keeper and worker) and 2 instances
    result = cli.ok("destroy", "dev.yaml", "-y")
    assert "Destroy complete" in result.out
    assert result.out.index("deployment.rts-score/blue: Destroying") < result.out.index("endpoint.rts-score: Destroying")
    assert not any(procs.is_alive(pid) for pid in pids)
    assert not port_open(port)
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2 and "Plan: 8 to add, 0 to change, 0 to replace, 0 to destroy." in plan.out
    assert "Nothing to destroy." in cli.ok("destroy", "dev.yaml", "-y").out


def test_apply_without_terminal_or_yes_refuses(cli):
    result = cli("apply", "dev.yaml", stdin="")
    assert result.code == 1 and "re-run with -y" in result.err and "Traceback" not in result.err
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 2  # nothing was created


def test_traffic_split_and_deployment_header(cli, project):
    def blue_green(d: dict) -> None:
        blue = first_deployment(d)
        blue["instance_count"] = 1
        d["endpoints"][0]["deployments"].append({**blue, "name": "green"})
        d["endpoints"][0]["traffic"] = {"blue": 75, "green": 25}

    edit_yaml(project / "dev.yaml", blue_green)
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()
    served = Counter(post(out["scoring_uri"], {"name": "a"}, out["primary_key"])[1]["azureml-model-deployment"]
                     for _ in range(40))
    assert served == {"blue": 30, "green": 10}
    status, headers, _ = post(out["scoring_uri"], {"name": "a"}, out["primary_key"], {"azureml-model-deployment": "green"})
    assert status == 200 and headers["azureml-model-deployment"] == "green"

    # shift all traffic, then drop blue: planned as a delete, after traffic moved
    edit_yaml(project / "dev.yaml", lambda d: d["endpoints"][0].update(traffic={"blue": 0, "green": 100}))
    cli.ok("apply", "dev.yaml", "-y")
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0  # a named 0 % share is converged, not drift
    edit_yaml(project / "dev.yaml", lambda d: (d["endpoints"][0]["deployments"].pop(0),
                                               d["endpoints"][0].update(traffic={"green": 100})))
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2 and "- deployment.rts-score/blue" in plan.out and "1 to destroy" in plan.out
    cli.ok("apply", "dev.yaml", "-y")
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0
    assert post(out["scoring_uri"], {"name": "a"}, out["primary_key"])[1]["azureml-model-deployment"] == "green"


def test_model_versions_are_chosen_by_content(cli, project):
    cli.ok("apply", "dev.yaml", "-y")
    versions = lambda: sorted(p.name for p in cli.home.rglob("models/dummy-model/*") if p.is_dir())  # noqa: E731
    assert versions() == ["1"]
    cli.ok("apply", "dev.yaml", "-y")
    assert versions() == ["1"]  # same bytes, same version
    (project / "seed" / "model" / "model.pkl").write_bytes(pickle.dumps({"kind": "no-op", "version": 2}))
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2 and "~ model.dummy-model" in plan.out and "~ deployment.rts-score/blue" in plan.out
    cli.ok("apply", "dev.yaml", "-y")
    assert versions() == ["1", "2"]


def test_failing_init_is_reported_with_its_cause(cli, project):
    (project / "seed" / "src" / "score.py").write_text("def init():\n    raise RuntimeError('no model here')\n\n"
                                                       "def run(raw):\n    return raw\n")
    result = cli("apply", "dev.yaml", "-y")
    assert result.code == 1 and "Traceback" not in result.err
    assert "deployment.rts-score/blue" in result.err and "RuntimeError: no model here" in result.err


def _apply_on_terminal(cli, answer: str):
    """Run apply with stdin on a pseudo-terminal, as a person at a shell would, and type `answer`."""
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "rtsctl", "apply", "dev.yaml"], cwd=cli.workdir, env=cli.env,
                            stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(follower)
    os.write(leader, (answer + "\n").encode())
    out, err = proc.communicate(timeout=120)
    os.close(leader)
    return proc.returncode, out, err


def test_apply_asks_on_a_terminal(cli):
    code, out, err = _apply_on_terminal(cli, "no")
    assert code == 1 and "Do you want to perform these actions?" in out and "cancelled" in err
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 2
    code, out, err = _apply_on_terminal(cli, "yes")
    assert code == 0 and "Smoke test passed" in out, err


def test_smoke_test_mismatch_fails_apply_with_both_bodies(cli, project):
    text = (project / "dev.yaml").read_text().replace("Daniel's not here.", "Daniel is here.")
    (project / "dev.yaml").write_text(text)
    result = cli("apply", "dev.yaml", "-y")
    assert result.code == 1 and "Traceback" not in result.err
    assert 'expected {"GoAway": "Daniel is here."}' in result.err
    assert 'got {"GoAway": "Daniel\'s not here."}' in result.err


def test_request_settings_are_enforced(cli, project):
    (project / "seed" / "src" / "score.py").write_text(
        "import json, time\n\ndef init():\n    pass\n\ndef run(raw):\n    body = json.loads(raw)\n"
        "    time.sleep(body.get('sleep', 0))\n    return {'GoAway': body['name'] + \"'s not here.\"}\n")

    def settings(d: dict) -> None:
        first_deployment(d).update(instance_count=1, request_settings={
            "request_timeout_ms": 1500, "max_concurrent_requests_per_instance": 1, "max_queue_wait_ms": 100})

    edit_yaml(project / "dev.yaml", settings)
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()
    uri, key = out["scoring_uri"], out["primary_key"]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        statuses = sorted(pool.map(lambda _: post(uri, {"name": "a", "sleep": 0.5}, key)[0], range(3)))
    assert statuses.count(429) == 1 and statuses.count(200) >= 1, statuses  # 2 × 1 × 1 admitted
    status, _, body = post(uri, {"name": "a", "sleep": 3}, key)
    assert status == 408 and "request_timeout_ms" in json.loads(body)["message"]


def test_concurrent_apply_is_refused_while_one_runs(cli, project):
    import subprocess
    import sys

    script = project / "seed" / "src" / "score.py"
    script.write_text(script.read_text().replace("def init():", "def init():\n    __import__('time').sleep(3)"))
    first = subprocess.Popen([sys.executable, "-m", "rtsctl", "apply", "dev.yaml", "-y"], cwd=cli.workdir,
                             env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = cli.home / "local" / ".rts-dev.lock"
    assert procs.wait_until(lambda: lock.exists() and "(pid " in lock.read_text(), 30)
    second = cli("apply", "dev.yaml", "-y")
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.code == 1 and "resource group rts-dev is locked by " in second.err and ", for apply dev.yaml" in second.err
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0


def test_user_text_is_never_read_as_markup(cli, project):
    edit_yaml(project / "dev.yaml", lambda d: first_deployment(d)["environment_variables"].update(
        GREETING_STYLE="[bold]loud[/bold] [/oops]"))
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2, str(plan)
    assert '"[bold]loud[/bold] [/oops]"' in plan.out


def test_removing_an_endpoints_compute_forces_replacement(cli, project):
    cli.ok("apply", "dev.yaml", "-y")
    edit_yaml(project / "dev.yaml", lambda d: d["endpoints"][0].pop("compute"))
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2 and "-/+ endpoint.rts-score" in plan.out
    assert '- compute = "local-cpu"  # forces replacement' in plan.out
    assert "re-applied because endpoint.rts-score is replaced" in plan.out  # its deployment goes with it
    assert "outage: its scoring URI changes" in plan.out  # and apply needs --allow-outage
    result = cli.ok("apply", "dev.yaml", "-y", "--allow-outage")
    assert "Smoke test passed" in result.out
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0


def test_ctrl_c_during_apply_finishes_running_work_and_exits_130(cli, project):
    import subprocess
    import sys

    script = project / "seed" / "src" / "score.py"
    script.write_text(script.read_text().replace("def init():", "def init():\n    __import__('time').sleep(2)"))
    proc = subprocess.Popen([sys.executable, "-m", "rtsctl", "apply", "dev.yaml", "-y"], cwd=cli.workdir,
                            env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    logs = cli.home / "local" / "rts-dev" / "workspaces" / "rts-workspace" / "logs" / "rts-score" / "blue"
    assert procs.wait_until(logs.exists, 30)  # the deployment's instances are starting (slow init)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Interrupted: waiting for 1 running operation(s) to finish (deployment.rts-score/blue)" in out
    assert "Traceback" not in err and "interrupted" in err
    assert "traffic.rts-score: Creating" not in out  # nothing new was started
    result = cli.ok("apply", "dev.yaml", "-y")
    assert "Smoke test passed" in result.out
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0


def test_saved_plan_is_applied_exactly_or_refused_when_stale(cli, project):
    cli.ok("plan", "dev.yaml", "--out", "first.plan")
    result = cli.ok("apply", "dev.yaml", "--plan", "first.plan", stdin="")  # no prompt: the plan was reviewed
    assert "Plan: 8 to add" in result.out and "Smoke test passed" in result.out

    edit_yaml(project / "dev.yaml", lambda d: first_deployment(d).update(instance_count=3))
    cli.ok("plan", "dev.yaml", "--out", "scale.plan")
    edit_yaml(project / "dev.yaml", lambda d: first_deployment(d).update(instance_count=1))
    stale = cli("apply", "dev.yaml", "--plan", "scale.plan")
    assert stale.code == 1
    assert "saved plan scale.plan is stale: dev.yaml changed since it was planned" in stale.err
    assert "instance_count: 2 -> 1" in cli("plan", "dev.yaml").out  # nothing was changed
