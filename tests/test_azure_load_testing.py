"""Azure Load Testing end to end (issue 17): the `load_testing:` kind planned, applied and destroyed, and `rtsctl bench
--engine azure-load-testing` creating the test, uploading the locustfile and its config, keeping the endpoint key in
the workspace's Key Vault, running on 2 engines and reporting -- all through the REAL SDKs (azure-mgmt-loadtesting,
azure-developer-loadtesting, azure-keyvault-secrets) in the CLI subprocess, against the emulator, whose data plane
runs the uploaded Locust script for real against its scoring data plane.

One emulator and one applied manifest (examples/azure-managed-endpoint.yaml: no AKS, the cheapest full apply) serve
the module; the tests run in file order: validate, apply, one cloud bench run, then destroy and import (one test). The
Ctrl-C path (the service's run stopped, exit 130) and a rollout gate with `engine: azure-load-testing` were checked
by hand against the emulator, not here: each costs another cloud run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.azure_emulator import Emulator
from tests.conftest import REPO, Cli
from tests.helpers import edit_yaml

MANIFEST = "examples/azure-managed-endpoint.yaml"
ENDPOINT = "rts-lt"
RG = "rts-managed-rg"
LOAD_TESTING = "rts-load"
TEST_ID = "rtsctl-rts-lt"


@pytest.fixture(scope="module")
def emu():
    emulator = Emulator(lro_mode="sync").start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def cli(emu: Emulator, tmp_path_factory) -> Cli:
    root = tmp_path_factory.mktemp("load-testing")
    project = root / "project"
    shutil.copytree(REPO / "manifests", project, ignore=shutil.ignore_patterns("__pycache__"))

    def declare(m: dict) -> None:
        m["load_testing"] = {"name": LOAD_TESTING, "description": "rtsctl bench in the cloud"}
        m["endpoints"][0]["auth_mode"] = "key"   # a key, kept in Key Vault (aml_token expires)

    edit_yaml(project / MANIFEST, declare)
    env = {**emu.env(), "RTSCTL_ENDPOINT": ENDPOINT}
    env.pop("AZUREML_CURRENT_CLOUD", None)
    return Cli(root / "home", project, env)


@pytest.fixture(scope="module")
def applied(cli: Cli, emu: Emulator) -> dict:
    """The manifest planned (load_testing to be created) and applied once; the endpoint's outputs."""
    planned = cli("plan", MANIFEST, "--detailed-exitcode")
    assert planned.code == 2, str(planned)
    assert f"+ load_testing.{LOAD_TESTING}" in planned.out, planned.out
    cli.ok("apply", MANIFEST, "-y")
    return cli.outputs(MANIFEST)


def load_test_id(emu: Emulator) -> str:
    return (f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/{RG}/providers/"
            f"Microsoft.LoadTestService/loadTests/{LOAD_TESTING}")


def data_plane(emu: Emulator, monkeypatch):
    """The test's administration client, in this process, as a user's script would make it."""
    from azure.developer.loadtesting import LoadTestAdministrationClient
    from azure.identity import ClientSecretCredential

    for name, value in emu.env().items():
        monkeypatch.setenv(name, value)
    s = emu.settings
    credential = ClientSecretCredential(s.tenant_id, s.client_id, s.client_secret, authority=emu.url,
                                        disable_instance_discovery=True)
    uri = emu.resource(load_test_id(emu))["properties"]["dataPlaneURI"]
    return LoadTestAdministrationClient(uri, credential, api_version="2025-05-01-preview")


def fetch(url: str) -> bytes:
    from azure.core.pipeline.transport import HttpRequest, RequestsTransport

    with RequestsTransport() as transport:
        response = transport.send(HttpRequest("GET", url))
        assert response.status_code == 200, response.status_code
        return response.body()


# ------------------------------------------------------------------------------------------------------------------
def test_the_local_backend_refuses_load_testing_at_validate_with_file_and_line(cli: Cli):
    """The local backend has no load testing service: `load_testing:` and a gate's `engine: azure-load-testing` are
    refused at the lines that ask for them, and bench's cloud engine and flags say why they cannot run here."""
    local = cli.workdir / "dev.yaml"
    edit_yaml(local, lambda m: m["endpoints"][0].update(rollout={"gate": {"engine": "azure-load-testing"}}))
    text = local.read_text()
    local.write_text(text.replace("\nendpoints:", "\nload_testing:\n  name: rts-load\nendpoints:", 1))
    lines = local.read_text().splitlines()
    at = lines.index("load_testing:") + 1
    gate = next(i for i, line in enumerate(lines, 1) if "engine: azure-load-testing" in line)
    result = cli("validate", "dev.yaml")
    assert result.code == 1, str(result)
    assert f"dev.yaml:{at}: load_testing: load_testing is an Azure resource" in result.err, result.err
    assert f"dev.yaml:{gate}: endpoints[0].rollout.gate.engine: the local backend has no load testing service" \
        in result.err, result.err
    assert "Traceback" not in result.err

    flags = cli("bench", "examples/local-rollout.yaml", "--engines", "2")
    assert flags.code == 1 and "--engines is for --engine azure-load-testing" in flags.err, str(flags)
    local_engine = cli("bench", "examples/local-rollout.yaml", "--engine", "azure-load-testing",
                       "--load-testing", "rts-load")
    assert local_engine.code == 1, str(local_engine)
    assert "the local backend has no load testing service" in local_engine.err, str(local_engine)
    bad = cli("bench", "examples/local-rollout.yaml", "--engine", "azure-load-testing", "--load-testing", "../x")
    assert bad.code == 1 and "--load-testing: '../x' is not a valid name" in bad.err, str(bad)

    def gate_on_azure(m: dict) -> None:   # on azure, the gate's regions must each get an engine
        m["load_testing"] = {"name": LOAD_TESTING}
        m["endpoints"][0]["rollout"] = {"gate": {"engine": "azure-load-testing", "engines": 1,
                                                 "regions": ["westeurope", "eastus"]}}

    edit_yaml(cli.workdir / "azure.yaml", gate_on_azure)
    regions = cli("validate", "azure.yaml")
    assert regions.code == 1 and "endpoints[0].rollout.gate.regions: 2 regions need 2 engines" in regions.err, \
        str(regions)


