"""The Azure backend end to end: the rtsctl CLI in a subprocess, the REAL azure-ai-ml / azure-mgmt / azure-identity
SDKs inside it, and the wire-level emulator (tests/azure_emulator) on 127.0.0.1 standing in for Azure.

Nothing is replaced by a test double: the subprocess reaches the emulator only through its environment
(REQUESTS_CA_BUNDLE, HTTPS_PROXY for blob uploads, the RTSCTL_AZURE_* variables manifests/azure.yaml reads for
its `provider.cloud` block, and the service principal the emulator's token route accepts).
"""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest

from tests.azure_emulator import Emulator
from tests.azure_emulator.steps import WRITES, repeated_reads, steps
from tests.conftest import Cli
from tests.helpers import edit_yaml

pytest_plugins = ["tests.azure_emulator.fixtures"]

RG = "rts-rg"
W = "/providers/Microsoft.MachineLearningServices/workspaces/rts-ws"
DEPLOYMENT = f"{W}/onlineEndpoints/rts-score/deployments/blue"


@pytest.fixture
def azure_cli(tmp_path: Path, project: Path, monkeypatch):
    """`make(emu)` -> a Cli running rtsctl against `emu` on a writable copy of manifests/."""
    # never hand the subprocess a cloud that azure-ai-ml registered in this (pytest) process
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)

    def make(emu: Emulator, endpoint: str = "rts-score") -> Cli:
        # the shipped manifests have no default endpoint name (names are unique per region across Azure)
        return Cli(tmp_path / "home", project, {**emu.env(), "RTSCTL_ENDPOINT": endpoint})

    return make


def sub(emu: Emulator) -> str:
    return f"/subscriptions/{emu.settings.subscription_id}"


def rg_id(emu: Emulator, rg: str = RG) -> str:
    return f"{sub(emu)}/resourceGroups/{rg}"


def find(emu: Emulator, suffix: str, rg: str = RG) -> dict | None:
    return emu.resource(rg_id(emu, rg) + suffix)


def ids_below(emu: Emulator, prefix: str) -> list[str]:
    return [i for i in emu.resources() if i.lower().startswith(prefix.lower())]


def seed_rg(emu: Emulator, rg: str) -> None:
    emu.seed_resource(rg_id(emu, rg), {"location": "westeurope", "tags": {"owner": "platform-team"}})


def seed_aks(emu: Emulator, rg: str, name: str) -> str:
    arm_id = f"{rg_id(emu, rg)}/providers/Microsoft.ContainerService/managedClusters/{name}"
    emu.seed_resource(arm_id, {"location": "westeurope", "tags": {"owner": "platform-team"}, "properties": {
        "dnsPrefix": name, "kubernetesVersion": "1.30.0",
        "agentPoolProfiles": [{"name": "system", "mode": "System", "count": 3, "vmSize": "Standard_D4s_v5"}]}})
    return arm_id


def model_uploads(emu: Emulator) -> int:
    return sum(1 for method, path, status in emu.request_log
               if method == "PUT" and path.startswith("//") and "LocalUpload" in path and path.endswith("model.pkl")
               and "comp=" not in path and status == 201)


def assert_one_round_trip_each(calls: list[tuple[str, str, int]]) -> None:
    """A no-op plan of manifests/azure.yaml (issue 15): at most one OpenID discovery, one token request per
    audience (all of a plan's calls go to ARM: one token), no resource URL read twice, and nothing written."""
    counts = collections.Counter((method, path) for method, path, _ in calls)
    discovery = sum(n for (m, p), n in counts.items() if p.endswith("/.well-known/openid-configuration"))
    tokens = sum(n for (m, p), n in counts.items() if p.endswith("/oauth2/v2.0/token"))
    twice = {f"{m} {p}": n for (m, p), n in counts.items() if n > 1}
    writes = [f"{m} {p}" for (m, p) in counts if m in ("PUT", "PATCH", "DELETE")]
    assert discovery <= 1 and tokens <= 1 and not twice and not writes, (discovery, tokens, twice, writes)
    # what the plan needs and no more: 9 resources, one deployment list, one key read (was 39 calls)
    assert len(calls) <= 12, "\n".join(f"{m} {p} {s}" for m, p, s in calls)


