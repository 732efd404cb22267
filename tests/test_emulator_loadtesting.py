"""The emulator's Azure Load Testing and Key Vault, proven with the REAL SDKs: azure-mgmt-loadtesting,
azure-developer-loadtesting (LoadTestAdministrationClient / LoadTestRunClient) and azure-keyvault-secrets.

One Locust test runs for real on 2 engines (a Locust master and 2 workers) against a 127.0.0.1 server that counts
what it receives and answers 401 unless the request carries the key, which the script reads from the environment:
the key is a Key Vault secret the test references, so 0 errors proves the secret reached the engines, and the
server's own count proves the statistics are measured. The run is shared by the tests of this module (cheap).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import threading
import time
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.azure_emulator import Emulator, clients

pytest.importorskip("azure.developer.loadtesting")
pytest.importorskip("azure.mgmt.loadtesting")
pytest.importorskip("azure.keyvault.secrets")

RG, VAULT, KEY = "lt-rg", "kvloadtests1", "key-7f3a9c1e5b"
SECRETS_USER, SECRETS_OFFICER = "4633458b-17de-408a-b874-0445c86b69e6", "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
POLL = 0.25     # status polls: a 4 s run still shows EXECUTING many times over, at less CPU than 10 a second
SCRIPT = b'''import os
from locust import HttpUser, constant, task


class Scorer(HttpUser):
    host = os.environ["TARGET_URL"]
    wait_time = constant(0.05)

    @task
    def score(self):
        self.client.post("/score", json={"data": [1, 2]}, name="score",
                         headers={"Authorization": "Bearer " + os.environ.get("ENDPOINT_KEY", "missing")})
'''


class Target:
    """A 127.0.0.1 HTTP server that requires the key and counts the requests it answered 200."""

    def __init__(self):
        self.ok = 0
        self.refused = 0
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                good = self.headers.get("Authorization") == f"Bearer {KEY}"
                if good:
                    target.ok += 1
                else:
                    target.refused += 1
                self.send_response(200 if good else 401)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def vault_id(emu: Emulator) -> str:
    return (f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/{RG}/providers/Microsoft.KeyVault/"
            f"vaults/{VAULT}")


def grant_secrets(emu: Emulator, principal_id: str, permissions: tuple[str, ...] = ("get",)) -> None:
    """An access policy giving a principal secret permissions on the vault (Vaults_UpdateAccessPolicy, through the
    generic ARM client as rtsctl's Azure backend sends it)."""
    clients.resource_client(emu).resources.begin_create_or_update_by_id(
        f"{vault_id(emu)}/accessPolicies/add", {"properties": {"accessPolicies": [
            {"tenantId": emu.settings.tenant_id, "objectId": principal_id,
             "permissions": {"secrets": list(permissions)}}]}}, api_version="2023-07-01").result()


def assign_role(emu: Emulator, scope: str, role: str, principal_id: str) -> None:
    """A role assignment (Microsoft.Authorization/roleAssignments) of a built-in role id at `scope`."""
    definition = (f"/subscriptions/{emu.settings.subscription_id}/providers/Microsoft.Authorization/"
                  f"roleDefinitions/{role}")
    clients.resource_client(emu).resources.begin_create_or_update_by_id(
        f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
        {"properties": {"roleDefinitionId": definition, "principalId": principal_id,
                        "principalType": "ServicePrincipal"}}, api_version="2022-04-01").result()


def live_metrics(runs, run_id: str) -> list[dict]:
    """TotalRequests points read while the run is still EXECUTING (what a client shows as live progress); [] if
    the run ended before any point was written."""
    deadline = time.monotonic() + 120
    while (run := runs.get_test_run(run_id))["status"] not in ("DONE", "FAILED", "CANCELLED"):
        assert time.monotonic() < deadline
        if run["status"] == "EXECUTING":
            span = f"{run['startDateTime']}/2999-01-01T00:00:00Z"
            points = [p for series in runs.list_metrics(run_id, metric_name="TotalRequests", time_interval=span,
                                                        metric_namespace="LoadTestRunMetrics")
                      for p in series["data"]]
            if points and runs.get_test_run(run_id)["status"] == "EXECUTING":
                return points
        time.sleep(POLL)
    return []


@pytest.fixture(scope="module")
def world():
    from tests.locust_tool import locust_python

    locust_python()                          # provisioned once (cached); not part of what a run costs
    target = Target()
    emu = Emulator().start()
    try:
        sub = emu.settings.subscription_id
        emu.seed_resource(f"/subscriptions/{sub}/resourceGroups/{RG}", {"location": "westeurope"})
        emu.seed_resource(vault_id(emu), {"location": "westeurope", "properties": {}})
        # Key Vault checks every caller: this service principal (token oid) writes secrets through a policy
        grant_secrets(emu, emu.settings.client_id, ("get", "list", "set", "delete"))
        secret = clients.secret_client(emu, f"https://{VAULT}.vault.azure.net").set_secret("endpoint-key", KEY)
        resource = clients.load_test_mgmt_client(emu).load_tests.begin_create_or_update(
            RG, "lt1", {"location": "westeurope", "identity": {"type": "SystemAssigned"}}).result()
        grant_secrets(emu, resource.identity.principal_id)
        admin = clients.load_test_admin_client(emu, resource.data_plane_uri)
        runs = clients.load_test_run_client(emu, resource.data_plane_uri)
        admin.create_or_update_test("score-test", {
            "kind": "Locust", "displayName": "score test", "loadTestConfiguration": {"engineInstances": 2},
            "environmentVariables": {"TARGET_URL": target.url, "LOCUST_USERS": "2", "LOCUST_SPAWN_RATE": "10",
                                     "LOCUST_RUN_TIME": "4s"},
            "secrets": {"ENDPOINT_KEY": {"type": "AKV_SECRET_URI", "value": secret.id}},
            "passFailCriteria": {"passFailMetrics": {
                "errors": {"clientMetric": "error", "aggregate": "percentage", "condition": ">", "value": 5},
                "volume": {"clientMetric": "requests", "aggregate": "count", "condition": ">", "value": 1}}}})
        uploaded = admin.begin_upload_test_file("score-test", "locustfile.py", SCRIPT, file_type="TEST_SCRIPT",
                                                _polling_interval=POLL).result()
        yield {"emu": emu, "target": target, "secret": secret, "resource": resource, "admin": admin, "runs": runs,
               "uploaded": uploaded}
    finally:
        emu.stop()
        target.server.shutdown()


def test_key_vault_secrets_take_the_challenge_and_keep_versions(world):
    emu, secret = world["emu"], world["secret"]
    assert re.fullmatch(rf"https://{VAULT}\.vault\.azure\.net/secrets/endpoint-key/[0-9a-f]{{32}}", secret.id)
    host = f"//{VAULT}.vault.azure.net/secrets/endpoint-key"
    statuses = [status for method, path, status in emu.request_log if path == host and method == "PUT"]
    assert statuses[:2] == [401, 200]          # the SDK's unauthenticated first request, then the real one
    client = clients.secret_client(emu, f"https://{VAULT}.vault.azure.net")
    newer = client.set_secret("endpoint-key", "rotated")
    assert client.get_secret("endpoint-key").value == "rotated"
    assert client.get_secret("endpoint-key", secret.properties.version).value == KEY
    assert newer.properties.version != secret.properties.version
    # a token for another resource (ARM) is refused with the challenge again
    arm_token = clients.credential(emu).get_token("https://management.azure.com/.default").token
    answer = requests.get(f"https://{VAULT}.vault.azure.net/secrets/endpoint-key?api-version=7.5",
                          headers={"Authorization": f"Bearer {arm_token}"}, verify=emu.ca_path,
                          proxies={"https": emu.proxy_url}, timeout=10)
    assert answer.status_code == 401 and 'resource="https://vault.azure.net"' in answer.headers["WWW-Authenticate"]
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError, match="SecretNotFound"):
        client.get_secret("no-such-secret")
    # every caller is checked against the vault's access policies: this one may delete, not purge
    client.set_secret("short-lived", "x")
    client.begin_delete_secret("short-lived", _polling_interval=POLL).result()
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError, match="does not have secrets purge permission"):
        client.purge_deleted_secret("short-lived")


