"""CLI conventions, run as a user runs them (subprocess, real manifests, the local backend on 127.0.0.1):
usage errors exit 1, --var / --var-file precedence, the output shape and --raw, `apply PLANFILE`, completion."""

from __future__ import annotations

import json
import os
import stat
import subprocess

from tests.helpers import edit_yaml


def first_deployment(manifest: dict) -> dict:
    return manifest["endpoints"][0]["deployments"][0]


def resource_group_of(result) -> str:
    """The resource group a `plan -o json` acts on."""
    doc = json.loads(result.out)
    groups = [a["address"].split(".", 1)[1] for a in doc["actions"] if a["address"].startswith("resource_group.")]
    assert len(groups) == 1, doc
    return groups[0]


def test_usage_errors_exit_1_never_2(cli, monkeypatch):
    # a real exec per call: argparse ends a usage error (and --help) with SystemExit from inside main(), so in the
    # pre-forked CLI (tests/prefork.py, which holds the Azure SDKs) the interpreter then tears down ~3000 modules,
    # ~1 s of CPU a call; a real `python -m rtsctl` never loads them for a usage error (and is the truer test)
    monkeypatch.setenv("RTSCTL_TEST_EXEC", "1")
    cases = [("plan", "dev.yaml", "--detailed-exitcode", "--bogus"), (), ("plan",), ("graph", "dev.yaml", "--format",
             "png"), ("keys", "regenerate", "dev.yaml"), ("nosuchverb",), ("output", "dev.yaml", "nosuchoutput")]
    for args in cases:
        result = cli(*args)
        assert result.code == 1, (args, str(result))
        assert "usage: rtsctl" in result.err and "Traceback" not in result.err, (args, str(result))
    assert cli("plan", "dev.yaml", "--bogus").err.strip().endswith("rtsctl plan: error: unrecognized arguments: --bogus")
    assert cli("--help").code == 0 and cli("plan", "--help").code == 0
    # and 2 still means "changes present" for a plan that parsed
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 2


def test_var_beats_var_file_beats_environment_beats_default(cli, project):
    (project / "a.vars").write_text("# YAML\nRTSCTL_RESOURCE_GROUP: from-file-a\nUNUSED: 3\n")
    (project / "b.env").write_text("# a .env file\nexport RTSCTL_RESOURCE_GROUP='from-file-b'\n\nOTHER=x=y\n")

    def group(*args: str, env: dict[str, str] | None = None) -> str:
        return resource_group_of(cli.ok("plan", "dev.yaml", "-o", "json", *args, env=env))

    env = {"RTSCTL_RESOURCE_GROUP": "from-env"}
    assert group() == "rts-dev"                                                   # the manifest's :-default
    assert group(env=env) == "from-env"
    assert group("--var-file", "a.vars", env=env) == "from-file-a"
    assert group("--var-file", "a.vars", "--var-file", "b.env", env=env) == "from-file-b"   # the later file
    assert group("--var-file", "b.env", "--var-file", "a.vars", env=env) == "from-file-a"
    assert group("--var-file", "a.vars", "--var", "RTSCTL_RESOURCE_GROUP=from-flag", env=env) == "from-flag"
    assert group("--var", "RTSCTL_RESOURCE_GROUP=one", "--var", "RTSCTL_RESOURCE_GROUP=two") == "two"
    # every verb that loads a manifest takes them
    graph = cli.ok("graph", "dev.yaml", "--var", "RTSCTL_RESOURCE_GROUP=from-flag").out
    assert "resource_group.from-flag" in graph


def test_bad_vars_are_one_line_errors(cli, project):
    (project / "nested.vars").write_text("RTSCTL_RESOURCE_GROUP: {a: 1}\n")
    (project / "bomb.vars").write_text("a: &x v\nb: *x\n")
    (project / "badname.env").write_text("1BAD=x\n")
    cases = {("--var", "NOEQUALS"): "--var 'NOEQUALS': expected KEY=VALUE",
             ("--var", "BAD-NAME=x"): "'BAD-NAME' is not a variable name",
             ("--var-file", "missing.vars"): "--var-file missing.vars: not found",
             ("--var-file", "seed"): "--var-file seed: a folder, not a regular file",
             ("--var-file", "/dev/zero"): "--var-file /dev/zero: a character device, not a regular file",
             ("--var-file", "nested.vars"): "nested.vars: RTSCTL_RESOURCE_GROUP: a variable's value must be a string",
             ("--var-file", "bomb.vars"): "bomb.vars:2: YAML aliases are not allowed in a var file",
             ("--var-file", "badname.env"): "badname.env:1: '1BAD' is not a variable name"}
    for args, message in cases.items():
        result = cli("plan", "dev.yaml", *args)
        lines = result.err.strip().splitlines()
        assert result.code == 1 and len(lines) == 1 and message in lines[0], (args, str(result))


