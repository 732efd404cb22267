"""Credentials and SDK clients for the Azure backend, built lazily and shared by all reconcilers.

Provider block (manifest):

    provider:
      kind: azure
      subscription_id: ...
      location: westeurope
      credential: {type: default | client_secret | environment | azure_cli | managed_identity,
                   tenant_id?, client_id?, client_secret?}
      cloud: {name, resource_manager, authority, storage_suffix}        # optional

* No `cloud` block (or a known SDK cloud name only) -> public/sovereign Azure exactly as the SDKs default.
* `cloud.resource_manager` -> a custom cloud: MLClient gets `cloud=<name unique per resource_manager URL>`
  plus `cloud_metadata` (azure-ai-ml keeps a process-global table of clouds that cannot be overwritten, so
  two URLs under one name would silently share the first); management clients get `base_url` and
  `credential_scopes`.
* `cloud.authority` -> the Entra authority host; credentials use it with instance discovery disabled
  (Azure Stack / air-gapped authorities, and the wire-level emulator the tests run).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

from azure.ai.ml import MLClient
from azure.ai.ml._azure_environments import _environments as _ML_CLOUDS
from azure.ai.ml._utils._azureml_polling import AzureMLPolling
from azure.ai.ml.constants._common import LROConfigurations
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.core.polling.arm_polling import ARMPolling

from rtsctl.support.errors import RtsctlError

PUBLIC_RESOURCE_MANAGER = "https://management.azure.com/"
PUBLIC_AUTHORITY = "https://login.microsoftonline.com/"
PUBLIC_STORAGE_SUFFIX = "core.windows.net"

# azure-ai-ml's poller prints a "." to stdout on every status poll (from the poller's own thread, so it
# cannot be redirected per call). rtsctl renders its own progress and may print JSON on stdout: keep the
# poller's behaviour, drop the dots.
AzureMLPolling.update_status = ARMPolling.update_status  # type: ignore[method-assign]

# azure-ai-ml attaches INFO-level stderr handlers to a few of its loggers ("The deployment request ... was
# accepted", "Total time", portal links). rtsctl reports progress itself: keep the SDK's warnings only.
for _name in (
    "azure.ai.ml",
    "azure.ai.ml._arm_deployments.arm_deployment_executor",
    "azure.ai.ml._utils._endpoint_utils",
    "azure.ai.ml._utils._package_utils",
):
    logging.getLogger(_name).setLevel(logging.WARNING)
# Other azure.* warnings (e.g. the management SDKs' "failsafe deserialization" tracebacks) would reach the
# terminal through logging's last-resort handler; they still propagate to handlers the CLI installs (--debug).
logging.getLogger("azure").addHandler(logging.NullHandler())


class _DropColorReset:
    """stderr minus the bare colour-reset line azure-ai-ml prints after every upload (even with progress off)."""

    _NOISE = "\x1b[39m\n"

    def __init__(self, stream):
        self._stream = stream
        self._dropped = False

    def write(self, text: str) -> int:
        # print(Fore.RESET + "\n") writes the text, then its own "\n": drop both
        if text == self._NOISE or (self._dropped and text == "\n"):
            self._dropped = text == self._NOISE
            return len(text)
        self._dropped = False
        return self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


if not isinstance(sys.stderr, _DropColorReset):
    sys.stderr = _DropColorReset(sys.stderr)


def serialize_model_preparation(package: str = "azure.ai.ml._restclient.arm_ml_service") -> None:
    """Make the first instantiation of each REST model class of one generated SDK package run one thread at a time.

    The generated models of azure-ai-ml (`azure.ai.ml._restclient.arm_ml_service`) and of the newer azure-mgmt
    packages (containerservice, kubernetesconfiguration.extensions) share one `_utils.model_base.Model`, which
    works out each class's field types lazily, in `Model.__new__` on the class's first instantiation, without a
    lock. Two threads deserializing the same class for the first time can race: one gets a nested field as a
    plain dict, and the SDK then fails with `AttributeError: 'dict' object has no attribute 'failure_threshold'`
    (probe settings, seen once in two blue/green updates) or `... 'mode'` (AKS agent pools). Preparing all ~1500
    classes up front cost 0.3-2 s per process (most of a no-op plan); a lock around the not-yet-prepared path
    costs nothing once a class is ready and only the classes a run uses are prepared.
    """
    import importlib

    base = importlib.import_module(f"{package}._utils.model_base").Model
    with _PREPARE_LOCK:
        if getattr(base, "_rtsctl_serialized", False):
            return
        original = base.__new__

        def __new__(cls, *args: Any, **kwargs: Any):
            if f"{cls.__module__}.{cls.__qualname__}" in cls._calculated:
                return original(cls, *args, **kwargs)
            with _PREPARE_LOCK:
                return original(cls, *args, **kwargs)

        base.__new__ = __new__  # type: ignore[method-assign]
        base._rtsctl_serialized = True


_PREPARE_LOCK = threading.RLock()


def _warmed(client: Any, package: str) -> Any:
    serialize_model_preparation(package)
    return client


def _norm_url(url: str) -> str:
    return url.rstrip("/") + "/"


class CloudConfig:
    """Where the SDKs send requests and ask for tokens."""

    def __init__(self, cloud: dict[str, Any] | None):
        cloud = dict(cloud or {})
        self.declared_name: str | None = cloud.get("name") or None
        base = _ML_CLOUDS.get(self.declared_name or "", _ML_CLOUDS["AzureCloud"])
        self.known_name = self.declared_name if self.declared_name in _ML_CLOUDS else "AzureCloud"
        self.resource_manager = _norm_url(cloud.get("resource_manager") or base["resource_manager"])
        self.storage_suffix = cloud.get("storage_suffix") or base["storage_endpoint"]
        self.portal = _norm_url(cloud.get("portal") or self.resource_manager)
        self.registry_discovery = _norm_url(cloud.get("registry_discovery") or self.resource_manager)
        authority = _norm_url(cloud.get("authority") or base["active_directory"])
        known_authorities = {_norm_url(c["active_directory"]) for c in _ML_CLOUDS.values()}
        #: None means "the SDK default" (public Entra ID)
        self.authority: str | None = None if authority == PUBLIC_AUTHORITY else authority
        #: instance discovery only works against Microsoft's own authorities
        self.custom_authority = authority not in known_authorities
        #: a resource manager the SDKs do not know (Azure Stack, the test emulator)
        self.is_custom = self.resource_manager != _norm_url(base["resource_manager"]) or (
            self.storage_suffix != base["storage_endpoint"]
        )
        self.is_public = self.resource_manager == PUBLIC_RESOURCE_MANAGER and not self.is_custom

    @property
    def scope(self) -> str:
        return self.resource_manager.rstrip("/") + "/.default"

    @property
    def ml_cloud_name(self) -> str | None:
        """The cloud name handed to MLClient (None: the SDK's default, public Azure)."""
        if self.is_custom:
            digest = hashlib.sha1(f"{self.resource_manager}|{self.storage_suffix}".encode()).hexdigest()[:10]
            return f"{self.declared_name or 'rtsctl'}-{digest}"
        return None if self.known_name == "AzureCloud" else self.known_name

    def ml_cloud_metadata(self) -> dict[str, str]:
        return {
            "azure_portal": self.portal,
            "resource_manager": self.resource_manager,
            "active_directory": self.authority or PUBLIC_AUTHORITY,
            "aml_resource_id": "https://ml.azure.com/",
            "storage_endpoint": self.storage_suffix,
            "registry_discovery_endpoint": self.registry_discovery,
        }


T = TypeVar("T")

#: a token is asked for again this long before it expires when the service names no refresh time (azure-core's
#: BearerTokenCredentialPolicy refreshes 300 s early: azure/core/pipeline/policies/_authentication.py)
TOKEN_REFRESH_MARGIN_S = 300


class SharedCredential:
    """One azure-identity credential behind every client of the process, asking Entra ID once per audience.

    Each SDK client (MLClient's dozen service clients, the management clients) has its own bearer-token policy,
    and azure-identity builds its MSAL application lazily without a lock (`MsalCredential._get_app`): clients
    that start at once each build an application -- one OpenID discovery GET each -- and each ask for the same
    token. Here the first token request runs alone (one application, one discovery per authority), later ones
    run one at a time per audience and reuse the token until it is due for refresh. A claims challenge (CAE) is
    never answered from the cache.
    """

    def __init__(self, inner: Any):
        self._inner = inner
        self._lock = threading.Lock()
        self._first = threading.Lock()
        self._warm = False
        self._per_key: dict[Hashable, threading.Lock] = {}
        self._tokens: dict[Hashable, Any] = {}

    @staticmethod
    def _due(token: Any) -> bool:
        now = time.time()
        refresh_on = getattr(token, "refresh_on", None)
        return now >= (refresh_on or token.expires_on - TOKEN_REFRESH_MARGIN_S)

    def _ask(self, scopes: tuple[str, ...], options: dict[str, Any]) -> Any:
        if hasattr(self._inner, "get_token_info"):
            return self._inner.get_token_info(*scopes, options=options)  # type: ignore[arg-type]
        from azure.core.credentials import AccessTokenInfo

        old = self._inner.get_token(*scopes, **options)
        return AccessTokenInfo(old.token, old.expires_on)

    def get_token_info(self, *scopes: str, options: dict[str, Any] | None = None) -> Any:
        options = dict(options or {})
        if options.get("claims"):
            return self._ask(scopes, options)
        key = (tuple(sorted(scopes)), options.get("tenant_id"), bool(options.get("enable_cae")))
        with self._lock:
            lock = self._per_key.setdefault(key, threading.Lock())
        with lock:
            token = self._tokens.get(key)
            if token is not None and not self._due(token):
                return token
            if self._warm:
                token = self._ask(scopes, options)
            else:
                with self._first:  # the first request builds the MSAL application (and discovers) alone
                    token = self._ask(scopes, options)
                    self._warm = True
            self._tokens[key] = token
            return token

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        options = {k: v for k, v in {"claims": claims, "tenant_id": tenant_id, "enable_cae": enable_cae}.items() if v}
        info = self.get_token_info(*scopes, options=options)
        return AccessToken(info.token, info.expires_on)

    def close(self) -> None:
        """Shared by every client of the process: never closed by one of them."""

    def __enter__(self) -> "SharedCredential":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


_SHARED: dict[Hashable, SharedCredential] = {}
_SHARED_LOCK = threading.Lock()


def shared_credential(block: dict[str, Any] | None, cloud: CloudConfig, tenant_id: str | None = None) -> SharedCredential:
    """The process's one credential for this credential block and authority (see SharedCredential)."""
    block = dict(block or {})
    secret = str(block.get("client_secret") or os.environ.get("AZURE_CLIENT_SECRET") or "")
    key = (tuple(sorted((k, str(v)) for k, v in block.items() if k != "client_secret")), tenant_id,
           cloud.authority, cloud.custom_authority, os.environ.get("AZURE_TENANT_ID"),
           os.environ.get("AZURE_CLIENT_ID"), hashlib.sha256(secret.encode()).hexdigest())
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = SharedCredential(build_credential(block, cloud, tenant_id))
        return _SHARED[key]


class ReadCache:
    """Each resource read once, shared by every reader that may share it:

    * within `snapshot()` (a plan): by every reconciler, and reconcilers that ask at the same moment wait for the
      one read in flight (single flight);
    * within `step()` (one apply step, on the thread that runs it): by that step alone. The step's own writes
      (any request other than a GET, seen by `StepPolicy`) drop what it read, and so does entering an endpoint's
      write gate after another step held it (`entered`): what was read before may have changed meanwhile. Steps
      running side by side never share a read.

    Elsewhere, and inside `fresh()` (a poll, a health watch), every read is fresh: it waits for the service to
    change.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._reads: dict[Hashable, Future] = {}
        self._local = threading.local()
        #: each endpoint gate's last holder (a step), so a step knows when another one may have written
        self._holders: dict[Hashable, object] = {}

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        with self._lock:
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if not self._depth:
                    self._reads.clear()

    @contextmanager
    def step(self) -> Iterator[None]:
        """One apply step on this thread: its reads kept until it writes; its calls carry one correlation id."""
        outer = getattr(self._local, "step", None)
        self._local.step = Step()
        try:
            yield
        finally:
            self._local.step = outer

    @contextmanager
    def fresh(self) -> Iterator[None]:
        """Reads within see the service as it is now, also inside a step (a poll waits for it to change)."""
        outer = getattr(self._local, "fresh", False)
        self._local.fresh = True
        try:
            yield
        finally:
            self._local.fresh = outer

    def current(self) -> Step | None:
        """The step this thread runs, if any."""
        return getattr(self._local, "step", None)

    def entered(self, gate: Hashable) -> None:
        """This thread's step entered `gate`: if another step held it last, drop what this step read."""
        step = self.current()
        if step is None:
            return
        with self._lock:
            last, self._holders[gate] = self._holders.get(gate), step
        if last is not None and last is not step:
            step.reads.clear()

    def ahead(self, key: Hashable, read: Callable[[], Any]) -> None:
        """Start `read` (a function that reads `key` through this cache) now, on a thread of its own, within a
        snapshot: a reconciler that needs two independent reads waits for one round trip, not two."""
        with self._lock:
            if not self._depth or key in self._reads:
                return

        def run() -> None:
            try:
                read()
            except BaseException:  # noqa: BLE001 - kept in the future for whoever reads it
                pass

        threading.Thread(target=run, name="rtsctl-read", daemon=True).start()

    def forget(self) -> None:
        """Drop what this thread's step read (it wrote, or waits for the service to change)."""
        step = self.current()
        if step is not None:
            step.reads.clear()

    def read(self, key: Hashable, fetch: Callable[[], T]) -> T:
        step = None if getattr(self._local, "fresh", False) else self.current()
        with self._lock:
            if not self._depth:
                future, mine = None, False
            else:
                future, mine = self._reads.get(key), key not in self._reads
                if mine:
                    future = self._reads[key] = Future()
        if future is None:
            if step is None:
                return fetch()
            if key not in step.reads:  # one thread per step: no lock
                step.reads[key] = fetch()
            return step.reads[key]  # type: ignore[no-any-return]
        if not mine:
            return future.result()  # type: ignore[no-any-return]
        try:
            value = fetch()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        future.set_result(value)
        return value


class Step:
    """One apply step's reads, and the correlation id its calls carry (Azure's activity log groups them by it)."""

    def __init__(self) -> None:
        self.correlation_id = str(uuid.uuid4())
        self.reads: dict[Hashable, Any] = {}


class StepPolicy(SansIOHTTPPolicy):
    """An azure-core per-call policy: a call made by an apply step carries the step's `x-ms-correlation-request-id`
    (a client-chosen id that ARM keeps for every request of one operation: azure-resource-manager-rpc
    v1.0/common-api-details.md, "Client Request Headers"), and a call that is not a read (PUT, PATCH, DELETE, POST)
    drops what the step read. The LRO poller's own thread belongs to no step: its polls carry no id."""

    def __init__(self, reads: ReadCache):
        self._reads = reads

    def on_request(self, request: Any) -> None:
        step = self._reads.current()
        if step is None:
            return
        http = request.http_request
        http.headers["x-ms-correlation-request-id"] = step.correlation_id
        if http.method.upper() not in ("GET", "HEAD") and not _reading_action(http.url):
            step.reads.clear()


def _reading_action(url: str) -> bool:
    """A POST that reads: ARM's list actions (listKeys, listSecrets: "Microsoft.X/.../listKeys/action" is a read
    permission) and an online endpoint's token action (azure-rest-api-specs machinelearningservices
    OnlineEndpoints_GetToken)."""
    last = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1].lower()
    return last.startswith("list") or last == "token"