def assert_each_step_reads_once(correlated: list[tuple[str, str, str, int]], steps_at_least: int) -> None:
    """An apply (issue 15): each step (its calls carry one x-ms-correlation-request-id) GETs each resource URL once
    between two of its own writes -- a write makes the next read a new one. Not counted: the LRO pollers' status
    and result reads (their thread belongs to no step: they carry no id), and a workspace's own create step, where
    azure-ai-ml GETs the workspace before its ARM template deployment (to refuse an existing one) and again as the
    operation's result, the deployment itself going through the SDK's own resource client, which carries no id."""
    groups = steps(correlated)
    assert len(groups) >= steps_at_least, list(groups)
    repeated = {}
    for name, group in groups.items():
        workspace_create = not any(m in WRITES for m, _ in group) and name.split(" ", 1)[1].startswith("workspaces/")
        found = {url: n for url, n in repeated_reads(group).items()
                 if not (workspace_create and url.rsplit("/", 2)[-2] == "workspaces")}
        if found:
            repeated[name] = found
    assert not repeated, "\n".join(f"{name}: {found}\n  " + "\n  ".join(f"{m} {p}" for m, p in groups[name])
                                   for name, found in repeated.items())


def one_line_error(result) -> str:
    lines = [line for line in result.err.strip().splitlines() if line.strip()]
    assert lines, str(result)
    return lines[-1]


# ------------------------------------------------------------------------------------------------------------------
def test_full_lifecycle_apply_plan_update_replace_destroy(azure_emulator_factory, azure_cli):
    """apply -> smoke; plan 0; instance_count -> update in place; instance_type -> +/- create before destroy; destroy
    keeps the resource group that existed before (only referenced), removes everything rtsctl created."""
    emu = azure_emulator_factory(lro_mode="async")
    seed_rg(emu, RG)
    before = set(emu.resources())
    cli = azure_cli(emu)

    applied = cli.ok("apply", "azure.yaml", "-y")
    assert "Smoke test passed: rts-score" in applied.out, str(applied)
    assert "Apply complete! Resources: 9 added" in applied.out, str(applied)  # the pre-existing RG is not added
    assert_each_step_reads_once(emu.correlated, 9)

    # every resource it created is marked; the pre-existing group is left as it was
    for suffix in (W, f"{W}/onlineEndpoints/rts-score", DEPLOYMENT, f"{W}/computes/k8s",
                   "/providers/Microsoft.ContainerService/managedClusters/rts-aks"):
        assert (find(emu, suffix) or {}).get("tags", {}).get("managed-by") == "rtsctl", suffix
    assert "managed-by" not in find(emu, "")["tags"]
    assert find(emu, W)["tags"]["rtsctl.experiment"] == "simple-model"
    assert find(emu, f"{W}/models/dummy-model/versions/1")["properties"]["tags"]["rtsctl.digest"].startswith("sha256:")
    uploads = model_uploads(emu)
    assert uploads == 1

    before_plan = len(emu.request_log)
    assert cli("plan", "azure.yaml", "--detailed-exitcode").code == 0
    assert_one_round_trip_each(emu.request_log[before_plan:])

    # an updatable field: update in place, the model is not uploaded again
    edit_yaml(cli.workdir / "azure.yaml", lambda m: m["endpoints"][0]["deployments"][0].update(instance_count=2))
    planned = cli("plan", "azure.yaml", "--detailed-exitcode")
    assert planned.code == 2, str(planned)
    assert "~ deployment.rts-score/blue" in planned.out and "instance_count: 1 -> 2" in planned.out
    assert "-/+" not in planned.out
    before_apply = len(emu.correlated)
    cli.ok("apply", "azure.yaml", "-y")
    assert_each_step_reads_once(emu.correlated[before_apply:], 1)
    assert find(emu, DEPLOYMENT)["sku"]["capacity"] == 2
    assert cli("plan", "azure.yaml", "--detailed-exitcode").code == 0
    assert model_uploads(emu) == uploads

    # an immutable field: replaced create-before-destroy by a successor that takes blue's traffic
    edit_yaml(cli.workdir / "azure.yaml",
              lambda m: m["endpoints"][0]["deployments"][0].update(instance_type="largeinstancetype"))
    planned = cli("plan", "azure.yaml", "--detailed-exitcode")
    assert planned.code == 2, str(planned)
    step = re.search(r"^\+/- deployment\.rts-score/blue \(create before destroy: blue → (blue-[0-9a-f]{4}), "
                     r"traffic 100 → 0 / 0 → 100\)", planned.out, re.M)
    assert step, planned.out
    assert "forces replacement" in planned.out
    before_apply = len(emu.correlated)
    replaced = cli.ok("apply", "azure.yaml", "-y")
    assert "Smoke test passed" in replaced.out
    assert_each_step_reads_once(emu.correlated[before_apply:], 1)  # successor, smoke test, traffic, delete: one step
    successor = f"{W}/onlineEndpoints/rts-score/deployments/{step[1]}"
    assert find(emu, successor)["properties"]["instanceType"] == "largeinstancetype"
    assert find(emu, successor)["tags"]["rtsctl.name"] == "blue"
    assert find(emu, DEPLOYMENT) is None
    assert find(emu, f"{W}/onlineEndpoints/rts-score")["properties"]["traffic"] == {step[1]: 100}
    assert cli("plan", "azure.yaml", "--detailed-exitcode").code == 0
    assert model_uploads(emu) == uploads

    destroyed = cli.ok("destroy", "azure.yaml", "-y")
    assert "not created by rtsctl" in destroyed.out or "kept" in destroyed.out, str(destroyed)
    assert set(emu.resources()) == before, sorted(set(emu.resources()) ^ before)
    # async LROs (this test's mode): the operations really were polled
    assert any("operationstatuses" in path.lower() for _, path, _ in emu.request_log)


