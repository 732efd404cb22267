"""`Emulator`: the HTTPS listener (ARM + AML + Blob + Entra + data plane) and the CONNECT proxy, on a
background thread with its own event loop, so pytest can start it in-process and a user can run it by hand.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

from aiohttp import web

from . import aml, insights, keyvault, kube, loadtesting, templates  # noqa: F401  (register the resource kinds)
from .arm import ArmApi
from .auth import TokenAuthority
from .blob import BlobApi, BlobStore
from .certs import ensure_tls
from .context import Context, Settings
from .dataplane import DataPlane
from .errors import error_response, json_response
from .faults import KINDS, RETRY_AFTER_429, FaultInjector
from .ids import ArmPath
from .kinds import PS, kind_for, props
from .lro import Operations
from .proxy import ConnectProxy
from .store import Store

REQUEST_LOG_LIMIT = 200_000


class Emulator:
    """A wire-level Azure (ARM, Azure ML, Blob, Entra ID) emulator on 127.0.0.1. See the package docstring."""

    def __init__(self, lro_mode: str = "sync", fault_rate: float = 0.0, faults=KINDS,
                 durations: dict[str, float] | None = None, seed: int | None = None, port: int = 0,
                 proxy_port: int = 0, state_dir: str | Path | None = None, settings: Settings | None = None,
                 timing: str = "fast", time_scale: float = 1.0, latency_ms: float | None = None):
        if lro_mode not in ("sync", "async"):
            raise ValueError("lro_mode must be 'sync' or 'async'")
        if timing not in ("fast", "realistic"):
            raise ValueError("timing must be 'fast' or 'realistic'")
        self.settings = settings or Settings()
        self.settings.timing, self.settings.time_scale = timing, float(time_scale)
        self.settings.lro_mode = lro_mode
        if latency_ms is not None:
            self.settings.latency_ms = float(latency_ms)
        self.settings.state_dir = Path(state_dir) if state_dir else None
        self._requested_ports = (port, proxy_port)
        self.faults = FaultInjector(fault_rate, faults, seed)
        self._durations = dict(durations or {})
        self.port = 0
        self.proxy_port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._tmp: Path | None = None

    # -- public attributes -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def ca_path(self) -> str:
        return str(self._tls.ca_path)

    @property
    def cloud_name(self) -> str:
        """A custom-cloud name unique per port (azure-ai-ml refuses to overwrite a registered cloud)."""
        return f"EmuCloud{self.port}"

    @property
    def request_log(self) -> list[tuple[str, str, int]]:
        return self.ctx.request_log

    @property
    def api_versions(self) -> list[tuple[str, str, str | None]]:
        """(method, path, api-version) of every ARM call, oldest first."""
        return self.ctx.api_versions

    def env(self) -> dict[str, str]:
        s = self.settings
        return {
            "REQUESTS_CA_BUNDLE": self.ca_path, "SSL_CERT_FILE": self.ca_path,
            "HTTPS_PROXY": self.proxy_url, "https_proxy": self.proxy_url,
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            "AZURE_TENANT_ID": s.tenant_id, "AZURE_CLIENT_ID": s.client_id, "AZURE_CLIENT_SECRET": s.client_secret,
            "AZURE_SUBSCRIPTION_ID": s.subscription_id, "AZURE_AUTHORITY_HOST": self.url,
            "EMU_URL": self.url, "EMU_CLOUD_NAME": self.cloud_name,
            "RTSCTL_AZURE_CLOUD": self.cloud_name,
            "RTSCTL_AZURE_RESOURCE_MANAGER": self.url + "/", "RTSCTL_AZURE_AUTHORITY": self.url + "/",
        }

    def route(self, host: str, port: int) -> None:
        """Send the proxy's tunnels for `host` (e.g. `acct.blob.core.windows.net`) to 127.0.0.1:`port`: a real
        service (Azurite) answers under the name the client uses, through the same HTTPS_PROXY."""
        self._proxy.routes[host.lower()] = ("127.0.0.1", port)

    def cloud_metadata(self) -> dict[str, str]:
        """The `cloud_metadata=` dict for `MLClient(..., cloud=emu.cloud_name, cloud_metadata=...)`."""
        return {"azure_portal": self.url + "/", "resource_manager": self.url + "/",
                "active_directory": self.url + "/", "aml_resource_id": self.url + "/",
                "storage_endpoint": "core.windows.net", "registry_discovery_endpoint": self.url + "/"}

    # -- state helpers for tests -----------------------------------------------------------------
    def resources(self) -> list[str]:
        return self.ctx.store.ids()

    def resource(self, arm_id: str) -> dict | None:
        return self.ctx.store.body(arm_id)

    def seed_resource(self, arm_id: str, body: dict) -> dict:
        """Store a resource as if someone else created it (no ownership tag added), provisioned."""
        path = ArmPath.parse(arm_id)
        kind = kind_for(path)
        existing = self.ctx.store.get(path.path)
        stored, private = kind.prepare(self.ctx, path, body, existing)
        props(stored)[PS] = (body.get("properties") or {}).get(PS) or "Succeeded"
        rec = self.ctx.store.put(path.path, stored, private)
        kind.on_ready(self.ctx, path, rec)
        return dict(rec.body)

    def set_fault_rate(self, rate: float) -> None:
        self.faults.set_rate(rate)

    def fail_next_lro(self, path_substring: str, code: str = "InternalServerError",
                      message: str = "The operation failed (injected by the emulator).", times: int = 1) -> None:
        """The next `times` long-running operations on a path containing `path_substring` end Failed with
        `code`/`message`, leaving the resource in state Failed (see faults.RETRYABLE_LRO_CODES)."""
        self.ctx.ops.fail_next(path_substring, code, message, times)

    def blob_names(self, account: str | None = None) -> list[str]:
        return [f"{a}/{c}/{n}" for (a, c, n) in self.ctx.blobs.blobs if account is None or a == account.lower()]

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "Emulator":
        state_dir = self.settings.state_dir
        if state_dir is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="azure-emulator-"))
        base = state_dir or self._tmp
        base.mkdir(parents=True, exist_ok=True)
        self._tls = ensure_tls(base / "tls")
        secret_file = base / "token-secret"
        if state_dir is not None and secret_file.exists():
            secret = secret_file.read_bytes()
        else:
            import secrets
            secret = secrets.token_bytes(32)
            if state_dir is not None:
                secret_file.write_bytes(secret)
        self.ctx = Context(self.settings, Store(state_dir), Operations(
            durations=self._durations, timing=self.settings.timing, time_scale=self.settings.time_scale),
                           BlobStore(state_dir))
        self.authority = TokenAuthority(self.settings, secret)
        self.ctx.dataplane = DataPlane(self.ctx, base / "dataplane", self.authority)
        self.ctx.keyvault = keyvault.KeyVaultApi(self.ctx, self.authority)
        self.ctx.loadtesting = loadtesting.LoadTestingApi(self.ctx, self.authority, base / "dataplane")
        self.ctx.ca_path = self.ca_path
        self.arm = ArmApi(self.ctx)
        self.blob = BlobApi(self.ctx.blobs)
        atexit.register(self.stop)    # scoring hosts run in their own sessions: never leave them behind
        self._thread = threading.Thread(target=self._run, name="azure-emulator", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._startup_error is not None:
            raise RuntimeError(f"azure emulator failed to start: {self._startup_error}") from self._startup_error
        if not self._ready.is_set():
            raise RuntimeError("azure emulator did not start within 30 s")
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        atexit.unregister(self.stop)
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            future.result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop = self._thread = None
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # report to start()
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        # requests still in flight when the emulator stops (a client polling to the end): cancelled and awaited,
        # so closing the loop leaves no "Task was destroyed but it is pending!" behind
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    async def _startup(self) -> None:
        app = web.Application(client_max_size=1024 ** 3)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._requested_ports[0],
                           ssl_context=self._tls.server_context())
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.ctx.url = self.url
        self._proxy = ConnectProxy("127.0.0.1", self.port)
        self.proxy_port = await self._proxy.start(self._requested_ports[1])
        self.ctx.proxy_url = self.proxy_url

    async def _shutdown(self) -> None:
        await self.ctx.loadtesting.close()       # Locust engines of runs still going end with the emulator
        await self.ctx.dataplane.close()
        await self._proxy.close()
        await self._runner.cleanup()

    # -- routing ---------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        host = (request.host or "").split(":")[0].lower()
        label = request.path
        if host.endswith(".blob.core.windows.net"):
            comp = request.query.get("comp")
            label = f"//{host}{request.path}" + (f"?comp={comp}" if comp else "")
        elif host.endswith((keyvault.HOST_SUFFIX, loadtesting.HOST_SUFFIX)):
            label = f"//{host}{request.path}"
        if self.settings.latency_ms > 0 and label != "/_emulator/health":
            await asyncio.sleep(self.settings.latency_ms / 1000.0)  # the round trip to a distant service
        try:
            response = await self._route(request, host)
        except Exception as exc:  # a bug in the emulator: say so in ARM's shape
            response = error_response(500, "EmulatorError", f"{type(exc).__name__}: {exc}")
        log = self.ctx.request_log
        log.append((request.method, label, response.status if response is not None else 0))
        if len(log) > REQUEST_LOG_LIMIT:   # a long hand-run session: keep the recent half
            del log[: REQUEST_LOG_LIMIT // 2]
        return response

    async def _route(self, request: web.Request, host: str) -> web.StreamResponse:
        base_url = f"https://{request.host}"
        if host.endswith(".blob.core.windows.net"):
            return await self.blob.handle(request, host.split(".")[0])
        if host.endswith(keyvault.HOST_SUFFIX):
            return await self.ctx.keyvault.handle(request, host)
        if host.endswith(loadtesting.HOST_SUFFIX):
            return await self.ctx.loadtesting.handle(request, host)
        segs = [s for s in request.path.split("/") if s]
        low = [s.lower() for s in segs]
        if low[:1] == ["subscriptions"]:
            return await self._arm(request, base_url)
        if low[:1] == ["endpoints"] and len(segs) >= 3:
            return await self.ctx.dataplane.handle(request, segs[1])
        if len(low) >= 3 and low[-3:] == ["v2.0", ".well-known", "openid-configuration"]:
            return self.authority.openid_configuration(base_url, segs[0])
        if len(low) == 3 and low[1:] == [".well-known", "openid-configuration"]:
            return self.authority.openid_configuration(base_url, segs[0])
        if low[-2:] == ["discovery", "instance"]:
            return self.authority.instance_discovery(base_url)
        if len(low) == 4 and low[1:] == ["oauth2", "v2.0", "token"] and request.method == "POST":
            return await self.authority.token(request, segs[0])
        if low == ["metadata", "endpoints"]:
            return json_response(self._arm_metadata())
        if low[:1] == ["discovery"]:
            return json_response({"api": self.url, "catalog": self.url, "experimentation": self.url,
                                  "history": self.url, "modelmanagement": self.url, "pipelines": self.url})
        if low == ["_emulator", "health"]:
            return json_response({"status": "ok"})
        return error_response(404, "NotFound", f"The emulator has no route for {request.method} {request.path}.")

    async def _arm(self, request: web.Request, base_url: str) -> web.StreamResponse:
        problem = self.authority.verify(request.headers.get("Authorization"))
        if problem is not None:
            return error_response(401, "InvalidAuthenticationToken", problem, headers={
                "WWW-Authenticate": f'Bearer authorization_uri="{self.url}/{self.settings.tenant_id}", '
                                    f'error="invalid_token", error_description="{problem}"'})
        fault = self.faults.decide(request.method, str(request.rel_url), request.headers.get("x-ms-client-request-id"))
        if fault == "429":
            return error_response(429, "TooManyRequests", "Rate limit exceeded (injected by the emulator).",
                                  headers={"Retry-After": RETRY_AFTER_429})
        if fault == "500":
            return error_response(500, "InternalServerError", "Internal server error (injected by the emulator).")
        if fault == "reset":
            await request.read()
            request.transport.abort()
            return web.Response(status=499)
        response = await self.arm.handle(request, base_url)
        request_id = request.headers.get("x-ms-client-request-id") or str(uuid.uuid4())
        response.headers.setdefault("x-ms-request-id", request_id)
        response.headers.setdefault("x-ms-correlation-request-id", request_id)
        return response

    def _arm_metadata(self) -> dict:
        return {"name": self.cloud_name, "portal": self.url, "resourceManager": self.url + "/",
                "authentication": {"loginEndpoint": self.url + "/", "audiences": [self.url + "/"],
                                   "tenant": "common", "identityProvider": "AAD"},
                "suffixes": {"storage": "core.windows.net"}, "activeDirectoryDataLake": None}
