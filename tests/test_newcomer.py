"""What a newcomer trips on (issue 16, item 7), through the CLI: did-you-mean, NO_COLOR / --no-color, a closed
pipe, per-command help, and one end-to-end run of the rollout example: output and destroy count traffic, invoke
names who answered, the plan says what changed in code and environments, the rollout runs its gated steps."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys

from reconcilers.local.procs import wait_until
from tests.conftest import Cli
from tests.helpers import drain_pty, edit_yaml

ROLLOUT = "examples/local-rollout.yaml"


def test_usage_errors_say_what_was_meant_and_help_is_per_command(cli):
    flag = cli("apply", "dev.yaml", "--auto-aprove")
    assert flag.code == 1 and "did you mean --auto-approve?" in flag.err, str(flag)
    assert flag.err.startswith("usage: rtsctl apply")  # the subcommand's usage, not the top level's
    verb = cli("aply", "dev.yaml")
    assert verb.code == 1 and "did you mean 'apply'?" in verb.err, str(verb)
    helps = {command: cli.ok(command, "--help").out for command in ("plan", "apply", "logs", "bench")}
    for command, shown in helps.items():
        assert "--debug" in shown and "--no-color" in shown, command
    merge = cli.ok("bench", "merge", "--help").out
    assert merge.startswith("usage: rtsctl bench merge") and "--html-out" in merge
    assert "--rate" not in merge and "--deployment" not in merge  # only merge's own options
    assert "global flags" in helps["bench"] and "--rate" in helps["bench"]


def _run_on_pty(cli, *args: str, env: dict[str, str]) -> bytes:
    main, child = pty.openpty()
    full = {**cli.env, **env}
    full.pop("NO_COLOR", None) if "NO_COLOR" not in env else None
    proc = subprocess.Popen([sys.executable, "-m", "rtsctl", *args], cwd=cli.workdir, stdin=subprocess.DEVNULL,
                            stdout=child, stderr=child, env=full)
    os.close(child)
    out = drain_pty(main)
    assert proc.wait(timeout=60) == 0, out
    return out


def test_no_color_and_a_closed_pipe(cli):
    colored = _run_on_pty(cli, "plan", "dev.yaml", env={})
    assert b"\x1b[" in colored  # on a terminal the plan is styled, so the checks below can fail
    assert b"\x1b[" not in _run_on_pty(cli, "plan", "dev.yaml", env={"NO_COLOR": "1"})
    assert b"\x1b[" not in _run_on_pty(cli, "plan", "dev.yaml", "--no-color", env={})

    # `rtsctl graph M | head -1`: the reader is gone before rtsctl writes; nothing on stderr, exit 0
    for args in (("graph", "dev.yaml"), ("plan", "-o", "json", "dev.yaml")):
        read, write = os.pipe()
        os.close(read)
        proc = subprocess.run([sys.executable, "-m", "rtsctl", *args], cwd=cli.workdir, env=cli.env, stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=60)
        os.close(write)
        assert proc.returncode == 0 and proc.stderr == "", (args, proc.returncode, proc.stderr)


def _home_logs(cli) -> str:
    """Every log file under RTSCTL_HOME, read directly: what `rtsctl logs` shows comes from them."""
    text = []
    for path in cli.home.rglob("*.log*"):
        try:
            text.append(path.read_text(errors="replace"))
        except OSError:
            continue
    return "\n".join(text)


def test_rollout_example_end_to_end(cli, project):
    cli.ok("apply", ROLLOUT, "-y")
    out = cli.ok("output", ROLLOUT).out
    assert "deployments   = blue (100%), green (0%)" in out, out
    assert cli.ok("output", ROLLOUT, "traffic", "--raw").out == "blue 100\ngreen 0\n"
    (project / "req.json").write_text('{"name": "Daniel"}')
    invoked = cli.ok("invoke", ROLLOUT, "--request", "req.json")
    assert "HTTP 200 from endpoint rts-rollout, deployment blue" in invoked.err  # who answered, unasked

    # the plan says what changed inside code and environments, not two sha256 digests
    score = project / "seed" / "src" / "score.py"
    score.write_text(score.read_text().replace("return {", "return  {"))
    conda = project / "seed" / "conda.yaml"
    conda.write_text(conda.read_text().replace("      - azureml-inference-server-http",
                                               "      - azureml-inference-server-http\n      - numpy==2.1.0"))
    plan = cli.ok("plan", ROLLOUT).out
    assert "~ score.py (+1 -1 lines)" in plan and "+ pip numpy==2.1.0" in plan, plan
    assert "sha256:" not in plan
    detail = [c.get("detail") for a in json.loads(cli.ok("plan", ROLLOUT, "-o", "json").out)["actions"]
              for c in a["changes"] if c.get("detail")]
    assert ["~ score.py (+1 -1 lines)"] in detail and ["+ pip numpy==2.1.0"] in detail
    conda.write_text(conda.read_text().replace("\n      - numpy==2.1.0", ""))

    # a saved plan applies on a machine that never saw the old files (here: their snapshots removed)
    assert "~ score.py (+1 -1 lines)" in cli.ok("plan", ROLLOUT, "--out", "code.plan").out
    shutil.rmtree(cli.home / "contents")
    # the new code goes live beside the old; the old process's last line says when, which deployment and version
    cli.ok("apply", "code.plan")
    retired = re.compile(r"--- \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d deployment blue version [0-9a-f]{10} instance 0 "
                         r"stopped with SIGTERM: retired, version [0-9a-f]{10} took over")
    # wait on the log files themselves (a CLI call per poll cost ~0.2 s of CPU each), then read them as a user does
    assert wait_until(lambda: retired.search(_home_logs(cli)), 10, interval=0.1), _home_logs(cli)
    assert retired.search(cli.ok("logs", ROLLOUT, "--deployment", "blue").out), \
        cli.ok("logs", ROLLOUT, "--deployment", "blue").out

    # the example's rollout: green takes over in gated steps
    edit_yaml(project / ROLLOUT, lambda d: d["endpoints"][0].update(traffic={"blue": 0, "green": 100}))
    rolled = cli.ok("apply", ROLLOUT, "-y")
    assert "blue 100 → 90, green 0 → 10" in rolled.out + rolled.err, str(rolled)
    assert "deployments   = blue (0%), green (100%)" in rolled.out
    assert "Smoke test passed: rts-rollout/green" in rolled.out

    # bench: more connections than green admits (8 x 1 instance, 429 beyond 16 in flight)
    run = cli("bench", ROLLOUT, "--deployment", "green", "-c", "48", "-d", "2s", "--progress", "-o", "json",
              "--html-out", "run.html")
    doc = json.loads(run.out)
    throttled = doc["status"].get("429", 0)
    assert throttled and doc["throttled"]["count"] == throttled, doc["status"]
    assert doc["latency_ms"]["count"] == doc["requests"] - throttled  # the percentiles are the real answers'
    assert f"wrote the HTML report to {project / 'run.html'}" in run.err and (project / "run.html").is_file()
    lines = [line.split() for line in run.err.splitlines() if " req/s" in line]
    last = lines[-1]  # "t  N req  M err  R req/s ...": both counted from the start, err next to req
    assert last[2] == "req" and last[4] == "err", lines
    assert int(last[1].replace(",", "")) == doc["requests"] and int(last[3].replace(",", "")) == doc["errors"]["total"]

    # the access log: every answer accounted for, one line each up to 20 a second, the rest summed up per second
    def access_log() -> str:
        return cli.ok("logs", ROLLOUT, "--deployment", "green").out
    summed = "more answers in this second not logged one by one"
    assert wait_until(lambda: summed in _home_logs(cli), 10, interval=0.1), access_log()
    assert summed in access_log(), access_log()
    shown = access_log()
    assert "==> green/access <==" in shown and re.search(r"Z POST /score 200 \d+\.\dms version [0-9a-f]{10}", shown)
    assert re.search(r"at most 20 a second\): (200×\d+ )?429×\d+", shown), shown
    assert "POST /score" not in cli.ok("logs", ROLLOUT, "--deployment", "green", "--instance", "0").out

    destroyed = cli.ok("destroy", ROLLOUT, "-y")
    assert "- traffic.rts-rollout" in destroyed.out and "goes with endpoint.rts-rollout" in destroyed.out
    assert "Resources: 9 destroyed" in destroyed.out  # as many as apply added: traffic counts


def test_azure_without_a_subscription(cli, project, tmp_path):
    """validate needs no subscription and asks for nothing rtsctl derives; a credential that yields no token says
    what to do; the emulator's variables serve one command (`env $(cat F) rtsctl ...`), not the user's shell."""
    env = {k: "" for k in ("AZURE_SUBSCRIPTION_ID", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET")}
    clean = {k: v for k, v in cli.env.items() if k not in env and not k.lower().endswith("_proxy")}
    # the cli fixture's runner (pre-forked: no ~2.5 s of Azure SDK import per call) with exactly this environment
    runner = Cli(cli.home, project)
    runner.env = clean
    run = lambda *args, **kw: runner(*args, timeout=120, env=kw)
    checked = run("validate", "azure.yaml")
    assert checked.code == 0 and "valid, except what reads unset variables (AZURE_SUBSCRIPTION_ID)" in checked.out
    assert "RTSCTL_UNIQUE_SUFFIX is not set" not in checked.err and "rtsctl derives" in checked.err, checked

    edit_yaml(project / "azure.yaml", lambda d: d["provider"].update(credential={"type": "environment"}))
    planned = run("plan", "azure.yaml", AZURE_SUBSCRIPTION_ID="00000000-0000-0000-0000-000000000000")
    assert planned.code == 1 and "Traceback" not in planned.err, planned
    for hint in ("az login", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "python -m tests.azure_emulator --env-file"):
        assert hint in planned.err, (hint, planned.err)

    env_file = tmp_path / "emu.env"
    from tests.conftest import REPO

    emulator = subprocess.Popen([sys.executable, "-m", "tests.azure_emulator", "--env-file", str(env_file)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean)
    try:
        for line in emulator.stdout:  # the file is written before "ready"
            if "ready" in line:
                break
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        emu = dict(line.split("=", 1) for line in env_file.read_text().split())
        assert emu["HTTPS_PROXY"].startswith("http://127.0.0.1:")  # for the one command below, not for this shell
        planned = run("plan", "azure.yaml", "--detailed-exitcode", **emu)
        assert planned.code == 2 and "will be created" in planned.out, planned
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
