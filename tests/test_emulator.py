"""The Azure emulator, proven with the REAL SDKs (azure-identity, azure-mgmt-*, azure-ai-ml, azure-storage-blob).

No test doubles: every call below goes over HTTPS to the emulator, blob uploads through its CONNECT proxy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `tests.azure_emulator` is imported as a package from the repo root
    sys.path.insert(0, str(REPO))

from tests.azure_emulator import Emulator, clients  # noqa: E402
from tests.azure_emulator.fixtures import (  # noqa: E402,F401  (fixtures)
    apply_env, azure_emulator, azure_emulator_async, azure_emulator_factory, fast_arm_deployments)

pytest.importorskip("azure.ai.ml")

SEED = REPO / "manifests" / "seed"
RG, WS = "rts-rg", "rts-ws"


def ws_id(emu: Emulator, *more: str) -> str:
    base = (f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/{RG}/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{WS}")
    return "/".join((base, *more))


def seed_workspace(emu: Emulator) -> None:
    """A resource group and workspace someone else made (fast; workspace creation itself is tested separately)."""
    emu.seed_resource(f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/{RG}", {"location": "westeurope"})
    emu.seed_resource(ws_id(emu), {"location": "westeurope"})


def register_assets(ml):
    from azure.ai.ml.entities import Environment, Model

    model = ml.models.create_or_update(Model(name="dummy-model", path=str(SEED / "model"), type="custom_model"))
    env = ml.environments.create_or_update(Environment(
        name="scoring-env", image="mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu-inference:latest",
        conda_file=str(SEED / "conda.yaml")))
    return model, env


def workspace_with_assets(emu: Emulator, monkeypatch):
    """env applied, RG + workspace seeded, the seed model and environment registered by the real SDK."""
    apply_env(emu, monkeypatch)
    seed_workspace(emu)
    ml = clients.ml_client(emu, RG, WS)
    return ml, *register_assets(ml)


def managed_deployment(name: str, endpoint: str, model, env, instance_type="Standard_DS3_v2"):
    from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineDeployment

    return ManagedOnlineDeployment(
        name=name, endpoint_name=endpoint, model=f"azureml:{model.name}:{model.version}",
        environment=f"azureml:{env.name}:{env.version}",
        code_configuration=CodeConfiguration(code=str(SEED / "src"), scoring_script="score.py"),
        instance_type=instance_type, instance_count=1, environment_variables={"A": "1"})


def score(emu: Emulator, uri: str, key: str, **headers) -> requests.Response:
    return requests.post(uri, json={"name": "Daniel"}, headers={"Authorization": f"Bearer {key}", **headers},
                         verify=emu.ca_path, timeout=60)


# -- identity and ARM basics -----------------------------------------------------------------------------

def test_real_credential_gets_a_token_and_arm_requires_it(azure_emulator):
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ClientSecretCredential

    emu = azure_emulator
    token = clients.credential(emu).get_token(emu.url + "/.default")
    assert token.token.count(".") == 2 and token.expires_on > time.time()

    rg_url = f"{emu.url}/subscriptions/{emu.settings.subscription_id}/resourcegroups/x?api-version=2025-04-01"
    anonymous = requests.get(rg_url, verify=emu.ca_path)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "InvalidAuthenticationToken"
    forged = requests.get(rg_url, verify=emu.ca_path, headers={"Authorization": "Bearer a.b.c"})
    assert forged.status_code == 401
    good = requests.get(rg_url, verify=emu.ca_path, headers={"Authorization": f"Bearer {token.token}"})
    assert good.status_code == 404 and good.json()["error"]["code"] == "ResourceGroupNotFound"

    wrong = ClientSecretCredential(emu.settings.tenant_id, emu.settings.client_id, "wrong", authority=emu.url,
                                   disable_instance_discovery=True, connection_verify=emu.ca_path)
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        wrong.get_token(emu.url + "/.default")


def test_environment_credential_works_through_the_proxy(azure_emulator, monkeypatch):
    """AZURE_AUTHORITY_HOST + instance discovery at login.microsoftonline.com (spliced by the proxy)."""
    from azure.identity import EnvironmentCredential

    emu = apply_env(azure_emulator, monkeypatch)
    token = EnvironmentCredential().get_token(emu.url + "/.default")
    assert emu.authority.verify(f"Bearer {token.token}") is None


def test_resource_groups_sync_put_case_insensitive_and_immutable_location(azure_emulator_async):
    from azure.core.exceptions import HttpResponseError

    emu = azure_emulator_async
    rc = clients.resource_client(emu)
    assert not rc.resource_groups.check_existence(RG)
    group = rc.resource_groups.create_or_update(RG, {"location": "westeurope", "tags": {"managed-by": "rtsctl"}})
    assert group.properties.provisioning_state == "Succeeded"      # synchronous even in async mode
    assert rc.resource_groups.check_existence(RG.upper())            # ids are case-insensitive
    with pytest.raises(HttpResponseError, match="InvalidResourceGroupLocation"):
        rc.resource_groups.create_or_update(RG, {"location": "eastus"})
    assert [g.name for g in rc.resource_groups.list()] == [RG]
    emu.seed_resource(f"{group.id}/providers/Microsoft.ContainerService/managedClusters/theirs", {"location": "westeurope"})
    emu.seed_resource(f"{group.id}/providers/Microsoft.ContainerService/managedClusters/ours",
                      {"location": "westeurope", "tags": {"managed-by": "rtsctl"}})
    ours = rc.resources.list_by_resource_group(RG, filter="tagName eq 'managed-by' and tagValue eq 'rtsctl'")
    assert [r.name for r in ours] == ["ours"]
    rc.resource_groups.begin_delete(RG).result()                      # 202 + polling
    assert not rc.resource_groups.check_existence(RG)
    assert any(status == 202 for method, _, status in emu.request_log if method == "DELETE")


def test_workspace_create_is_an_arm_template_deployment(azure_emulator_async, fast_arm_deployments, monkeypatch):
    from azure.ai.ml.entities import Workspace

    emu = apply_env(azure_emulator_async, monkeypatch)
    clients.resource_client(emu).resource_groups.create_or_update(RG, {"location": "westeurope"})
    ml = clients.ml_client(emu, RG)
    ws = ml.workspaces.begin_create(Workspace(name=WS, location="westeurope", description="rts",
                                              tags={"managed-by": "rtsctl"})).result()
    assert (ws.name, ws.location, ws.description) == (WS, "westeurope", "rts")
    assert ws.tags["managed-by"] == "rtsctl"
    assert ml.workspaces.get(WS).id.lower() == ws_id(emu).lower()
    store = clients.ml_client(emu, RG, WS).datastores.get_default()
    assert store.name == "workspaceblobstore" and store.account_name
    assert any("/providers/Microsoft.Resources/deployments/" in r for r in emu.resources())


def test_blob_subset_through_the_proxy_with_the_real_storage_sdk(azure_emulator, monkeypatch):
    from azure.storage.blob import BlobServiceClient

    emu = apply_env(azure_emulator, monkeypatch)
    service = BlobServiceClient("https://emustorage.blob.core.windows.net", credential=emu.settings.storage_key,
                                max_single_put_size=4 * 1024, max_block_size=4 * 1024)
    container = service.get_container_client("data")
    container.create_container()
    payload = os.urandom(10_000)                                  # > max_single_put_size: staged blocks
    container.upload_blob("dir/big.bin", payload, metadata={"upload_status": "completed"})
    container.upload_blob("dir/small.txt", b"hello")
    blob = container.get_blob_client("dir/big.bin")
    assert blob.get_blob_properties().metadata == {"upload_status": "completed"}
    blob.set_blob_metadata({"stage": "2"})
    assert blob.get_blob_properties().metadata == {"stage": "2"}
    assert blob.download_blob().readall() == payload
    assert sorted(b.name for b in container.list_blobs(name_starts_with="dir/")) == ["dir/big.bin", "dir/small.txt"]
    assert ("PUT", "//emustorage.blob.core.windows.net/data/dir/big.bin?comp=blocklist", 201) in emu.request_log
    assert "emustorage/data/dir/small.txt" in emu.blob_names()


# -- the Azure ML flow, both LRO modes ----------------------------------------------------------------------

@pytest.mark.parametrize("lro_mode", ["sync", "async"])
def test_model_endpoint_deployment_traffic_keys_scoring_delete(lro_mode, azure_emulator_factory, monkeypatch):
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    emu = azure_emulator_factory(lro_mode=lro_mode)
    ml, model, env = workspace_with_assets(emu, monkeypatch)
    assert model.version == "1" and model.path.startswith("azureml://")
    assert any(name.endswith("/model/model.pkl") for name in emu.blob_names())   # uploaded through the proxy

    endpoint = ml.online_endpoints.begin_create_or_update(
        ManagedOnlineEndpoint(name="rts-score", auth_mode="key", tags={"managed-by": "rtsctl"})).result()
    assert endpoint.provisioning_state.lower() == "succeeded"
    assert endpoint.scoring_uri == f"{emu.url}/endpoints/rts-score/score"

    blue = ml.online_deployments.begin_create_or_update(managed_deployment("blue", "rts-score", model, env)).result()
    assert (blue.instance_type, blue.instance_count, blue.provisioning_state.lower()) == (
        "Standard_DS3_v2", 1, "succeeded")
    assert blue.scale_settings is not None and blue.request_settings is not None     # server-filled defaults

    endpoint = ml.online_endpoints.get("rts-score")
    endpoint.traffic = {"blue": 100}
    assert ml.online_endpoints.begin_create_or_update(endpoint).result().traffic == {"blue": 100}

    keys = ml.online_endpoints.get_keys("rts-score")
    reply = score(emu, endpoint.scoring_uri, keys.primary_key)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"GoAway": "Daniel's not here."}
    assert reply.headers["azureml-model-deployment"] == "blue"
    assert score(emu, endpoint.scoring_uri, keys.secondary_key).status_code == 200
    assert score(emu, endpoint.scoring_uri, "wrong-key").status_code == 401

    from azure.core.exceptions import HttpResponseError
    with pytest.raises(HttpResponseError, match="has 100% traffic"):
        ml.online_deployments.begin_delete("blue", "rts-score").result()

    ml.online_endpoints.begin_delete("rts-score").result()          # cascades its deployments
    assert not [r for r in emu.resources() if "onlineendpoints" in r.lower()]
    assert not emu.ctx.dataplane.hosts                              # its scoring host was stopped
    ids = [r.lower() for r in emu.resources()]
    assert len(ids) == len(set(ids))
    if lro_mode == "async":
        assert any("operationStatuses" in path for _, path, _ in emu.request_log)


def test_traffic_rules_and_aml_token(azure_emulator, monkeypatch):
    from azure.ai.ml.entities import ManagedOnlineEndpoint
    from azure.core.exceptions import HttpResponseError

    emu = azure_emulator
    ml, model, env = workspace_with_assets(emu, monkeypatch)
    with pytest.raises(HttpResponseError, match="do not exist: blue"):
        ml.online_endpoints.begin_create_or_update(
            ManagedOnlineEndpoint(name="rts-ep", auth_mode="aml_token", traffic={"blue": 100})).result()
    endpoint = ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="rts-ep", auth_mode="aml_token")).result()
    for name in ("blue", "green"):
        ml.online_deployments.begin_create_or_update(managed_deployment(name, "rts-ep", model, env)).result()
    # R04 code_2026 #1: the hash lookup is workspace-wide, so the second deployment reuses the first one's code
    assert sum(1 for m, path, _ in emu.request_log if m == "POST" and path.endswith("/startPendingUpload")) == 1
    endpoint.traffic = {"blue": 50, "green": 40}
    with pytest.raises(HttpResponseError, match="must sum to 0 or 100"):
        ml.online_endpoints.begin_create_or_update(endpoint).result()
    endpoint.traffic = {"Blue": 0, "green": 100}
    endpoint = ml.online_endpoints.begin_create_or_update(endpoint).result()
    # azure-ai-ml lower-cases traffic keys and drops zero entries before sending
    # (operations/_online_endpoint_operations.py): the service never sees {"Blue": 0}
    assert emu.resource(ws_id(emu, "onlineEndpoints", "rts-ep"))["properties"]["traffic"] == {"green": 100}

    token = ml.online_endpoints.get_keys("rts-ep").access_token
    assert score(emu, endpoint.scoring_uri, token).headers["azureml-model-deployment"] == "green"
    routed = score(emu, endpoint.scoring_uri, token, **{"azureml-model-deployment": "blue"})
    assert routed.status_code == 200 and routed.headers["azureml-model-deployment"] == "blue"
    ml.online_deployments.begin_delete("blue", "rts-ep").result()        # 0% traffic: allowed
    assert [d.name for d in ml.online_deployments.list("rts-ep")] == ["green"]


def test_immutable_fields_and_references_are_enforced(azure_emulator, monkeypatch):
    from azure.ai.ml.entities import ManagedOnlineEndpoint, Model
    from azure.core.exceptions import HttpResponseError, ResourceExistsError

    emu = azure_emulator
    ml, model, env = workspace_with_assets(emu, monkeypatch)
    # an asset version's content cannot change; a new version can be registered
    with pytest.raises(ResourceExistsError, match="Asset paths cannot be updated"):
        ml.models.create_or_update(Model(name="dummy-model", version="1", path=str(SEED / "conda.yaml")))
    assert ml.models.create_or_update(Model(name="dummy-model", path=str(SEED / "conda.yaml"))).version == "2"

    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="rts-ep")).result()
    ml.online_deployments.begin_create_or_update(managed_deployment("blue", "rts-ep", model, env)).result()
    with pytest.raises(HttpResponseError, match="instanceType cannot be changed"):
        ml.online_deployments.begin_create_or_update(
            managed_deployment("blue", "rts-ep", model, env, instance_type="Standard_F4s_v2")).result()

    missing = Model(name="ghost", version="7")
    with pytest.raises(HttpResponseError, match="ModelNotFound"):
        ml.online_deployments.begin_create_or_update(managed_deployment("green", "rts-ep", missing, env)).result()
    assert ml.online_deployments.get("blue", "rts-ep").instance_type == "Standard_DS3_v2"


@pytest.mark.parametrize("lro_mode", ["sync", "async"])
def test_kubernetes_attach_needs_cluster_and_extension(lro_mode, azure_emulator_factory, monkeypatch):
    from azure.ai.ml.entities import (CodeConfiguration, KubernetesCompute, KubernetesOnlineDeployment,
                                      KubernetesOnlineEndpoint, ManagedOnlineEndpoint)
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.containerservice.models import ManagedCluster, ManagedClusterAgentPoolProfile
    from azure.mgmt.kubernetesconfiguration.extensions.models import Extension

    emu = apply_env(azure_emulator_factory(lro_mode=lro_mode, durations={"managedClusters": 0.3}), monkeypatch)
    seed_workspace(emu)
    ml = clients.ml_client(emu, RG, WS)
    aks_id = (f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/{RG}/providers/"
              f"Microsoft.ContainerService/managedClusters/rts-aks")
    with pytest.raises(HttpResponseError, match="KubernetesClusterNotFound"):
        ml.compute.begin_attach(KubernetesCompute(name="k8s", resource_id=aks_id, namespace="azureml")).result()

    started, logged = time.time(), len(emu.request_log)
    cluster = clients.aks_client(emu).managed_clusters.begin_create_or_update(RG, "rts-aks", ManagedCluster(
        location="westeurope", dns_prefix="rts",
        agent_pool_profiles=[ManagedClusterAgentPoolProfile(name="nodepool1", count=3, vm_size="Standard_DS3_v2",
                                                            mode="System")])).result()
    assert cluster.provisioning_state == "Succeeded"
    # durations shape async operations only: polled status resources, for at least the duration; sync answers at once
    polls = [path for method, path, _ in emu.request_log[logged:] if method == "GET" and "/operation" in path]
    assert bool(polls) == (lro_mode == "async"), emu.request_log[logged:]
    if lro_mode == "async":
        assert time.time() - started >= 0.3
    with pytest.raises(HttpResponseError, match="AzureMLExtensionNotInstalled"):
        ml.compute.begin_attach(KubernetesCompute(name="k8s", resource_id=cluster.id, namespace="azureml")).result()

    extensions = clients.extensions_client(emu).extensions
    with pytest.raises(HttpResponseError, match="allowInsecureConnections=true"):   # no TLS, insecure not allowed
        extensions.begin_create(RG, "Microsoft.ContainerService", "managedClusters", "rts-aks", "azureml", Extension(
            extension_type="Microsoft.AzureML.Kubernetes", configuration_settings={
                "enableInference": "True", "inferenceRouterServiceType": "LoadBalancer",
                "allowInsecureConnections": "False"})).result()
    ext = extensions.begin_create(
        RG, "Microsoft.ContainerService", "managedClusters", "rts-aks", "azureml",
        Extension(extension_type="Microsoft.AzureML.Kubernetes",
                  configuration_settings={"enableInference": "True", "allowInsecureConnections": "True",
                                          "inferenceRouterServiceType": "LoadBalancer"})).result()
    assert ext.provisioning_state == "Succeeded"
    assert ext.extension_type == "microsoft.azureml.kubernetes"      # read back lower-case
    compute = ml.compute.begin_attach(KubernetesCompute(name="k8s", resource_id=cluster.id,
                                                        namespace="azureml")).result()
    assert compute.type == "kubernetes" and compute.namespace == "azureml"

    model, env = register_assets(ml)
    endpoint = ml.online_endpoints.begin_create_or_update(KubernetesOnlineEndpoint(name="rts-kep", compute="k8s")).result()
    deployment = ml.online_deployments.begin_create_or_update(KubernetesOnlineDeployment(
        name="blue", endpoint_name="rts-kep", model=model, environment=env, instance_count=2,
        code_configuration=CodeConfiguration(code=str(SEED / "src"), scoring_script="score.py"))).result()
    assert isinstance(deployment, KubernetesOnlineDeployment) and deployment.instance_count == 2
    with pytest.raises(HttpResponseError, match="compute cannot be changed"):
        ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="rts-kep")).result()
    with pytest.raises(HttpResponseError, match="ComputeInUse"):
        ml.compute.begin_delete("k8s", action="Detach").result()
    ml.online_endpoints.begin_delete(endpoint.name).result()
    ml.compute.begin_delete("k8s", action="Detach").result()
    assert not any(r.lower().endswith("/computes/k8s") for r in emu.resources())
    clients.aks_client(emu).managed_clusters.begin_delete(RG, "rts-aks").result()    # takes its extension along
    assert not any("managedclusters" in r.lower() for r in emu.resources())


def test_deployment_whose_container_crashes_fails_with_logs(azure_emulator, monkeypatch, tmp_path):
    from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineEndpoint
    from azure.core.exceptions import HttpResponseError

    emu = azure_emulator
    ml, model, env = workspace_with_assets(emu, monkeypatch)
    (tmp_path / "score.py").write_text("def init():\n    raise RuntimeError('model file is corrupt')\n\n"
                                       "def run(raw):\n    return raw\n")
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="rts-ep")).result()
    broken = managed_deployment("blue", "rts-ep", model, env)
    broken.code_configuration = CodeConfiguration(code=str(tmp_path), scoring_script="score.py")
    with pytest.raises(HttpResponseError, match="ResourceNotReady") as caught:
        ml.online_deployments.begin_create_or_update(broken).result()
    assert "model file is corrupt" in str(caught.value)
    assert ml.online_deployments.get("blue", "rts-ep").provisioning_state.lower() == "failed"
    assert "model file is corrupt" in ml.online_deployments.get_logs("blue", "rts-ep", lines=50)
    fixed = ml.online_deployments.begin_create_or_update(managed_deployment("blue", "rts-ep", model, env)).result()
    assert fixed.provisioning_state.lower() == "succeeded"


# -- faults -----------------------------------------------------------------------------------------------

def test_injected_faults_converge_through_sdk_retries(azure_emulator_factory, monkeypatch):
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    emu = apply_env(azure_emulator_factory(lro_mode="async", fault_rate=0.35, seed=5), monkeypatch)
    seed_workspace(emu)
    rc = clients.resource_client(emu)
    ml = clients.ml_client(emu, RG, WS)
    for i in range(4):
        rc.resource_groups.create_or_update(f"rg-{i}", {"location": "westeurope"})
        assert rc.resource_groups.get(f"rg-{i}").name == f"rg-{i}"
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="rts-ep")).result()
    assert ml.online_endpoints.get("rts-ep").provisioning_state.lower() == "succeeded"
    assert ml.online_endpoints.get_keys("rts-ep").primary_key
    ml.online_endpoints.begin_delete("rts-ep").result()
    kinds = {kind for kind, _, _ in emu.faults.injected}
    assert kinds == {"429", "500", "reset"}, emu.faults.injected
    statuses = {status for _, _, status in emu.request_log}
    assert {429, 500} <= statuses
    ids = [r.lower() for r in emu.resources()]
    assert len(ids) == len(set(ids)) and sum("/resourcegroups/rg-" in r for r in ids) == 4


def test_failed_lro_reports_the_service_error(azure_emulator, monkeypatch):
    from azure.ai.ml.entities import ManagedOnlineEndpoint
    from azure.core.exceptions import HttpResponseError

    emu = apply_env(azure_emulator, monkeypatch)        # sync mode: an armed failure still goes through polling
    seed_workspace(emu)
    ml = clients.ml_client(emu, RG, WS)
    emu.fail_next_lro("onlineEndpoints/rts-ep", "QuotaExceeded", "Not enough quota for Standard_DS3_v2 in westeurope")
    with pytest.raises(HttpResponseError, match="Not enough quota") as caught:
        ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="rts-ep")).result()
    assert "QuotaExceeded" in str(caught.value)
    assert emu.resource(ws_id(emu, "onlineEndpoints", "rts-ep"))["properties"]["provisioningState"] == "Failed"
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="rts-ep")).result()   # a retry recovers
    assert ml.online_endpoints.get("rts-ep").provisioning_state.lower() == "succeeded"


# -- fidelity to recorded Azure traffic (../shared/reference/azure-recordings; file numbers R01..R05) -------

def arm(emu: Emulator, method: str, path: str, body: dict | None = None, api: str = "2025-12-01"):
    """A raw ARM call with a real Entra token from the emulator (to see status codes and headers as sent)."""
    token = clients.credential(emu).get_token(emu.url + "/.default").token
    return requests.request(method, f"{emu.url}{path}", params={"api-version": api}, json=body,
                            headers={"Authorization": f"Bearer {token}"}, verify=emu.ca_path, timeout=30)


def wait_until_done(emu: Emulator, status_url: str) -> dict:
    deadline = time.time() + 30
    token = clients.credential(emu).get_token(emu.url + "/.default").token
    while time.time() < deadline:
        body = requests.get(status_url, headers={"Authorization": f"Bearer {token}"}, verify=emu.ca_path,
                            timeout=30).json()
        if body["status"] not in ("Updating", "InProgress", "Running"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"operation {status_url} did not end")


def test_endpoint_and_deployment_answers_have_the_recorded_shape(azure_emulator_factory, monkeypatch):
    from tests.azure_emulator.context import Settings

    emu = apply_env(azure_emulator_factory(lro_mode="async", settings=Settings(retry_after=None),
                                           durations={"onlineEndpoints": 0.3, "deployments": 0.3}), monkeypatch)
    seed_workspace(emu)
    ep = ws_id(emu, "onlineEndpoints", "rec-ep")
    created = arm(emu, "PUT", ep, {"location": "westeurope", "identity": {"type": "SystemAssigned"},
                                   "properties": {"authMode": "AMLToken", "traffic": {}}})
    body = created.json()
    # R01 #1: 201, Creating, null URIs, kind Managed, compute null; Azure-AsyncOperation + Location + PT30M, no Retry-After
    assert created.status_code == 201
    assert {k: body["properties"][k] for k in ("provisioningState", "scoringUri", "swaggerUri", "compute")} == {
        "provisioningState": "Creating", "scoringUri": None, "swaggerUri": None, "compute": None}
    assert body["kind"] == "Managed"
    assert body["properties"]["properties"]["azureml.onlineendpointid"] == ep.lower()
    assert created.headers["x-ms-async-operation-timeout"] == "PT30M" and "Location" in created.headers
    assert "Retry-After" not in created.headers
    poll = requests.get(created.headers["Azure-AsyncOperation"], verify=emu.ca_path, headers={
        "Authorization": f"Bearer {clients.credential(emu).get_token(emu.url + '/.default').token}"})
    assert (poll.json()["status"], poll.json()["percentComplete"]) == ("Updating", 0.0)   # R01 #2
    assert "Retry-After" not in poll.headers
    assert wait_until_done(emu, created.headers["Azure-AsyncOperation"])["percentComplete"] == 100.0
    done = arm(emu, "GET", ep).json()
    assert done["properties"]["scoringUri"] == f"{emu.url}/endpoints/rec-ep/score"        # filled once created (R01 #3)
    principal = done["identity"]["principalId"]

    dep = arm(emu, "PUT", ep + "/deployments/blue", {"location": "westeurope", "sku": {"name": "Default", "capacity": 1},
                                                    "properties": {"endpointComputeType": "Managed",
                                                                   "instanceType": "Standard_DS2_V2"}})
    p = dep.json()["properties"]
    # R01 #11: a CREATE answers Updating; requestSettings PT0S/PT0S/1; probes null until provisioned
    assert (dep.status_code, p["provisioningState"], p["livenessProbe"], p["readinessProbe"]) == (
        201, "Updating", None, None)
    assert p["requestSettings"] == {"maxQueueWait": "PT0S", "requestTimeout": "PT0S",
                                    "maxConcurrentRequestsPerInstance": 1}
    # azure-sdk-for-net#36961: no endpoint write while one of its deployments is being written
    busy = arm(emu, "PUT", ep, {"location": "westeurope", "properties": {"authMode": "AMLToken"}})
    assert busy.status_code == 409 and "Updating provisioning state" in busy.json()["error"]["message"]
    wait_until_done(emu, dep.headers["Azure-AsyncOperation"])
    p = arm(emu, "GET", ep + "/deployments/blue").json()["properties"]
    assert p["requestSettings"]["requestTimeout"] == "PT5S" and p["livenessProbe"]["failureThreshold"] == 30  # R01 #13

    shift = arm(emu, "PUT", ep, {"location": "westeurope", "identity": {"type": "SystemAssigned"},
                                 "properties": {"authMode": "AMLToken", "traffic": {"blue": 100}}})
    # R01 #14: 201, still the OLD traffic and Updating until the operation ends; then the new traffic (R01 #15)
    assert shift.status_code == 201
    assert (shift.json()["properties"]["traffic"], shift.json()["properties"]["provisioningState"]) == ({}, "Updating")
    refused = arm(emu, "PUT", ep + "/deployments/green", {"location": "westeurope", "properties": {}})
    assert refused.status_code == 409
    assert refused.json()["error"]["message"] == ("Cannot create a deployment in endpoint rec-ep because it is in "
                                                  "Updating provisioning state.")
    assert refused.json()["error"]["code"] == "UserError"
    wait_until_done(emu, shift.headers["Azure-AsyncOperation"])
    after = arm(emu, "GET", ep).json()
    assert after["properties"]["traffic"] == {"blue": 100}
    assert after["identity"]["principalId"] == principal          # R01: unchanged across updates

    gone = arm(emu, "DELETE", ep)
    assert gone.status_code == 202 and "Retry-After" not in gone.headers   # R01 #18
    assert requests.get(gone.headers["Azure-AsyncOperation"], verify=emu.ca_path, headers={
        "Authorization": f"Bearer {clients.credential(emu).get_token(emu.url + '/.default').token}"}
    ).json()["status"] == "Updating"                               # deletes poll "Updating" too (R01 #18)


def test_asset_answers_follow_the_recordings(azure_emulator, monkeypatch):
    from azure.core.exceptions import ResourceNotFoundError

    emu = azure_emulator
    ml, model, env = workspace_with_assets(emu, monkeypatch)
    # R02 #1: a missing model container is a 404 UserError with ModelNotFound in details
    missing = arm(emu, "GET", ws_id(emu, "models", "ghost", "versions"))
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert (error["code"], error["message"]) == ("UserError", "The specified resource was not found.")
    assert error["details"][0] == {"code": "ModelNotFound", "message": "Model container with name: ghost not found.",
                                   "details": [], "additionalInfo": []}
    with pytest.raises(ResourceNotFoundError, match="ModelNotFound"):
        list(ml.models.list("ghost"))
    # R01 #8 / R04: the conda YAML comes back as a 2-space JSON string, with azureml.labels latest
    raw_env = arm(emu, "GET", ws_id(emu, "environments", env.name, "versions", env.version)).json()["properties"]
    import yaml
    assert raw_env["condaFile"].startswith("{\n  ")
    assert json.loads(raw_env["condaFile"]) == yaml.safe_load((SEED / "conda.yaml").read_text())
    assert raw_env["properties"]["azureml.labels"] == "latest"
    # R01 #10: the service writes resourceGroups in a model URI sent with resourcegroups
    uri = (f"azureml://subscriptions/{emu.settings.subscription_id}/resourcegroups/{RG}/workspaces/{WS}/datastores/"
           f"workspaceblobstore/paths/LocalUpload/abc/model.pkl")
    put = arm(emu, "PUT", ws_id(emu, "models", "m2", "versions", "1"),
              {"properties": {"modelType": "custom_model", "modelUri": uri}})
    assert put.status_code == 201 and "Location" in put.headers       # R02 #5
    assert "/resourceGroups/" in put.json()["properties"]["modelUri"] and put.json()["properties"]["jobName"] is None
    again = arm(emu, "PUT", ws_id(emu, "models", "m2", "versions", "1"),
                {"properties": {"modelType": "custom_model", "modelUri": uri}})
    assert again.status_code == 200                                  # R01 #10: existing, same content
    assert ml.models.get("m2", "1").path.endswith("model.pkl")


def test_azureml_extension_needs_tls_or_insecure_and_keeps_protected_settings_secret(azure_emulator_factory):
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.kubernetesconfiguration.extensions.models import Extension

    emu = azure_emulator_factory(lro_mode="async")
    rg = f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/{RG}"
    emu.seed_resource(rg, {"location": "westeurope"})
    emu.seed_resource(rg + "/providers/Microsoft.ContainerService/managedClusters/aks", {"location": "westeurope"})
    extensions = clients.extensions_client(emu).extensions

    def install(settings, protected=None):
        return extensions.begin_create(RG, "Microsoft.ContainerService", "managedClusters", "aks", "azureml", Extension(
            extension_type="Microsoft.AzureML.Kubernetes", configuration_settings=settings,
            configuration_protected_settings=protected)).result()

    base = {"enableInference": "True", "inferenceRouterServiceType": "LoadBalancer"}
    with pytest.raises(HttpResponseError, match="allowInsecureConnections=true"):
        install({**base, "allowInsecureConnections": "False"})
    with pytest.raises(HttpResponseError, match="set sslCname"):
        install(base, {"scoringFe.sslCert": "Q0VSVA==", "scoringFe.sslKey": "S0VZ"})
    with pytest.raises(HttpResponseError, match="inferenceRouterServiceType"):
        install({"enableInference": "True", "allowInsecureConnections": "True"})
    ext = install({**base, "sslCname": "score.example.com"}, {"scoringFe.sslCert": "Q0VSVA==", "scoringFe.sslKey": "S0VZ"})
    assert ext.provisioning_state == "Succeeded" and ext.extension_type == "microsoft.azureml.kubernetes"
    assert ext.configuration_protected_settings == {} and ext.identity is None
    assert "S0VZ" not in json.dumps(emu.resource(ext.id))              # protected values never come back
    assert install({**base, "sslSecret": "azureml-tls", "sslCname": "s.example.com"}).provisioning_state == "Succeeded"


def test_app_insights_brings_its_untagged_smart_detection_along(azure_emulator_async, fast_arm_deployments,
                                                                 monkeypatch):
    from azure.ai.ml.entities import Workspace

    emu = apply_env(azure_emulator_async, monkeypatch)
    clients.resource_client(emu).resource_groups.create_or_update(RG, {"location": "westeurope"})
    clients.ml_client(emu, RG).workspaces.begin_create(
        Workspace(name=WS, location="westeurope", tags={"managed-by": "rtsctl"})).result()
    in_group = {ArmId(i).type: ArmId(i) for i in emu.resources() if f"/resourcegroups/{RG}/".lower() in i.lower()
                and "/providers/" in i.lower()}
    component = in_group["microsoft.insights/components"]
    rule = in_group["microsoft.alertsmanagement/smartdetectoralertrules"]
    group = in_group["microsoft.insights/actiongroups"]
    assert rule.name == f"Failure Anomalies - {component.name}" and group.name == "Application Insights Smart Detection"
    assert emu.resource(component.id)["tags"]["managed-by"] == "rtsctl"     # the template tags what it creates
    assert not emu.resource(rule.id).get("tags") and not emu.resource(group.id).get("tags")
    ws = clients.ml_client(emu, RG, WS).workspaces.get(WS)
    assert ws.application_insights.lower() == component.id.lower()
    # the template's Log Analytics workspace, linked from the component (what delete_dependent_resources follows)
    log_analytics = emu.resource(component.id)["properties"]["WorkspaceResourceId"]
    assert in_group["microsoft.operationalinsights/workspaces"].id.lower() == log_analytics.lower()


class ArmId:
    def __init__(self, arm_id: str):
        segs = arm_id.strip("/").split("/")
        self.id, self.name = arm_id, segs[-1]
        self.type = f"{segs[5]}/{segs[6]}".lower() if len(segs) == 8 else "/".join(segs[5::2]).lower()


def test_data_plane_answers_424_429_and_408_as_the_troubleshooting_table_says(azure_emulator, monkeypatch,
                                                                                      tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineEndpoint, OnlineRequestSettings

    emu = azure_emulator
    ml, model, env = workspace_with_assets(emu, monkeypatch)
    (tmp_path / "score.py").write_text(
        "import json, time\n\ndef init():\n    pass\n\n"
        "def run(raw):\n    data = json.loads(raw)\n    if data.get('fail'):\n        raise ValueError('bad input')\n"
        "    time.sleep(data.get('sleep', 0))\n    return {'ok': True}\n")
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="rts-dp")).result()
    dep = managed_deployment("blue", "rts-dp", model, env)
    dep.code_configuration = CodeConfiguration(code=str(tmp_path), scoring_script="score.py")
    dep.request_settings = OnlineRequestSettings(request_timeout_ms=4000)
    ml.online_deployments.begin_create_or_update(dep).result()
    endpoint = ml.online_endpoints.get("rts-dp")
    endpoint.traffic = {"blue": 100}
    endpoint = ml.online_endpoints.begin_create_or_update(endpoint).result()
    key = ml.online_endpoints.get_keys("rts-dp").primary_key
    headers = {"Authorization": f"Bearer {key}"}

    failed = requests.post(endpoint.scoring_uri, json={"fail": True}, headers=headers, verify=emu.ca_path, timeout=30)
    assert failed.status_code == 424, failed.text
    assert failed.headers["ms-azureml-model-error-statuscode"] == "500"
    assert failed.headers["azureml-model-deployment"] == "blue"

    # max_concurrent_requests_per_instance 1 x instance_count 1 x 2 = 2 in parallel; the rest get 429
    def slow(_):
        return requests.post(endpoint.scoring_uri, json={"sleep": 1.5}, headers=headers, verify=emu.ca_path,
                             timeout=30).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(slow, range(4)))
    # the container serves one at a time (the second accepted one waits ~1.5 s, inside the 4 s timeout); a thread
    # that starts very late on a loaded machine may find room again, so: at least one 429, never anything else
    assert set(codes) == {200, 429} and codes.count(200) >= 2, codes
    assert requests.post(endpoint.scoring_uri, json={}, headers=headers, verify=emu.ca_path).status_code == 200
    # 408 once the model takes longer than request_timeout_ms (last: the host stays busy with it for a while)
    late = requests.post(endpoint.scoring_uri, json={"sleep": 5}, headers=headers, verify=emu.ca_path, timeout=30)
    assert late.status_code == 408, late.text

    # Azure Monitor counts each answer per deployment and status (RequestsPerMinute), read with azure-mgmt-monitor
    from azure.core.exceptions import HttpResponseError

    monitor = clients.monitor_client(emu)
    since = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(time.time() - 120))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    answer = monitor.metrics.list(endpoint.id.lstrip("/"), timespan=f"{since}/{until}", interval="PT1M",
                                  metricnames="RequestsPerMinute", aggregation="average",
                                  filter="deployment eq 'blue' and statusCode eq '*'")
    counted = {}
    for series in answer.value[0].timeseries:
        [dimension] = series.metadatavalues
        assert dimension.name.value == "statuscode"  # dimension names come back lower-cased
        counted[dimension.value] = round(sum(point.average or 0 for point in series.data))
    assert counted == {"200": codes.count(200) + 1, "408": 1, "424": 1, "429": codes.count(429)}, counted
    with pytest.raises(HttpResponseError) as unknown:
        monitor.metrics.list(endpoint.id.lstrip("/"), metricnames="RequestCount", aggregation="average")
    assert unknown.value.status_code == 400 and "Valid metrics: " in str(unknown.value), unknown.value


@pytest.mark.parametrize("code", ["OperationCanceled", "ACRTokenExchangeFailed", "OutOfQuota"])
def test_failed_operations_carry_the_code_and_leave_the_resource_failed(code, azure_emulator_factory, monkeypatch):
    from azure.ai.ml.entities import ManagedOnlineEndpoint
    from azure.core.exceptions import HttpResponseError

    from tests.azure_emulator.faults import LRO_MESSAGES, RETRYABLE_LRO_CODES

    emu = apply_env(azure_emulator_factory(lro_mode="async"), monkeypatch)
    seed_workspace(emu)
    ml = clients.ml_client(emu, RG, WS)
    emu.fail_next_lro("onlineEndpoints/rts-ep", code, LRO_MESSAGES[code], times=2)
    for _ in range(2):
        with pytest.raises(HttpResponseError, match=code):
            ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="rts-ep")).result()
        assert ml.online_endpoints.get("rts-ep").provisioning_state == "Failed"   # left behind, Failed
    assert ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="rts-ep")).result() \
        .provisioning_state.lower() == "succeeded"
    assert (code in RETRYABLE_LRO_CODES) == (code != "OutOfQuota")


def test_failed_compute_and_extension_record_the_error(azure_emulator_factory):
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.kubernetesconfiguration.extensions.models import Extension

    emu = azure_emulator_factory(lro_mode="async")
    rg = f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/{RG}"
    emu.seed_resource(rg, {"location": "westeurope"})
    emu.seed_resource(rg + "/providers/Microsoft.ContainerService/managedClusters/aks", {"location": "westeurope"})
    emu.fail_next_lro("extensions/azureml", "ExtensionOperationFailed", "helm install timed out")
    with pytest.raises(HttpResponseError, match="helm install timed out"):
        clients.extensions_client(emu).extensions.begin_create(
            RG, "Microsoft.ContainerService", "managedClusters", "aks", "azureml", Extension(
                extension_type="Microsoft.AzureML.Kubernetes", configuration_settings={
                    "enableInference": "True", "allowInsecureConnections": "True",
                    "inferenceRouterServiceType": "LoadBalancer"})).result()
    ext = clients.extensions_client(emu).extensions.get(RG, "Microsoft.ContainerService", "managedClusters", "aks",
                                                        "azureml")
    assert ext.provisioning_state == "Failed" and ext.error_info.code == "ExtensionOperationFailed"


def test_realistic_timing_follows_the_recorded_durations(azure_emulator_factory, monkeypatch):
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    emu = apply_env(azure_emulator_factory(lro_mode="async", timing="realistic", time_scale=0.005), monkeypatch)
    seed_workspace(emu)
    ml = clients.ml_client(emu, RG, WS)
    model, env = register_assets(ml)
    started = time.time()
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="rts-rt")).result()
    endpoint_s = time.time() - started
    started = time.time()
    ml.online_deployments.begin_create_or_update(managed_deployment("blue", "rts-rt", model, env)).result()
    deployment_s = time.time() - started
    assert 0.45 <= endpoint_s and 2.9 <= deployment_s          # 90 s and 582 s (R01) x 0.005
    assert deployment_s - endpoint_s >= 2.0                    # (582 - 90) x 0.005 = 2.46 s apart
    assert emu.ctx.ops.duration_for("onlineEndpoints", "update") == pytest.approx(0.1)   # traffic: 20 s (R01 #14)
    # the emulator accepts and logs the api-versions the installed SDK sends (what rtsctl's raw calls must match):
    # azure-ai-ml 1.35.2 still sends 2022-02-01-preview for endpoints and 2023-04-01-preview for deployments
    # (its arm_ml_service client's 2025-12-01 default is not what these operations use)
    sent = {v for _, path, v in emu.api_versions if path.lower().endswith("/deployments/blue")}
    assert sent == {"2023-04-01-preview"}, sent


# -- running it by hand -----------------------------------------------------------------------------------

def test_command_line_prints_exports_and_state_dir_survives_restart(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.azure_emulator", "--state-dir", str(tmp_path),
                             "--lro", "async"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        exports = {}
        for line in proc.stdout:
            if line.startswith("export "):
                name, _, value = line[len("export "):].strip().partition("=")
                exports[name] = value.strip("'")
            if line.startswith("# ready"):
                break
        assert {"REQUESTS_CA_BUNDLE", "HTTPS_PROXY", "NO_PROXY", "AZURE_TENANT_ID", "AZURE_CLIENT_ID",
                "AZURE_CLIENT_SECRET", "AZURE_SUBSCRIPTION_ID", "EMU_URL"} <= exports.keys()
        url = exports["EMU_URL"]
        assert requests.get(url + "/_emulator/health", verify=exports["REQUESTS_CA_BUNDLE"]).ok
    finally:
        proc.terminate()
        proc.wait(timeout=15)

    with Emulator(state_dir=tmp_path) as first:
        clients.resource_client(first).resource_groups.create_or_update(RG, {"location": "westeurope"})
        ca = Path(first.ca_path).read_bytes()
    with Emulator(state_dir=tmp_path) as second:
        assert Path(second.ca_path).read_bytes() == ca
        assert clients.resource_client(second).resource_groups.check_existence(RG)
