"""One writer at a time across machines (issue 13): `provider.lock` leases a blob in a real Azure Storage emulator
(Azurite, tests/azurite.py), reached by its production host name through the Azure emulator's proxy with the
provider's credential. Two homes stand for two machines."""

from __future__ import annotations

import getpass
import os
import re
import signal
import threading
import uuid
from pathlib import Path

from tests.started import Started
from tests.azure_emulator import Emulator
from tests.conftest import Cli
from tests.helpers import edit_yaml

pytest_plugins = ["tests.azure_emulator.fixtures", "tests.azurite"]

CONTAINER = "rtsctl-locks"
MANIFEST = "examples/azure-managed-endpoint.yaml"


def _create_container(emu: Emulator, azurite, bundle: Path) -> None:
    """What the user does once, beforehand (az storage container create), here through the same SDK and proxy."""
    from azure.identity import ClientSecretCredential
    from azure.storage.blob import BlobServiceClient

    s = emu.settings
    credential = ClientSecretCredential(s.tenant_id, s.client_id, s.client_secret, authority=emu.url + "/",
                                        disable_instance_discovery=True, connection_verify=str(bundle),
                                        proxies={"https": emu.proxy_url})
    service = BlobServiceClient(f"https://{azurite.host}", credential=credential, connection_verify=str(bundle),
                                proxies={"https": emu.proxy_url})
    service.create_container(CONTAINER)


class Holder:
    """`rtsctl apply` at a terminal, stopped at its confirmation prompt: the lock is held (and renewed) there."""

    def __init__(self, cli: Cli):
        import pty

        self.leader, follower = pty.openpty()
        # forked by the pre-forked CLI server like every `cli` call: no 3 s azure-ai-ml import per holder
        self.proc = Started(["apply", MANIFEST], cli.workdir, cli.env, stdin=follower)
        os.close(follower)
        self.out: list[str] = []
        self.prompted = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.out.append(line)
            if "Do you want to perform these actions?" in line:
                self.prompted.set()
        self.prompted.set()

    def wait_prompt(self) -> None:
        assert self.prompted.wait(120) and self.proc.poll() is None, "".join(self.out) + self.proc.stderr.read()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        os.close(self.leader)


def test_two_machines_one_runs_the_other_is_refused_and_a_killed_holder_stops_blocking(
        azure_emulator_factory, azurite, tmp_path, project, monkeypatch):
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    emu = azure_emulator_factory(lro_mode="sync")
    emu.route(azurite.host, azurite.port)
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_text(Path(emu.ca_path).read_text() + azurite.ca_path.read_text())
    _create_container(emu, azurite, bundle)
    env = {**emu.env(), "RTSCTL_ENDPOINT": "rts-locked", "REQUESTS_CA_BUNDLE": str(bundle),
           "SSL_CERT_FILE": str(bundle)}
    manifest = project / MANIFEST
    unlocked = manifest.read_text()
    edit_yaml(manifest, lambda m: m["provider"].update(lock={"account": azurite.account, "container": CONTAINER}))
    laptop, runner = Cli(tmp_path / "laptop", project, env), Cli(tmp_path / "runner", project, env)

    # the laptop holds the lock (at its prompt); the runner is refused at once, told who, since when, for what
    holder = Holder(laptop)
    holder.wait_prompt()
    assert "not excluded" not in "".join(holder.out)
    refused = runner("apply", MANIFEST, "-y")
    assert refused.code == 1, str(refused)
    assert f"is locked by {getpass.getuser()}@" in refused.err and f"(pid {holder.proc.pid}), since 20" in refused.err
    assert f"for apply {MANIFEST} (lock id " in refused.err and "Traceback" not in refused.err
    assert "nothing was changed" in refused.err and not emu.resources()

    # SIGKILL: nobody releases the lease; it lapses (15 s) and the waiting runner goes on and converges
    holder.kill()
    applied = runner.ok("apply", MANIFEST, "-y", "--lock-timeout", "45")
    assert "Smoke test passed: rts-locked" in applied.out

    # a stuck holder released by its id (only by that id): the next run proceeds at once
    edit_yaml(manifest, lambda m: m["endpoints"][0]["deployments"][0].update(instance_count=2))
    stuck = Holder(laptop)
    stuck.wait_prompt()
    held = runner("force-unlock", MANIFEST, str(uuid.uuid4()), "-y")
    assert held.code == 1 and "is not held under lock id" in held.err and f"(pid {stuck.proc.pid})" in held.err
    lock_id = re.search(r"\(lock id ([0-9a-f-]{36})\)", held.err).group(1)
    released = runner.ok("force-unlock", MANIFEST, lock_id, "-y")
    assert f"Released lock {lock_id} (held by {getpass.getuser()}@" in released.out
    assert "instance_count: 1 -> 2" in runner.ok("apply", MANIFEST, "-y").out
    stuck.kill()

    # without provider.lock: the plan says once that other machines are not excluded; this machine still locks
    manifest.write_text(unlocked)                                      # instance_count 1 again: a change to prompt
    alone = Holder(laptop)
    alone.wait_prompt()
    assert "".join(alone.out).count("other machines (CI runners, laptops) applying this workspace at the same time "
                                    "are not excluded") == 1
    same_machine = laptop("apply", MANIFEST, "-y")
    assert same_machine.code == 1 and "(on this machine) is locked by" in same_machine.err, str(same_machine)
    assert f"(pid {alone.proc.pid})" in same_machine.err
    alone.kill()


def test_provider_lock_is_checked_at_validate(cli, project):
    edit_yaml(project / MANIFEST, lambda m: m["provider"].update(lock={"account": "Bad_Acct", "container": "a--b"}))
    bad = cli("validate", MANIFEST, env={"AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000000"})
    assert bad.code == 1 and "provider.lock.account: 'Bad_Acct' is not a valid name" in bad.err, str(bad)
    assert "provider.lock.container: 'a--b' is not a valid name" in bad.err
    edit_yaml(project / "dev.yaml", lambda m: m["provider"].update(lock={"account": "acct", "container": "locks"}))
    local = cli("validate", "dev.yaml")
    assert local.code == 1 and "provider.lock: lock is for the azure backend" in local.err, str(local)
