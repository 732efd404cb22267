"""The scoring data plane: `POST {emu}/endpoints/{endpoint}/score` runs the deployment's uploaded code.

Checks the endpoint's auth (key: Bearer primary/secondary; aml_token: a token from the `token`
action; aad_token: an emulator-issued Entra token), picks a deployment by the
`azureml-model-deployment` header or by traffic weight, and proxies to a local scoring host
(`serving.host`, via serving.standalone) started on first use from the code and model blobs the SDK uploaded.
A host is replaced when its deployment's code, model, environment variables or script change,
and stopped when the deployment goes away or the emulator stops.

Sources: auth modes key / aml_token / aad_token (MicrosoftDocs azureml-docs how-to-authenticate-online-endpoint.md);
routing by the `azureml-model-deployment` header regardless of traffic, else by weight (how-to-safely-rollout-
online-endpoints.md); answer header azureml-model-deployment and x-ms-run-function-failed (R01 #17); 404 "No valid
deployments to route to. ..." (wording from azureml-docs how-to-troubleshoot-batch-endpoints.md and user reports
of online endpoints); 408 / 424 / 429 (how-to-troubleshoot-online-endpoints.md status table, see below); 401 for
bad credentials (same table; body wording: guess); 503 while a deployment is not Succeeded and 502 when its
container cannot start: guess. The scoring URI is the emulator's own (R01 #3's `{name}.{region}.inference.ml.azure.com`
cannot be reached on 127.0.0.1): a deliberate deviation.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from aiohttp import ClientSession, ClientTimeout, web

from .context import Context
from .ids import ArmPath, key
from .kinds import props, state_of

HOST_START_TIMEOUT = 30.0
# MicrosoftDocs azureml-docs how-to-troubleshoot-online-endpoints.md, "HTTP status codes" table:
#   424 "Model error": the model container returned a non-200; details in the response headers
#       ms-azureml-model-error-statuscode and ms-azureml-model-error-reason;
#   424 "Response payload too large": the container returned more than 1.5 MB (localized editions of the page);
#   429 "Too many pending requests": more than 2 * max_concurrent_requests_per_instance * instance_count requests
#       in parallel are rejected;
#   408 "Request timeout": the model took longer than request_settings.request_timeout_ms.
MAX_RESPONSE_BYTES = 1_500_000
MODEL_ERROR_REASON = "model_error"      # guess: the header's value is not documented
MAX_TALLIES = 100_000                   # (endpoint, deployment, status, minute) cells kept; the oldest go first


@dataclass
class Host:
    proc: object
    port: int
    fingerprint: str
    directory: Path


def iso_seconds(value, default: float) -> float:
    match = re.fullmatch(r"PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?", str(value or ""))
    if not match or not any(match.groups()):
        return default
    h, m, s = (float(g or 0) for g in match.groups())
    return h * 3600 + m * 60 + s


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"message": message}), content_type="application/json",
                        headers=headers)


class DataPlane:
    def __init__(self, ctx: Context, workdir: Path, authority=None):
        self.ctx = ctx
        self.workdir = workdir
        self.authority = authority
        self.hosts: dict[str, Host] = {}
        self.failed_logs: dict[str, str] = {}     # deployment key -> log of the host that never came up
        self._locks: dict[str, asyncio.Lock] = {}
        self._rng = random.Random(0)
        self._session: ClientSession | None = None
        self._counter = 0
        self.in_flight: dict[str, int] = {}       # deployment key -> scoring requests being served
        #: answers by (endpoint id lower-cased, deployment, status, minute): what monitor.py serves as Azure
        #: Monitor's RequestsPerMinute (the service counts every answer the endpoint gives, per deployment)
        self.tallies: dict[tuple[str, str, int, int], int] = {}

    # -- routing -----------------------------------------------------------------------------------
    def find_endpoint(self, name: str):
        found = self.ctx.store.find(lambda r: ArmPath.parse(r.id).type_key().endswith("/onlineendpoints")
                                    and r.body["name"].lower() == name.lower())
        return max(found, key=lambda r: r.created) if found else None

    def authorized(self, endpoint, authorization: str) -> bool:
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        if not token:
            return False
        mode = str(props(endpoint.body).get("authMode", "Key")).lower()
        if mode == "key":
            return token in (endpoint.private.get("keys") or {}).values()
        if mode == "amltoken":
            return (endpoint.private.get("tokens") or {}).get(token, 0) > time.time()
        return self.authority is not None and self.authority.verify(authorization) is None

    def choose(self, endpoint, wanted: str | None):
        deployments = {r.body["name"].lower(): r for r in self.ctx.store.children(endpoint.id + "/deployments")}
        if wanted:
            return deployments.get(wanted.lower())
        weights = [(deployments.get(n.lower()), w) for n, w in (props(endpoint.body).get("traffic") or {}).items()]
        weights = [(d, w) for d, w in weights if d is not None and w > 0]
        if not weights:
            return None
        return self._rng.choices([d for d, _ in weights], [w for _, w in weights])[0]

    async def handle(self, request: web.Request, endpoint_name: str) -> web.Response:
        endpoint = self.find_endpoint(endpoint_name)
        if endpoint is None:
            return _error(404, f"Endpoint '{endpoint_name}' not found.")
        answer = await self._answer(request, endpoint, endpoint_name)
        deployment = answer.headers.get("azureml-model-deployment")
        if deployment:  # answers given before a deployment was chosen (401, 404) have no deployment dimension
            tally = (endpoint.id.lower(), deployment, answer.status, int(time.time() // 60))
            self.tallies[tally] = self.tallies.get(tally, 0) + 1
            if len(self.tallies) > MAX_TALLIES:
                del self.tallies[min(self.tallies, key=lambda k: k[3])]
        return answer

    async def _answer(self, request: web.Request, endpoint, endpoint_name: str) -> web.Response:
        if not self.authorized(endpoint, request.headers.get("Authorization", "")):
            return _error(401, "Unauthorized: missing or invalid credentials for this endpoint.")
        if request.method != "POST":
            return _error(405, "Only POST is supported on the scoring route.")
        wanted = request.headers.get("azureml-model-deployment")
        deployment = self.choose(endpoint, wanted)
        if deployment is None:
            if wanted:
                return _error(404, f"Deployment '{wanted}' not found on endpoint '{endpoint_name}'.")
            return _error(404, "No valid deployments to route to. Please check that the endpoint has at least one "
                               "deployment with positive weight values or use a deployment specific header to route.")
        name = deployment.body["name"]
        if state_of(deployment.body) != "Succeeded":
            return _error(503, f"Deployment '{name}' is not ready (state {state_of(deployment.body)!r}).",
                          **{"azureml-model-deployment": name})
        try:
            host = await self.ensure_host(deployment)
        except Exception as exc:  # the user's code failed to start: the service answers 502
            return _error(502, f"Deployment '{name}' failed to start its scoring container: {exc}",
                          **{"azureml-model-deployment": name})
        settings = props(deployment.body).get("requestSettings") or {}
        timeout = iso_seconds(settings.get("requestTimeout"), 5.0)
        dep_key = key(deployment.id)
        limit = 2 * int(settings.get("maxConcurrentRequestsPerInstance") or 1) * \
            int((deployment.body.get("sku") or {}).get("capacity") or 1)
        if self.in_flight.get(dep_key, 0) >= limit:
            return _error(429, f"Too many pending requests: deployment '{name}' accepts {limit} in parallel "
                               f"(2 x max_concurrent_requests_per_instance x instance_count).",
                          **{"azureml-model-deployment": name})
        self.in_flight[dep_key] = self.in_flight.get(dep_key, 0) + 1
        try:
            return await self.forward(request, host, name, timeout)
        finally:
            self.in_flight[dep_key] -= 1

    async def forward(self, request: web.Request, host: Host, deployment: str, timeout: float) -> web.Response:
        if self._session is None:
            self._session = ClientSession()
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        try:
            async with self._session.post(f"http://127.0.0.1:{host.port}/score", data=body, headers=headers,
                                          timeout=ClientTimeout(total=timeout)) as upstream:
                payload = await upstream.read()
                out = {"azureml-model-deployment": deployment}
                for name in ("x-ms-run-function-failed", "x-ms-request-id"):
                    if name in upstream.headers:
                        out[name] = upstream.headers[name]
                status = upstream.status
                if status != 200:
                    # 424 with the container's status in a header; the container's body is passed on (guess:
                    # the table says where the status goes, not what happens to the body)
                    out.update({"ms-azureml-model-error-statuscode": str(status),
                                "ms-azureml-model-error-reason": MODEL_ERROR_REASON})
                    status = 424
                elif len(payload) > MAX_RESPONSE_BYTES:
                    return _error(424, f"Response payload too large: the model returned {len(payload)} bytes "
                                       f"(limit 1.5 MB).", **out)
                return web.Response(status=status, body=payload, headers=out,
                                    content_type=upstream.content_type or "application/json")
        except asyncio.TimeoutError:
            return _error(408, f"Request timed out after {timeout:g}s (requestSettings.requestTimeout).",
                          **{"azureml-model-deployment": deployment})

    # -- hosts -------------------------------------------------------------------------------------
    async def provision(self, deployment) -> dict | None:
        """Start (or reuse) the deployment's host; an ARM error dict if its container would not come up."""
        try:
            await self.ensure_host(deployment)
        except Exception as exc:
            last = [line for line in str(exc).splitlines() if line.strip()][-1:] or ["no output"]
            return {"code": "ResourceNotReady",
                    "message": f"User container has crashed or terminated: deployment '{deployment.body['name']}' "
                               f"did not become healthy ({last[0].strip()}). Please see troubleshooting guide, "
                               f"available here: https://aka.ms/oe-tsg#error-resourcenotready"}
        return None

    def logs(self, deployment_id: str) -> str:
        dep_key = key(deployment_id)
        host = self.hosts.get(dep_key)
        if host is not None and (host.directory / "host.log").exists():
            return (host.directory / "host.log").read_text(errors="replace")
        return self.failed_logs.get(dep_key, "")

    @staticmethod
    def fingerprint(deployment) -> str:
        p = props(deployment.body)
        return json.dumps([p.get("model"), p.get("environmentId"), p.get("codeConfiguration"),
                           p.get("environmentVariables")], sort_keys=True)

    async def ensure_host(self, deployment) -> Host:
        dep_key = key(deployment.id)
        lock = self._locks.setdefault(dep_key, asyncio.Lock())
        async with lock:
            fp = self.fingerprint(deployment)
            host = self.hosts.get(dep_key)
            if host is not None and host.fingerprint == fp and host.proc.poll() is None:
                return host
            loop = asyncio.get_running_loop()
            if host is not None:
                self.hosts.pop(dep_key, None)
                await loop.run_in_executor(None, self._stop, host)
            host = await loop.run_in_executor(None, self._start, deployment, fp)
            self.hosts[dep_key] = host
            return host

    def _start(self, deployment, fp: str) -> Host:
        from serving import standalone as scoring_host
        from reconcilers.local import procs

        p = props(deployment.body)
        self._counter += 1
        directory = self.workdir / "hosts" / f"{deployment.body['name']}-{self._counter}"
        code_dir, model_dir = directory / "code", directory / "model"
        code_dir.mkdir(parents=True)
        model_dir.mkdir(parents=True)
        conf = p.get("codeConfiguration") or {}
        if conf.get("codeId"):
            self._download_code(conf["codeId"], code_dir)
        if p.get("model"):
            self._download_model(p["model"], model_dir)
        port = procs.free_port()
        env = {str(k): str(v) for k, v in (p.get("environmentVariables") or {}).items()}
        env["AZUREML_MODEL_DIR"] = str(model_dir)
        proc = scoring_host.spawn(code_dir, conf.get("scoringScript") or "score.py", model_dir, port,
                                  directory / "host.log", env=env)
        try:
            scoring_host.wait_healthy(port, timeout=HOST_START_TIMEOUT, proc=proc)
        except Exception as exc:
            procs.stop(proc.pid)
            log = (directory / "host.log").read_text(errors="replace")
            self.failed_logs[key(deployment.id)] = log
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(f"{exc}; log tail:\n{log[-2000:]}") from exc
        return Host(proc, port, fp, directory)

    def _download_code(self, code_id: str, dest: Path) -> None:
        rec = self.ctx.store.get(code_id)
        uri = props(rec.body).get("codeUri") if rec else None
        if not uri:
            raise RuntimeError(f"code asset {code_id} has no codeUri")
        account, container, prefix = self.split_blob_url(uri)
        if not self.ctx.blobs.download_prefix(account, container, prefix, dest):
            raise RuntimeError(f"no code blobs under {uri}")

    def _download_model(self, model_id: str, dest: Path) -> None:
        rec = self.ctx.store.get(model_id)
        uri = props(rec.body).get("modelUri") if rec else None
        if not uri:
            return
        account, container, prefix = self.resolve_model_uri(model_id, uri)
        single = self.ctx.blobs.get(account, container, prefix.strip("/")) is not None
        target = dest if single else dest / Path(prefix.rstrip("/")).name
        self.ctx.blobs.download_prefix(account, container, prefix, target)

    @staticmethod
    def split_blob_url(uri: str) -> tuple[str, str, str]:
        parsed = urlparse(uri)
        container, _, prefix = parsed.path.lstrip("/").partition("/")
        return parsed.hostname.split(".")[0], container, prefix

    def resolve_model_uri(self, model_id: str, uri: str) -> tuple[str, str, str]:
        if uri.startswith("https://"):
            return self.split_blob_url(uri)
        match = re.search(r"/datastores/([^/]+)/paths/(.*)$", uri)
        if not match:
            raise RuntimeError(f"unsupported modelUri {uri}")
        ws = ArmPath.parse(model_id).workspace()
        ds = self.ctx.store.get(ws.child("datastores", match.group(1)).path)
        if ds is None:
            raise RuntimeError(f"datastore {match.group(1)} of {uri} not found")
        return props(ds.body)["accountName"], props(ds.body)["containerName"], match.group(2)

    @staticmethod
    def _stop(host: Host) -> None:
        from reconcilers.local import procs

        procs.stop(host.proc.pid)
        shutil.rmtree(host.directory, ignore_errors=True)

    def forget(self, removed_ids: list[str]) -> None:
        """Deployments (or their endpoint/workspace) were deleted: stop their hosts in the background."""
        gone = {key(i) for i in removed_ids}
        for dep_key in [k for k in self.hosts if k in gone]:
            host = self.hosts.pop(dep_key)
            asyncio.get_running_loop().run_in_executor(None, self._stop, host)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        hosts, self.hosts = list(self.hosts.values()), {}
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, self._stop, h) for h in hosts))
