"""An endpoint's front process: what azureml-fe does in Azure, plus the supervisor of its instances.

Per request: check the bearer key (constant time, primary or secondary; anything else,
non-ASCII included, is 401), pick a deployment by the `azureml-model-deployment` header
or by traffic weight (smooth weighted round robin), admit it or answer 429 beyond
2 × max_concurrent_requests_per_instance × instance_count in flight, and hand it to a
ready instance with a free slot (or queue it until one is free, within
request_timeout_ms). Status codes follow Azure's front (learn.microsoft.com:
how-to-troubleshoot-online-endpoints#http-status-codes): 424 with the instance's body
and `ms-azureml-model-error-statuscode` when the instance answers non-200, 408 at
request_timeout_ms, 502 when the instance died running the request, 404 when no
deployment has weight, 413 over the body limit. SIGHUP reloads routes.json and keys.

Run as `python -m serving.front --dir ENDPOINT_DIR --port P [--host 127.0.0.1] --logs DIR`.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import hmac
import json
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from rtsctl.support.home import open_lock, write_atomic

from . import keeper
from .access import AccessLog
from .logfile import RotatingFile
from .reaper import become_subreaper, end_adopted
from .supervisor import Instance
from .wire import HEAD_TIMEOUT_S, MAX_RESPONSE, REASONS, BadRequest, parse_request, response

MAX_BODY = 1536 * 1024            # bytes; over this the front answers 413 (the old front's limit)
MAX_DISCARD = 64 * 1024 * 1024    # an over-limit body up to this size is read and dropped, so the client sees the 413
DEFAULT_TIMEOUT_MS = 5000         # Azure ML's default request_timeout_ms
DEFAULT_MCR = 1                   # Azure ML's default max_concurrent_requests_per_instance
SWEEP_S = 0.05
MAX_UNREAD = MAX_RESPONSE + 1024 * 1024   # answers a client may leave unread before it is cut off: one largest
MAX_PIPELINE = 64                 # unanswered requests per client connection before the front stops reading it
NO_ROUTE = ("No valid deployments to route to. Please check that the endpoint has at least one deployment with "
            "positive weight values or use a deployment specific header to route.")
DROP_HEADERS = frozenset({b"authorization", b"connection", b"keep-alive", b"content-length", b"host",
                          b"transfer-encoding", b"te", b"upgrade", b"proxy-authorization"})
JSON = b"Content-Type: application/json\r\n"
HEALTHY = b"Healthy"
STATUS_RETRY_S = 1.0              # a failed status.json write (full disk) is tried again this often
ANSWERS_WRITE_S = 0.5             # while a deployment answers, status.json carries its counts at most this stale

log = logging.getLogger("rtsctl.front")


def error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


class Exchange:
    """One request from admission to its answer; answered exactly once."""

    __slots__ = ("client", "keep_alive", "deployment", "upstream_request", "deadline", "answered", "replayed", "data")

    def __init__(self, client: Client, keep_alive: bool):
        self.client, self.keep_alive = client, keep_alive
        self.deployment: Deployment | None = None
        self.upstream_request = b""
        self.deadline = 0.0
        self.answered = self.replayed = False
        self.data: bytes | None = None

    def finish(self, data: bytes) -> None:
        if self.answered:
            return
        self.answered = True
        if self.deployment is not None:
            self.deployment.in_flight -= 1
        self.data = data
        self.client.ready(self)

    def fail(self, status: int, message: str, headers: bytes = b"") -> None:
        extra = b""
        if self.deployment is not None and not self.answered:
            extra = self.deployment.header
            self.deployment.tally(status, self)
        self.finish(response(status, error_body(message), JSON + headers + extra, self.keep_alive))

    def from_instance(self, status: int, headers: bytes, body: bytes) -> None:
        deployment = self.deployment
        if self.answered:  # too late: it was answered 408 already
            return
        deployment.tally(200 if status == 200 else 424, self)
        if status == 200:
            self.finish(response(200, body, headers + deployment.header, self.keep_alive))
        else:
            reason = REASONS.get(status, "Unknown").encode()
            self.finish(response(424, body, b"%sms-azureml-model-error-statuscode: %d\r\n"
                                            b"ms-azureml-model-error-reason: %s\r\n%s"
                                 % (headers, status, reason, deployment.header), self.keep_alive))


class Client(asyncio.Protocol):
    """One client connection; answers leave in request order even when the client pipelines."""

    def __init__(self, front: Front):
        self.front = front
        self.buf = bytearray()
        self.queue: deque[Exchange] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.discard = 0
        self.paused = False            # reading paused: too many unanswered requests, or the client reads slowly
        self.write_paused = False
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def _head_late(self) -> None:
        """A head started HEAD_TIMEOUT_S ago is still incomplete (slowloris): answer 408 and close."""
        self.head_timer = None
        if self.closed or not self.buf:
            return
        self.buf.clear()
        exchange = Exchange(self, False)
        self.queue.append(exchange)
        exchange.fail(408, f"the request head was not complete within {HEAD_TIMEOUT_S:.0f} s")

    def _watch_head(self) -> None:
        """Arm the head timer while a partial request waits in the buffer; disarm once it is parsed."""
        if self.buf and self.head_timer is None and not self.closed:
            self.head_timer = asyncio.get_running_loop().call_later(HEAD_TIMEOUT_S, self._head_late)
        elif not self.buf and self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def pause_writing(self) -> None:
        self.write_paused = True
        self._flow()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._flow()

    def _flow(self) -> None:
        stop = self.write_paused or len(self.queue) >= MAX_PIPELINE
        if stop != self.paused and not self.closed:
            self.paused = stop
            (self.transport.pause_reading if stop else self.transport.resume_reading)()
            if not stop and self.buf:
                self.data_received(b"")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_timer is not None:
            self.head_timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self.discard:
            self.discard -= len(data)
            if self.discard <= 0:
                self.transport.close()
            return
        buf = self.buf
        buf += data
        while buf:
            if len(self.queue) >= MAX_PIPELINE:
                self._flow()
                return
            try:
                parsed = parse_request(buf, MAX_BODY)
            except BadRequest as exc:
                remaining = exc.skip - len(buf) if exc.skip else 0
                if 0 < remaining <= MAX_DISCARD:
                    self.discard = remaining
                buf.clear()
                exchange = Exchange(self, False)
                self.queue.append(exchange)
                exchange.fail(exc.status, exc.message)
                return
            if parsed is None:
                self._watch_head()
                return
            used, request = parsed
            del buf[:used]
            if self.head_timer is not None:  # the next head (pipelined) gets its own time
                self.head_timer.cancel()
                self.head_timer = None
            self._watch_head()
            exchange = Exchange(self, request.keep_alive)
            self.queue.append(exchange)
            self.front.handle(exchange, request)
            if not request.keep_alive:
                buf.clear()
                return

    def ready(self, exchange: Exchange) -> None:
        queue = self.queue
        if queue[0] is not exchange:
            return
        while queue and queue[0].data is not None:
            done = queue.popleft()
            if self.closed:
                continue
            self.transport.write(done.data)
            if self.transport.get_write_buffer_size() > MAX_UNREAD:
                # it does not read its answers: cut it off rather than hold them (nginx's send_timeout, by size)
                log.warning("closed a client that left %d bytes of answers unread",
                            self.transport.get_write_buffer_size())
                self.transport.abort()
                self.closed = True
                continue
            if not done.keep_alive:
                if self.discard:      # let the client finish sending the body it was refused
                    asyncio.get_running_loop().call_later(5.0, self.transport.close)
                else:
                    self.transport.close()
                self.closed = True
        if self.paused:
            self._flow()


class Deployment:
    """Routing, admission and the instance set of one deployment (supervised here)."""

    def __init__(self, front: Front, name: str, conf: dict[str, Any]):
        self.front, self.name = front, name
        self.header = b"azureml-model-deployment: %s\r\n" % name.encode("latin-1", "replace")
        self.instances: list[Instance] = []   # the generation in rotation
        self.next: list[Instance] = []        # a new generation starting beside it (rolling replacement)
        self.retired: list[Instance] = []     # draining, then stopped
        self.queue: deque[Exchange] = deque()
        self.in_flight = 0
        self.answers: dict[int, int] = {}     # what clients got from this deployment, by status (Azure's
        #                                       RequestsPerMinute split by statusCode), read by rollout gates
        self.rr = 0
        self.stopping = False
        self.generation = ""
        self.access = AccessLog(front.log_dir / name / "access.log")
        self.configure(conf)

    def configure(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        settings = conf.get("request_settings") or {}
        self.timeout_ms = settings.get("request_timeout_ms", DEFAULT_TIMEOUT_MS)
        self.timeout = self.timeout_ms / 1000
        self.mcr = settings.get("max_concurrent_requests_per_instance", DEFAULT_MCR)
        self.count = conf["instance_count"]
        self.capacity = 2 * self.mcr * self.count
        target = conf["generation"]
        if not self.instances or target == self.generation:
            if target != self.generation:
                self.generation = target
            self._scale(self.instances, target)
            for stale in self.next:
                stale.drain()
            self.retired += self.next
            self.next = []
        else:
            if self.next and self.next[0].generation != target:
                for stale in self.next:
                    stale.drain()
                self.retired += self.next
                self.next = []
            self._scale(self.next, target)
        self.changed()

    def _scale(self, group: list[Instance], generation: str) -> None:
        while len(group) > self.count:
            extra = group.pop()
            extra.drain()
            self.retired.append(extra)
        for instance in group:
            instance.launch = self.conf["launch"]
            instance.restart_now()  # an apply heals a crash loop by trying again at once
        while len(group) < self.count:
            instance = Instance(self, len(group), generation, self.conf["launch"], self.front.owner,
                                self.front.run_dir, self.front.log_dir / self.name)
            group.append(instance)
            instance.start()

    def changed(self) -> None:
        if self.next and all(i.state == "ready" for i in self.next):
            for old in self.instances:
                old.drain()
            self.retired += self.instances
            self.instances, self.next = self.next, []
            self.generation = self.instances[0].generation
        self.retired = [i for i in self.retired if i.state != "stopped"]
        self.pump()
        self.front.status_changed()

    # ---- requests -------------------------------------------------------------------------
    def submit(self, exchange: Exchange) -> None:
        if self.in_flight >= self.capacity:
            self.tally(429, exchange)
            exchange.fail(429, "Too many pending requests: more than 2 * max_concurrent_requests_per_instance "
                               f"* instance_count ({self.capacity}) in flight")
            return
        self.in_flight += 1
        exchange.deployment = self
        instance = self._free()
        if instance is None:
            self.queue.append(exchange)
        else:
            instance.send(exchange)

    def tally(self, status: int, exchange: Exchange) -> None:
        self.answers[status] = self.answers.get(status, 0) + 1
        self.front.counted = True
        started = exchange.deadline - self.timeout if exchange.deadline else asyncio.get_running_loop().time()
        self.access.record(status, asyncio.get_running_loop().time() - started, self.generation)

    def requeue(self, exchange: Exchange) -> None:
        if self.stopping:
            exchange.fail(502, f"the instance of deployment {self.name!r} stopped before answering")
        else:
            self.queue.append(exchange)

    def _free(self) -> Instance | None:
        instances = self.instances
        n = len(instances)
        for i in range(n):
            candidate = instances[(self.rr + i) % n]
            if candidate.accepting() and len(candidate.outstanding) < self.mcr:
                self.rr = (self.rr + i + 1) % n
                return candidate
        return None

    def pump(self) -> None:
        queue = self.queue
        while queue:
            if queue[0].answered:
                queue.popleft()
                continue
            instance = self._free()
            if instance is None:
                return
            instance.send(queue.popleft())

    def sweep(self, now: float) -> None:
        self.access.tick()
        late = f"Request timed out after {self.timeout_ms} ms (request_settings.request_timeout_ms)"
        if any(e.deadline <= now for e in self.queue):
            for exchange in [e for e in self.queue if e.deadline <= now]:
                exchange.fail(408, late)
            self.queue = deque(e for e in self.queue if not e.answered)
        hung_before = [i.hung for i in self.all_instances()]
        for instance in self.all_instances():
            for exchange in instance.outstanding:
                if not exchange.answered and exchange.deadline <= now:
                    exchange.fail(408, late)
            for exchange in instance.replay:
                if not exchange.answered and exchange.deadline <= now:
                    exchange.fail(502, f"the instance of deployment {self.name!r} died while running this request "
                                       "and was not back within request_timeout_ms")
            instance.hung = bool(instance.outstanding) and instance.outstanding[0].deadline <= now
        if hung_before != [i.hung for i in self.all_instances()]:
            self.changed()

    def all_instances(self) -> list[Instance]:
        return self.instances + self.next + self.retired

    def stop(self) -> None:
        self.stopping = True
        for exchange in self.queue:
            exchange.fail(404, f"deployment {self.name!r} was deleted")
        self.queue.clear()
        for instance in self.all_instances():
            instance.drain()

    def status(self) -> dict[str, Any]:
        target = self.conf["generation"]
        starting = [i for i in (self.next or self.instances) if i.generation == target]
        failed = next(({"index": i.index, "reason": i.last_exit, "log": str(i.log.path), "state": i.status()["state"],
                        "restarts": i.restarts} for i in starting
                       if (not i.ever_ready and i.exits) or i.status()["state"] == "crash-loop"), None)
        crash = next(({"index": i.index, "reason": i.last_exit, "log": str(i.log.path)}
                      for i in self.instances if i.status()["state"] == "crash-loop"), None)
        return {"generation": self.generation, "target": target, "instance_count": self.count,
                "ready": sum(1 for i in self.instances if i.accepting() or (i.state == "ready" and i.isolated)),
                "in_flight": self.in_flight, "failed": failed, "crash_loop": crash,
                "answers": {str(status): n for status, n in sorted(self.answers.items())},
                "instances": [i.status() for i in self.all_instances()]}


class Front:
    def __init__(self, folder: Path, port: int, log_dir: Path, record: dict[str, Any] | None = None):
        self.folder, self.port, self.log_dir = folder, port, log_dir
        self.record = record or {}     # the keeper's: its pid, this front's restarts and the last exit
        self.owner = str(folder)
        self.run_dir = folder / "run"
        self.deployments: dict[str, Deployment] = {}
        self.removed: list[Deployment] = []
        self.weights: dict[str, int] = {}
        self.current: dict[str, int] = {}
        self.keys: list[bytes] = []
        self.revision = 0
        self._status_pending = False
        self.counted = False       # a deployment answered since status.json was last written
        self._status_at = 0.0
        self._status_failing = False

    # ---- configuration --------------------------------------------------------------------
    def reload(self) -> None:
        try:
            routes = json.loads((self.folder / "routes.json").read_text())
        except FileNotFoundError:
            routes = {}
        except ValueError as exc:
            log.error("routes.json unreadable, keeping the previous routes: %s", exc)
            return
        wanted = routes.get("deployments", {})
        for name, conf in wanted.items():
            if "generation" not in conf:
                continue
            if name in self.deployments:
                self.deployments[name].configure(conf)
            else:
                self.deployments[name] = Deployment(self, name, conf)
        for name in [n for n in self.deployments if n not in wanted]:
            gone = self.deployments.pop(name)
            gone.stop()
            self.removed.append(gone)
        self.weights = {n: w for n, w in routes.get("traffic", {}).items() if w > 0 and n in self.deployments}
        self.current = {n: 0 for n in self.weights}
        self.keys = [k for k in (self._key("primary"), self._key("secondary")) if k]
        self.revision = routes.get("revision", 0)
        log.info("routes loaded: traffic=%s instances=%s", self.weights,
                 {n: d.count for n, d in self.deployments.items()})
        self.status_changed()

    def _key(self, name: str) -> bytes | None:
        try:
            return (self.folder / "keys" / name).read_bytes().strip() or None
        except FileNotFoundError:
            return None

    # ---- requests -------------------------------------------------------------------------
    def authorized(self, header: bytes | None) -> bool:
        if not header or not header.startswith(b"Bearer "):
            return False
        offered = header[7:].strip()
        # Compare against every key, without stopping early, so timing reveals nothing.
        return sum(hmac.compare_digest(offered, key) for key in self.keys) > 0

    def pick(self) -> Deployment | None:
        """Smooth weighted round robin (as nginx upstreams): exact proportions over any window."""
        if not self.weights:
            return None
        total = 0
        current = self.current
        for name, weight in self.weights.items():
            current[name] += weight
            total += weight
        best = max(current, key=current.__getitem__)
        current[best] -= total
        return self.deployments[best]

    def handle(self, exchange: Exchange, request) -> None:
        path = request.path
        if b"?" in path:
            path = path.split(b"?", 1)[0]
        if path != b"/score":
            if path == b"/" and request.method == b"GET":
                exchange.finish(response(200, HEALTHY, b"Content-Type: text/plain\r\n", exchange.keep_alive))
            else:
                exchange.fail(404, "not found: the scoring path is /score")
            return
        headers = request.headers
        if not self.authorized(headers.get(b"authorization")):
            exchange.fail(401, "Unauthorized", b"WWW-Authenticate: Bearer\r\n")
            return
        if request.method != b"POST":
            exchange.fail(405, "use POST to score")
            return
        target = headers.get(b"azureml-model-deployment")
        if target:
            deployment = self.deployments.get(target.decode("latin-1"))
            if deployment is None:
                exchange.fail(404, f"deployment {target.decode('latin-1')!r} not found on this endpoint")
                return
        else:
            deployment = self.pick()
            if deployment is None:
                exchange.fail(404, NO_ROUTE)
                return
        body = request.body
        forwarded = b"".join(b"%s: %s\r\n" % item for item in headers.items() if item[0] not in DROP_HEADERS)
        exchange.upstream_request = b"POST /score HTTP/1.1\r\nContent-Length: %d\r\n%s\r\n%s" % (
            len(body), forwarded, body)
        exchange.deadline = asyncio.get_running_loop().time() + deployment.timeout
        deployment.submit(exchange)

    # ---- housekeeping ---------------------------------------------------------------------
    async def sweeper(self) -> None:
        """Timeouts (408), hung instances and status.json: an error in one round is logged and the next
        round runs, so the sweeper never dies (a full disk once killed it silently, and 408s with it)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                now = loop.time()
                for deployment in [*self.deployments.values(), *self.removed]:
                    deployment.sweep(now)
                if self.counted and not self._status_pending and now - self._status_at >= ANSWERS_WRITE_S:
                    self.write_status()
                self.removed = [d for d in self.removed
                                if d.in_flight or any(i.state != "stopped" for i in d.all_instances())]
            except Exception:
                log.exception("sweeper round failed; the next round runs in %.2f s", SWEEP_S)

    def status_changed(self) -> None:
        if not self._status_pending:
            self._status_pending = True
            asyncio.get_running_loop().call_later(0.05, self.write_status)

    def write_status(self) -> None:
        self._status_pending = self.counted = False
        self._status_at = asyncio.get_running_loop().time()
        data = {"pid": self.record.get("keeper", os.getpid()), "worker": os.getpid(), "port": self.port,
                "updated": time.time(), "revision": self.revision,
                "deployments": {n: d.status() for n, d in self.deployments.items()}}
        try:
            write_atomic(self.folder / "status.json", json.dumps(data, indent=1), "endpoint status", durable=False)
        except Exception as exc:  # a full disk: keep serving, say so once, write again until it works
            if not self._status_failing:
                log.error("%s; retrying every %.0f s", exc, STATUS_RETRY_S)
            self._status_failing = self._status_pending = True
            asyncio.get_running_loop().call_later(STATUS_RETRY_S, self.write_status)
            return
        if self._status_failing:
            self._status_failing = False
            log.info("status.json written again")

    async def shutdown(self) -> None:
        for deployment in [*self.deployments.values(), *self.removed]:
            deployment.stopping = True
            for instance in deployment.all_instances():
                instance.terminate()
        deadline = time.monotonic() + 3.0
        procs = [i.proc for d in [*self.deployments.values(), *self.removed] for i in d.all_instances() if i.proc]
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            await asyncio.sleep(0.02)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        end_adopted(lambda: set())          # all instances are gone: any child left is something they started
        for deployment in [*self.deployments.values(), *self.removed]:
            for instance in deployment.all_instances():
                instance.close_cage()

    def instance_pids(self) -> set[int]:
        return {i.proc.pid for d in [*self.deployments.values(), *self.removed] for i in d.all_instances()
                if i.proc is not None and i.proc.returncode is None}

    def end_orphans(self) -> None:
        """Kill what dead instances started (it was handed to us, a subreaper: serving.reaper)."""
        ended = end_adopted(self.instance_pids)
        if ended:
            log.info("ended %d process(es) left behind by a stopped instance", ended)


