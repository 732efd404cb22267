"""Shared worlds: two manifests in one workspace touch only what each owns; destroy keeps what others hold;
export writes the world back as a manifest and import takes ownership of what nobody owned (issue 13, part A).

Run as users run it: the CLI in a subprocess, real endpoints on 127.0.0.1 (local), the real SDKs against the
wire-level emulator (Azure).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.azure_emulator.fixtures import azure_emulator, azure_emulator_factory, azure_env  # noqa: F401
from tests.helpers import edit_yaml, post
from tests.test_azure_e2e import azure_cli  # noqa: F401 (fixture)

REQUEST = {"name": "Daniel"}
ANSWER = {"GoAway": "Daniel's not here."}


def second_manifest(project: Path, source: str, target: str, endpoint: str, managed: bool = False) -> None:
    """`target`: `source` with its own endpoint, model, environment (and compute), in the same resource group
    and workspace."""
    data = yaml.safe_load((project / source).read_text())
    data["models"][0]["name"], data["environments"][0]["name"] = "b-model", "b-env"
    ep = data["endpoints"][0]
    ep["name"] = endpoint
    ep["deployments"][0].update(model="b-model", environment="b-env")
    if managed:  # an Azure managed endpoint: no compute of its own
        data.pop("computes")
        ep.pop("compute")
        ep["deployments"][0]["instance_type"] = "Standard_DS3_v2"
    else:
        data["computes"][0]["name"] = "b-cpu"
        ep["compute"] = "b-cpu"
    (project / target).write_text(yaml.safe_dump(data, sort_keys=False))


def answers(cli, manifest: str) -> bool:
    out = json.loads(cli.ok("output", manifest, "-o", "json", "--show-secrets").out)[0]
    status, _, body = post(out["scoring_uri"], REQUEST, out["primary_key"])
    return status == 200 and json.loads(body) == ANSWER


def count(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    assert found, text
    return int(found.group(1))


def test_two_manifests_share_a_workspace_then_export_and_import_locally(cli, project):
    second_manifest(project, "dev.yaml", "b.yaml", "b-score")
    a = cli.ok("apply", "dev.yaml", "-y")
    added = count(r"Resources: (\d+) added", a.out)
    cli.ok("apply", "b.yaml", "-y")
    assert answers(cli, "dev.yaml") and answers(cli, "b.yaml")

    # a's plan never lists b's resources, and applying a again leaves b alone
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 0 and "b-score" not in plan.out and "b-model" not in plan.out, str(plan)
    cli.ok("apply", "dev.yaml", "-y")
    assert answers(cli, "b.yaml")

    # b's destroy leaves a untouched, keeps the shared parents a owns, and leaves no drift behind
    gone = cli.ok("destroy", "b.yaml", "-y")
    assert "Kept workspace.rts-workspace: owned by manifest 'dev'" in gone.out, str(gone)
    assert count(r"Resources: (\d+) destroyed", gone.out) == 6  # endpoint, deployment, traffic, model, env, compute
    assert answers(cli, "dev.yaml")
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0
    assert cli("plan", "b.yaml", "--refresh-only", "--detailed-exitcode").code == 0

    # a declared resource that another manifest owns: shown as not owned, and apply changes nothing
    edit_yaml(project / "b.yaml", lambda m: m["models"].append({"name": "dummy-model", "path": "seed/model"}))
    plan = cli("plan", "b.yaml")
    assert "exists, not owned: manifest 'dev' owns it (rtsctl import b.yaml model.dummy-model --from dev)" in plan.out
    refused = cli("apply", "b.yaml", "-y")
    assert refused.code == 1 and "nothing was changed" in refused.err, str(refused)
    workspace = cli.home / "local" / "rts-dev" / "workspaces" / "rts-workspace"
    assert not (workspace / "endpoints" / "b-score").exists() and not (workspace / "models" / "b-model").exists()
    edit_yaml(project / "b.yaml", lambda m: m["models"].pop())

    # b again, then a's destroy: a made the resource group and workspace, which still hold b's: kept, and said
    cli.ok("apply", "b.yaml", "-y")
    gone = cli.ok("destroy", "dev.yaml", "-y")
    assert count(r"Resources: (\d+) destroyed", gone.out) == added - 2, str(gone)  # all but RG and workspace
    assert "Kept workspace.rts-workspace: it still holds endpoint.b-score (manifest 'b')" in gone.out, str(gone)
    assert "Kept resource_group.rts-dev: it still holds workspace.rts-workspace (kept)" in gone.out, str(gone)
    assert answers(cli, "b.yaml")
    assert cli("plan", "dev.yaml", "--refresh-only", "--detailed-exitcode").code == 0
    assert cli("plan", "b.yaml", "--detailed-exitcode").code == 0

    # export: a complete manifest with its files; planned under b's name it says No changes
    written = cli.ok("export", "b.yaml", "--out", "x/m.yaml")
    assert "rtsctl plan x/m.yaml should say No changes" in written.out, str(written)
    exported = yaml.safe_load((project / "x" / "m.yaml").read_text())
    assert exported["name"] == "b" and [e["name"] for e in exported["endpoints"]] == ["b-score"]
    assert (project / "x" / "code" / "b-score" / "blue" / "score.py").is_file()
    assert cli("plan", "x/m.yaml", "--detailed-exitcode").code == 0
    assert cli("export", "b.yaml", "--out", "x/m.yaml").code == 1  # never overwritten

    # upgrade path: resources rtsctl made before owners existed are claimed by the first manifest declaring them
    for record in (cli.home / "local").rglob("*.json"):
        data = json.loads(record.read_text())
        if isinstance(data, dict) and data.pop("owner", None) is not None:
            record.write_text(json.dumps(data))
    plan = cli("plan", "b.yaml", "--detailed-exitcode")
    assert plan.code == 2 and "& endpoint.b-score" in plan.out and "to claim" in plan.out, str(plan)
    assert "endpoint.b-score" not in cli.ok("plan", "dev.yaml").out  # never by one that does not declare it
    claimed = cli.ok("apply", "b.yaml", "-y")
    assert "claimed" in claimed.out and answers(cli, "b.yaml")
    assert cli("plan", "b.yaml", "--detailed-exitcode").code == 0

    # import: a manifest declaring what another owns takes it only when told whom from
    refused = cli("import", "x/m.yaml", "endpoint.b-score", "-y")
    assert refused.code == 0 and "already owned by 'b'" in refused.out, str(refused)
    (project / "x" / "c.yaml").write_text((project / "x" / "m.yaml").read_text().replace("name: b\n", "name: c\n", 1))
    plan = cli("plan", "x/c.yaml")
    assert "rtsctl import x/c.yaml endpoint.b-score --from b" in plan.out, str(plan)
    refused = cli("import", "x/c.yaml", "endpoint.b-score", "-y")
    assert refused.code == 1 and "add --from b" in refused.err, str(refused)
    taken = cli.ok("import", "x/c.yaml", "endpoint.b-score", "deployment.b-score/blue", "--from", "b", "-y")
    assert "Import complete! 3 resource(s) now owned by 'c'" in taken.out, str(taken)  # the traffic came along
    assert "rtsctl import b.yaml endpoint.b-score --from c" in cli.ok("plan", "b.yaml").out
    assert answers(cli, "x/c.yaml")


def test_two_manifests_share_a_workspace_then_export_and_import_on_azure(azure_env, azure_cli):
    """The same on the emulator through the real SDKs (each call kept: every CLI run imports azure-ai-ml), plus an
    endpoint made with azure-ai-ml alone (no rtsctl): exported, imported, then planned as No changes."""
    from azure.ai.ml.entities import Environment, ManagedOnlineEndpoint, Model

    from tests.azure_emulator import clients
    from tests.test_emulator import managed_deployment

    emu = azure_env  # its variables in this process too: the test makes one endpoint itself with azure-ai-ml
    cli = azure_cli(emu)
    project = cli.workdir
    second_manifest(project, "azure.yaml", "b.yaml", "b-score", managed=True)
    (project / "request.json").write_text(json.dumps(REQUEST))
    added = count(r"Resources: (\d+) added", cli.ok("apply", "azure.yaml", "-y").out)
    ml = clients.ml_client(emu, "rts-rg", "rts-ws")
    assert ml.online_endpoints.get("rts-score").tags["rtsctl.owner"] == "azure"
    assert ml.workspaces.get("rts-ws").tags["rtsctl.owner.compute.k8s"] == "azure"  # computes keep no tags
    cli.ok("apply", "b.yaml", "-y")

    again = cli.ok("apply", "azure.yaml", "-y")  # its plan never lists b's, and a still answers (smoke test)
    assert "No changes" in again.out and "b-score" not in again.out and "Smoke test passed" in again.out, str(again)

    # export a's world; under a's name it plans as No changes
    cli.ok("export", "azure.yaml", "--out", "x/a.yaml")
    plan = cli("plan", "x/a.yaml", "--detailed-exitcode")
    assert plan.code == 0, str(plan)

    gone = cli.ok("destroy", "b.yaml", "-y")
    assert count(r"Resources: (\d+) destroyed", gone.out) == 5, str(gone)  # model, env, endpoint, deployment, traffic
    assert "Kept workspace.rts-ws: owned by manifest 'azure'" in gone.out
    cli.ok("invoke", "azure.yaml", "--request", "request.json")

    cli.ok("apply", "b.yaml", "-y")
    gone = cli.ok("destroy", "azure.yaml", "-y")
    assert "Kept workspace.rts-ws: it still holds endpoint.b-score (manifest 'b')" in gone.out, str(gone)
    assert "Kept resource_group.rts-rg: it still holds workspace.rts-ws (kept)" in gone.out, str(gone)
    assert count(r"Resources: (\d+) destroyed", gone.out) == added - 2
    cli.ok("invoke", "b.yaml", "--request", "request.json")
    assert cli("plan", "azure.yaml", "--refresh-only", "--detailed-exitcode").code == 0

    # an endpoint made with azure-ai-ml alone: exported with b's, imported, then No changes (b's untouched too)
    seed = project / "seed"
    model = ml.models.create_or_update(Model(name="hand-model", path=str(seed / "model"), type="custom_model"))
    env = ml.environments.create_or_update(Environment(
        name="hand-env", image="mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu-inference:latest",
        conda_file=str(seed / "conda.yaml")))
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="hand-ep", auth_mode="key")).result()
    ml.online_deployments.begin_create_or_update(managed_deployment("green", "hand-ep", model, env)).result()
    ep = ml.online_endpoints.get("hand-ep")
    ep.traffic = {"green": 100}
    ml.online_endpoints.begin_create_or_update(ep).result()

    written = cli.ok("export", "b.yaml", "--out", "y/b.yaml")
    hint = next(line.strip() for line in written.out.splitlines() if line.strip().startswith("rtsctl import"))
    assert "endpoint.hand-ep" in hint and "deployment.hand-ep/green" in hint and "endpoint.b-score" not in hint
    taken = cli.ok(*hint.split()[1:], "-y")
    assert "they match the manifest" in taken.out, str(taken)
    plan = cli("plan", "y/b.yaml", "--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out, str(plan)
    assert ml.online_endpoints.get("hand-ep").tags["rtsctl.owner"] == "b"
