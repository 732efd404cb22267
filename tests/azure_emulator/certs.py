"""TLS material for the emulator: a trustme CA and one server certificate for every host it answers as."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from .loadtesting import HOST_SUFFIX as LOAD_TESTING_SUFFIX
from .loadtesting import REGIONS as LOAD_TESTING_REGIONS

SERVER_NAMES = (
    "127.0.0.1",
    "localhost",
    "management.azure.com",
    "*.blob.core.windows.net",
    "login.microsoftonline.com",
    "*.vault.azure.net",
    # a wildcard covers one label: one name per region for {guid}.{region}.cnt-prod.loadtesting.azure.com
    *(f"*.{region}{LOAD_TESTING_SUFFIX}" for region in LOAD_TESTING_REGIONS),
)


@dataclass
class TlsFiles:
    ca_path: Path        # PEM of the CA: what REQUESTS_CA_BUNDLE points at
    cert_path: Path      # server certificate chain (PEM)
    key_path: Path       # server private key (PEM)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert_path), str(self.key_path))
        return ctx


def ensure_tls(directory: Path) -> TlsFiles:
    """Reuse the PEM files in `directory` if they are there and name the same hosts (a restarted emulator keeps its
    CA), else mint them."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server-cert.pem", directory / "server-key.pem")
    names = directory / "names.txt"
    wanted = "\n".join(SERVER_NAMES)
    if all(p.exists() for p in (files.ca_path, files.cert_path, files.key_path)) and names.exists() \
            and names.read_text() == wanted:
        return files
    import trustme

    ca = trustme.CA(organization_name="rtsctl azure emulator")
    cert = ca.issue_cert(*SERVER_NAMES)
    ca.cert_pem.write_to_path(str(files.ca_path))
    cert.private_key_pem.write_to_path(str(files.key_path))
    with open(files.cert_path, "wb") as out:
        for blob in cert.cert_chain_pems:
            out.write(blob.bytes())
    names.write_text(wanted)
    return files