def test_an_rbac_vault_wants_a_secret_reading_role_for_the_identity(world):
    """A vault with enableRbacAuthorization (what azure-ai-ml's workspace template creates) ignores access policies:
    the identity needs a role assignment (Key Vault Secrets User here, at the vault's scope)."""
    from azure.core.exceptions import HttpResponseError

    emu = world["emu"]
    rbac_vault = vault_id(emu).replace(VAULT, "kvrbac1")
    emu.seed_resource(rbac_vault, {"location": "westeurope", "properties": {"enableRbacAuthorization": True}})
    vault = clients.secret_client(emu, "https://kvrbac1.vault.azure.net")
    with pytest.raises(HttpResponseError, match="ForbiddenByRbac|not authorized"):   # its creator included
        vault.set_secret("k", KEY)
    assign_role(emu, rbac_vault, SECRETS_OFFICER, emu.settings.client_id)
    secret = vault.set_secret("k", KEY)
    resource = clients.load_test_mgmt_client(emu).load_tests.begin_create_or_update(
        RG, "lt-rbac", {"location": "westeurope", "identity": {"type": "SystemAssigned"}}).result()
    grant_secrets(emu, resource.identity.principal_id)     # a policy on the OTHER vault: no help here
    admin = clients.load_test_admin_client(emu, resource.data_plane_uri)
    runs = clients.load_test_run_client(emu, resource.data_plane_uri)
    # 9 engines: more than the emulator runs, so a run that got past the vault fails on its engines, cheaply
    admin.create_or_update_test("rbac-test", {"kind": "Locust", "loadTestConfiguration": {"engineInstances": 9},
                                              "secrets": {"K": {"type": "AKV_SECRET_URI", "value": secret.id}}})
    admin.begin_upload_test_file("rbac-test", "locustfile.py", SCRIPT, file_type="TEST_SCRIPT",
                                 _polling_interval=POLL).result()
    denied = runs.begin_test_run("rbac-1", {"testId": "rbac-test"}, _polling_interval=POLL).result()
    assert denied["status"] == "FAILED" and "uses Azure RBAC" in denied["errorDetails"][0]["message"]
    assign_role(emu, rbac_vault, SECRETS_USER, resource.identity.principal_id)
    allowed = runs.begin_test_run("rbac-2", {"testId": "rbac-test"}, _polling_interval=POLL).result()
    assert allowed["status"] == "FAILED" and "engines" in allowed["errorDetails"][0]["message"]
    with pytest.raises(HttpResponseError):
        admin.create_or_update_test("rbac-test", {"loadTestConfiguration": {"engineInstances": 401}})


