"""An endpoint's front process: what azureml-fe does in Azure, on 127.0.0.1.

Checks the bearer key (constant-time, primary or secondary), picks a deployment by the
`azureml-model-deployment` header or by traffic weight (smooth weighted round robin:
exact splits, no randomness), and forwards the request to one of its instances over
pooled keep-alive connections. Enforces the request settings Azure enforces: body size
(413), `request_timeout_ms` (408) and, when declared, `max_concurrent_requests_per_instance`
with `max_queue_wait_ms` (429). SIGHUP reloads routes and keys.

Run as `python -m reconcilers.local.front --dir ENDPOINT_DIR --port P`.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import itertools
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from .routes import read_routes
from .upstream import Upstream, UpstreamError

MAX_BODY = 1536 * 1024  # bytes; over this the front answers 413
DEFAULT_TIMEOUT_MS = 5000  # Azure ML's default request_timeout_ms
DEFAULT_QUEUE_WAIT_MS = 500
NO_ROUTE = ("No valid deployments to route to. Please check that the endpoint has at least one deployment with "
            "positive weight values or use a deployment specific header to route.")
PASS_HEADERS = frozenset({"content-type", "x-ms-run-function-failed", "x-ms-run-fn-exec-ms", "x-ms-request-id",
                          "x-ms-server-version"})

log = logging.getLogger("rtsctl.front")


class Deployment:
    def __init__(self, name: str, conf: dict[str, Any], pools: dict[int, Upstream]):
        self.name = name
        settings = conf.get("request_settings") or {}
        self.upstreams = [pools.get(i["port"]) or Upstream(i["port"]) for i in conf.get("instances", [])]
        self._next = itertools.cycle(range(len(self.upstreams))) if self.upstreams else None
        self.timeout_ms = settings.get("request_timeout_ms", DEFAULT_TIMEOUT_MS)
        per_instance = settings.get("max_concurrent_requests_per_instance")
        self.slots = asyncio.Semaphore(per_instance * max(len(self.upstreams), 1)) if per_instance else None
        self.queue_wait = settings.get("max_queue_wait_ms", DEFAULT_QUEUE_WAIT_MS) / 1000

    def in_turn(self) -> list[Upstream]:
        """All instances, starting with the next in round-robin order (the rest are fallbacks)."""
        if not self._next:
            return []
        start = next(self._next)
        return self.upstreams[start:] + self.upstreams[:start]


class Router:
    """Routes and keys, reloaded on SIGHUP."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.deployments: dict[str, Deployment] = {}
        self.reload()

    def reload(self) -> None:
        routes = read_routes(self.folder)
        pools = {u.port: u for d in self.deployments.values() for u in d.upstreams}  # keep warm connections
        self.deployments = {n: Deployment(n, c, pools) for n, c in routes.get("deployments", {}).items()}
        for port in set(pools) - {u.port for d in self.deployments.values() for u in d.upstreams}:
            pools[port].close()
        self.weights = {n: w for n, w in routes.get("traffic", {}).items() if w > 0 and n in self.deployments}
        self.current = {n: 0 for n in self.weights}
        self.keys = [k.encode() for k in (self._key("primary"), self._key("secondary")) if k]
        log.info("routes loaded: traffic=%s instances=%s", self.weights,
                 {n: len(d.upstreams) for n, d in self.deployments.items()})

    def _key(self, name: str) -> str | None:
        try:
            return (self.folder / "keys" / name).read_text().strip()
        except FileNotFoundError:
            return None

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        offered = header[7:].strip().encode()
        # Compare against every key, without stopping early, so timing reveals nothing.
        return sum(hmac.compare_digest(offered, key) for key in self.keys) > 0

    def pick(self) -> Deployment | None:
        """Smooth weighted round robin (as nginx upstreams): exact proportions over any window."""
        if not self.weights:
            return None
        total = 0
        for name, weight in self.weights.items():
            self.current[name] += weight
            total += weight
        best = max(self.current, key=self.current.__getitem__)
        self.current[best] -= total
        return self.deployments[best]


def error(status: int, message: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"message": message}), content_type="application/json",
                        headers=headers)


def build_app(router: Router) -> web.Application:
    async def liveness(request: web.Request) -> web.Response:
        return web.Response(text="Healthy")

    async def score(request: web.Request) -> web.Response:
        if not router.authorized(request.headers.get("Authorization")):
            return error(401, "Unauthorized", **{"WWW-Authenticate": "Bearer"})
        if (request.content_length or 0) > MAX_BODY:
            return error(413, f"Request body is larger than {MAX_BODY} bytes")
        target = request.headers.get("azureml-model-deployment")
        if target:
            deployment = router.deployments.get(target)
            if deployment is None:
                return error(404, f"deployment {target!r} not found on this endpoint")
        else:
            deployment = router.pick()
            if deployment is None:
                return error(404, NO_ROUTE)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error(413, f"Request body is larger than {MAX_BODY} bytes")
        if deployment.slots is None:
            return await forward(deployment, body, request)
        try:
            await asyncio.wait_for(deployment.slots.acquire(), deployment.queue_wait)
        except asyncio.TimeoutError:
            return error(429, "Too many requests: max_concurrent_requests_per_instance reached and "
                              "max_queue_wait_ms exceeded")
        try:
            return await forward(deployment, body, request)
        finally:
            deployment.slots.release()

    async def forward(deployment: Deployment, body: bytes, request: web.Request) -> web.Response:
        content_type = request.headers.get("Content-Type", "application/json")
        for upstream in deployment.in_turn():
            try:
                status, headers, payload = await upstream.post(body, content_type, deployment.timeout_ms / 1000)
            except asyncio.TimeoutError:
                return error(408, f"Request timed out after {deployment.timeout_ms} ms "
                                  "(request_settings.request_timeout_ms)")
            except UpstreamError as exc:
                log.warning("instance on port %d of %s failed: %s", upstream.port, deployment.name, exc)
                continue
            out = {name: value for name, value in headers if name.lower() in PASS_HEADERS}
            out["azureml-model-deployment"] = deployment.name
            return web.Response(status=status, body=payload, headers=out)
        return error(502, f"no healthy instance of deployment {deployment.name!r} answered")

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_get("/", liveness)
    app.router.add_post("/score", score)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconcilers.local.front")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(process)d] %(name)s - %(message)s")
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    router = Router(args.dir)
    app = build_app(router)

    async def on_start(app: web.Application) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, router.reload)

    app.on_startup.append(on_start)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, shutdown_timeout=2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
