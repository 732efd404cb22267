"""One writer at a time across machines (issue 13): `provider.lock` leases a blob in a real Azure Storage emulator
(Azurite, tests/azurite.py), reached by its production host name through the Azure emulator's proxy with the
provider's credential. Two homes stand for two machines."""

from __future__ import annotations

import getpass
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from tests.azure_emulator import Emulator
from tests.azurite import ACCOUNT, Azurite
from tests.conftest import Cli
from tests.helpers import edit_yaml

pytest_plugins = ["tests.azure_emulator.fixtures", "tests.azurite"]

CONTAINER = "rtsctl-locks"


def _create_container(emu: Emulator, azurite: Azurite, bundle: Path) -> None:
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
        self.proc = subprocess.Popen([sys.executable, "-m", "rtsctl", "apply", "azure.yaml"], cwd=cli.workdir,
                                     env=cli.env, stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
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
    env = {**emu.env(), "RTSCTL_ENDPOINT": "rts-score", "REQUESTS_CA_BUNDLE": str(bundle), "SSL_CERT_FILE": str(bundle)}

    unlocked = Cli(tmp_path / "laptop", project, env).ok("plan", "azure.yaml")
    assert unlocked.out.count("other machines (CI runners, laptops) applying this workspace at the same time are "
                              "not excluded") == 1
    edit_yaml(project / "azure.yaml", lambda m: m["provider"].update(lock={"account": ACCOUNT, "container": CONTAINER}))
    laptop, runner = Cli(tmp_path / "laptop", project, env), Cli(tmp_path / "runner", project, env)
    assert "not excluded" not in laptop.ok("plan", "azure.yaml").out

    # the laptop holds the lock (at its prompt); the runner is refused at once, told who, since when, for what
    holder = Holder(laptop)
    holder.wait_prompt()
    refused = runner("apply", "azure.yaml", "-y")
    assert refused.code == 1, str(refused)
    assert f"is locked by {getpass.getuser()}@" in refused.err and f"(pid {holder.proc.pid}), since 20" in refused.err
    assert "for apply azure.yaml (lock id " in refused.err and "Traceback" not in refused.err
    lock_id = re.search(r"lock id ([0-9a-f-]{36})", refused.err).group(1)
    assert "nothing was changed" in refused.err and not emu.resources()

    # force-unlock takes only the id that holds it
    wrong = runner("force-unlock", "azure.yaml", str(uuid.uuid4()), "-y")
    assert wrong.code == 1 and "is not held under lock id" in wrong.err and f"(pid {holder.proc.pid})" in wrong.err

    # SIGKILL: nobody releases the lease; it lapses (15 s) and the waiting runner goes on and converges
    holder.kill()
    applied = runner.ok("apply", "azure.yaml", "-y", "--lock-timeout", "45")
    assert "Smoke test passed: rts-score" in applied.out
    assert runner("plan", "azure.yaml", "--detailed-exitcode").code == 0

    # a stuck holder released by its id: the next run proceeds at once
    edit_yaml(project / "azure.yaml", lambda m: m["endpoints"][0]["deployments"][0].update(instance_count=2))
    stuck = Holder(laptop)
    stuck.wait_prompt()
    held = runner("apply", "azure.yaml", "-y")
    lock_id = re.search(r"lock id ([0-9a-f-]{36})", held.err).group(1)
    released = runner.ok("force-unlock", "azure.yaml", lock_id, "-y")
    assert f"Released lock {lock_id} (held by {getpass.getuser()}@" in released.out
    assert "instance_count: 1 -> 2" in runner.ok("apply", "azure.yaml", "-y").out
    stuck.kill()
    assert laptop("plan", "azure.yaml", "--detailed-exitcode").code == 0