def test_vault_access_policies_update_per_permission(world):
    emu = world["emu"]
    arm = clients.resource_client(emu).resources
    someone = "0b0b0b0b-0000-4000-8000-000000000001"

    def update(kind: str, secrets: list[str]) -> None:
        arm.begin_create_or_update_by_id(f"{vault_id(emu)}/accessPolicies/{kind}", {"properties": {"accessPolicies": [
            {"tenantId": emu.settings.tenant_id, "objectId": someone, "permissions": {"secrets": secrets}}]}},
            api_version="2023-07-01").result()

    def policy() -> dict | None:
        vault = arm.get_by_id(vault_id(emu), api_version="2023-07-01")
        assert vault.properties["vaultUri"] == f"https://{VAULT}.vault.azure.net/"
        return next((p["permissions"] for p in vault.properties["accessPolicies"] if p["objectId"] == someone), None)

    update("add", ["get"])
    update("add", ["list"])
    assert policy() == {"secrets": ["get", "list"]}
    update("remove", ["get"])
    assert policy() == {"secrets": ["list"]}
    update("remove", ["list"])
    assert policy() is None


def test_the_workspace_key_vault_answers_under_its_name(world):
    emu = world["emu"]
    ws = (f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/{RG}/providers/"
          f"Microsoft.MachineLearningServices/workspaces/ws-lt")
    vault_id = emu.seed_resource(ws, {"location": "westeurope"})["properties"]["keyVault"]
    name = vault_id.rsplit("/", 1)[-1]
    client = clients.secret_client(emu, f"https://{name}.vault.azure.net")
    assert client.set_secret("ws-secret", "v1").value == "v1"
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError, match="VaultNotFound"):
        clients.secret_client(emu, "https://nosuchvault1.vault.azure.net").set_secret("x", "y")


