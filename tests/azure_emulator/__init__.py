"""A wire-level Azure emulator for testing rtsctl's Azure backend through the REAL SDKs.

One HTTPS listener on 127.0.0.1 (trustme certificate; SANs 127.0.0.1, localhost,
management.azure.com, *.blob.core.windows.net, login.microsoftonline.com, *.vault.azure.net,
*.{region}.cnt-prod.loadtesting.azure.com) serves, routed by path
and Host header:
  * ARM + Azure ML control plane under /subscriptions/... (generic resource store, case-insensitive
    ids, any api-version, LROs, service rules -- see arm.py, aml/, kube.py, templates.py). An online
    deployment starts its real scoring container while provisioning: if init() crashes, its operation
    ends Failed (ResourceNotReady) and `getLogs` returns the container log;
  * Entra ID: GET /{tenant}/v2.0/.well-known/openid-configuration, POST /{tenant}/oauth2/v2.0/token
    (client_credentials), GET /common/discovery/instance -- the real azure-identity/MSAL works;
  * Blob (Host {account}.blob.core.windows.net, reached through the CONNECT proxy);
  * the scoring data plane: POST {url}/endpoints/{endpoint}/score (real scoring host per deployment);
  * Key Vault secrets (Host {vault}.vault.azure.net, challenge auth; keyvault.py) for Microsoft.KeyVault/vaults and
    every workspace's `keyVault`;
  * Azure Load Testing: Microsoft.LoadTestService/loadTests (ARM) and its data plane (Host = the resource's
    dataPlaneURI, {guid}.{region}.cnt-prod.loadtesting.azure.com; loadtesting.py), whose Locust test runs start a
    real Locust master and one worker per engine on 127.0.0.1 (locust_engine.py; Locust from tests/locust_tool.py)
    and report what Locust measured (loadtest_results.py);
  * GET /metadata/endpoints (ARM_CLOUD_METADATA_URL format).
Plus an HTTP CONNECT proxy (`proxy_url`) that splices those Azure host names to the listener.

Python API (stable; the Azure backend tests rely on it)::

    from tests.azure_emulator import Emulator
    from tests.azure_emulator.context import Settings
    with Emulator(lro_mode="sync" | "async", fault_rate=0.0, faults=("429", "500", "reset"),
                  durations=None, seed=None, timing="fast" | "realistic", time_scale=1.0,
                  settings=Settings(retry_after=None), latency_ms=0) as emu:    # or emu.start() / emu.stop()
        emu.url           # "https://127.0.0.1:PORT"  (resource manager AND Entra authority)
        emu.port, emu.proxy_url, emu.ca_path, emu.cloud_name   # cloud_name == f"EmuCloud{port}"
        emu.env()         # env vars for a subprocess rtsctl (below)
        emu.cloud_metadata()  # dict for MLClient(cloud=emu.cloud_name, cloud_metadata=...)
        emu.resources()   # stored ARM ids (creation order), for "no duplicates" assertions
        emu.resource(id)  # stored body (or None)
        emu.seed_resource(arm_id, body)   # pre-create (e.g. an existing AKS cluster / RG not owned by rtsctl)
        emu.set_fault_rate(r); emu.faults.injected   # [(kind, method, path)] injected so far
        emu.fail_next_lro(path_substring, code, message, times=1)  # next LRO(s) on a matching path end Failed
                          # (faults.RETRYABLE_LRO_CODES / NON_RETRYABLE_LRO_CODES / LRO_MESSAGES); the resource
                          # stays in state Failed (computes: provisioningErrors, extensions: errorInfo)
        emu.api_versions  # [(method, path, api-version)] of every ARM call (Key Vault / Load Testing data-plane
                          # calls too, their path as "//{host}{path}")
        emu.request_log   # [(method, path, status)]; blob: "//{host}/{path}[?comp=X]", Key Vault and Load
                          # Testing: "//{host}{path}"; dropped conn = 0
        emu.blob_names()  # "account/container/name" of stored blobs

`durations` ({"managedClusters": 3.0, "extensions": 1.0, "deployments": 1.0, "onlineEndpoints": 0.3,
"computes": 0.3}, keyed by the id's type segment) keeps async operations running that long; `timing="realistic"`
uses the recorded Azure durations (lro.REALISTIC: deployment 582 s, endpoint create 90 s, traffic update 20 s, ...)
x `time_scale` for every operation `durations` does not name. Answers follow recorded Azure traffic (see
docs/azure-fidelity.md); every rule names its source beside it, or says "guess".
Faults hit ARM calls only (never token, blob or scoring routes), are seeded, and never hit the same
request (client request id, or method+URL) twice in a row; drops are not injected on POST.

`env()` keys: REQUESTS_CA_BUNDLE, SSL_CERT_FILE (the emulator CA), HTTPS_PROXY/https_proxy,
NO_PROXY/no_proxy (127.0.0.1,localhost), AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET (the
only service principal the token route accepts), AZURE_SUBSCRIPTION_ID, AZURE_AUTHORITY_HOST (=url),
EMU_URL (=url), EMU_CLOUD_NAME / RTSCTL_AZURE_CLOUD (=cloud_name), RTSCTL_AZURE_RESOURCE_MANAGER and
RTSCTL_AZURE_AUTHORITY (=url + "/"), for a manifest's `provider.cloud` block.

Pytest fixtures: tests/azure_emulator/fixtures.py (`pytest_plugins = ["tests.azure_emulator.fixtures"]`).
Ready-made real SDK clients: tests/azure_emulator/clients.py. By hand:
`python -m tests.azure_emulator [--port P] [--lro async|sync] [--fault-rate R] [--seed S] [--state-dir DIR]
[--latency-ms MS]`. `latency_ms` / `--latency-ms` delays every answer (ARM, Entra, blob, scoring) by that much:
what the distance to Azure costs a client (benchmarks/azure_roundtrips.py).
"""

from .server import Emulator

__all__ = ["Emulator"]
