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


def versions(cli) -> list[str]:
    """The versions of dummy-model registered so far."""
    return sorted(p.name for p in cli.home.rglob("models/dummy-model/*") if p.is_dir())


def test_apply_serves_the_seed_contract_with_key_auth_heals_dead_processes_then_destroys(cli):
    """One endpoint, applied once, through its life: it serves the seed contract with key auth, keys are stored
    private, a no-op re-apply keeps the model version (same bytes), a killed instance is restarted by the
    supervisor, a killed endpoint is restarted on the same port, and destroy stops everything."""
    result = cli.ok("apply", "dev.yaml", "-y")
    assert "Smoke test passed: rts-score" in result.out
    assert "Plan: 8 to add, 0 to change, 0 to replace, 0 to destroy." in result.out
    out = cli.outputs()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/score", out["scoring_uri"])
    assert out["deployments"] == ["blue"]
    # the key is never printed in full unless asked
    assert out["primary_key"] not in result.out and out["primary_key"][:4] + "*" in result.out

    status_, headers, body = post(out["scoring_uri"], {"name": "Daniel"}, out["primary_key"])
    assert (status_, json.loads(body)) == (200, GOAWAY)
    assert headers["azureml-model-deployment"] == "blue"
    assert post(out["scoring_uri"], {"name": "Daniel"}, out["secondary_key"])[0] == 200
    status_, headers, _ = post(out["scoring_uri"], {"name": "Daniel"}, "wrong-key")
    assert status_ == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert post(out["scoring_uri"], {"name": "Daniel"}, None)[0] == 401

    # keys are stored private
    keys = list(cli.home.rglob("keys/*"))
    assert {k.name for k in keys} == {"primary", "secondary"}
    assert all(oct(k.stat().st_mode & 0o777) == "0o600" for k in keys)

    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0
    # re-running on a converged world changes nothing and prints the connection info again
    assert versions(cli) == ["1"]
    again = cli.ok("apply", "dev.yaml", "-y")
    assert "No changes." in again.out and out["scoring_uri"] in again.out
    assert cli.outputs()["scoring_uri"] == out["scoring_uri"]
    assert versions(cli) == ["1"]  # model versions are chosen by content: same bytes, same version

    # a dead instance is restarted by the supervisor
    victim = status(cli)["deployments"]["blue"]["instances"][1]
    os.kill(victim["pid"], signal.SIGKILL)
    assert procs.wait_until(lambda: status(cli)["deployments"]["blue"]["instances"][1]["restarts"] == 1 and
                            status(cli)["deployments"]["blue"]["ready"] == 2, 15)
    assert not procs.is_alive(victim["pid"])
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0
    assert all(post(out["scoring_uri"], {"name": "Daniel"}, out["primary_key"])[0] == 200 for _ in range(6))

    # a dead endpoint is restarted on the same port
    front = status(cli)["pid"]
    os.kill(front, signal.SIGKILL)
    assert procs.wait_until(lambda: not owned(cli), 5)  # its instances die with it
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2 and "endpoint process" in plan.out and "is not running" in plan.out
    cli.ok("apply", "dev.yaml", "-y")
    assert cli.outputs()["scoring_uri"] == out["scoring_uri"]
    assert post(out["scoring_uri"], {"name": "Daniel"}, out["primary_key"])[0] == 200

    # destroy stops everything and plan shows creates
    port = int(out["scoring_uri"].rsplit(":", 1)[1].split("/")[0])
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


