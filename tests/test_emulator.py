"""The Azure emulator, proven with the REAL SDKs (azure-identity, azure-mgmt-*, azure-ai-ml, azure-storage-blob).

No test doubles: every call below goes over HTTPS to the emulator, blob uploads through its CONNECT proxy.
"""

from __future__ import annotations

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
    endpoint.traffic = {"blue": 50, "green": 40}
    with pytest.raises(HttpResponseError, match="must sum to 0 or 100"):
        ml.online_endpoints.begin_create_or_update(endpoint).result()
    endpoint.traffic = {"blue": 0, "green": 100}
    endpoint = ml.online_endpoints.begin_create_or_update(endpoint).result()

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
    with pytest.raises(ResourceExistsError, match="Asset versions are immutable"):
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

    started = time.time()
    cluster = clients.aks_client(emu).managed_clusters.begin_create_or_update(RG, "rts-aks", ManagedCluster(
        location="westeurope", dns_prefix="rts",
        agent_pool_profiles=[ManagedClusterAgentPoolProfile(name="nodepool1", count=3, vm_size="Standard_DS3_v2",
                                                            mode="System")])).result()
    assert cluster.provisioning_state == "Succeeded"
    assert (time.time() - started >= 0.3) == (lro_mode == "async")     # durations shape async operations only
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
