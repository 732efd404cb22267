"""A scoring-like aiohttp server on 127.0.0.1 for the bench tests (served from a thread of the test process).

Routes (all POST, `Authorization: Bearer testkey`, else 401):
  /score     the seed's contract: {"name": N} -> {"GoAway": "N's not here."}; counts requests and names
  /slow      one request at a time, 50 ms each: ~20 req/s of capacity (open-loop latency growth)
  /sleep     50 ms each, all at once: throughput follows the client's concurrency; `concurrency` logs
             (seconds since the first request, requests in flight) at each arrival (closed-loop ramps)
  /chunked   a chunked response in three pieces
  /close     answers with Connection: close (the client must reconnect)
  /hang      never answers in time (timeouts)
The same app is also served over TLS with a trustme CA (`tls_server`).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections import Counter

import pytest
from aiohttp import web

KEY = "testkey"


class Server:
    def __init__(self, tls: bool = False, tmp=None):
        self.hits: Counter = Counter()
        self.names: Counter = Counter()
        self.tls = tls
        self.cafile = None
        self._ready = threading.Event()
        self._tmp = tmp
        self.port = 0
        self.inflight = 0
        self.concurrency: list[tuple[float, int]] = []

    # -- handlers ---------------------------------------------------------------------------------------------
    async def _auth(self, request: web.Request) -> web.Response | None:
        self.hits[request.path] += 1
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.json_response({"error": "invalid key"}, status=401)
        return None

    async def score(self, request):
        denied = await self._auth(request)
        if denied:
            return denied
        try:
            name = (await request.json())["name"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "bad payload"}, status=400)
        self.names[name] += 1
        if request.headers.get("azureml-model-deployment"):
            self.hits["deployment:" + request.headers["azureml-model-deployment"]] += 1
        return web.json_response({"GoAway": f"{name}'s not here."})

    async def slow(self, request):
        denied = await self._auth(request)
        if denied:
            return denied
        async with self.lock:
            await asyncio.sleep(0.05)
        return web.json_response({"GoAway": "slow"})

    async def sleep(self, request):
        denied = await self._auth(request)
        if denied:
            return denied
        now = asyncio.get_running_loop().time()
        self._t0 = getattr(self, "_t0", None) or now
        self.inflight += 1
        self.concurrency.append((now - self._t0, self.inflight))
        try:
            await asyncio.sleep(0.05)
        finally:
            self.inflight -= 1
        return web.json_response({"GoAway": "slept"})

    async def chunked(self, request):
        denied = await self._auth(request)
        if denied:
            return denied
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for piece in (b'{"GoAway": ', b'"chunked', b'"}'):
            await resp.write(piece)
        await resp.write_eof()
        return resp

    async def close(self, request):
        denied = await self._auth(request)
        if denied:
            return denied
        resp = web.json_response({"GoAway": "bye"})
        resp.force_close()
        return resp

    async def hang(self, request):
        await self._auth(request)
        await asyncio.sleep(30)
        return web.json_response({})

    # -- lifecycle --------------------------------------------------------------------------------------------
    def _ssl(self):
        import trustme
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        self.cafile = str(self._tmp / "ca.pem")
        ca.cert_pem.write_to_path(self.cafile)
        return ctx

    async def _main(self):
        self.lock = asyncio.Lock()
        app = web.Application()
        for path, handler in (("/score", self.score), ("/slow", self.slow), ("/sleep", self.sleep),
                              ("/chunked", self.chunked),
                              ("/close", self.close), ("/hang", self.hang)):
            app.router.add_post(path, handler)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self._ssl() if self.tls else None)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await self.runner.cleanup()

    def start(self) -> "Server":
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)
        self.thread.start()
        assert self._ready.wait(10), "test server did not start"
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)

    def url(self, path: str = "/score") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server():
    srv = Server().start()
    yield srv
    srv.stop()


@pytest.fixture
def tls_server(tmp_path):
    srv = Server(tls=True, tmp=tmp_path).start()
    yield srv
    srv.stop()


def report(result) -> dict:
    """The JSON document printed by `rtsctl bench ... -o json`."""
    try:
        return json.loads(result.out)
    except ValueError:
        raise AssertionError(f"not a JSON report:\n{result}") from None