def test_edits_are_planned_then_applied_in_place_by_new_versions_by_replacement_and_traffic_moves(cli, project):
    """One endpoint, edited step by step (each step was a test that applied dev.yaml afresh): a saved plan is
    applied exactly or refused when stale; plan -o json lists changes; user text is never read as markup; model
    versions are chosen by content; a changed field is planned then applied; an immutable field is replaced;
    removing an endpoint's compute forces its replacement; traffic split, the deployment header, and dropping a
    deployment after its traffic moved."""
    manifest = project / "dev.yaml"
    # a saved plan is applied exactly, or refused when stale
    cli.ok("plan", "dev.yaml", "--out", "first.plan")
    result = cli.ok("apply", "dev.yaml", "--plan", "first.plan", stdin="")  # no prompt: the plan was reviewed
    assert "Plan: 8 to add" in result.out and "Smoke test passed" in result.out
    edit_yaml(manifest, lambda d: first_deployment(d).update(instance_count=3))
    cli.ok("plan", "dev.yaml", "--out", "scale.plan")
    edit_yaml(manifest, lambda d: first_deployment(d).update(instance_count=1))
    stale = cli("apply", "dev.yaml", "--plan", "scale.plan")
    assert stale.code == 1
    assert "saved plan scale.plan is stale: dev.yaml changed since it was planned" in stale.err
    assert "instance_count: 2 -> 1" in cli("plan", "dev.yaml").out  # nothing was changed
    edit_yaml(manifest, lambda d: first_deployment(d).update(instance_count=2))

    # plan -o json lists changes
    edit_yaml(manifest, lambda d: first_deployment(d)["environment_variables"].update(GREETING_STYLE="x"))
    text = cli.ok("plan", "dev.yaml").out
    assert 'environment_variables.GREETING_STYLE: "seed" -> "x"' in text
    plan = json.loads(cli.ok("plan", "dev.yaml", "-o", "json").out)
    assert plan["changes"] is True
    (action,) = [a for a in plan["actions"] if a["action"] != "no-op"]
    assert action["address"] == "deployment.rts-score/blue" and action["action"] == "update"
    assert action["changes"] == [{"path": "environment_variables.GREETING_STYLE", "old": "seed", "new": "x",
                                  "forces_replacement": False}]

    # user text is never read as markup
    edit_yaml(manifest, lambda d: first_deployment(d)["environment_variables"].update(
        GREETING_STYLE="[bold]loud[/bold] [/oops]"))
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2, str(plan)
    assert '"[bold]loud[/bold] [/oops]"' in plan.out
    edit_yaml(manifest, lambda d: first_deployment(d)["environment_variables"].update(GREETING_STYLE="seed"))

    # model versions are chosen by content (same bytes, same version: in the test above)
    assert versions(cli) == ["1"]
    (project / "seed" / "model" / "model.pkl").write_bytes(pickle.dumps({"kind": "no-op", "version": 2}))
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2 and "~ model.dummy-model" in plan.out and "~ deployment.rts-score/blue" in plan.out
    cli.ok("apply", "dev.yaml", "-y")
    assert versions(cli) == ["1", "2"]

    # a changed field is planned then applied
    edit_yaml(manifest, lambda d: first_deployment(d).update(instance_count=3))
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2, str(plan)
    assert "~ deployment.rts-score/blue" in plan.out and "instance_count: 2 -> 3" in plan.out
    assert "1 to change" in plan.out
    cli.ok("apply", "dev.yaml", "-y")
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0
    instances = status(cli)["deployments"]["blue"]["instances"]
    assert len(instances) == 3 and all(i["state"] == "ready" and procs.is_alive(i["pid"]) for i in instances)

    # an immutable field is replaced (the count goes down to 1 in the same edit: the copy, and the one the endpoint's
    # replacement below starts, need one instance to show create-before-destroy, not three)
    edit_yaml(manifest, lambda d: first_deployment(d).update(instance_type="local-large", instance_count=1))
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2
    assert "+/- deployment.rts-score/blue (create before destroy: blue → blue-" in plan.out, plan.out
    assert "# forces replacement" in plan.out
    result = cli.ok("apply", "dev.yaml", "-y")
    assert "Replacement complete" in result.out and "Smoke test passed" in result.out
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0

    # removing an endpoint's compute forces its replacement
    edit_yaml(manifest, lambda d: d["endpoints"][0].pop("compute"))
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2 and "-/+ endpoint.rts-score" in plan.out
    assert '- compute = "local-cpu"  # forces replacement' in plan.out
    assert "re-applied because endpoint.rts-score is replaced" in plan.out  # its deployment goes with it
    assert "outage: its scoring URI changes" in plan.out  # and apply needs --allow-outage
    result = cli.ok("apply", "dev.yaml", "-y", "--allow-outage")
    assert "Smoke test passed" in result.out
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0

    # traffic split and the deployment header
    def blue_green(d: dict) -> None:
        blue = first_deployment(d)
        blue["instance_count"] = 1
        d["endpoints"][0]["deployments"].append({**blue, "name": "green"})
        d["endpoints"][0]["traffic"] = {"blue": 75, "green": 25}

    edit_yaml(manifest, blue_green)
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()
    served = Counter(post(out["scoring_uri"], {"name": "a"}, out["primary_key"])[1]["azureml-model-deployment"]
                     for _ in range(40))
    assert served == {"blue": 30, "green": 10}
    status_, headers, _ = post(out["scoring_uri"], {"name": "a"}, out["primary_key"],
                               {"azureml-model-deployment": "green"})
    assert status_ == 200 and headers["azureml-model-deployment"] == "green"

    # shift all traffic, then drop blue: planned as a delete, after traffic moved
    edit_yaml(manifest, lambda d: d["endpoints"][0].update(traffic={"blue": 0, "green": 100}))
    cli.ok("apply", "dev.yaml", "-y")
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0  # a named 0 % share is converged, not drift
    edit_yaml(manifest, lambda d: (d["endpoints"][0]["deployments"].pop(0),
                                   d["endpoints"][0].update(traffic={"green": 100})))
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2 and "- deployment.rts-score/blue" in plan.out and "1 to destroy" in plan.out
    cli.ok("apply", "dev.yaml", "-y")
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0
    assert post(out["scoring_uri"], {"name": "a"}, out["primary_key"])[1]["azureml-model-deployment"] == "green"


