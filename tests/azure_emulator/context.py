"""What every route handler shares: settings, the resource store, operations, blobs, the data plane."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .lro import Operations
from .store import Store

if TYPE_CHECKING:
    from .blob import BlobStore
    from .dataplane import DataPlane
    from .keyvault import KeyVaultApi
    from .loadtesting import LoadTestingApi

TENANT_ID = "72f988bf-0000-4000-8000-00000000e7e7"
CLIENT_ID = "e7e7e7e7-0000-4000-8000-0000000c1e17"
CLIENT_SECRET = "emu-client-secret"
SUBSCRIPTION_ID = "00000000-0000-4000-8000-0000000005ab"
STORAGE_KEY = "ZW11bGF0b3Itc3RvcmFnZS1rZXktbm90LWEtcmVhbC1zZWNyZXQ="   # base64, so SharedKey signing works


@dataclass
class Settings:
    lro_mode: str = "sync"                 # "sync": PUT answers Succeeded; "async": Azure-AsyncOperation polling
    tenant_id: str = TENANT_ID
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    subscription_id: str = SUBSCRIPTION_ID
    storage_key: str = STORAGE_KEY
    datastore_secret: str = "recorded"     # datastores/listSecrets: "recorded" (R01/R02), "AccountKey" or "Sas"
    endpoint_auth_mode_mutable: bool = True   # guess: the spec marks authMode updatable; no update recorded
    # Retry-After on running status answers. Azure sends none (R01, R03, R05: the SDK's own 5-30 s interval
    # applies); the fractional default is a test-speed deviation. None = exactly the recorded headers.
    retry_after: str | None = "0.05"
    timing: str = "fast"                   # "fast" or "realistic" (recorded durations x time_scale, see lro.py)
    time_scale: float = 1.0
    state_dir: Path | None = None
    # Distance to Azure: every answer (ARM, Entra token/discovery, blob, scoring) waits this long before it leaves,
    # so a benchmark shows what each round trip costs. Real calls take 50-300 ms (issue 15; the recordings'
    # request timestamps); 0 = answer at once.
    latency_ms: float = 0.0
    quota: dict = field(default_factory=dict)  # {VM family ("standardDSv2Family"): dedicated vCPU limit}, aml/quota.py


@dataclass
class Context:
    settings: Settings
    store: Store
    ops: Operations
    blobs: "BlobStore"
    url: str = ""                          # https://127.0.0.1:PORT, known once the listener is bound
    dataplane: "DataPlane | None" = None
    keyvault: "KeyVaultApi | None" = None        # {vault}.vault.azure.net (keyvault.py)
    loadtesting: "LoadTestingApi | None" = None  # {guid}.{region}.cnt-prod.loadtesting.azure.com (loadtesting.py)
    ca_path: str = ""                      # the emulator CA (what its clients and Load Testing engines trust)
    proxy_url: str = ""                    # http://127.0.0.1:PROXY, known once the proxy is bound
    request_log: list = field(default_factory=list)
    api_versions: list = field(default_factory=list)   # (method, path, api-version) of every ARM call