def _credential_value(block: dict[str, Any], key: str, env: str) -> str | None:
    return block.get(key) or os.environ.get(env) or None


def build_credential(block: dict[str, Any] | None, cloud: CloudConfig, tenant_id: str | None = None):
    """The azure-identity credential the manifest asks for."""
    from azure.identity import (
        AzureCliCredential,
        ClientSecretCredential,
        DefaultAzureCredential,
        EnvironmentCredential,
        ManagedIdentityCredential,
    )

    block = dict(block or {})
    if tenant_id and not block.get("tenant_id"):
        block["tenant_id"] = tenant_id
    kind = block.get("type", "default")
    secret_args = {
        "tenant_id": _credential_value(block, "tenant_id", "AZURE_TENANT_ID"),
        "client_id": _credential_value(block, "client_id", "AZURE_CLIENT_ID"),
        "client_secret": _credential_value(block, "client_secret", "AZURE_CLIENT_SECRET"),
    }
    authority_kw: dict[str, Any] = {}
    if cloud.authority:
        authority_kw["authority"] = cloud.authority
    if cloud.custom_authority:
        authority_kw["disable_instance_discovery"] = True
    if kind == "client_secret" or (cloud.custom_authority and kind == "default" and all(secret_args.values())):
        missing = [k for k, v in secret_args.items() if not v]
        if missing:
            envs = {"tenant_id": "AZURE_TENANT_ID", "client_id": "AZURE_CLIENT_ID", "client_secret": "AZURE_CLIENT_SECRET"}
            raise RtsctlError(
                "provider.credential: client_secret needs "
                + ", ".join(f"{k} (or ${envs[k]})" for k in missing)
            )
        return ClientSecretCredential(**secret_args, **authority_kw)  # type: ignore[arg-type]
    if kind == "environment":
        return EnvironmentCredential(**authority_kw)
    if kind == "default":
        return DefaultAzureCredential(**authority_kw)
    if kind == "azure_cli":
        return AzureCliCredential(**({"tenant_id": block["tenant_id"]} if block.get("tenant_id") else {}))
    if kind == "managed_identity":
        return ManagedIdentityCredential(**({"client_id": block["client_id"]} if block.get("client_id") else {}))
    raise RtsctlError(
        f"provider.credential.type: unknown credential type {kind!r} "
        "(default | client_secret | environment | azure_cli | managed_identity)"
    )