def test_smoke_test_mismatch_fails_apply_then_the_host_mirrors_azmlinfsrv_and_enforces_request_settings(
        cli, project):
    """A smoke test mismatch fails apply with both bodies; the same endpoint, fixed, then shows the scoring host
    mirroring azmlinfsrv behind Azure's front (424, 413) and the front enforcing request_settings (429, 408)."""
    seed_manifest = (project / "dev.yaml").read_text()
    (project / "dev.yaml").write_text(seed_manifest.replace("Daniel's not here.", "Daniel is here."))
    result = cli("apply", "dev.yaml", "-y")
    assert result.code == 1 and "Traceback" not in result.err
    assert 'expected {"GoAway": "Daniel is here."}' in result.err
    assert 'got {"GoAway": "Daniel\'s not here."}' in result.err

    # the seed script, raising on "boom" and sleeping as asked
    (project / "dev.yaml").write_text(seed_manifest)
    (project / "seed" / "src" / "score.py").write_text(
        (project / "seed" / "src" / "score.py").read_text()
        + "\n\n_run = run\n\ndef run(raw_data):\n    if 'boom' in raw_data:\n        raise ValueError('boom')\n"
          "    __import__('time').sleep(json.loads(raw_data).get('sleep', 0))\n    return _run(raw_data)\n")

    def settings(d: dict) -> None:
        first_deployment(d).update(instance_count=1, request_settings={
            "request_timeout_ms": 1500, "max_concurrent_requests_per_instance": 1, "max_queue_wait_ms": 100})

    edit_yaml(project / "dev.yaml", settings)
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()
    uri, key = out["scoring_uri"], out["primary_key"]
    # azmlinfsrv's 500 reaches the client as Azure's front answers a non-200: 424, with the instance's body
    status_, headers, body = post(uri, {"name": "boom"}, key)
    assert status_ == 424 and headers["x-ms-run-function-failed"] == "True"
    assert headers["ms-azureml-model-error-statuscode"] == "500"
    assert "unexpected error occurred in scoring script" in json.loads(body)["message"]
    assert post(uri, {"name": "Daniel"}, key)[0] == 200  # the server stays up
    status_, headers, body = post(uri, b"\xff\xfe\xfa", key)
    assert status_ == 424 and headers["ms-azureml-model-error-statuscode"] == "400"
    assert "UTF-8" in json.loads(body)["message"]
    status_, _, _ = post(uri, b"x" * (2 * 1024 * 1024), key)
    assert status_ == 413

    # request settings are enforced
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        statuses = sorted(pool.map(lambda _: post(uri, {"name": "a", "sleep": 0.5}, key)[0], range(3)))
    assert statuses.count(429) == 1 and statuses.count(200) >= 1, statuses  # 2 × 1 × 1 admitted
    status_, _, body = post(uri, {"name": "a", "sleep": 3}, key)
    assert status_ == 408 and "request_timeout_ms" in json.loads(body)["message"]


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


def test_apply_asks_on_a_terminal_and_refuses_without_terminal_or_yes(cli):
    result = cli("apply", "dev.yaml", stdin="")
    assert result.code == 1 and "re-run with -y" in result.err and "Traceback" not in result.err
    code, out, err = _apply_on_terminal(cli, "no")
    assert code == 1 and "Do you want to perform these actions?" in out and "cancelled" in err
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 2  # nothing was created, by either
    code, out, err = _apply_on_terminal(cli, "yes")
    assert code == 0 and "Smoke test passed" in out, err


def test_ctrl_c_during_apply_exits_130_then_a_concurrent_apply_is_refused_while_one_runs(cli, project):
    """Ctrl-C during apply finishes running work and exits 130; the apply that then completes the job holds the
    resource group's lock, and a second apply meanwhile is refused."""
    import subprocess
    import sys

    script = project / "seed" / "src" / "score.py"
    script.write_text(script.read_text().replace("def init():", "def init():\n    __import__('time').sleep(3)"))
    # one instance: the interruption is about the deployment operation, however many instances it starts
    edit_yaml(project / "dev.yaml", lambda d: first_deployment(d).update(instance_count=1))
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

    # the apply that finishes the job, and a concurrent one refused while it runs: the interrupted apply finished
    # the deployment, so a second instance (slow init again) keeps this one holding the lock for seconds
    edit_yaml(project / "dev.yaml", lambda d: first_deployment(d).update(instance_count=2))
    first = subprocess.Popen([sys.executable, "-m", "rtsctl", "apply", "dev.yaml", "-y"], cwd=cli.workdir,
                             env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = cli.home / "local" / ".rts-dev.lock"
    assert procs.wait_until(lambda: lock.exists() and "(pid " in lock.read_text(), 30)
    second = cli("apply", "dev.yaml", "-y")
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert "Smoke test passed" in out
    assert second.code == 1 and "resource group rts-dev is locked by " in second.err and ", for apply dev.yaml" in second.err
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0