def test_output_is_a_list_for_one_or_two_endpoints_and_raw_prints_one_value(cli, project):
    # one instance from the start (the second endpoint below needs the first at 1): outputs do not depend on the
    # count, and the second apply then leaves rts-score's deployment as it is instead of restarting it
    edit_yaml(project / "dev.yaml", lambda m: first_deployment(m).update(instance_count=1))
    cli.ok("apply", "dev.yaml", "-y")
    shown = json.loads(cli.ok("output", "dev.yaml", "-o", "json").out)
    assert isinstance(shown, list) and [o["endpoint"] for o in shown] == ["rts-score"]
    assert shown[0]["primary_key"].endswith("*" * 12)                          # masked unless asked
    full = json.loads(cli.ok("output", "dev.yaml", "-o", "json", "--show-secrets").out)[0]
    one = json.loads(cli.ok("output", "dev.yaml", "-o", "json", "--endpoint", "rts-score").out)
    assert isinstance(one, dict) and one["scoring_uri"] == full["scoring_uri"]

    assert cli.ok("output", "dev.yaml", "scoring_uri", "--raw").out == full["scoring_uri"] + "\n"
    # a key named with --raw is printed in full (Terraform's -raw); named without it, it stays masked
    assert cli.ok("output", "dev.yaml", "primary_key", "--raw").out == full["primary_key"] + "\n"
    assert cli.ok("output", "dev.yaml", "primary_key").out.strip() == shown[0]["primary_key"]
    assert cli.ok("output", "dev.yaml", "--var", "UNUSED=1", "deployments", "--raw").out == "blue\n"
    assert json.loads(cli.ok("output", "dev.yaml", "deployments", "-o", "json").out) == ["blue"]
    no_name = cli("output", "dev.yaml", "--raw")
    assert no_name.code == 1 and "--raw prints one value: name it" in no_name.err

    def second_endpoint(m: dict) -> None:
        second = json.loads(json.dumps(m["endpoints"][0]))
        second["name"] = "rts-score-two"
        first_deployment({"endpoints": [second]})["instance_count"] = 1
        first_deployment(m)["instance_count"] = 1
        m["endpoints"].append(second)

    edit_yaml(project / "dev.yaml", second_endpoint)
    cli.ok("apply", "dev.yaml", "-y")
    listed = cli.ok("output", "dev.yaml", "-o", "json").out
    shown = json.loads(listed)
    assert [o["endpoint"] for o in shown] == ["rts-score", "rts-score-two"]
    ambiguous = cli("output", "dev.yaml", "scoring_uri", "--raw")
    assert ambiguous.code == 1 and "declares 2 endpoints (rts-score, rts-score-two): pick one with --endpoint" \
        in ambiguous.err
    uri = cli.ok("output", "dev.yaml", "scoring_uri", "--raw", "--endpoint", "rts-score-two").out.strip()
    assert uri == shown[1]["scoring_uri"] != shown[0]["scoring_uri"]
    # the README's pipeline: jq over the list
    jq = subprocess.run(["python", "-c", "import json,sys; print(json.load(sys.stdin)[0]['scoring_uri'])"],
                        input=listed, capture_output=True, text=True)
    assert jq.stdout.strip() == shown[0]["scoring_uri"]


