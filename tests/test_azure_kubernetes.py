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