class Clients:
    """Lazily built, thread-safe SDK clients for one subscription / resource group / workspace."""

    def __init__(self, provider: dict[str, Any], resource_group: str, workspace: str):
        self.provider = provider
        self.subscription_id = str(provider.get("subscription_id") or os.environ.get("AZURE_SUBSCRIPTION_ID") or "")
        if not self.subscription_id:
            raise RtsctlError("provider.subscription_id is required for the azure backend (or set $AZURE_SUBSCRIPTION_ID)")
        self.location = provider.get("location") or "westeurope"
        self.resource_group = resource_group
        self.workspace = workspace
        self.cloud = CloudConfig(provider.get("cloud"))
        self._lock = threading.RLock()
        #: seconds between status reads rtsctl makes itself (azure-ai-ml's LRO poll interval on Azure, which sends
        #: no Retry-After; a custom cloud -- Azure Stack, the emulator -- is polled faster, as below)
        self.poll_interval = 5.0 if not self.cloud.is_custom else 0.2
        self._built: dict[str, Any] = {}
        self._building: dict[str, threading.Lock] = {}
        #: reads shared within one plan, kept within one apply step (ReadCache)
        self.reads = ReadCache()
        self._step_policy = StepPolicy(self.reads)
        if self.cloud.is_custom and self.cloud.resource_manager != PUBLIC_RESOURCE_MANAGER:
            # azure-ai-ml sleeps a hard-coded 5 s between its own checks of the workspace's ARM template
            # deployment (on top of the poller, which already honours the service's Retry-After). On public
            # Azure we keep it (it limits ARM read traffic against subscription throttling limits). A custom
            # cloud (Azure Stack hub, the test emulator) paces clients with Retry-After itself, and 5 s per
            # check dominates a small apply there, so it is lowered -- for custom clouds only.
            LROConfigurations.SLEEP_TIME = 0.2  # type: ignore[misc]

    def _get(self, key: str, factory):
        """Build each client once; clients of different kinds are built side by side (one lock per key)."""
        with self._lock:
            if key in self._built:
                return self._built[key]
            lock = self._building.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._built:
                    return self._built[key]
            client = factory()
            with self._lock:
                self._built[key] = client
            return client

    def prefetch_token(self) -> None:
        """Ask for the resource manager's token on a thread of its own, now: the OpenID discovery and the token
        round trips then overlap with building the SDK clients instead of following it. A failure here is left
        for the first real call to raise (with its resource's name)."""
        def fetch() -> None:
            try:
                self.credential.get_token(self.cloud.scope)
            except Exception:  # noqa: BLE001 - reported by the call that needs the token
                pass

        threading.Thread(target=fetch, name="rtsctl-token", daemon=True).start()

    @property
    def credential(self):
        return self._get(
            "credential",
            lambda: shared_credential(self.provider.get("credential"), self.cloud, self.provider.get("tenant_id"))
        )

    def _mgmt_kwargs(self) -> dict[str, Any]:
        steps = {"per_call_policies": [self._step_policy]}
        if self.cloud.is_public:
            return steps
        return {**steps, "base_url": self.cloud.resource_manager.rstrip("/"), "credential_scopes": [self.cloud.scope]}

    @property
    def ml(self) -> MLClient:
        def build() -> MLClient:
            kwargs: dict[str, Any] = {"show_progress": False, "enable_telemetry": False,
                                      "per_call_policies": [self._step_policy]}
            name = self.cloud.ml_cloud_name
            if name:
                kwargs["cloud"] = name
                if self.cloud.is_custom:
                    kwargs["cloud_metadata"] = self.cloud.ml_cloud_metadata()
            client = MLClient(self.credential, self.subscription_id, self.resource_group, self.workspace, **kwargs)
            return _warmed(client, "azure.ai.ml._restclient.arm_ml_service")

        return self._get("ml", build)

    @property
    def resources(self):
        from azure.mgmt.resource.resources import ResourceManagementClient

        return self._get(
            "resources", lambda: ResourceManagementClient(self.credential, self.subscription_id, **self._mgmt_kwargs())
        )

    @property
    def aks(self):
        from azure.mgmt.containerservice import ContainerServiceClient

        return self._get("aks", lambda: _warmed(
            ContainerServiceClient(self.credential, self.subscription_id, **self._mgmt_kwargs()),
            "azure.mgmt.containerservice"))

    @property
    def extensions(self):
        from azure.mgmt.kubernetesconfiguration.extensions import KubernetesConfigurationExtensionsMgmtClient

        return self._get("extensions", lambda: _warmed(
            KubernetesConfigurationExtensionsMgmtClient(self.credential, self.subscription_id, **self._mgmt_kwargs()),
            "azure.mgmt.kubernetesconfiguration.extensions"))

    @property
    def monitor(self):
        from azure.mgmt.monitor import MonitorManagementClient

        return self._get(
            "monitor", lambda: MonitorManagementClient(self.credential, self.subscription_id, **self._mgmt_kwargs())
        )

    @property
    def load_testing(self):
        from azure.mgmt.loadtesting import LoadTestMgmtClient

        return self._get(
            "load_testing", lambda: LoadTestMgmtClient(self.credential, self.subscription_id, **self._mgmt_kwargs())
        )

    def endpoint_id(self, endpoint: str) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.MachineLearningServices/workspaces/{self.workspace}/onlineEndpoints/{endpoint}")

    def gate(self, endpoint: str):
        """The process-wide write gate of one endpoint (gate.py): the service refuses overlapping writes."""
        from .gate import EndpointGate

        key = f"gate:{endpoint.lower()}"
        return self._get(key, lambda: EndpointGate(endpoint, lambda: self.reads.entered(key)))

    def close(self) -> None:
        with self._lock:
            built, self._built = self._built, {}
        for key, client in built.items():
            close = getattr(client, "close", None)
            if close and not key.startswith("gate:") and key != "ml":
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