def test_load_test_resource_through_azure_mgmt_loadtesting(world):
    emu, resource = world["emu"], world["resource"]
    assert re.fullmatch(r"[0-9a-f-]{36}\.westeurope\.cnt-prod\.loadtesting\.azure\.com", resource.data_plane_uri)
    assert resource.identity.principal_id and resource.provisioning_state == "Succeeded"
    mgmt = clients.load_test_mgmt_client(emu)
    assert "lt1" in [r.name for r in mgmt.load_tests.list_by_resource_group(RG)]
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError, match="LocationNotAvailableForResourceType"):
        mgmt.load_tests.begin_create_or_update(RG, "lt-moon", {"location": "moonbase1"}).result()
    # the data plane wants a token issued for Load Testing, not one for ARM
    arm_token = clients.credential(emu).get_token("https://management.azure.com/.default").token
    for headers in ({}, {"Authorization": f"Bearer {arm_token}"}):
        answer = requests.get(f"https://{resource.data_plane_uri}/tests?api-version=2024-12-01-preview",
                              headers=headers, verify=emu.ca_path, proxies={"https": emu.proxy_url}, timeout=10)
        assert answer.status_code == 401


def test_a_locust_run_on_two_engines_reports_what_locust_measured(world):
    """The one real run of this module (its checks in one test, so parallel workers start it once): live client
    metrics while it executes, then statistics, criteria, metrics and result files, all from what Locust measured."""
    emu, runs, target = world["emu"], world["runs"], world["target"]
    poller = runs.begin_test_run("run-1", {"testId": "score-test", "displayName": "run one"}, _polling_interval=POLL)
    assert live_metrics(runs, "run-1"), "no client metrics were served while the run was executing"
    run = poller.result()
    assert run["status"] == "DONE", run.get("errorDetails")
    total = run["testRunStatistics"]["Total"]
    assert total["sampleCount"] > 0 and total["errorCount"] == 0      # every request carried the Key Vault secret
    # Locust's count is the server's, but for the last report: the master waits 0.5 s for the workers' final
    # statistics when it quits (locust runners.py MasterRunner.quit), which a loaded machine can miss
    assert target.refused == 0 and 0 < total["sampleCount"] <= target.ok
    assert run["testRunStatistics"]["score"]["sampleCount"] == total["sampleCount"]
    assert total["minResTime"] <= total["meanResTime"] <= total["maxResTime"]
    assert total["medianResTime"] <= total["pct1ResTime"] <= total["pct3ResTime"]   # p50 <= p90 <= p99 (bucketed)
    assert run["virtualUsers"] == 4                                    # LOCUST_USERS is per engine: 2 x 2
    assert run["kind"] == "Locust" and run["loadTestConfiguration"]["engineInstances"] == 2
    assert run["duration"] >= 4000 and run["startDateTime"] <= run["endDateTime"]
    # a crossed criterion fails the run, the other passes, both carry the measured value
    metrics = run["passFailCriteria"]["passFailMetrics"]
    assert run["testResult"] == "FAILED"
    assert metrics["volume"]["result"] == "failed" and metrics["volume"]["actualValue"] == total["sampleCount"]
    assert metrics["errors"]["result"] == "passed" and metrics["errors"]["actualValue"] == 0.0
    assert KEY not in json.dumps(runs.get_test_run("run-1").as_dict())      # the run shows the reference too
    # client metrics and the result files
    assert next(n["name"] for n in runs.get_metric_namespaces("run-1")["value"]) == "LoadTestRunMetrics"
    names = [d["name"] for d in runs.get_metric_definitions("run-1", metric_namespace="LoadTestRunMetrics")["value"]]
    assert names == ["VirtualUsers", "ResponseTime", "TotalRequests", "Errors"]
    span = f"{run['startDateTime']}/{run['endDateTime']}"
    series = list(runs.list_metrics("run-1", metric_name="TotalRequests", metric_namespace="LoadTestRunMetrics",
                                    time_interval=span, interval="PT5S"))
    assert sum(point["value"] for point in series[0]["data"]) == total["sampleCount"]
    by_sampler = list(runs.list_metrics("run-1", metric_name="TotalRequests", metric_namespace="LoadTestRunMetrics",
                                        time_interval=span, body={"filters": [{"name": "SamplerName",
                                                                               "values": ["score"]}]}))
    assert by_sampler[0]["dimensionValues"][0]["value"] == "score"
    users = next(iter(runs.list_metrics("run-1", metric_name="VirtualUsers", metric_namespace="LoadTestRunMetrics",
                                        time_interval=span)))
    assert 1 <= max(point["value"] for point in users["data"]) <= 4     # as the workers reported them (every 3 s)
    outputs = run["testArtifacts"]["outputArtifacts"]
    download = requests.get(outputs["resultFileInfo"]["url"], verify=emu.ca_path, proxies={"https": emu.proxy_url},
                            timeout=10)
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    stats = archive.read("results_stats.csv").decode()
    aggregated = next(line for line in stats.splitlines() if line.startswith(",Aggregated,"))
    assert int(aggregated.split(",")[2]) == total["sampleCount"]
    logs = zipfile.ZipFile(io.BytesIO(requests.get(outputs["logsFileInfo"]["url"], verify=emu.ca_path,
                                                   proxies={"https": emu.proxy_url}, timeout=10).content))
    assert sorted(logs.namelist()) == ["engine1.log", "engine2.log", "master.log"]