def test_apply_planfile_needs_no_manifest_and_refuses_a_stale_plan(cli, project):
    # one instance to start with: a saved plan's checks do not depend on the count, which the steps below change
    edit_yaml(project / "dev.yaml", lambda d: first_deployment(d).update(instance_count=1))
    planned = cli.ok("plan", "dev.yaml", "--var", "RTSCTL_RESOURCE_GROUP=rg-saved", "--out", "first.plan")
    assert "To perform exactly these actions, run:\n  rtsctl apply first.plan" in planned.out
    assert stat.S_IMODE(os.stat(project / "first.plan").st_mode) == 0o600      # it carries the variables
    with_vars = cli("apply", "first.plan", "--var", "X=1")
    assert with_vars.code == 1 and "a saved plan carries the variables it was planned with" in with_vars.err
    applied = cli.ok("apply", "first.plan", stdin="")            # no manifest, no prompt, the plan's variables
    assert "Plan: 8 to add" in applied.out and "Smoke test passed" in applied.out
    assert cli("plan", "dev.yaml", "--var", "RTSCTL_RESOURCE_GROUP=rg-saved", "--detailed-exitcode").code == 0

    # the world moved: the plan's change was made by someone else meanwhile
    edit_yaml(project / "dev.yaml", lambda d: first_deployment(d).update(instance_count=3))
    cli.ok("plan", "dev.yaml", "--var", "RTSCTL_RESOURCE_GROUP=rg-saved", "--out", "scale.plan")
    cli.ok("apply", "dev.yaml", "--var", "RTSCTL_RESOURCE_GROUP=rg-saved", "-y")
    stale = cli("apply", "scale.plan")
    assert stale.code == 1
    assert "saved plan scale.plan is stale: deployment.rts-score/blue was planned as update, now no-op" in stale.err

    # the manifest moved, even if only a comment: refused
    edit_yaml(project / "dev.yaml", lambda d: first_deployment(d).update(instance_count=2))
    cli.ok("plan", "dev.yaml", "--var", "RTSCTL_RESOURCE_GROUP=rg-saved", "--out", "down.plan")
    with open(project / "dev.yaml", "a") as handle:
        handle.write("# reviewed\n")
    stale = cli("apply", "down.plan")
    assert stale.code == 1 and "saved plan down.plan is stale:" in stale.err
    assert "dev.yaml changed since it was planned; nothing was changed" in stale.err
    assert "instance_count: 3 -> 2" in cli("plan", "dev.yaml", "--var", "RTSCTL_RESOURCE_GROUP=rg-saved").out

    # gone, or not a plan at all
    os.rename(project / "dev.yaml", project / "moved.yaml")
    gone = cli("apply", "down.plan")
    assert gone.code == 1 and "which is gone; nothing was changed" in gone.err
    (project / "fake.plan").write_text('{"format": "rtsctl-plan/1"}')
    old = cli("apply", "fake.plan")
    assert old.code == 1 and "format rtsctl-plan/1, expected rtsctl-plan/3" in old.err
    os.mkfifo(project / "plan.fifo")                   # never opened for reading: that would block forever
    fifo = cli("apply", "plan.fifo", timeout=20)
    assert fifo.code == 1 and "not a regular file" in fifo.err


def test_completion_scripts_complete_verbs_flags_and_choices(cli, tmp_path):
    script = tmp_path / "rtsctl.bash"
    script.write_text(cli.ok("completion", "bash").out)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0

    def complete(*words: str) -> list[str]:
        probe = (f"source {script}; COMP_WORDS=(rtsctl {' '.join(words)}); COMP_CWORD={len(words)}; "
                 "COMPREPLY=(); _rtsctl; printf '%s\\n' \"${COMPREPLY[@]}\"")
        out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, cwd=cli.workdir)
        return out.stdout.split()

    assert complete("gr") == ["graph"]
    assert set(complete("")) >= {"validate", "plan", "apply", "destroy", "output", "invoke", "keys", "graph",
                                 "completion", "bench"}
    assert complete("graph", "dev.yaml", "--format", "") == ["mermaid", "dot"]
    assert complete("keys", "") == ["regenerate"]
    assert complete("keys", "regenerate", "dev.yaml", "--key", "s") == ["secondary"]
    assert complete("plan", "dev.yaml", "--detailed") == ["--detailed-exitcode"]
    assert "--var-file" in complete("apply", "--var")
    assert complete("output", "dev.yaml", "scoring") == ["scoring_uri"]
    assert complete("bench", "me") == ["merge"]
    assert "--stages" in complete("bench", "--st")
    assert "dev.yaml" in complete("plan", "de")                                # MANIFEST: files

    zsh = cli.ok("completion", "zsh").out
    assert zsh.startswith("# rtsctl completion for zsh") and "bashcompinit" in zsh and "complete -o filenames" in zsh
    fish = cli.ok("completion", "fish").out
    assert "complete -c rtsctl -n '__fish_use_subcommand' -a invoke" in fish
    assert "complete -c rtsctl -n '__fish_seen_subcommand_from regenerate' -l key -x -a 'primary secondary'" in fish
    assert "-l detailed-exitcode" in fish