# test_both_lro_modes_converge_and_destroy: async is the lifecycle test above (polled); sync (apply with smoke test,
# plan 0, destroy leaves nothing) is the converged end of tests/test_azure_fixes.py::
# test_failed_extension_is_reported_first_then_repaired[sync], which also checks the raw reads' api-version there


def test_twenty_percent_faults_converge_without_duplicates(azure_emulator_factory, azure_cli):
    emu = azure_emulator_factory(lro_mode="async", fault_rate=0.2, seed=11)
    cli = azure_cli(emu)
    applied = cli("apply", "azure.yaml", "-y", timeout=300)
    assert applied.code == 0, str(applied)
    assert "Smoke test passed" in applied.out
    assert cli("plan", "azure.yaml", "--detailed-exitcode", timeout=300).code == 0
    kinds = collections.Counter(kind for kind, *_ in emu.faults.injected)
    assert sum(kinds.values()) >= 5, kinds

    ids = emu.resources()
    assert len({i.lower() for i in ids}) == len(ids)
    named = collections.Counter()
    for arm_id in ids:
        low = arm_id.lower()
        for marker in ("/models/dummy-model/versions/", "/environments/scoring-env/versions/", "/deployments/blue",
                       "/onlineendpoints/rts-score", "/computes/k8s", "/managedclusters/rts-aks",
                       "/extensions/azureml", "/workspaces/rts-ws"):
            if low.endswith(marker) or (marker.endswith("/") and marker in low):
                named[marker] += 1
    assert set(named.values()) == {1}, named  # exactly one of each: no version registered twice
    assert len(named) == 8, named


# test_failed_operation_is_one_line_naming_resource_code_and_message: chained (both LRO modes) onto
# tests/test_azure_fixes.py::test_failed_extension_is_reported_first_then_repaired, whose repairing apply it fails


