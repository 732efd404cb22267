"""Issue 10 on the Azure backend, through the real SDKs against the emulator: forensics of a failed deployment
(service code, container log via getLogs, what to do) and the heartbeat during a slow operation."""

from __future__ import annotations

from tests.test_azure_e2e import azure_cli, seed_aks, seed_rg  # noqa: F401

pytest_plugins = ["tests.azure_emulator.fixtures"]

MANIFEST = "examples/azure-managed-endpoint.yaml"


def test_provisioning_failure_prints_code_container_log_and_what_to_do(azure_emulator_factory, azure_cli, project):
    """init() crashes in the emulator's real scoring container: the deployment's operation ends Failed
    (ResourceNotReady) and apply shows the container log's last lines from getLogs."""
    emu = azure_emulator_factory(lro_mode="async")
    cli = azure_cli(emu, "rts-managed")
    (project / "seed" / "src" / "score.py").write_text(
        "print('opening model.pkl from the mounted model dir', flush=True)\n\n"
        "def init():\n    raise RuntimeError('model file is corrupt')\n\ndef run(raw):\n    return raw\n")
    failed = cli("apply", MANIFEST, "-y", timeout=300)
    assert failed.code == 1, str(failed)
    assert "deployment.rts-managed/blue failed (ResourceNotReady)" in failed.out, str(failed)
    assert "| opening model.pkl from the mounted model dir" in failed.out, failed.out
    assert "what to do: the scoring container crashed" in failed.out


def test_injected_out_of_quota_failure_names_the_code_and_the_fix(azure_emulator_factory, azure_cli):
    """OutOfQuota names itself, the log tail and the fix; then a non-retryable code on the repair fails once."""
    emu = azure_emulator_factory(lro_mode="async")
    cli = azure_cli(emu, "rts-managed")
    emu.fail_next_lro("/deployments/blue", "OutOfQuota",
                      "Not enough quota available for Standard_DS3_v2 in SubscriptionId. Current usage/limit: 4/4.")
    failed = cli("apply", MANIFEST, "-y", timeout=300)
    assert failed.code == 1, str(failed)
    assert "deployment.rts-managed/blue failed (OutOfQuota)" in failed.out, str(failed)
    assert "log" in failed.out.split("failed (OutOfQuota)", 1)[1]  # the log tail (or why there is none) follows
    assert "what to do: the subscription has no cores left for this VM family" in failed.out

    # the repairing apply fails with a non-retryable code (was test_azure_fixes'
    # test_non_retryable_failure_fails_once_with_the_service_code, on a fresh world): it fails once, with the code
    puts = [r for r in emu.request_log if r[0] == "PUT" and "/deployments/blue" in r[1].lower()]
    emu.fail_next_lro("/deployments/blue", "ResourceNotReady", "User container has crashed or terminated.")
    failed = cli("apply", MANIFEST, "-y", timeout=300)
    assert failed.code == 1
    assert "deployment.rts-managed/blue: (ResourceNotReady) User container has crashed or terminated." in failed.err
    again = [r for r in emu.request_log if r[0] == "PUT" and "/deployments/blue" in r[1].lower()]
    assert len(again) == len(puts) + 1, again                                  # not retried


KNOWN_FAILURES = [
    ("ImageBuildFailure", "Image build failed: conda env create exited with 1.",
     "the environment's image failed to build"),
    ("DeploymentCrashLoopBackOff", "The user container crashed when initializing.",
     "the container keeps crashing while it initializes"),
    ("UserScriptImportError", "score.py imports unavailable packages.",
     "score.py imports a package the environment lacks"),
]


def test_known_failure_codes_say_what_to_do(azure_emulator_factory, azure_cli):
    """The troubleshooting guide's codes, on an attached AKS cluster (where the Kubernetes-only codes happen): each
    names itself, shows the log tail and one line saying what to do. One world for the three: the first code fails
    the deployment's create, each next one the apply that repairs the Failed deployment (was one test per code)."""
    emu = azure_emulator_factory(lro_mode="async")
    seed_rg(emu, "shared-infra")
    seed_aks(emu, "shared-infra", "shared-aks")
    cli = azure_cli(emu, "rts-attached")
    env = {"AKS_CLUSTER": "shared-aks", "AKS_RESOURCE_GROUP": "shared-infra", "RTSCTL_RESOURCE_GROUP": "rts-attach"}
    for code, message, hint in KNOWN_FAILURES:
        emu.fail_next_lro("/deployments/blue", code, message)
        failed = cli("apply", "examples/azure-attach-existing-aks.yaml", "-y", timeout=300, env=env)
        assert failed.code == 1, str(failed)
        assert f"deployment.rts-attached/blue failed ({code}): {message}" in failed.out, str(failed)
        assert f"what to do: {hint}" in failed.out, failed.out


def test_heartbeat_during_a_slow_emulator_operation(azure_emulator_factory, azure_cli):
    """Realistic timing scaled down (deployment create 582 s x 0.01 ≈ 6 s) and a 1 s heartbeat."""
    emu = azure_emulator_factory(lro_mode="async", timing="realistic", time_scale=0.01)
    cli = azure_cli(emu, "rts-managed")
    done = cli("apply", MANIFEST, "-y", timeout=300, env={"RTSCTL_HEARTBEAT_SECONDS": "1"})
    assert done.code == 0, str(done)
    beats = [line for line in done.out.splitlines() if line.startswith("deployment.rts-managed/blue: still creating… [")]
    assert len(beats) >= 2, done.out
    assert beats[-1].endswith("s elapsed]")
    assert "Critical path: " in done.out and "deployment.rts-managed/blue" in done.out.split("Critical path: ")[1]


