"""Bad input: one line naming file:line and the field, exit 1, no traceback, nothing touched."""

from __future__ import annotations

import re

import pytest


CASES = {
    # name: (text to replace, replacement, line holding the fault (by its text), expected message pattern)
    "yaml-syntax": ("  name: rts-workspace", "  name: [rts-workspace", "experiment_name",
                    r"YAML syntax error: expected ',' or ']'"),
    "unknown-key": ("        instance_count: 2", "        instance_count: 2\n        instance_cuont: 3", "instance_cuont",
                    r"endpoints\[0\]\.deployments\[0\]\.instance_cuont: unknown field 'instance_cuont' "
                    r"\(did you mean 'instance_count'\?\)"),
    "wrong-type": ("        instance_count: 2", "        instance_count: two", "instance_count: two",
                   r"endpoints\[0\]\.deployments\[0\]\.instance_count: expected an integer, got 'two'"),
    "missing-required": ("        instance_type: local\n", "", "      - name: blue",
                         r"endpoints\[0\]\.deployments\[0\]\.instance_type: missing required field 'instance_type'"),
    "unknown-reference": ("        model: dummy-model", "        model: dummy-modle", "model: dummy-modle",
                          r"endpoints\[0\]\.deployments\[0\]\.model: unknown model 'dummy-modle' "
                          r"\(declared: dummy-model\)"),
    "unset-variable": ("  name: rts-workspace", "  name: ${RTS_TEST_UNSET_VAR}", "RTS_TEST_UNSET_VAR",
                       r"workspace\.name: variable RTS_TEST_UNSET_VAR is not set"),
    "traffic-sum": ("      blue: 100", "      blue: 90", "    traffic:",
                    r"endpoints\[0\]\.traffic: traffic must total 100 \(or 0\), got 90"),
    "missing-scoring-script": ("scoring_script: score.py", "scoring_script: scoer.py", "scoer.py",
                               r"code_configuration\.scoring_script: scoring script 'scoer\.py': not found"),
    "unknown-traffic-target": ("      blue: 100", "      bleu: 100", "bleu: 100",
                               r"endpoints\[0\]\.traffic\.bleu: traffic names unknown deployment 'bleu'"),
    "over-capacity": ("    max_instances: 4", "    max_instances: 1", "max_instances: 1",
                      r"computes\[0\]\.max_instances: deployments ask for 2 instances"),
}


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_manifest_is_one_clear_line(cli, project, case, command):
    if case == "unset-variable" and command == "validate":
        pytest.skip("validate notes unset variables without failing: test_validate_notes_unset_variables")
    old, new, marker, pattern = CASES[case]
    text = (project / "dev.yaml").read_text()
    assert old in text
    broken = text.replace(old, new, 1)
    (project / "bad.yaml").write_text(broken)
    line = next(i for i, row in enumerate(broken.splitlines(), 1) if marker in row)

    result = cli(command, "bad.yaml")
    assert result.code == 1, str(result)
    assert result.out == ""
    message = result.err.strip()
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"Error: bad.yaml:{line}: "), message
    assert re.search(pattern, message), message
    assert not (cli.home / "local").exists()  # nothing was touched


def test_missing_file(cli):
    result = cli("plan", "nope.yaml")
    assert result.code == 1 and result.err.strip() == "Error: nope.yaml: file not found"


def test_variables_interpolate_with_defaults(cli, project):
    text = (project / "dev.yaml").read_text().replace("  name: rts-workspace", "  name: ${RTS_WS:-from-default}")
    (project / "vars.yaml").write_text(text)
    assert "valid" in cli.ok("validate", "vars.yaml").out
    plan = cli.ok("plan", "vars.yaml")
    assert "workspace.from-default" in plan.out
    plan = cli.ok("plan", "vars.yaml", env={"RTS_WS": "from-env"})
    assert "workspace.from-env" in plan.out


def test_debug_shows_traceback(cli, project):
    (project / "bad.yaml").write_text("resource_group: [x\n")
    result = cli("plan", "bad.yaml", "--debug")
    assert result.code == 1 and "Traceback" in result.err


def test_help_is_fast_and_lists_the_verbs(cli):
    result = cli.ok("--help")
    for verb in ("validate", "plan", "apply", "destroy", "output", "bench"):
        assert verb in result.out
    assert "exit codes" in result.out


def test_validate_notes_unset_variables(cli, project):
    """validate runs without the provider's variables: an unset one is a note, not a failure."""
    text = (project / "dev.yaml").read_text().replace("  name: rts-workspace", "  name: ${RTS_TEST_UNSET_VAR}")
    (project / "vars.yaml").write_text(text)
    result = cli("validate", "vars.yaml")
    assert result.code == 0, str(result)
    assert "valid" in result.out
    assert result.err.startswith("note: vars.yaml:10: workspace.name: variable RTS_TEST_UNSET_VAR is not set"), result.err


def test_validate_reports_every_error_at_once(cli, project):
    text = (project / "dev.yaml").read_text()
    text = text.replace("  name: rts-workspace", "  name: ab").replace("      - name: blue", "      - name: b")
    text = text.replace("instance_count: 2", "instance_count: 100000").replace("model: dummy-model", "model: nope")
    (project / "many.yaml").write_text(text)
    result = cli("validate", "many.yaml")
    assert result.code == 1 and result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 5, result.err  # + the traffic entry naming the renamed deployment
    assert all(re.match(r"Error: many\.yaml:\d+: \S+: ", line) for line in lines), result.err
    for fragment in ("workspace.name: 'ab' is 2 characters", "deployments[0].name: 'b' is 1 characters",
                     "instance_count: 100000 is out of range", "model: unknown model 'nope'"):
        assert fragment in result.err, result.err
    assert [int(line.split(":")[2]) for line in lines] == sorted(int(line.split(":")[2]) for line in lines)