def test_adopt_existing_aks_cluster_and_leave_it_on_destroy(azure_emulator_factory, azure_cli):
    emu = azure_emulator_factory(lro_mode="async")
    seed_rg(emu, "shared-infra")
    aks = seed_aks(emu, "shared-infra", "shared-aks")
    cli = azure_cli(emu, "rts-attached")
    env = {"AKS_CLUSTER": "shared-aks", "AKS_RESOURCE_GROUP": "shared-infra", "RTSCTL_RESOURCE_GROUP": "rts-attach"}
    manifest = "examples/azure-attach-existing-aks.yaml"

    planned = cli("plan", manifest, env=env)
    assert planned.code == 0, str(planned)
    assert "aks_cluster.shared-aks" not in re.findall(r"^\s*\+ (\S+)", planned.out, re.M)
    applied = cli.ok("apply", manifest, "-y", env=env)
    assert "Smoke test passed" in applied.out
    compute = find(emu, "/providers/Microsoft.MachineLearningServices/workspaces/rts-ws/computes/k8s", "rts-attach")
    assert compute["properties"]["resourceId"].lower() == aks.lower()
    assert "managed-by" not in emu.resource(aks)["tags"]  # adopted, never marked
    assert cli("plan", manifest, "--detailed-exitcode", env=env).code == 0

    cli.ok("destroy", manifest, "-y", env=env)
    assert emu.resource(aks) is not None
    assert emu.resource(rg_id(emu, "shared-infra")) is not None
    assert ids_below(emu, rg_id(emu, "rts-attach")) == []

    missing = cli("plan", manifest, env={**env, "AKS_CLUSTER": "no-such-aks"})
    assert missing.code == 1
    line = one_line_error(missing)
    assert "AKS cluster no-such-aks not found in resource group shared-infra" in line, line
    # destroy never touches an adopted cluster, so one that has vanished does not stop it
    gone = cli("destroy", manifest, "-y", env={**env, "AKS_CLUSTER": "no-such-aks"})
    assert gone.code == 0, str(gone)


# test_blue_green_traffic_shift_and_retiring_a_deployment (90/10, then blue retired): chained onto
# tests/test_azure_fixes.py::test_writes_to_one_endpoint_wait_for_each_other, which applies the same manifest


def test_managed_endpoint_with_aml_token_auth_then_destroy_keeps_a_group_holding_foreign_resources(
        azure_emulator_factory, azure_cli):
    emu = azure_emulator_factory(lro_mode="sync")
    cli = azure_cli(emu, "rts-managed")
    manifest = "examples/azure-managed-endpoint.yaml"
    assert "Smoke test passed" in cli.ok("apply", manifest, "-y").out   # POSTed with the token as bearer
    outputs = cli.outputs(manifest)
    assert outputs["scoring_uri"].startswith(emu.url) and outputs["primary_key"]
    body = find(emu, f"{W}/onlineEndpoints/rts-managed", "rts-managed-rg")
    assert body["properties"]["authMode"].lower() == "amltoken" and body["properties"].get("compute") is None
    assert cli("plan", manifest, "--detailed-exitcode").code == 0

    # in-place endpoint and workspace updates: the endpoint PUT carries the live traffic map (an endpoint update
    # that leaves traffic out resets it to 0 on Azure)
    def describe(m: dict) -> None:
        m["endpoints"][0]["description"] = "seed scoring, managed"
        m["workspace"]["description"] = "rtsctl examples"
        m["workspace"]["tags"] = {"team": "scoring"}

    edit_yaml(cli.workdir / manifest, describe)
    planned = cli("plan", manifest, "--detailed-exitcode")
    assert planned.code == 2 and "~ endpoint.rts-managed" in planned.out and "~ workspace.rts-ws" in planned.out
    assert "-/+" not in planned.out, planned.out
    cli.ok("apply", manifest, "-y")
    body = find(emu, f"{W}/onlineEndpoints/rts-managed", "rts-managed-rg")
    assert body["properties"]["description"] == "seed scoring, managed"
    assert body["properties"]["traffic"] == {"blue": 100}
    workspace = find(emu, W, "rts-managed-rg")
    assert workspace["tags"]["team"] == "scoring" and workspace["tags"]["managed-by"] == "rtsctl"
    assert cli("plan", manifest, "--detailed-exitcode").code == 0

    # destroy never deletes a resource group holding foreign resources (was its own test, applying the same
    # manifest first): rtsctl created the group, but someone else put a resource in it since: destroy removes
    # everything rtsctl made and keeps the group (which would take the foreign resource with it), saying why
    # (issue 13)
    foreign = f"{rg_id(emu, 'rts-managed-rg')}/providers/Microsoft.Storage/storageAccounts/teamdata"
    emu.seed_resource(foreign, {"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}})

    destroyed = cli.ok("destroy", manifest, "-y")
    assert "Kept resource_group.rts-managed-rg: it still holds storageAccounts.teamdata (nobody)" in destroyed.out
    assert sorted(ids_below(emu, rg_id(emu, "rts-managed-rg"))) == sorted([rg_id(emu, "rts-managed-rg"), foreign])
