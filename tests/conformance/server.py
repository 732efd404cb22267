"""A replay server: answers the real Azure SDKs with bodies recorded against REAL Azure, verbatim.

The recordings (tests/conformance/recordings/, copied from ../shared/reference/azure-recordings; SOURCES.md names
each source repository, path and commit) are excerpts of the Azure SDK for Python's own test-proxy recordings.
This server does not emulate anything: it knows a fixed world -- the one the recordings show after their
operations ended -- and answers GETs and actions on it with the recorded body. What it changes, and only where
the client needs it to route or parse:
  * ids: the excerpts write `.../onlineEndpoints/x` (the test proxy's sanitised prefix, elided); the prefix is
    expanded to this world's `/subscriptions/{SUB}/resourceGroups/00000/providers/.../workspaces/00000`;
  * references the excerpt elided as "..." (a deployment's codeId/environmentId/model) are taken from the SAME
    deployment's recorded create request (R01 #11);
  * a resource whose final state the recording shows in two entries (R01 #3 endpoint after create, #15 after the
    traffic update) is the union of both (the later entry wins).
Anything the recordings do not hold answers the recorded ARM 404 (R05 workspace_create_2024 #1 shape), so a
client sees "absent" rather than an invented body. Authentication: the emulator's token authority (Entra routes).

    with ReplayServer() as replay:   # replay.url, replay.ca_path, replay.env(), replay.requests
        ...
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import shutil
import tempfile
import threading
from pathlib import Path

from aiohttp import web

from tests.azure_emulator.auth import TokenAuthority
from tests.azure_emulator.certs import ensure_tls
from tests.azure_emulator.context import Settings

RECORDINGS = Path(__file__).resolve().parent / "recordings"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"    # the test proxy's sanitised subscription
RG = WS = "00000"                                         # the test proxy's sanitised group and workspace
WS_PATH = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/"
           f"workspaces/{WS}")
R01_ENDPOINT = "online-ept-10cd4ed17147449"
R03_ENDPOINT = "online-endp4e07306aec3d482"
R02_MISSING_MODEL = "test_907403507619"


def load(name: str) -> dict:
    path = next(RECORDINGS.glob(f"{name}*.json"))
    return json.loads(path.read_text())


def entry(recording: dict, n: int) -> dict:
    return next(e for e in recording["entries"] if e["n"] == n)


def expand(ref: str) -> str:
    """`.../codes/x/versions/1` (the excerpt's elided prefix) -> the full id in this world's workspace."""
    return WS_PATH + ref[3:] if isinstance(ref, str) and ref.startswith(".../") else ref


def envelope(arm_type: str, rel: str, properties: dict, top: dict, system_data: dict | None = None) -> dict:
    name = rel.rstrip("/").rsplit("/", 1)[-1]
    body = {"id": WS_PATH + "/" + rel, "name": name, "type": arm_type, "properties": properties, **top}
    if system_data is not None:
        body["systemData"] = system_data
    return body


def r01_world() -> dict[str, dict]:
    """R01's workspace once every operation ended: endpoint (AMLToken, traffic 100 %), its deployment, assets."""
    rec = load("01_")
    ep_rel = f"onlineEndpoints/{R01_ENDPOINT}"
    created = entry(rec, 1)["body"]
    props = {**entry(rec, 3)["body_properties"], **entry(rec, 15)["body_properties"]}
    endpoint = envelope(created["type"], ep_rel, props, entry(rec, 3)["body_top"], created["systemData"])
    create_request = entry(rec, 11)["request"]["body"]["properties"]
    dep_props = copy.deepcopy(entry(rec, 13)["body_properties"])
    dep_props["codeConfiguration"]["codeId"] = expand(create_request["codeConfiguration"]["codeId"])
    dep_props["environmentId"] = expand(create_request["environmentId"])
    dep_props["model"] = expand(create_request["model"])
    deployment = envelope("Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
                          f"{ep_rel}/deployments/{R01_ENDPOINT}", dep_props, entry(rec, 13)["body_top"])
    world = {ep_rel: endpoint, f"{ep_rel}/deployments/{R01_ENDPOINT}": deployment}
    for n in (4, 7, 8, 10):      # datastore, code, environment and model versions: whole bodies
        body = copy.deepcopy(entry(rec, n)["body"])
        body["id"] = expand(body["id"])
        world[body["id"][len(WS_PATH) + 1:]] = body
    return world


def r01_creating_world() -> dict[str, dict]:
    """R01 right after the endpoint PUT (#1): the endpoint `Creating`, scoringUri/swaggerUri null, no deployment."""
    rec = load("01_")
    body = copy.deepcopy(entry(rec, 1)["body"])
    body["id"] = expand(body["id"])
    return {f"onlineEndpoints/{R01_ENDPOINT}": body}


def r03_world() -> dict[str, dict]:
    rec = load("03_")
    rel = f"onlineEndpoints/{R03_ENDPOINT}"
    first = entry(rec, 1)
    props = {**first["body_properties"], **entry(rec, 2)["body_properties"]}
    return {rel: envelope("Microsoft.MachineLearningServices/workspaces/onlineEndpoints", rel, props,
                          {**first["body_top"], "location": "eastus2"})}


class ReplayServer:
    """The recorded world on 127.0.0.1 over HTTPS; see the module docstring."""

    def __init__(self, moment: str = "done"):
        """`moment`: "done" (R01 and R03 after their operations) or "creating" (R01 right after the endpoint PUT)."""
        world = r01_creating_world() if moment == "creating" else {**r01_world(), **r03_world()}
        self.world: dict[str, dict] = {k.lower(): v for k, v in world.items()}
        self.settings = Settings(subscription_id=SUBSCRIPTION)
        self.requests: list[tuple[str, str, int]] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._tmp = Path(tempfile.mkdtemp(prefix="azure-replay-"))
        self._tls = ensure_tls(self._tmp / "tls")
        self.authority = TokenAuthority(self.settings)
        r01, r02 = load("01_"), load("02_")
        self.token_body = entry(r01, 16)["body"]                       # R01 #16, verbatim
        self.model_not_found = entry(r02, 1)                           # R02 #1, verbatim (status, headers, body)
        self.workspace_not_found = load("05_")["workspace_create_2024"]["entries"][0]   # R05 #1 (404 shape)

    # -- public ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_path(self) -> str:
        return str(self._tls.ca_path)

    def env(self) -> dict[str, str]:
        """What a subprocess rtsctl needs (the manifest's provider.cloud block reads the RTSCTL_* ones)."""
        s = self.settings
        return {"REQUESTS_CA_BUNDLE": self.ca_path, "SSL_CERT_FILE": self.ca_path,
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                "AZURE_TENANT_ID": s.tenant_id, "AZURE_CLIENT_ID": s.client_id,
                "AZURE_CLIENT_SECRET": s.client_secret, "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                "AZURE_AUTHORITY_HOST": self.url, "RTSCTL_AZURE_CLOUD": f"Replay{self.port}",
                "RTSCTL_AZURE_RESOURCE_MANAGER": self.url + "/", "RTSCTL_AZURE_AUTHORITY": self.url + "/"}

    def start(self) -> "ReplayServer":
        self._thread = threading.Thread(target=self._run, name="azure-replay", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("replay server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "ReplayServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- serving ---------------------------------------------------------------------------------
    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)

        async def startup() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._tls.server_context())
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]

        self._loop.run_until_complete(startup())
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, request: web.Request) -> web.Response:
        response = await self._answer(request)
        self.requests.append((request.method, request.path, response.status))
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        base = f"https://{request.host}"
        low = request.path.lower().strip("/").split("/")
        if low[-3:] == ["v2.0", ".well-known", "openid-configuration"]:
            return self.authority.openid_configuration(base, request.path.strip("/").split("/")[0])
        if low[-2:] == ["discovery", "instance"]:
            return self.authority.instance_discovery(base)
        if low[-3:] == ["oauth2", "v2.0", "token"] and request.method == "POST":
            return await self.authority.token(request, request.path.strip("/").split("/")[0])
        problem = self.authority.verify(request.headers.get("Authorization"))
        if problem is not None:
            return web.json_response({"error": {"code": "InvalidAuthenticationToken", "message": problem}},
                                     status=401)
        rel = self._relative(request.path)
        if rel is None:
            return self._not_found(request.path)
        if request.method == "POST" and rel.lower() == f"onlineendpoints/{R01_ENDPOINT}/token":
            return web.json_response(self.token_body)
        if request.method != "GET":
            return web.json_response({"error": {"code": "NotRecorded", "message": f"The replay server only "
                                      f"answers reads; {request.method} {request.path} was not recorded."}},
                                     status=405)
        if rel.lower() == f"models/{R02_MISSING_MODEL}/versions":
            e = self.model_not_found
            return web.json_response(e["body"], status=e["status"],
                                     headers={"x-ms-response-type": e["headers"]["x-ms-response-type"]})
        body = self.world.get(rel.lower())
        if body is not None:
            return web.json_response(body)
        children = [v for k, v in self.world.items() if k.startswith(rel.lower() + "/") and
                    k.count("/") == rel.count("/") + 1]
        if children:             # a collection: the recorded items under it (R01 #13 "and in the deployments list")
            return web.json_response({"value": children})
        parent = rel.rsplit("/", 1)[0] if "/" in rel else None
        if parent and parent.lower() in self.world:
            # a collection under a resource the world holds, with nothing in it: the spec's empty list
            # (e.g. OnlineDeployments_List right after R01 #1, before any deployment exists)
            return web.json_response({"value": []})
        return self._not_found(request.path)

    @staticmethod
    def _relative(path: str) -> str | None:
        match = re.match(rf"^/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/"
                         rf"Microsoft\.MachineLearningServices/workspaces/{WS}/(.+?)/?$", path, re.I)
        return match.group(1) if match else None

    def _not_found(self, path: str) -> web.Response:
        """R05 #1's 404 (ARM gateway ResourceNotFound) for whatever the recordings do not hold."""
        e = self.workspace_not_found
        parts = path.strip("/").split("/")
        shown = "/".join(parts[parts.index("providers") + 1:]) if "providers" in parts else parts[-1]
        message = re.sub(r"The Resource '[^']*' under resource group '[^']*'",
                         f"The Resource '{shown}' under resource group '{RG}'", e["body"]["error"]["message"])
        return web.json_response({"error": {"code": e["body"]["error"]["code"], "message": message}},
                                 status=e["status"], headers={"x-ms-failure-cause": e["headers"]["x-ms-failure-cause"]})
