"""Replace without an outage on Azure (the emulator, async LROs, real SDKs in the CLI subprocess): an
instance_type change and a code change each roll out as a successor while a client scores through the
emulator's data plane, which answers 503 for a deployment that is not Succeeded (an in-place update would);
and an endpoint replacement (managed -> Kubernetes: a new scoring URI) is refused without --allow-outage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.azure_emulator import Emulator
from tests.conftest import REPO, Cli
from tests.helpers import edit_yaml
from tests.poller import Poller

MANIFEST = "examples/azure-managed-endpoint.yaml"
ENDPOINT = "rts-managed"
EP_ID = "/providers/Microsoft.MachineLearningServices/workspaces/rts-ws/onlineEndpoints/" + ENDPOINT
BODY = {"name": "Daniel"}


@pytest.fixture(scope="module")
def emu():
    emulator = Emulator(lro_mode="async").start()
    yield emulator
    emulator.stop()


@pytest.fixture
def cli(emu: Emulator, tmp_path: Path, monkeypatch) -> Cli:
    import shutil

    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    project = tmp_path / "project"
    shutil.copytree(REPO / "manifests", project, ignore=shutil.ignore_patterns("__pycache__"))
    return Cli(tmp_path / "home", project, {**emu.env(), "RTSCTL_ENDPOINT": ENDPOINT})


def endpoint(emu: Emulator) -> dict:
    return emu.resource(f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/rts-managed-rg{EP_ID}")


def deployments(emu: Emulator) -> list[str]:
    prefix = f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/rts-managed-rg{EP_ID}/deployments/"
    return sorted(i[len(prefix):] for i in emu.resources() if i.startswith(prefix) and "/" not in i[len(prefix):])


def roll(cli: Cli, emu: Emulator, out: dict, change) -> str:
    """Apply `change` under a client scoring the endpoint's `out`puts; returns the successor's name.

    The client scores every 0.05 s (not 0.02; each request is a TLS handshake): an in-place update would answer
    503 for as long as its operation runs, at least three status polls 0.05 s apart plus the SDK's own work, so
    several requests still land in it."""
    before = deployments(emu)
    change()
    planned = cli("plan", MANIFEST, "--detailed-exitcode")
    assert planned.code == 2, str(planned)
    step = re.search(r"^\+/- deployment\.rts-managed/blue \(create before destroy: (\S+) → (blue-[0-9a-f]{4}), "
                     r"traffic 100 → 0 / 0 → 100\)", planned.out, re.M)
    assert step and [step[1]] == before, planned.out
    with Poller(out["scoring_uri"], out["primary_key"], BODY, cafile=emu.ca_path, pause=0.05) as poller:
        applied = cli.ok("apply", MANIFEST, "-y")
    assert "Smoke test passed" in applied.out
    assert poller.failures == {} and poller.total > 10, poller.statuses
    assert deployments(emu) == [step[2]]  # the old one is gone
    assert endpoint(emu)["properties"]["traffic"] == {step[2]: 100}
    assert cli("plan", MANIFEST, "--detailed-exitcode").code == 0
    return step[2]


def test_instance_type_and_code_changes_roll_out_as_successors_and_endpoint_replacement_is_refused(
        cli: Cli, emu: Emulator):
    cli.ok("apply", MANIFEST, "-y")
    assert deployments(emu) == ["blue"]
    out = cli.outputs(MANIFEST)  # the successors take over behind the same scoring URI and key
    first = roll(cli, emu, out, lambda: edit_yaml(cli.workdir / MANIFEST, lambda m: m["endpoints"][0]["deployments"][0]
                                             .update(instance_type="Standard_DS4_v2")))
    score = cli.workdir / "seed" / "src" / "score.py"
    second = roll(cli, emu, out, lambda: score.write_text(score.read_text() + "\n# a new revision\n"))
    assert second != first
    prefix = f"/subscriptions/{emu.settings.subscription_id}/resourceGroups/rts-managed-rg{EP_ID}/deployments/"
    body = emu.resource(prefix + second)
    assert body["tags"]["rtsctl.name"] == "blue" and body["properties"]["instanceType"] == "Standard_DS4_v2"
    # the manifest name still reaches the live deployment
    (cli.workdir / "req.json").write_text('{"name": "Daniel"}')
    invoked = cli.ok("invoke", MANIFEST, "--deployment", "blue", "--request", "req.json")
    assert "Daniel" in invoked.out

    # moving the endpoint onto a Kubernetes compute replaces it: its scoring URI changes, an outage
    def onto_kubernetes(m: dict) -> None:
        import yaml

        m["computes"] = yaml.safe_load((cli.workdir / "azure.yaml").read_text())["computes"]
        m["endpoints"][0]["compute"] = "k8s"

    edit_yaml(cli.workdir / MANIFEST, onto_kubernetes)
    planned = cli("plan", MANIFEST)
    assert re.search(r"^-/\+ endpoint\.rts-managed outage: its scoring URI changes", planned.out, re.M), str(planned)
    before = set(emu.resources())
    refused = cli("apply", MANIFEST, "-y")
    assert refused.code == 1 and "is an outage" in refused.err and "--allow-outage" in refused.err, str(refused)
    assert set(emu.resources()) == before  # nothing was touched
    cli.ok("destroy", MANIFEST, "-y")
    assert endpoint(emu) is None
