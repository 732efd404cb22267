"""Azure Load Testing's data plane for `rtsctl bench --engine azure-load-testing` (azure-developer-loadtesting,
azure-keyvault-secrets): one test in a Load Testing resource, its files, the endpoint key as a Key Vault reference,
its runs, their statistics, client metrics and result files.

The key never travels in the test: it is written as a secret to the WORKSPACE's own Key Vault (the workspace's
`key_vault` ARM id; the vault URI is read from ARM, so sovereign clouds and the emulator need no host rule here),
and the test names that secret as a Load Testing secret of type AKV_SECRET_URI, read on the engines by the Load
Testing resource's system-assigned identity (load_testing.py creates it with one). The uploaded script and config
hold no key (checked before any upload), and the test's environment variables carry none.

Plain dicts and strings cross into rtsctl/bench/cloud.py, which owns progress, the report and the exit code: the
bench package never imports an Azure SDK.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rtsctl.support.errors import RtsctlError

from .errors import azure_errors, is_not_found

#: Locust tests are a preview of the data plane: kind "Locust" needs this API version (issue 17; Microsoft's
#: quickstart-create-run-load-test-with-locust.md calls Locust support a preview). azure-developer-loadtesting
#: 1.1.0b1 (pinned in pyproject) knows kind "Locust" but defaults to 2024-12-01-preview: rtsctl asks for this one.
DATA_PLANE_API = "2025-05-01-preview"
#: the data plane's file types (azure-developer-loadtesting models FileType): the Locust script is the test
#: script, the config JSON beside it an additional artifact the engines download next to it
SCRIPT_TYPE, ARTIFACT_TYPE = "TEST_SCRIPT", "ADDITIONAL_ARTIFACTS"
#: Microsoft.KeyVault/vaults API version for reading a vault's URI and access policies (azure-rest-api-specs
#: keyvault resource-manager stable/2023-07-01)
VAULT_API = "2023-07-01"
#: role assignments (azure-rest-api-specs authorization resource-manager stable/2022-04-01 authorization-
#: RoleAssignmentsCalls.json) of the built-in role "Key Vault Secrets User" (learn.microsoft.com/azure/role-based-
#: access-control/built-in-roles/security: 4633458b-17de-408a-b874-0445c86b69e6, reads secret contents)
ROLE_API = "2022-04-01"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
#: "Key Vault Secrets Officer" (same page: b86a8fe4-44ce-4948-aee5-eccb2c155cd7, writes secrets)
SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
ROLE_PROPAGATION_S = 600.0
#: client metrics that make the report's timeline (spec examples ListTestRunMetricsDefinitions.json)
METRICS_NAMESPACE = "LoadTestRunMetrics"
METRICS = (("TotalRequests", "Total"), ("Errors", "Total"), ("ResponseTime", "Average"),
           ("ResponseTime", "Percentile90"), ("ResponseTime", "Percentile99"))
MAX_RESULT_BYTES = 512 * 1024 * 1024  # a results archive larger than this is left in the portal
SAFE_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def secret_name(endpoint: str) -> str:
    """Key Vault secret names are 1-127 letters, digits and '-' (azure-docs key-vault general/about-keys-secrets-
    certificates.md): an endpoint name (letters, digits, '-') always makes one."""
    return f"rtsctl-{endpoint}-key"[:127]


class AzureLoadTesting:
    """One Load Testing resource of the manifest's resource group, seen from its data plane."""

    def __init__(self, clients: Any, resource: str):
        self.clients, self.resource = clients, resource
        self.address = f"load_testing.{resource}"
        with azure_errors(self.address):
            try:
                lt = clients.load_testing.load_tests.get(clients.resource_group, resource)
            except Exception as exc:  # noqa: BLE001 - a missing resource is said plainly
                if is_not_found(exc):
                    raise RtsctlError(f"{self.address}: no Azure Load Testing resource {resource!r} in resource group "
                                      f"{clients.resource_group}: declare it as `load_testing:` and apply, or name "
                                      "an existing one with --load-testing") from None
                raise
        if not lt.data_plane_uri:
            raise RtsctlError(f"{self.address}: the resource has no data plane URI yet (provisioning state "
                              f"{lt.provisioning_state}); try again when it is Succeeded")
        self.id = lt.id
        #: seconds between status reads (the ARM pace on Azure, faster on a custom cloud: Clients.poll_interval)
        self.poll_interval = clients.poll_interval
        self.principal_id = getattr(getattr(lt, "identity", None), "principal_id", None)
        kwargs = {"api_version": DATA_PLANE_API}
        from azure.developer.loadtesting import LoadTestAdministrationClient, LoadTestRunClient

        self.admin = LoadTestAdministrationClient(lt.data_plane_uri, clients.credential, **kwargs)
        self.runs = LoadTestRunClient(lt.data_plane_uri, clients.credential, **kwargs)

    # ------------------------------------------------------------------ the key, in the workspace's vault
    def _vault(self) -> tuple[str, dict[str, Any]]:
        """(vault ARM id, its properties) of the workspace's own Key Vault."""
        where = f"workspace.{self.clients.workspace}"
        with azure_errors(where):
            ws = self.clients.ml.workspaces.get(self.clients.workspace)
        vault_id = getattr(ws, "key_vault", None)
        if not vault_id:
            raise RtsctlError(f"{where}: the workspace names no Key Vault to keep the endpoint key in")
        with azure_errors(where):
            vault = self.clients.resources.resources.get_by_id(vault_id, api_version=VAULT_API)
        return vault_id, dict(vault.properties or {})

    def _grant(self, vault_id: str, props: dict[str, Any]) -> bool:
        """Let the resource's identity read the vault's secrets, the way the vault is governed: under Azure RBAC
        (what azure-ai-ml's workspace template creates) a 'Key Vault Secrets User' role assignment at the vault --
        and, since an RBAC vault refuses data-plane calls to everyone without a data role, its creator included, a
        'Key Vault Secrets Officer' one for rtsctl's own caller, who writes the key; under access policies a policy
        with secrets `get` (the caller's own access is the vault owner's business there). Every write is
        idempotent; each needs the caller to administer the vault (Owner / User Access Administrator for a role
        assignment). True when a role was granted just now (Key Vault may not know it yet)."""
        if not self.principal_id:
            raise RtsctlError(f"{self.address}: the resource has no system-assigned identity to read the endpoint "
                              "key with: apply the manifest (rtsctl gives it one) or enable it in the portal")
        vault = vault_id.rsplit("/", 1)[-1]
        if props.get("enableRbacAuthorization"):
            new = self._assign_role(vault_id, vault, self.principal_id, SECRETS_USER, "Key Vault Secrets User",
                                    f"{self.address}'s identity", "ServicePrincipal")
            return self._assign_role(vault_id, vault, caller_object_id(self.clients), SECRETS_OFFICER,
                                     "Key Vault Secrets Officer", "rtsctl's caller (you)", None) or new
        for policy in props.get("accessPolicies") or []:
            secrets = [p.lower() for p in (policy.get("permissions") or {}).get("secrets") or []]
            if policy.get("objectId") == self.principal_id and ("get" in secrets or "all" in secrets):
                return None
        body = {"properties": {"accessPolicies": [{"tenantId": props.get("tenantId"), "objectId": self.principal_id,
                                                   "permissions": {"secrets": ["get"]}}]}}
        with azure_errors(f"Key Vault {vault} (access policy for {self.address})"):
            # Vaults_UpdateAccessPolicy: PUT {vault}/accessPolicies/add (azure-rest-api-specs keyvault keyvault.json)
            self.clients.resources.resources.begin_create_or_update_by_id(
                f"{vault_id}/accessPolicies/add", body, api_version=VAULT_API).result()
        return False

    def _assign_role(self, vault_id: str, vault: str, principal: str, role: str, role_name: str, who: str,
                     principal_type: str | None) -> bool:
        """A role assignment named after (vault, principal, role), so a later run finds it and writes nothing; one
        made under another name is already what is needed (ARM answers 409 RoleAssignmentExists). True when it was
        made just now."""
        import uuid

        name = uuid.uuid5(uuid.NAMESPACE_URL, f"{vault_id.lower()}|{principal}|{role}")
        assignment = f"{vault_id}/providers/Microsoft.Authorization/roleAssignments/{name}"
        with azure_errors(f"Key Vault {vault} (role assignment for {who})"):
            try:
                self.clients.resources.resources.get_by_id(assignment, api_version=ROLE_API)
                return False
            except Exception as exc:  # noqa: BLE001 - only "not there yet" leads to a write
                if not is_not_found(exc):
                    raise
        body = {"properties": {"roleDefinitionId": f"/subscriptions/{self.clients.subscription_id}/providers/"
                                                   f"Microsoft.Authorization/roleDefinitions/{role}",
                               "principalId": principal, **({"principalType": principal_type} if principal_type
                                                            else {})}}
        try:
            with azure_errors(f"Key Vault {vault} (role assignment for {who})"):
                self.clients.resources.resources.begin_create_or_update_by_id(assignment, body,
                                                                            api_version=ROLE_API).result()
        except RtsctlError as exc:
            if "RoleAssignmentExists" in str(exc):
                return False
            raise RtsctlError(f"{exc} -- rtsctl gives {who} ({principal}) the '{role_name}' role on the workspace's "
                              "vault, which needs Owner or User Access Administrator there; or have it granted "
                              f"(az role assignment create --role \"{role_name}\" --assignee-object-id {principal} "
                              f"--scope {vault_id}) and run again") from None
        return True

    def store_key(self, endpoint: str, key: str) -> str:
        """The endpoint key as a secret of the workspace's vault (written only when it changed) -> its versioned
        URI, which the test references. The key itself goes to Key Vault only, over its own TLS connection."""
        from azure.keyvault.secrets import SecretClient

        vault_id, props = self._vault()
        uri = props.get("vaultUri")
        if not uri:
            raise RtsctlError(f"the workspace's Key Vault {vault_id.rsplit('/', 1)[-1]} has no vaultUri")
        granted = self._grant(vault_id, props)
        name = secret_name(endpoint)
        client = SecretClient(uri, self.clients.credential, verify_challenge_resource=not self.clients.cloud.is_custom)
        # a role assignment reaches Key Vault's data plane a little after ARM answered (minutes at worst,
        # learn.microsoft.com/azure/role-based-access-control/troubleshooting: "role assignment changes ... can
        # take up to 10 minutes"): a 403 right after one is waited out, within bounds
        deadline = time.monotonic() + (ROLE_PROPAGATION_S if granted else 0.0)
        with client, azure_errors(f"Key Vault secret {name}"):
            while True:
                try:
                    return self._write_secret(client, name, key, endpoint)
                except Exception as exc:  # noqa: BLE001 - only a fresh grant's 403 is waited out
                    if getattr(exc, "status_code", None) != 403 or time.monotonic() >= deadline:
                        raise
                    time.sleep(self.poll_interval)

    @staticmethod
    def _write_secret(client: Any, name: str, key: str, endpoint: str) -> str:
        """The key as the secret `name`, a new version only when it differs -> the version's URI."""
        try:
            current = client.get_secret(name)
        except Exception as exc:  # noqa: BLE001 - a first run finds none
            if not is_not_found(exc):
                raise
            current = None
        if current is None or current.value != key:
            current = client.set_secret(name, key, content_type="text/plain",
                                        tags={"managed-by": "rtsctl", "rtsctl.endpoint": endpoint})
        return str(current.id)

    # ------------------------------------------------------------------ the test and its files
    def prepare(self, test_id: str, *, display: str, files: Mapping[str, bytes], script: str, secret_uri: str,
                secret_env: str, key: str | None, engines: int, regions: Sequence[str],
                criteria: Mapping[str, Any]) -> dict:
        """Create or update the Locust test and upload its files (`script` is the test script among `files`); the
        engines get the secret at `secret_uri` as the variable `secret_env`. Returns the test as the service keeps
        it."""
        for name, data in files.items():  # the engines must never find the key in a file they were given
            if key and key.encode() in data:
                raise RtsctlError(f"refused to upload {name}: it contains the endpoint key")
        # a JSON merge patch (the SDK's content type): null removes what an earlier run set and this one does not
        config: dict[str, Any] = {"engineInstances": engines,
                                  "regionalLoadTestConfig": split_engines(engines, regions) if regions else None}
        body = {"displayName": display[:50], "description": "rtsctl bench --engine azure-load-testing",
                "kind": "Locust", "loadTestConfiguration": config,
                "passFailCriteria": {"passFailMetrics": dict(criteria)},
                "secrets": {secret_env: {"type": "AKV_SECRET_URI", "value": secret_uri}},
                "keyvaultReferenceIdentityType": "SystemAssigned"}
        where = f"{self.address} test {test_id}"
        with azure_errors(where):
            self.admin.create_or_update_test(test_id, body)
            for name, data in files.items():
                kind = SCRIPT_TYPE if name == script else ARTIFACT_TYPE
                poller = self.admin.begin_upload_test_file(test_id, name, data, file_type=kind,
                                                           _polling_interval=self.clients.poll_interval)
                poller.wait()
                # the SDK's poller hands back None (its deserializer is `lambda *_: None`, _operations/_patch.py):
                # the file as last read is its polling method's resource
                info = poller.polling_method().resource()
                status = _get(info, "validationStatus")
                if status == "VALIDATION_FAILURE":
                    raise RtsctlError(f"{where}: the service refused {name}: {_get(info, 'validationFailureDetails')}")
            return dict(self.admin.get_test(test_id))

    # ------------------------------------------------------------------ runs
    def start(self, test_id: str, run_id: str, display: str) -> None:
        with azure_errors(f"{self.address} run {run_id}"):
            self.runs.begin_test_run(run_id, {"testId": test_id, "displayName": display[:50]},
                                     _polling_interval=self.clients.poll_interval)

    def status(self, run_id: str) -> dict:
        """The run as the service reports it now: status, statistics per sampler ("Total" among them), test
        result, portal URL, error details."""
        with azure_errors(f"{self.address} run {run_id}"):
            return dict(self.runs.get_test_run(run_id))

    def stop(self, run_id: str) -> None:
        with azure_errors(f"{self.address} run {run_id}"):
            self.runs.stop_test_run(run_id)

    def metrics(self, run_id: str, start: str, end: str,
                wanted: Sequence[tuple[str, str]] = METRICS) -> dict[str, dict[str, float]]:
        """Client metrics per 5 s (the finest grain, ListTestRunMetricsDefinitions.json), `wanted` as (metric,
        aggregation) pairs, keyed "metric/aggregation" then ISO timestamp."""
        span = f"{start}/{end}"
        out: dict[str, dict[str, float]] = {}
        with azure_errors(f"{self.address} run {run_id} metrics"):
            for name, aggregation in wanted:
                series: dict[str, float] = {}
                for element in self.runs.list_metrics(run_id, metric_name=name, metric_namespace=METRICS_NAMESPACE,
                                                      time_interval=span, aggregation=aggregation, interval="PT5S"):
                    for point in _get(element, "data") or []:
                        stamp, value = _get(point, "timestamp"), _get(point, "value")
                        if stamp is not None and value is not None:
                            series[str(stamp)] = series.get(str(stamp), 0.0) + float(value)
                out[f"{name}/{aggregation}"] = series
        return out

    def download(self, run: Mapping[str, Any], dest: Path) -> list[Path]:
        """The run's results and logs archives (SAS URLs the service hands out) into `dest`, privately."""
        from rtsctl.support.home import private_dir, write_atomic

        outputs = (_get(run, "testArtifacts") or {}).get("outputArtifacts") or {}
        wrote = []
        for key in ("resultFileInfo", "logsFileInfo", "reportFileInfo"):
            info = outputs.get(key) or {}
            url, name = info.get("url"), str(info.get("fileName") or "")
            if not url:
                continue
            if not SAFE_FILE.fullmatch(name):  # the service names the file: never a path, a dot file or a device
                name = f"{key}.zip"
            private_dir(dest)
            target = dest / name
            write_atomic(target, _fetch(url, f"{self.address} {key}"), what="test run result")
            wrote.append(target)
        return wrote

    def close(self) -> None:
        for client in (self.admin, self.runs):
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


