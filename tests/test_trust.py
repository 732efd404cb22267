"""Plans users can trust, long operations made visible, forensics and preflight -- on the local backend, through
the CLI as a user runs it (issue 10)."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time

from conftest import kill_recorded
from helpers import drain_pty, edit_yaml


def _deployment(data: dict) -> dict:
    return data["endpoints"][0]["deployments"][0]


def test_target_then_drift_then_prevent_destroy_on_one_endpoint(cli, project):
    """One endpoint through three trust checks (each was a test that applied dev.yaml afresh): --target pulls in
    dependencies and unknown addresses are one-line errors; drift is labelled drift, edits are edits and
    --refresh-only shows drift alone; prevent_destroy blocks destroy and replace but not updates."""
    unknown = cli("plan", "dev.yaml", "--target", "deployment.rts-score/nope")
    assert unknown.code == 1, str(unknown)
    lines = unknown.err.strip().splitlines()
    assert len(lines) == 1 and "--target deployment.rts-score/nope: no such resource" in lines[0], unknown.err

    plan = json.loads(cli.ok("plan", "dev.yaml", "--target", "model.dummy-model", "-o", "json").out)
    assert {a["address"] for a in plan["actions"]} == {"resource_group.rts-dev", "workspace.rts-workspace",
                                                        "model.dummy-model"}

    applied = cli.ok("apply", "dev.yaml", "-y", "--target", "environment.scoring-env")
    assert "environment.scoring-env: Creation complete" in applied.out
    assert "endpoint.rts-score" not in applied.out, "an untargeted resource was touched"
    rest = json.loads(cli.ok("plan", "dev.yaml", "-o", "json").out)
    pending = {a["address"] for a in rest["actions"] if a["action"] != "no-op"}
    assert pending == {"compute.local-cpu", "endpoint.rts-score", "deployment.rts-score/blue", "model.dummy-model",
                       "traffic.rts-score"}

    # destroy --target takes what depends on the target along (its traffic record too: issue 13), nothing else
    cli.ok("apply", "dev.yaml", "-y")
    doomed = json.loads(cli.ok("plan", "dev.yaml", "--destroy", "--target", "endpoint.rts-score", "-o", "json").out)
    assert {a["address"] for a in doomed["actions"]} == {"endpoint.rts-score", "deployment.rts-score/blue",
                                                        "traffic.rts-score"}  # shown and counted with its endpoint
    assert all(a["action"] == "delete" for a in doomed["actions"])

    # drift is labelled drift, edits are edits, and --refresh-only shows drift alone
    assert "No drift." in cli.ok("plan", "dev.yaml", "--refresh-only").out

    # the world moves: the deployment's recorded spec is changed behind rtsctl's back
    record = next(cli.home.rglob("deployments/blue/deployment.json"))
    data = json.loads(record.read_text())
    data["spec"]["environment_variables"]["GREETING_STYLE"] = "hand-edited"
    record.write_text(json.dumps(data))
    drift = cli.ok("plan", "dev.yaml")
    assert "# deployment.rts-score/blue will be updated in place (drift: changed outside rtsctl)" in drift.out
    assert "~ deployment.rts-score/blue" in cli.ok("plan", "dev.yaml", "--refresh-only").out
    cli.ok("apply", "dev.yaml", "-y")  # heals it, and records what it applied

    # the manifest moves: an edit, which --refresh-only leaves out
    edit_yaml(project / "dev.yaml", lambda d: _deployment(d)["environment_variables"].__setitem__("GREETING_STYLE", "v2"))
    edit = json.loads(cli.ok("plan", "dev.yaml", "-o", "json").out)
    origins = {a["address"]: a.get("origin") for a in edit["actions"] if a["action"] != "no-op"}
    assert origins == {"deployment.rts-score/blue": "edit"}
    refresh = cli.ok("plan", "dev.yaml", "--refresh-only")
    assert "No drift." in refresh.out and "GREETING_STYLE" not in refresh.out

    # both at once, on different fields: the action says so, and --refresh-only keeps only the drifted field
    data = json.loads(record.read_text())
    data["spec"]["instance_count"] = 1
    record.write_text(json.dumps(data))
    both = cli.ok("plan", "dev.yaml")
    assert "(drift and edit: changed outside rtsctl and in the manifest)" in both.out, both.out
    refresh = cli.ok("plan", "dev.yaml", "--refresh-only")
    assert "~ instance_count: 1 -> 2" in refresh.out and "GREETING_STYLE" not in refresh.out, refresh.out

    # prevent_destroy blocks destroy and replace, but not updates (this apply also heals the drift left above)
    manifest = project / "dev.yaml"
    edit_yaml(manifest, lambda d: _deployment(d).__setitem__("prevent_destroy", True))
    cli.ok("apply", "dev.yaml", "-y")

    refused = cli("destroy", "dev.yaml", "-y")
    assert refused.code == 1, str(refused)
    assert "deployment.rts-score/blue: prevent_destroy is set, but this plan would destroy it" in refused.err
    assert "dev.yaml:" in refused.err and "Traceback" not in refused.err
    assert cli.outputs()["scoring_uri"], "the refused destroy changed nothing"

    edit_yaml(manifest, lambda d: _deployment(d).__setitem__("instance_type", "local-big"))
    replace = cli("plan", "dev.yaml")
    assert replace.code == 1, str(replace)
    assert "would replace it (instance_type cannot change in place)" in replace.err

    def update_only(d: dict) -> None:
        _deployment(d)["instance_type"] = "local"
        _deployment(d)["environment_variables"]["GREETING_STYLE"] = "guarded"
    edit_yaml(manifest, update_only)
    assert "~ deployment.rts-score/blue" in cli.ok("plan", "dev.yaml").out  # an in-place update is allowed

    edit_yaml(manifest, lambda d: _deployment(d).pop("prevent_destroy"))
    cli.ok("destroy", "dev.yaml", "-y")


def test_failed_inits_exits_and_liveness_kills_are_explained_with_code_log_lines_and_what_to_do(cli, project):
    """Three ways a deployment fails to start, applied one after the other on one endpoint (each was a test that
    applied dev.yaml afresh): init() raises (reported with its cause, the code, the instance log's lines and what to
    do); the instance process exits before it is ready; and, as on Azure, the liveness probe starts initial_delay
    after the process does, not after init(): an init() that outlasts initial_delay + failure_threshold x period
    gets the instance killed, and apply says so."""
    seed_script = (project / "seed" / "src" / "score.py").read_text()
    # one instance: each failure is explained per instance; a second one would only fail the same way
    edit_yaml(project / "dev.yaml", lambda d: _deployment(d).update(instance_count=1))
    (project / "seed" / "src" / "score.py").write_text(
        "print('loading the model from /nowhere', flush=True)\n\n"
        "def init():\n    raise RuntimeError('no model here')\n\ndef run(raw):\n    return raw\n")
    result = cli("apply", "dev.yaml", "-y")
    assert result.code == 1, str(result)
    assert "Traceback" not in result.err   # the failing init is reported with its cause (test_local_e2e's check)
    assert "deployment.rts-score/blue" in result.err and "RuntimeError: no model here" in result.err
    assert "deployment.rts-score/blue failed (InitFailed)" in result.out, str(result)
    assert "| loading the model from /nowhere" in result.out  # the instance log's own lines
    assert "RuntimeError: no model here" in result.out
    assert "what to do: init() raised" in result.out

    # an instance that exits before it is ready is explained
    (project / "seed" / "src" / "score.py").write_text("import os\nprint('about to give up', flush=True)\nos._exit(1)\n")
    result = cli("apply", "dev.yaml", "-y")
    assert result.code == 1, str(result)
    assert "deployment.rts-score/blue failed (InstanceExited)" in result.out, str(result)
    assert "| about to give up" in result.out
    assert "what to do: the instance process exited before it was ready" in result.out

    # an init slower than its liveness probe allows is killed and explained
    script = project / "seed" / "src" / "score.py"
    script.write_text(seed_script.replace(
        "def init():", "def init():\n    print('loading a large model', flush=True)\n    __import__('time').sleep(60)"))
    edit_yaml(project / "dev.yaml", lambda d: d["endpoints"][0]["deployments"][0].update(
        liveness_probe={"initial_delay": 1, "period": 1, "failure_threshold": 2}))
    result = cli("apply", "dev.yaml", "-y", timeout=60)
    assert result.code == 1, str(result)
    assert "deployment.rts-score/blue failed (LivenessProbeFailed)" in result.out, str(result)
    assert "killed: liveness probe failed 2 times while init() ran" in result.out
    assert "| loading a large model" in result.out
    assert "what to do: the container did not answer its liveness probe in time" in result.out


def test_heartbeat_while_waiting_then_second_ctrl_c_exits_130_naming_what_still_runs(cli, project):
    script = project / "seed" / "src" / "score.py"
    script.write_text(script.read_text().replace("def init():", "def init():\n    __import__('time').sleep(60)"))
    edit_yaml(project / "dev.yaml", lambda d: _deployment(d).update(instance_count=1))  # one slow instance is enough
    proc = subprocess.Popen([sys.executable, "-m", "rtsctl", "apply", "dev.yaml", "-y"], cwd=project,
                            env={**cli.env, "RTSCTL_HEARTBEAT_SECONDS": "0.5"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        seen = ""
        deadline = time.monotonic() + 120  # a loaded machine may take long to build the environment first
        while "deployment.rts-score/blue: still creating…" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.readline()
        assert "deployment.rts-score/blue: still creating… [" in seen, seen
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while "Press Ctrl-C again" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.readline()
        assert "Press Ctrl-C again" in seen, seen
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_recorded(cli)
    assert proc.returncode == 130, seen + out + err
    assert "May still be running: deployment.rts-score/blue" in seen + out, seen + out


def test_a_terminal_gets_a_live_line_per_running_operation(cli, project):
    """On a terminal the waits are a live display (rich Live, redrawn in place, gone at the end), not heartbeat
    lines: the heartbeat interval is set far beyond the apply, so any "still creating…" seen came from the display."""
    script = project / "seed" / "src" / "score.py"
    script.write_text(script.read_text().replace("def init():", "def init():\n    __import__('time').sleep(3)"))
    edit_yaml(project / "dev.yaml", lambda d: _deployment(d).update(instance_count=1))  # one slow instance is enough
    main, sub = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "rtsctl", "apply", "dev.yaml", "-y"], cwd=project,
                            env={**cli.env, "RTSCTL_HEARTBEAT_SECONDS": "3600"}, stdout=sub, stderr=subprocess.PIPE)
    os.close(sub)
    try:
        raw = drain_pty(main)
    finally:
        code = proc.wait(timeout=120)
    seen = raw.decode("utf-8", "replace")
    assert code == 0, seen
    assert "deployment.rts-score/blue: still creating… [" in seen, seen
    assert "\x1b[" in seen  # drawn with cursor control, in place
    assert "Apply complete!" in seen