def test_plan_warns_about_quota_and_instance_types_before_anything_changes(azure_emulator_factory, azure_cli,
                                                                          project):
    """DSv2 quota of 4 vCPUs: one Standard_DS3_v2 instance (4 vCPUs) needs ceil(1.2 x 1) x 4 = 8 with the upgrade
    reserve; Standard_DS1_v2 is not offered to managed online endpoints (no "MIR" in its supportedComputeTypes)."""
    from tests.azure_emulator.context import Settings

    emu = azure_emulator_factory(lro_mode="sync", settings=Settings(quota={"standardDSv2Family": 4}))
    cli = azure_cli(emu, "rts-managed")
    plan = cli("plan", MANIFEST, timeout=300)
    assert plan.code == 0, str(plan)
    assert ("Warning: quota: this plan needs 8 more standardDSv2Family vCPUs in westeurope" in plan.out
            and "but 4 of 4 are left" in plan.out), plan.out
    assert not emu.resources(), "preflight changed something"

    text = (project / MANIFEST).read_text()
    (project / MANIFEST).write_text(text.replace("instance_type: Standard_DS3_v2", "instance_type: Standard_DS1_v2"))
    plan = cli("plan", MANIFEST, timeout=300)
    assert plan.code == 0, str(plan)
    assert ("Warning: deployment.rts-managed/blue: instance_type Standard_DS1_v2 is not offered for managed online "
            "endpoints in westeurope") in plan.out, plan.out


def test_a_deployment_left_failed_then_another_machine_tells_drift_from_edit(azure_emulator_factory, azure_cli,
                                                                             tmp_path):
    """Two checks on one applied world (each was its own test, applying the same manifest first):

    A deployment left Failed outside rtsctl plans as drift: the service leaves the deployment Failed (set in the
    emulator's store, as a platform failure would). The plan heals it and calls it drift; --refresh-only shows it.

    Another machine tells drift from edit by what the resources carry: each resource carries what rtsctl last
    applied to it (an `rtsctl.applied` tag; traffic's on the endpoint), so a machine that never applied -- a CI
    runner after a laptop's apply -- still calls a portal change drift, and its own manifest change an edit."""
    from tests.conftest import Cli
    from tests.helpers import edit_yaml

    emu = azure_emulator_factory(lro_mode="sync")
    laptop = azure_cli(emu, "rts-managed")
    assert laptop("apply", MANIFEST, "-y", timeout=300).code == 0
    ci = Cli(tmp_path / "ci-home", laptop.workdir, {k: v for k, v in laptop.env.items() if k != "RTSCTL_HOME"})
    assert not (tmp_path / "ci-home").exists() or not any((tmp_path / "ci-home").rglob("applied/*.json"))
    assert ci("plan", MANIFEST, "--detailed-exitcode", timeout=300).code == 0  # converged, as seen from CI

    deployment = next(i for i in emu.resources() if i.lower().endswith("/onlineendpoints/rts-managed/deployments/blue"))
    emu.ctx.store.get(deployment).body["properties"]["provisioningState"] = "Failed"
    plan = laptop("plan", MANIFEST, timeout=300)
    assert plan.code == 0, str(plan)
    assert "# deployment.rts-managed/blue will be updated in place (drift: changed outside rtsctl)" in plan.out, plan.out
    assert "provisioning state is Failed" in plan.out
    refresh = laptop("plan", MANIFEST, "--refresh-only", timeout=300)
    assert "~ deployment.rts-managed/blue" in refresh.out, str(refresh)
    # the platform heals it (as the service's own retry would): converged again, so what follows is the portal's
    emu.ctx.store.get(deployment).body["properties"]["provisioningState"] = "Succeeded"
    assert ci("plan", MANIFEST, "--detailed-exitcode", timeout=300).code == 0

    # the portal: blue scaled out, its traffic taken away
    endpoint = next(i for i in emu.resources() if i.lower().endswith("/onlineendpoints/rts-managed"))
    assert emu.resource(endpoint)["tags"]["rtsctl.applied-traffic"].startswith("1.")
    emu.ctx.store.get(f"{endpoint}/deployments/blue").body["sku"]["capacity"] = 2
    emu.ctx.store.get(endpoint).body["properties"]["traffic"] = {"blue": 0}
    drifted = ci("plan", MANIFEST, timeout=300)
    assert drifted.code == 0, str(drifted)
    assert "# deployment.rts-managed/blue will be updated in place (drift: changed outside rtsctl)" in drifted.out, \
        drifted.out
    assert "# traffic.rts-managed will be updated in place (drift: changed outside rtsctl)" in drifted.out

    # CI's own manifest asks for 3 instances: that change is an edit, whatever the portal did
    edit_yaml(laptop.workdir / MANIFEST, lambda m: m["endpoints"][0]["deployments"][0].update(instance_count=3))
    edited = ci("plan", MANIFEST, timeout=300)
    assert "# deployment.rts-managed/blue will be updated in place (edit: the manifest" in edited.out, edited.out