def _lock(folder: Path) -> int | None:
    fd = open_lock(folder / "front.lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.front")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--logs", required=True, type=Path)
    args = parser.parse_args(argv)
    folder = args.dir.resolve()
    logfile = RotatingFile(args.logs / "front.log", stdio=True)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [%(process)d] %(name)s - %(message)s")
    if _lock(folder) is None:
        log.error("another front already serves %s; exiting", folder)
        return 1
    run_dir = folder / "run"
    run_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(run_dir, 0o700)
    for stale in [*run_dir.iterdir(), *folder.glob(".status.json.*")]:   # sockets; temp files of a killed front
        stale.unlink(missing_ok=True)
    os.chdir(run_dir)  # instances' sockets are addressed relative to it (paths are limited to 107 bytes)
    try:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        listener = socket.create_server((args.host, args.port), family=family, backlog=1024)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 1
    listener.setblocking(False)

    def work(record: dict[str, Any]) -> int:
        return serve(Front(folder, args.port, args.logs, record), listener, args.host)

    code = keeper.supervise(folder, work)
    logfile.close()
    return code


def serve(front: Front, listener: socket.socket, host: str) -> int:
    """The front proper, in the keeper's forked worker: serve on the keeper's socket until SIGTERM/SIGINT."""
    become_subreaper()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stopped = loop.create_future()
        server = await loop.create_server(lambda: Client(front), sock=listener, backlog=1024)
        loop.add_signal_handler(signal.SIGHUP, front.reload)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stopped.done() or stopped.set_result(None))
        front.reload()
        sweeper = loop.create_task(front.sweeper())
        log.info("front listening on %s:%d (pid %d%s)", host, front.port, os.getpid(),
                 f", restart {front.record['restarts']}" if front.record.get("restarts") else "")
        await stopped
        server.close()
        sweeper.cancel()
        await front.shutdown()
        log.info("front worker stopped")

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
