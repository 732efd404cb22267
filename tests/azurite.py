"""Azurite, Microsoft's Azure Storage emulator (npm `azurite`), for tests that need real Blob semantics (leases).

`pytest_plugins = ["tests.azurite"]` gives the session-scoped `azurite` fixture: Azurite installed with npm into a
cache folder once (reused while present), started on a free 127.0.0.1 port per pytest process (one per xdist
worker) over HTTPS with OAuth checking on (`--oauth basic`: bearer tokens' issuer, audience and expiry), and
stopped by its PID at the end. It knows one account, `ACCOUNT`, reached by production-style host name: a test
routes `https://ACCOUNT.blob.core.windows.net` to it through the Azure emulator's proxy (`Emulator.route`), so
rtsctl's own code builds the same endpoint it would on Azure and authenticates with the same credential.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

VERSION = "3.35.0"
ACCOUNT = "rtslocks"
KEY = base64.b64encode(b"azurite test account key, unused: rtsctl authenticates with a token").decode()
START_TIMEOUT = 60.0


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "rtsctl-tests" / f"azurite-{VERSION}"


def ensure_installed() -> Path:
    """The azurite-blob launcher, installed with npm on first use; xdist workers install it once between them."""
    folder = cache_dir()
    launcher = folder / "node_modules" / ".bin" / "azurite-blob"
    if launcher.exists():
        return launcher
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("Azurite needs npm (Node.js) on PATH: apt-get install npm")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".azurite-{VERSION}.install-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not launcher.exists():
            done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder),
                                   f"azurite@{VERSION}"], capture_output=True, text=True, timeout=600)
            if done.returncode != 0 or not launcher.exists():
                pytest.fail(f"npm install azurite@{VERSION} failed:\n{done.stdout}\n{done.stderr}")
    return launcher


@dataclass
class Azurite:
    port: int
    ca_path: Path
    pid: int
    account: str = ACCOUNT

    @property
    def host(self) -> str:
        return f"{self.account}.blob.core.windows.net"


def _tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA of Azurite's own and a certificate for the production host names it answers as."""
    import trustme

    ca = trustme.CA(organization_name="rtsctl tests azurite")
    cert = ca.issue_cert(f"{ACCOUNT}.blob.core.windows.net", "127.0.0.1")
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca.cert_pem.write_to_path(str(paths[0]))
    cert.private_key_pem.write_to_path(str(paths[2]))
    paths[1].write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return paths


@pytest.fixture(scope="session")
def azurite(tmp_path_factory) -> Azurite:
    launcher = ensure_installed()
    workdir = tmp_path_factory.mktemp("azurite")
    ca, cert, key = _tls(workdir)
    proc = subprocess.Popen(
        [str(launcher), "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence", "--oauth", "basic",
         "--cert", str(cert), "--key", str(key), "--skipApiVersionCheck", "--disableTelemetry", "--silent"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "AZURITE_ACCOUNTS": f"{ACCOUNT}:{KEY}"})
    found: list[int] = []
    seen: list[str] = []
    ready = threading.Event()

    def read() -> None:  # keeps draining Azurite's output so it never blocks on a full pipe
        for line in proc.stdout:
            if len(seen) < 100:
                seen.append(line)
            match = re.search(r"listens on https://127\.0\.0\.1:(\d+)", line)
            if match and not found:
                found.append(int(match.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(START_TIMEOUT) or not found:
            pytest.fail("Azurite did not start:\n" + "".join(seen))
        yield Azurite(found[0], ca, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