def test_apply_creates_an_owned_load_testing_resource_with_an_identity(applied: dict, cli: Cli, emu: Emulator):
    found = emu.resource(load_test_id(emu))
    assert found is not None
    assert found["tags"]["managed-by"] == "rtsctl" and found["tags"]["rtsctl.owner"] == "azure-managed-endpoint"
    assert found["identity"]["type"] == "SystemAssigned"
    assert found["properties"]["description"] == "rtsctl bench in the cloud"
    assert cli("plan", MANIFEST, "--detailed-exitcode").code == 0   # converged: nothing to do


def test_bench_on_two_engines_reports_judges_and_keeps_the_key_out_of_the_test(applied: dict, cli: Cli,
                                                                               emu: Emulator, tmp_path: Path,
                                                                               monkeypatch):
    """One run (a cloud run is the slow part): 2 engines, the report with the service's figures and portal link, the
    result files, --max-error-rate passing and --max-p99 crossed -- exit 3, judged by rtsctl and by the service's
    pass/fail criteria alike -- and the key in none of the script, the config, the test definition, the output."""
    key = applied["primary_key"]
    html = tmp_path / "report.html"
    run = cli("bench", MANIFEST, "--engine", "azure-load-testing", "--engines", "2", "--regions", "westeurope,eastus",
              "-d", "2s", "-c", "2", "-o", "json", "--progress", "--max-error-rate", "1%", "--max-p99", "0.001ms",
              "--html-out", str(html), "--results-dir", str(tmp_path / "results"))
    assert run.code == 3, str(run)
    doc = json.loads(run.out)
    assert doc["requests"] > 0 and doc["errors"]["total"] == 0, doc
    assert doc["load"]["engine"] == "azure-load-testing" and doc["load"]["engines"] == 2
    assert doc["service"]["status"] == "DONE" and doc["service"]["test_id"] == TEST_ID
    assert doc["service"]["test_result"] == "FAILED", doc["service"]           # the service's own criteria
    assert doc["service"]["portal_url"].startswith("https://")
    assert doc["latency_ms"]["p99_ms"] > 0.001
    assert 0 < doc["duration_s"] <= 5 and doc["rps"] > 0, doc                 # the load's 2 s, not provisioning
    assert doc["thresholds"]["max_error_rate"]["ok"] is True and doc["thresholds"]["max_p99_ms"]["ok"] is False
    assert doc["verdict"] == "threshold crossed"
    assert ": EXECUTING" in run.err and ": DONE" in run.err, run.err           # the service's phases, live
    assert "open the run in the Azure portal" in html.read_text()
    assert {p.name for p in (tmp_path / "results").iterdir()} >= {"csv.zip"}
    assert key not in run.out + run.err

    # the workspace's vault is under RBAC: the resource's identity may read secrets (Key Vault Secrets User), rtsctl's
    # caller may write them (Key Vault Secrets Officer), each granted once
    principal = emu.resource(load_test_id(emu))["identity"]["principalId"]
    grants = sorted((g["principalId"] == principal, g["roleDefinitionId"].rsplit("/", 1)[-1]) for g in
                    (emu.resource(i)["properties"] for i in emu.resources() if "/roleAssignments/" in i))
    assert grants == [(False, "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"), (True, "4633458b-17de-408a-b874-0445c86b69e6")]

    admin = data_plane(emu, monkeypatch)
    test = admin.get_test(TEST_ID)
    assert test["kind"] == "Locust" and test["loadTestConfiguration"]["engineInstances"] == 2
    assert test["loadTestConfiguration"]["regionalLoadTestConfig"] == [
        {"region": "westeurope", "engineInstances": 1}, {"region": "eastus", "engineInstances": 1}]
    secret = test["secrets"]["RTSCTL_ENDPOINT_KEY"]
    assert secret["type"] == "AKV_SECRET_URI" and "/secrets/rtsctl-rts-lt-key/" in secret["value"]
    assert key not in json.dumps(test.as_dict())                               # the definition holds no key
    assert not test.get("environmentVariables")
    files = {f["fileName"]: fetch(f["url"]) for f in admin.list_test_files(TEST_ID)}
    assert set(files) == {"locustfile.py", "rtsctl-bench.json"}, set(files)
    assert all(key.encode() not in data for data in files.values())            # nor do the script and its config
    data_plane_versions = {v for _, path, v in emu.api_versions if ".cnt-prod.loadtesting.azure.com" in path}
    assert data_plane_versions == {"2025-05-01-preview"}, data_plane_versions   # Locust's preview API, every call
    config = json.loads(files["rtsctl-bench.json"])
    assert config["users"] == 2 and config["verify"] is True   # the engines' own trust store, not a local CA path


