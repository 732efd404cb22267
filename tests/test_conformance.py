"""rtsctl against bodies recorded on REAL Azure (tests/conformance: a replay server, not an emulator).

The real azure-ai-ml / azure-mgmt / azure-identity SDKs run inside the rtsctl subprocess and read the recorded
answers verbatim (ids expanded only where the excerpts elide them; see tests/conformance/server.py). A world that
matches its manifest must plan no change; the recorded error bodies must give the messages users need.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, Cli
from tests.conformance.server import R01_ENDPOINT, R02_MISSING_MODEL, SUBSCRIPTION, WS_PATH, ReplayServer

pytest.importorskip("azure.ai.ml")

#: rtsctl's own bookkeeping (content digests in tags): a world rtsctl did not create cannot carry them
BOOKKEEPING = {"code.digest", "environment.digest", "model.digest", "digest"}


@pytest.fixture
def replay(monkeypatch):
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    with ReplayServer() as server:
        yield server


def plan_json(replay: ReplayServer, tmp_path: Path) -> dict:
    cli = Cli(tmp_path / "home", REPO / "tests" / "conformance", replay.env())
    result = cli("plan", "r01.yaml", "-o", "json", timeout=300)
    assert result.code == 0, str(result)
    return {a["address"]: a for a in json.loads(result.out)["actions"]}


def test_the_recorded_endpoint_deployment_and_traffic_plan_no_change(replay, tmp_path):
    actions = plan_json(replay, tmp_path)
    endpoint, traffic = actions[f"endpoint.{R01_ENDPOINT}"], actions[f"traffic.{R01_ENDPOINT}"]
    # made by the SDK's own tests, not by rtsctl: owned by nobody, so `rtsctl import` first; the plan still
    # shows what apply would change once imported, which must be nothing
    assert (endpoint["action"], endpoint["changes"]) == ("not-owned", []), endpoint
    assert f"rtsctl import r01.yaml endpoint.{R01_ENDPOINT}" in endpoint["reasons"][0], endpoint
    assert (traffic["action"], traffic["changes"]) == ("not-owned", []), traffic
    deployment = actions[f"deployment.{R01_ENDPOINT}/{R01_ENDPOINT}"]
    # everything the service reports (instance type, request settings with maxQueueWait PT0S / requestTimeout PT5S,
    # probes, description, environment variables, scale) matches; only rtsctl's digest tags are missing
    assert deployment["action"] == "not-owned", deployment
    assert {c["path"] for c in deployment["changes"]} <= BOOKKEEPING, deployment["changes"]
    assert deployment["reasons"] == [f"exists, not owned: rtsctl import r01.yaml deployment.{R01_ENDPOINT}/"
                                     f"{R01_ENDPOINT}"], deployment
    # the recorded asset versions are found and differ only in rtsctl's digest tag
    for address in ("model.mir_test_model", "environment.online-endpoint-mir-test"):
        assert {c["path"] for c in actions[address]["changes"]} <= BOOKKEEPING, actions[address]
    # what the recordings do not hold reads as absent (the recorded ARM 404), not as an error
    assert actions["workspace.00000"]["action"] == "create"
    assert ("GET", f"{WS_PATH}/onlineEndpoints/{R01_ENDPOINT}", 200) in replay.requests


def test_plan_with_detailed_exitcode_reports_changes_for_the_unrecorded_parts(replay, tmp_path):
    cli = Cli(tmp_path / "home", REPO / "tests" / "conformance", replay.env())
    result = cli("plan", "r01.yaml", "--detailed-exitcode", timeout=300)
    assert result.code == 2, str(result)         # the group and workspace GETs are not recorded: 404 -> create
    assert "# workspace.00000 will be created" in result.out
    assert f"endpoint.{R01_ENDPOINT} will be" not in result.out and f"traffic.{R01_ENDPOINT} will be" not in result.out
    assert "0 to replace" in result.out          # nothing the service normalises reads as an immutable change


def test_the_recorded_model_not_found_body_gives_the_specific_code_and_message(replay, monkeypatch):
    from azure.ai.ml import MLClient
    from azure.core.exceptions import HttpResponseError
    from azure.identity import ClientSecretCredential

    from reconcilers.azure.errors import azure_errors, code_and_message, is_not_found
    from rtsctl.support.errors import RtsctlError

    for name, value in replay.env().items():
        monkeypatch.setenv(name, value)
    s = replay.settings
    cred = ClientSecretCredential(s.tenant_id, s.client_id, s.client_secret, authority=replay.url,
                                  disable_instance_discovery=True, connection_verify=replay.ca_path)
    ml = MLClient(cred, SUBSCRIPTION, "00000", "00000", cloud=f"Replay{replay.port}", cloud_metadata={
        "azure_portal": replay.url + "/", "resource_manager": replay.url + "/", "active_directory": replay.url + "/",
        "aml_resource_id": replay.url + "/", "storage_endpoint": "core.windows.net",
        "registry_discovery_endpoint": replay.url + "/"})
    with pytest.raises(HttpResponseError) as caught:
        list(ml.models.list(R02_MISSING_MODEL))
    exc = caught.value
    assert exc.status_code == 404 and is_not_found(exc)
    assert code_and_message(exc) == ("ModelNotFound", f"Model container with name: {R02_MISSING_MODEL} not found.")
    with pytest.raises(RtsctlError) as wrapped:
        with azure_errors(f"model.{R02_MISSING_MODEL}"):
            raise exc
    text = str(wrapped.value)
    assert f"model.{R02_MISSING_MODEL}" in text and "ModelNotFound" in text and "UserError" not in text
    assert "\n" not in text.strip()
    # the recorded token answer (R01 #16) is what aml_token endpoints report as their key
    assert ml.online_endpoints.get_keys(R01_ENDPOINT).access_token == "eyJ..."


def test_an_endpoint_still_creating_has_no_scoring_uri_and_output_says_so(monkeypatch, tmp_path):
    """R01 #1 verbatim: right after the endpoint PUT it is `Creating` with `scoringUri: null` (issue 7 item 4)."""
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    with ReplayServer("creating") as replay:
        cli = Cli(tmp_path / "home", REPO / "tests" / "conformance", replay.env())
        text = cli("output", "r01.yaml", timeout=300)
        assert text.code == 0, str(text)
        assert "Creating" in text.out and "Traceback" not in text.err
        # one endpoint named: one JSON object (without --endpoint, a list on the merged main)
        as_json = cli("output", "r01.yaml", "-o", "json", "--endpoint", R01_ENDPOINT, timeout=300)
        assert as_json.code == 0, str(as_json)
        assert json.loads(as_json.out)["scoring_uri"] is None
        # verbs that send requests at once say why they cannot, naming the state (never "unknown url type: None")
        (tmp_path / "request.json").write_text('{"name": "a"}')
        for verb in (("bench", "r01.yaml", "-n", "1"), ("invoke", "r01.yaml", "--request", str(tmp_path / "request.json"))):
            refused = cli(*verb, timeout=300)
            assert refused.code == 1 and "Traceback" not in refused.err, str(refused)
            assert f"endpoint {R01_ENDPOINT} has no scoring URI yet (provisioning state: Creating)" in refused.err, \
                str(refused)