def test_the_test_definition_shows_the_secret_reference_never_its_value(world):
    admin, secret = world["admin"], world["secret"]
    test = admin.get_test("score-test")
    assert test["secrets"]["ENDPOINT_KEY"] == {"type": "AKV_SECRET_URI", "value": secret.id}
    assert KEY not in json.dumps(test.as_dict())
    assert world["uploaded"]["validationStatus"] == "VALIDATION_SUCCESS"
    assert test["inputArtifacts"]["testScriptFileInfo"]["fileName"] == "locustfile.py"
    # a plain SECRET_VALUE is kept for the engines but never shown either (guess: the service does not echo it)
    plain = admin.create_or_update_test("plain-secret", {"kind": "Locust", "secrets": {
        "TOKEN": {"type": "SECRET_VALUE", "value": "plain-" + KEY}}})
    assert plain["secrets"]["TOKEN"] == {"type": "SECRET_VALUE"} and KEY not in json.dumps(plain.as_dict())


def test_stopping_a_run_ends_its_engines(world):
    emu, admin, runs = world["emu"], world["admin"], world["runs"]
    admin.create_or_update_test("stop-test", {"kind": "Locust", "loadTestConfiguration": {"engineInstances": 1},
                                              "environmentVariables": {"TARGET_URL": world["target"].url}})
    admin.begin_upload_test_file("stop-test", "locustfile.py", SCRIPT, file_type="TEST_SCRIPT",
                                 _polling_interval=POLL).result()
    runs.begin_test_run("run-stop", {"testId": "stop-test", "environmentVariables": {"LOCUST_RUN_TIME": "60s"}},
                        _polling_interval=POLL)
    deadline = time.monotonic() + 60
    while runs.get_test_run("run-stop")["status"] != "EXECUTING":
        assert time.monotonic() < deadline
        time.sleep(POLL)
    state = next(iter(emu.ctx.loadtesting.states.values()))
    pids = [p.pid for p in state.runs["run-stop"].engine.procs]
    assert runs.stop_test_run("run-stop")["status"] == "CANCELLING"
    while (run := runs.get_test_run("run-stop"))["status"] not in ("CANCELLED", "DONE", "FAILED"):
        assert time.monotonic() < deadline
        time.sleep(POLL)
    assert run["status"] == "CANCELLED"
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize("identity, refusal", [(None, "no system-assigned managed identity"),
                                               ({"type": "SystemAssigned"}, "no access policy")])