def caller_object_id(clients: Any) -> str:
    """The object id (the token's `oid` claim) of whoever rtsctl runs as: read from its own resource-manager token,
    never verified here (Entra ID issued it; ARM checks it)."""
    import base64
    import json

    token = clients.credential.get_token(clients.cloud.scope).token
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        oid = str(claims["oid"])
    except (IndexError, ValueError, KeyError, TypeError):
        raise RtsctlError("cannot tell who rtsctl runs as (no object id in its token) to let it write the key to "
                          "the workspace's Key Vault: have yourself given 'Key Vault Secrets Officer' there") from None
    if not re.fullmatch(r"[0-9a-fA-F-]{36}", oid):
        raise RtsctlError(f"the token's object id {oid[:40]!r} is not a GUID")
    return oid


def split_engines(engines: int, regions: Sequence[str]) -> list[dict[str, Any]]:
    """N engines over the regions, as evenly as they go (the first regions take the remainder); every region
    needs one at least."""
    if engines < len(regions):
        raise RtsctlError(f"--engines {engines} cannot cover {len(regions)} regions: each region runs one engine "
                          "at least")
    base, extra = divmod(engines, len(regions))
    return [{"region": r, "engineInstances": base + (1 if i < extra else 0)} for i, r in enumerate(regions)]


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _fetch(url: str, what: str) -> bytes:
    """GET a SAS URL through azure-core's pipeline transport (the proxy and CA settings the SDKs honour)."""
    from azure.core.pipeline.transport import HttpRequest, RequestsTransport

    with RequestsTransport() as transport:
        for attempt in range(3):
            response = transport.send(HttpRequest("GET", url), stream=True)
            if response.status_code < 500:
                break
            time.sleep(1 + attempt)
        if response.status_code != 200:
            raise RtsctlError(f"{what}: download failed with HTTP {response.status_code}")
        chunks, size = [], 0
        for chunk in response.stream_download(None):
            size += len(chunk)
            if size > MAX_RESULT_BYTES:
                raise RtsctlError(f"{what}: larger than {MAX_RESULT_BYTES // 2**20} MiB; download it from the portal")
            chunks.append(chunk)
        return b"".join(chunks)
