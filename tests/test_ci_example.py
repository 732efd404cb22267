"""The GitHub Actions example (manifests/examples/ci/) cannot run here: it is linted against GitHub's workflow schema
(as vendored by check-jsonschema, from SchemaStore), and every rtsctl command in it must parse with rtsctl's own CLI."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rtsctl.cli import build_parser

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "manifests" / "examples" / "ci").glob("*.yml"))


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(path)], capture_output=True, text=True, timeout=60)


def test_the_workflow_is_valid_for_github_and_the_lint_can_fail(tmp_path):
    assert EXAMPLES, "no workflow under manifests/examples/ci/"
    for path in EXAMPLES:
        result = lint(path)
        assert result.returncode == 0, result.stdout + result.stderr
    broken = yaml.safe_load(EXAMPLES[0].read_text())
    broken["jobs"]["plan"]["step"] = broken["jobs"]["plan"].pop("steps")  # a typo GitHub would reject
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert lint(tmp_path / "broken.yml").returncode == 1


def _rtsctl_lines(workflow: dict) -> list[str]:
    lines = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            lines += [m.group(0) for m in re.finditer(r"rtsctl (?:validate|plan|apply|destroy)[^\n;|]*",
                                                      step.get("run", ""))]
    return lines


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_rtsctl_command_in_the_workflow_parses(path):
    workflow = yaml.safe_load(path.read_text())
    commands = _rtsctl_lines(workflow)
    verbs = {shlex.split(c)[1] for c in commands}
    assert {"plan", "apply"} <= verbs, commands
    for command in commands:
        argv = shlex.split(command.replace('"$MANIFEST"', "m.yaml"))[1:]
        args = build_parser().parse_args(argv)  # a usage error exits 1 here, failing the test
        assert args.command == argv[0]
    assert any("--out" in c and "--detailed-exitcode" in c for c in commands)        # the reviewed plan
    assert any(c.startswith("rtsctl apply rtsctl.plan") for c in commands)             # applied exactly
    assert any("--refresh-only" in c and "--detailed-exitcode" in c for c in commands)  # the drift check
