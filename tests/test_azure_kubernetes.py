"""Issue 15: Kubernetes online endpoints as they really are, traffic names as azure-ai-ml writes them.

The rtsctl CLI in a subprocess with the real SDKs inside, the wire-level emulator standing in for Azure; the
service rules each test leans on are cited where the emulator models them (tests/azure_emulator/aml/endpoints.py,
monitor.py) and where rtsctl follows them (reconcilers/azure/, rtsctl/manifest/validate.py).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.azure_emulator.clients import ml_client
from tests.azure_emulator.fixtures import apply_env
from tests.conftest import REPO, Cli
from tests.helpers import edit_yaml
from tests.test_azure_e2e import azure_cli  # noqa: F401

pytest_plugins = ["tests.azure_emulator.fixtures"]


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_validate_refuses_mirror_and_min_requests_on_kubernetes_endpoints(tmp_path: Path):
    """Azure mirrors no traffic on Kubernetes endpoints and Azure Monitor counts none of their requests: validate
    names both at file:line (no credentials, no Azure); the same rollout on a managed endpoint is valid."""
    project = tmp_path / "project"
    shutil.copytree(REPO / "manifests", project, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = project / "azure.yaml"
    edit_yaml(manifest, lambda m: m["endpoints"][0].update(
        rollout={"steps": [50, 100], "mirror": 10, "gate": {"watch": 5, "min_requests": 3}}))
    cli = Cli(tmp_path / "home", project, {"AZURE_SUBSCRIPTION_ID": "00000000-0000-4000-8000-000000000001"})
    refused = cli("validate", "azure.yaml")
    assert refused.code != 0, str(refused)
    errors = [line for line in refused.err.splitlines() if line.startswith("Error:")]
    mirror = next(e for e in errors if "mirror" in e)
    assert f"azure.yaml:{line_of(manifest, 'mirror:')}" in mirror and "Kubernetes" in mirror, errors
    counted = next(e for e in errors if "min_requests" in e)
    assert f"azure.yaml:{line_of(manifest, 'min_requests:')}" in counted and "never" in counted, errors

    managed = project / "examples" / "azure-managed-endpoint.yaml"
    edit_yaml(managed, lambda m: m["endpoints"][0].update(
        rollout={"mirror": 10, "gate": {"watch": 5, "min_requests": 3}}))
    assert cli("validate", "examples/azure-managed-endpoint.yaml").code == 0


def test_plan_says_a_watch_gate_cannot_judge_live_errors_on_kubernetes(azure_emulator_factory, azure_cli):
    """A watch with max_error_rate on a Kubernetes endpoint: the plan warns what the gate judges instead."""
    emu = azure_emulator_factory(lro_mode="sync")
    cli = azure_cli(emu)
    edit_yaml(cli.workdir / "azure.yaml", lambda m: m["endpoints"][0].update(
        rollout={"steps": [50, 100], "gate": {"watch": 5, "max_error_rate": 0.01}}))
    planned = cli("plan", "azure.yaml")
    assert planned.code == 0, str(planned)
    text = " ".join(planned.out.split())
    assert re.search(r"Warning: traffic\.rts-score: the rollout gate's watch cannot judge live errors "
                     r"\(max_error_rate\) on Kubernetes endpoint rts-score: Azure Monitor keeps no request metrics",
                     text), planned.out
    assert "it judges health while held only: no bench run is declared" in text, planned.out


def test_capitalised_deployment_and_mirror_cleared_by_live_traffic(azure_emulator_factory, azure_cli, monkeypatch):
    """azure-ai-ml writes traffic keys in lower case: a deployment `Blue` serving traffic is found as such when it
    is deleted (its share moves first). A deployment given live traffic loses its mirror in the same write: the
    service takes live or mirrored traffic for one deployment, never both (the emulator refuses it)."""
    from azure.core.exceptions import HttpResponseError

    emu = azure_emulator_factory(lro_mode="sync")
    cli = azure_cli(emu, endpoint="rts-bg")
    manifest = cli.workdir / "examples" / "azure-blue-green.yaml"

    def shape(m, traffic):
        m["endpoints"][0]["deployments"][0]["name"] = "Blue"
        m["endpoints"][0]["traffic"] = traffic
        m["endpoints"][0]["smoke_test"].pop("deployment", None)

    edit_yaml(manifest, lambda m: shape(m, {"Blue": 100}))
    cli.ok("apply", "examples/azure-blue-green.yaml", "-y", timeout=300)
    ep_id = (f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/rts-bg-rg/providers/"
             "Microsoft.MachineLearningServices/workspaces/rts-ws/onlineEndpoints/rts-bg")
    assert emu.resource(ep_id)["properties"]["traffic"] == {"blue": 100}

    apply_env(emu, monkeypatch)
    ml = ml_client(emu, "rts-bg-rg", "rts-ws")
    ep = ml.online_endpoints.get("rts-bg")
    ep.traffic, ep.mirror_traffic = {"blue": 90, "green": 10}, {"green": 10}
    with pytest.raises(HttpResponseError, match="both live traffic and mirrored traffic"):
        ml.online_endpoints.begin_create_or_update(ep).result()
    ep = ml.online_endpoints.get("rts-bg")
    ep.mirror_traffic = {"green": 10}  # a shadow test someone started by hand
    ml.online_endpoints.begin_create_or_update(ep).result()
    assert emu.resource(ep_id)["properties"]["mirrorTraffic"] == {"green": 10}

    edit_yaml(manifest, lambda m: shape(m, {"Blue": 50, "green": 50}))
    cli.ok("apply", "examples/azure-blue-green.yaml", "-y", timeout=300)
    props = emu.resource(ep_id)["properties"]
    assert props["traffic"] == {"blue": 50, "green": 50} and not props["mirrorTraffic"], props

    # Blue at 50 %: its share moves to green before it is deleted (the service refuses a delete with traffic)
    cli.ok("destroy", "examples/azure-blue-green.yaml", "--target", "deployment.rts-bg/Blue", "-y", timeout=300)
    assert emu.resource(ep_id)["properties"]["traffic"] == {"green": 100}
    assert emu.resource(ep_id + "/deployments/Blue") is None


def test_extension_update_follows_the_cli_and_protected_settings_are_replaced_whole(azure_emulator_factory,
                                                                                     azure_cli, monkeypatch):
    """The AzureML extension on an adopted cluster (AzureMLKubernetes.py Update()/__normalize_config): NodePort ->
    LoadBalancer clears scoringFe.serviceType.nodePort; a TLS update would replace the protected settings whole and
    delete a relay connection string rtsctl cannot read back, so the plan refuses and names it. The emulator
    replaces protected settings whole on an update that sends some (AKS cluster-extensions docs)."""
    from tests.azure_emulator.clients import extensions_client
    from tests.test_azure_e2e import seed_aks, seed_rg

    emu = azure_emulator_factory(lro_mode="sync")
    seed_rg(emu, "shared-infra")
    aks = seed_aks(emu, "shared-infra", "shared-aks")
    ext_id = f"{aks}/providers/Microsoft.KubernetesConfiguration/extensions/aml-prod"
    emu.seed_resource(ext_id, {"properties": {
        "extensionType": "Microsoft.AzureML.Kubernetes",
        "configurationSettings": {"enableInference": "true", "inferenceRouterServiceType": "NodePort",
                                  "scoringFe.serviceType.nodePort": "true", "allowInsecureConnections": "true",
                                  "relayserver.enabled": "true"},
        "configurationProtectedSettings": {"relayserver.relayConnectionString": "Endpoint=sb://relay/;Key=x"}}})
    cli = azure_cli(emu, "rts-attached")
    env = {"AKS_CLUSTER": "shared-aks", "AKS_RESOURCE_GROUP": "shared-infra", "RTSCTL_RESOURCE_GROUP": "rts-attach"}
    manifest = cli.workdir / "examples" / "azure-attach-existing-aks.yaml"
    (cli.workdir / "examples" / "tls").mkdir()
    (cli.workdir / "examples" / "tls" / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    (cli.workdir / "examples" / "tls" / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")

    edit_yaml(manifest, lambda m: m["computes"][0].update(extension={
        "allow_insecure_connections": True, "configuration_settings": {"inferenceRouterServiceType": "LoadBalancer"}}))
    cli.ok("apply", "examples/azure-attach-existing-aks.yaml", "--target", "k8s_extension.shared-aks", "-y", env=env)
    settings = emu.resource(ext_id)["properties"]["configurationSettings"]
    assert settings["inferenceRouterServiceType"] == "LoadBalancer"
    assert settings["scoringFe.serviceType.nodePort"] == "false", settings   # cleared, as the CLI does

    edit_yaml(manifest, lambda m: m["computes"][0].update(extension={
        "configuration_settings": {"inferenceRouterServiceType": "LoadBalancer"},
        "tls": {"cname": "scoring.example.com", "cert_file": "tls/cert.pem", "key_file": "tls/key.pem"}}))
    refused = cli("plan", "examples/azure-attach-existing-aks.yaml", env=env)
    assert refused.code == 1 and "relayserver.relayConnectionString" in refused.err, str(refused)
    assert "replaces the extension's protected settings whole" in refused.err, str(refused)

    # the service rule itself, through the real management SDK
    apply_env(emu, monkeypatch)
    ops = extensions_client(emu).extensions
    ops.begin_update("shared-infra", "Microsoft.ContainerService", "managedClusters", "shared-aks", "aml-prod",
                     {"properties": {"configurationSettings": {"sslCname": "scoring.example.com",
                                                               "allowInsecureConnections": "false"},
                                     "configurationProtectedSettings": {"scoringFe.sslCert": "Q0VSVA==",
                                                                        "scoringFe.sslKey": "S0VZ"}}}).result()
    kept = emu.ctx.store.get(store_path(ext_id)).private["protected"]
    assert sorted(kept) == ["scoringFe.sslCert", "scoringFe.sslKey"], kept   # the relay string is gone


def store_path(arm_id: str) -> str:
    from tests.azure_emulator.ids import ArmPath

    return ArmPath.parse(arm_id).path


def test_quota_counts_a_successor_in_full_and_the_regional_limit(azure_emulator_factory, azure_cli):
    """Regional limit 6 vCPUs: a Standard_DS3_v2 (4 vCPUs, 8 with the upgrade reserve) plans a regional warning, and
    applies (4 used). A code change rolls out as a successor BESIDE blue, so its cores count in full: warned in
    the plan, and the service ends the successor's operation OutOfQuota (4 + 4 > 6)."""
    from tests.azure_emulator.context import Settings

    emu = azure_emulator_factory(lro_mode="sync", settings=Settings(quota={"regional": 6}))
    cli = azure_cli(emu, "rts-managed")
    manifest = "examples/azure-managed-endpoint.yaml"
    planned = cli.ok("plan", manifest, timeout=300)
    assert "Warning: quota: this plan needs 8 more regional (all families) vCPUs" in planned.out, planned.out
    assert "but 6 of 6 are left" in planned.out, planned.out
    cli.ok("apply", manifest, "-y", timeout=300)

    score = cli.workdir / "seed" / "src" / "score.py"
    score.write_text(score.read_text() + "\n# v2\n")
    planned = cli.ok("plan", manifest, timeout=300)
    text = " ".join(planned.out.split())
    assert "needs 8 more regional (all families) vCPUs in westeurope" in text and "but 2 of 6 are left" in text, text
    failed = cli("apply", manifest, "-y", timeout=300)
    assert failed.code == 1 and "(OutOfQuota)" in failed.out, str(failed)
    assert "Current usage/limit: 4/6 (regional)" in failed.out, str(failed)