def test_a_run_reads_the_vault_only_with_an_identity_the_vault_lets_in(world, identity, refusal):
    emu, secret = world["emu"], world["secret"]
    name = "lt-bare" if identity is None else "lt-no-policy"
    bare = clients.load_test_mgmt_client(emu).load_tests.begin_create_or_update(
        RG, name, {"location": "westeurope", **({"identity": identity} if identity else {})}).result()
    admin = clients.load_test_admin_client(emu, bare.data_plane_uri)
    admin.create_or_update_test("bare-test", {"kind": "Locust", "loadTestConfiguration": {"engineInstances": 1},
                                              "secrets": {"K": {"type": "AKV_SECRET_URI", "value": secret.id}}})
    admin.begin_upload_test_file("bare-test", "locustfile.py", SCRIPT, file_type="TEST_SCRIPT",
                                 _polling_interval=POLL).result()
    run = clients.load_test_run_client(emu, bare.data_plane_uri).begin_test_run(
        "bare-run", {"testId": "bare-test"}, _polling_interval=POLL).result()
    assert run["status"] == "FAILED" and refusal in run["errorDetails"][0]["message"]
    assert KEY not in run["errorDetails"][0]["message"]


def test_a_script_python_cannot_parse_fails_validation(world):
    from azure.core.exceptions import HttpResponseError

    admin, runs = world["admin"], world["runs"]
    admin.create_or_update_test("broken", {"kind": "Locust", "loadTestConfiguration": {"engineInstances": 1}})
    info = admin.begin_upload_test_file("broken", "locustfile.py", b"def (:\n", file_type="TEST_SCRIPT",
                                        _polling_interval=POLL).result()
    assert info["validationStatus"] == "VALIDATION_FAILURE" and "parsed" in info["validationFailureDetails"]
    with pytest.raises(HttpResponseError, match="no validated test script"):
        runs.begin_test_run("r-broken", {"testId": "broken"}, _polling_interval=POLL)
    # engines split over regions must add up, in regions Load Testing offers, the resource's own among them
    for regional in ([{"region": "westeurope", "engineInstances": 1}, {"region": "eastus", "engineInstances": 2}],
                     [{"region": "westeurope", "engineInstances": 1}, {"region": "atlantis", "engineInstances": 1}],
                     [{"region": "eastus", "engineInstances": 2}]):
        with pytest.raises(HttpResponseError, match="regionalLoadTestConfig"):
            admin.create_or_update_test("regional", {"kind": "Locust", "loadTestConfiguration": {
                "engineInstances": 2, "regionalLoadTestConfig": regional}})
    admin.create_or_update_test("regional", {"kind": "Locust", "loadTestConfiguration": {
        "engineInstances": 2, "regionalLoadTestConfig": [{"region": "westeurope", "engineInstances": 1},
                                                         {"region": "eastus", "engineInstances": 1}]}})
    # a file name never reaches Locust's command line as an option
    with pytest.raises(HttpResponseError, match="not a valid file name"):
        admin.begin_upload_test_file("broken", "--help.py", SCRIPT, file_type="TEST_SCRIPT", _polling_interval=POLL)