def test_per_request_results_in_jmeter_csv_make_the_report_exact(tmp_path: Path):
    """When the service's result archive holds its per-request logs (JMeter CSV, one per engine: how-to-export-test-
    results), the report counts every request by status from them instead of the service's aggregates; an archive
    without them (the emulator's Locust CSVs) leaves the report as the service's figures made it."""
    import zipfile

    from rtsctl.bench.cloud import per_request

    header = "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage\n"
    logs = tmp_path / "csv.zip"
    with zipfile.ZipFile(logs, "w") as archive:
        archive.writestr("engine1_results.csv", header + "".join(
            f"{1765160000000 + i * 250},{ms},score,200,OK,u 1-1,text,true,\n" for i, ms in enumerate((10, 20, 30))))
        archive.writestr("engine2_results.csv", header + "1765160000500,40,score,500,Server Error,u 2-1,text,false,\n")
        archive.writestr("results_stats.csv", "Type,Name,Request Count\n,Aggregated,4\n")
    doc = {"target": {"url": "https://x/score"}, "load": {"mode": "closed", "connections": 2, "engine":
           "azure-load-testing", "engines": 2, "notes": ["the service's aggregates"]}, "interrupted": False,
           "service": {"run_id": "r1"}, "messages": []}
    exact = per_request(doc, [logs])
    assert exact["requests"] == 4 and exact["ok"] == 3 and exact["errors"]["by_status"] == {"500": 1}, exact
    assert exact["latency_ms"]["max_ms"] == 40 and exact["histogram"], exact["latency_ms"]
    assert exact["load"]["engine"] == "azure-load-testing" and "per-request" in exact["load"]["notes"][0]
    assert exact["service"] == {"run_id": "r1"}

    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("results_stats.csv", "Type,Name,Request Count\n,Aggregated,4\n")
    assert per_request(doc, [other]) is doc


def test_thresholds_become_the_tests_criteria_and_unset_ones_are_removed():
    """A reused test is updated by JSON merge patch: the thresholds of this run become criteria (the error rate as
    the service's percentage), one it does not set is sent as null so an earlier run's does not linger."""
    from rtsctl.bench.cloud import criteria
    from rtsctl.bench.config import BenchConfig

    both = criteria(BenchConfig(url="https://x/score", max_error_rate=0.01, max_p99_ms=250.0))
    assert both["rtsctl-max-error-rate"] == {"clientMetric": "error", "aggregate": "percentage", "condition": ">",
                                             "value": 1.0, "action": "continue"}
    assert both["rtsctl-max-p99"]["value"] == 250.0 and both["rtsctl-max-p99"]["aggregate"] == "p99"
    assert criteria(BenchConfig(url="https://x/score")) == {"rtsctl-max-error-rate": None, "rtsctl-max-p99": None}


def test_destroy_deletes_the_load_testing_resource_then_import_takes_one_made_outside_rtsctl(applied: dict, cli: Cli,
                                                                                              emu: Emulator):
    """Destroy deletes the resource; then one made by someone else is `exists, not owned` until `rtsctl import`
    claims it, which only adds the ownership tags. One test, so that no xdist worker runs the import without the
    destroy before it (as two tests, a worker given only the second failed: the applied resource was still there)."""
    cli.ok("destroy", MANIFEST, "-y")
    assert emu.resource(load_test_id(emu)) is None
    emu.seed_resource(f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/{RG}",
                      {"location": "westeurope", "tags": {"owner": "platform-team"}})
    emu.seed_resource(load_test_id(emu), {"location": "westeurope", "tags": {"team": "perf"},
                                          "identity": {"type": "SystemAssigned"},
                                          "properties": {"description": "rtsctl bench in the cloud"}})
    planned = cli("plan", MANIFEST)
    assert f"exists, not owned: rtsctl import {MANIFEST} load_testing.{LOAD_TESTING}" in planned.out, str(planned)
    cli.ok("import", MANIFEST, f"load_testing.{LOAD_TESTING}", "-y")
    tags = emu.resource(load_test_id(emu))["tags"]
    assert tags["rtsctl.owner"] == "azure-managed-endpoint" and tags["team"] == "perf", tags
