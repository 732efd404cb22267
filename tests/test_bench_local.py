"""`rtsctl bench MANIFEST` against the local backend's endpoint (rtsctl apply manifests/dev.yaml, temp RTSCTL_HOME).

One apply serves the module: dev.yaml applied with a var file (RTSCTL_RESOURCE_GROUP=rg-vars), so the same endpoint
shows both that bench reads its target from the manifest and that it resolves the manifest with the vars apply used
(plain `bench dev.yaml` against a plainly applied dev.yaml runs in test_bench_locust.py, next to the Locust run)."""

from __future__ import annotations

import json
import shutil

import pytest
from test_bench_server import report

from tests.conftest import REPO, Cli, kill_recorded

VARS = ("--var-file", "scope.vars")


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> Cli:
    """manifests/dev.yaml applied once for the module with scope.vars (resource group rg-vars)."""
    base = tmp_path_factory.mktemp("bench-local")
    project = base / "project"
    shutil.copytree(REPO / "manifests", project, ignore=shutil.ignore_patterns("__pycache__"))
    (project / "scope.vars").write_text("RTSCTL_RESOURCE_GROUP: rg-vars\n")
    runner = Cli(base / "home", project)
    runner.ok("apply", "dev.yaml", *VARS, "-y")
    yield runner
    kill_recorded(runner)


def test_bench_reads_the_endpoint_from_the_manifest(applied: Cli):
    cli = applied
    doc = report(cli.ok("bench", "dev.yaml", *VARS, "-t", "4", "-i", "25", "-o", "json"))
    out = json.loads(cli.ok("output", "dev.yaml", *VARS, "-o", "json", "--show-secrets").out)[0]
    assert doc["target"]["url"] == out["scoring_uri"] and doc["target"]["endpoint"] == "rts-score"
    assert doc["requests"] == 100 and doc["status"] == {"200": 100}
    assert out["primary_key"] not in str(doc)                  # the key never lands in a report

    # one deployment, the way Azure ML routes it (azureml-model-deployment header), with varied names
    doc = report(cli.ok("bench", "dev.yaml", *VARS, "--deployment", "blue", "-n", "60", "-c", "4", "--workers", "2",
                        "--template", '{"name": "user-{i}"}', "-o", "json"))
    assert doc["target"]["deployment"] == "blue" and doc["status"] == {"200": 60}

    missing = cli("bench", "dev.yaml", *VARS, "--deployment", "green", "-n", "5")
    assert missing.code == 1 and "no deployment 'green'" in missing.err and "blue" in missing.err

    # a wrong key: every answer is a 401, counted, and the hint says what to do
    wrong = cli("bench", "dev.yaml", *VARS, "-k", "not-the-key", "-t", "4", "-i", "25", "-o", "json")
    doc = report(wrong)
    assert wrong.code == 1 and doc["status"] == {"401": 100}
    assert "refused with 401 Unauthorized" in wrong.err

    # open loop at a rate the endpoint sustains, with a CI gate
    gate = cli("bench", "dev.yaml", *VARS, "--rate", "100", "-d", "2", "--max-error-rate", "0", "--max-p99", "2s",
               "-o", "json")
    doc = report(gate)
    assert gate.code == 0, str(gate)
    assert abs(doc["achieved_rate"] - 100) <= 5 and doc["errors"]["total"] == 0


def test_bench_before_apply_says_what_to_do(cli):
    result = cli("bench", "dev.yaml", "-n", "5")
    assert result.code == 1
    assert "does not exist yet" in result.err and "rtsctl apply" in result.err


def test_bench_and_invoke_read_the_manifest_with_the_same_vars_as_apply(applied: Cli):
    cli = applied
    doc = report(cli.ok("bench", "dev.yaml", *VARS, "-n", "20", "-c", "2", "-o", "json"))
    assert doc["status"] == {"200": 20}
    ramp = report(cli.ok("bench", "dev.yaml", "--var", "RTSCTL_RESOURCE_GROUP=rg-vars", "--stages", "1s:50/s",
                         "-o", "json"))
    assert ramp["requests"] == 25 and ramp["status"] == {"200": 25}   # 0 -> 50 req/s over 1 s: 25 requests
    unscoped = cli("bench", "dev.yaml", "-n", "5")                     # rts-dev: nothing was applied there
    assert unscoped.code == 1 and "does not exist yet" in unscoped.err
    (cli.workdir / "request.json").write_text('{"name": "Daniel"}')
    invoked = cli.ok("invoke", "dev.yaml", "--var", "RTSCTL_RESOURCE_GROUP=rg-vars", "--request", "request.json")
    assert "Daniel's not here" in invoked.out
