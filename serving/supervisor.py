"""Scoring instances as children of the front: spawn, watch, probe, restart, replay.

Each instance is a `serving.host` child process of the endpoint's front, started with
PR_SET_PDEATHSIG, so it cannot outlive the front even if the front is SIGKILLed: the
front is the only process rtsctl ever needs to find again. Like a kubelet, the
supervisor restarts a dead instance with backoff (immediately the first two times, then
0.5 s doubling up to 30 s; reset after 10 s of good health; three failures in a row is
a crash loop, reported in status.json) and runs the deployment's liveness and readiness
probes (`GET /`, Azure ML's ProbeSettings defaults when absent): a failed liveness
probe restarts the instance, a failed readiness probe takes it out of rotation.

Requests reach an instance over one pipelined Unix-socket connection; the host answers
them strictly in order. When an instance dies, its first unanswered request is the one
it was running: that request is the suspect and is replayed once, alone, on the
instance's restarted successor (a poison request thus kills only the successor and
then gets 502); the others had not started and go back to the deployment's queue.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .limits import DEFAULT_MEMORY, Cage
from .logfile import RotatingFile
from .reaper import die_with_parent
from .wire import BadRequest, parse_response

if TYPE_CHECKING:
    from .front import Deployment, Exchange

# Azure ML ProbeSettings defaults (learn.microsoft.com: reference-yaml-deployment-managed-online#probesettings).
PROBE_DEFAULTS = {"initial_delay": 10, "period": 10, "timeout": 2, "success_threshold": 1, "failure_threshold": 30}
HEALTHY_RESET_S = 10.0
CRASH_LOOP = 3


def probe_settings(conf: dict[str, Any] | None) -> dict[str, int]:
    return {**PROBE_DEFAULTS, **{k: v for k, v in (conf or {}).items() if v is not None}}


def backoff(failures: int) -> float:
    # Two quick deaths are what a poison request costs (the instance, then its successor running it alone).
    return 0.0 if failures < CRASH_LOOP else min(0.5 * 2 ** (failures - CRASH_LOOP), 30.0)


class Upstream(asyncio.Protocol):
    """The front's pipelined connection to one instance; writes are corked per loop turn."""

    def __init__(self, instance: Instance):
        self.instance = instance
        self.incarnation = instance.incarnation
        self.buf = bytearray()
        self.pending: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, data: bytes) -> None:
        self.pending.append(data)
        if len(self.pending) == 1:
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        if self.pending and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self.pending))
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            while (parsed := parse_response(self.buf)) is not None:
                used, status, headers, body = parsed
                del self.buf[:used]
                self.instance.on_response(status, headers, body)
        except (BadRequest, ValueError) as exc:
            self.instance.died(f"protocol error: {exc}", self.incarnation)

    def connection_lost(self, exc: Exception | None) -> None:
        self.instance.died("connection to the instance closed", self.incarnation)


class Instance:
    def __init__(self, deployment: Deployment, index: int, generation: str, launch: dict[str, Any], owner: str,
                 run_dir: Path, log_dir: Path):
        self.deployment, self.index, self.generation, self.launch = deployment, index, generation, launch
        self.owner, self.run_dir = owner, run_dir
        self.socket_name = f"{deployment.name}.{generation[:10]}.{index}.sock"
        self.log = RotatingFile(log_dir / f"instance-{index}.log")
        self.state = "new"          # new, starting, ready, dead, draining, stopped
        self.proc: subprocess.Popen | None = None
        self.upstream: Upstream | None = None
        self.outstanding: deque[Exchange] = deque()
        self.replay: deque[Exchange] = deque()
        self.isolated: Exchange | None = None
        self.hung = False
        self.unready = False
        self.ever_ready = False
        self.exits = 0
        self.restarts = 0
        self.failures = 0
        self.last_exit: str | None = None
        self.ready_since = 0.0
        self.tasks: list[asyncio.Task] = []
        self.incarnation = 0        # events of a previous process (late EOF, reaping) must not touch the next one
        self.kill_reason = ""       # why the supervisor killed it (a failed liveness probe), for its exit reason
        self.restart_handle: asyncio.TimerHandle | None = None
        self.cage: Cage | None = None   # its memory limit (and cgroup): serving.limits
        self.oom_kills = 0

    # ---- rotation -------------------------------------------------------------------------
    def accepting(self) -> bool:
        return (self.state == "ready" and not self.hung and not self.unready and self.isolated is None
                and not self.replay)

    def send(self, exchange: Exchange) -> None:
        self.outstanding.append(exchange)
        self.upstream.send(exchange.upstream_request)

    def on_response(self, status: int, headers: bytes, body: bytes) -> None:
        exchange = self.outstanding.popleft()
        exchange.from_instance(status, headers, body)
        if self.hung or self.isolated is not None or self.state == "draining":   # rare: state changes
            self.hung = False
            if exchange is self.isolated:
                self.isolated = None
            if self.state == "draining" and not self.outstanding:
                self.terminate()
            self._next_replay()
            self.deployment.changed()
        else:                                                                     # the hot path
            self.deployment.pump()

    def _next_replay(self) -> None:
        while self.isolated is None and self.replay and self.state == "ready":
            exchange = self.replay.popleft()
            if not exchange.answered:
                self.isolated = exchange
                self.send(exchange)

    # ---- process --------------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.state = "starting"
        self.incarnation += 1
        self.hung = self.unready = False
        self.kill_reason = ""
        self._unlink_socket()
        launch = self.launch
        argv = [launch["python"], "-m", "serving.host", "--socket", self.socket_name, "--code", launch["code_dir"],
                "--script", launch["script"], "--engine", launch.get("engine", "native"), "--owner", self.owner]
        if launch.get("model_dir"):
            argv += ["--model-dir", launch["model_dir"]]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update(launch.get("env") or {})
        env.update(PYTHONPATH=launch["pythonpath"], PYTHONUNBUFFERED="1")
        read_end, write_end = os.pipe()
        self.log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting instance {self.index} "
                       f"(restart {self.restarts}; deployment {self.deployment.name} version {self.generation[:10]})"
                       "\n".encode())
        # a cgroup per process: the previous one's is emptied and removed when that process is reaped, which
        # may come after this start (its connection closing is what triggered the restart)
        self.cage = cage = Cage(self.owner, f"{self.socket_name.removesuffix('.sock')}.{self.incarnation}",
                                int(launch.get("memory") or DEFAULT_MEMORY))
        die = die_with_parent(os.getpid())

        def preexec() -> None:
            die()
            cage.preexec()

        try:
            self.proc = subprocess.Popen(argv, cwd=self.run_dir, env=env, stdin=subprocess.DEVNULL, stdout=write_end,
                                         stderr=write_end, close_fds=True, preexec_fn=preexec)
        except (OSError, subprocess.SubprocessError) as exc:
            os.close(read_end)
            os.close(write_end)
            cage.close()
            self.log.write(f"cannot start {launch['python']}: {exc}\n".encode())
            self.died(f"cannot start: {exc}", self.incarnation)
            return
        os.close(write_end)
        os.set_blocking(read_end, False)
        loop.add_reader(read_end, self._copy_output, read_end)
        pidfd = os.pidfd_open(self.proc.pid)
        loop.add_reader(pidfd, self._reap, pidfd, self.proc, self.incarnation, cage)
        self.tasks = [loop.create_task(self._become_ready()), loop.create_task(self._liveness_while_starting())]
        self.deployment.changed()

    def _copy_output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.log.write(data)
            return
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)

    def _reap(self, pidfd: int, proc: subprocess.Popen, incarnation: int, cage: Cage) -> None:
        asyncio.get_running_loop().remove_reader(pidfd)
        os.close(pidfd)
        code = proc.wait()
        oom = cage.oom_killed(code)
        cage.close()                            # what it started, even in a session of its own
        if oom:
            self.oom_kills += 1
            reason = f"OOMKilled: over its memory limit of {cage.describe()}"
        elif self.kill_reason and incarnation == self.incarnation:
            reason = self.kill_reason
        elif code is not None and code < 0:
            reason = f"killed by signal {signal.Signals(-code).name}"
        else:
            reason = f"exited with code {code}" + (" (init() failed)" if code == 3 and not self.ever_ready else "")
        self.log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {self.label} {reason}\n".encode())
        self.deployment.front.end_orphans()
        if self.state == "dead" and incarnation == self.incarnation or oom:
            self.last_exit = reason             # more telling than the closed connection that may have come first
        self.died(reason, incarnation)

    @property
    def label(self) -> str:
        """Which process a log line is about: old and new versions of an instance share its log file."""
        return f"deployment {self.deployment.name} version {self.generation[:10]} instance {self.index}"

    async def _become_ready(self) -> None:
        loop = asyncio.get_running_loop()
        # Relative to the front's working directory (the run folder): a Unix socket path is limited to 107 bytes.
        while self.state == "starting":
            if os.path.exists(self.socket_name):
                try:
                    _, self.upstream = await loop.create_unix_connection(lambda: Upstream(self), self.socket_name)
                except OSError:
                    await asyncio.sleep(0.02)
                    continue
                if self.state != "starting":
                    self.upstream.transport.close()
                    return
                self.state = "ready"
                self.ever_ready = True
                self.ready_since = time.monotonic()
                self.tasks.append(loop.create_task(self._probe_loop("liveness")))
                self.tasks.append(loop.create_task(self._probe_loop("readiness")))
                self._next_replay()
                self.deployment.changed()
                return
            await asyncio.sleep(0.02)

    async def _probe_loop(self, kind: str) -> None:
        conf = probe_settings(self.deployment.conf.get(f"{kind}_probe"))
        await asyncio.sleep(conf["initial_delay"])
        failures = successes = 0
        while self.state == "ready":
            ok = await self.probe(conf["timeout"])
            failures, successes = (0, successes + 1) if ok else (failures + 1, 0)
            if kind == "liveness" and failures >= conf["failure_threshold"]:
                self._fail_liveness(f"liveness probe failed {failures} times")
                return
            if kind == "readiness":
                if failures >= conf["failure_threshold"] and not self.unready:
                    self.log.write(f"--- readiness probe failed {failures} times: out of rotation\n".encode())
                    self.unready = True
                    self.deployment.changed()
                elif self.unready and successes >= max(conf["success_threshold"], 1):
                    self.unready = False
                    self.deployment.changed()
            await asyncio.sleep(conf["period"])

    async def _liveness_while_starting(self) -> None:
        """The liveness probe runs from `initial_delay` after the process starts, as Kubernetes runs it from the
        container's start (ProbeSettings.initial_delay: "seconds after the container has started before the probe
        is initiated", reference-yaml-deployment-managed-online): azmlinfsrv binds its port before init() ends, so
        a probe connects and waits unanswered (shared/reference/aml-inference-server-notes.md, startup 4.), and an
        init() slower than initial_delay + failure_threshold x period gets the instance killed. Here nothing
        listens until init() returns, so each period while starting is one failed probe."""
        conf = probe_settings(self.deployment.conf.get("liveness_probe"))
        await asyncio.sleep(conf["initial_delay"])
        failures = 0
        while self.state == "starting":
            failures += 1
            if failures >= conf["failure_threshold"]:
                self._fail_liveness(f"liveness probe failed {failures} times while init() ran")
                return
            await asyncio.sleep(conf["period"])

    def _fail_liveness(self, why: str) -> None:
        self.log.write(f"--- {why}: restarting\n".encode())
        self.kill_reason = f"killed: {why}"
        self.kill()

    async def probe(self, timeout: float) -> bool:
        """GET / on a connection of its own; it waits behind a running request, as a kubelet's would."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.socket_name), timeout)
        except (OSError, asyncio.TimeoutError):
            return False
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: probe\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            return head.startswith(b"HTTP/1.1 200")
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return False
        finally:
            writer.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def died(self, reason: str, incarnation: int) -> None:
        """The instance is gone (exit, lost connection, failed liveness): settle its requests, plan a restart."""
        if self.state in ("dead", "stopped", "new") or incarnation != self.incarnation:
            return
        was = self.state
        self.state = "dead"
        self.kill()
        self.exits += 1
        self.last_exit = reason
        healthy_long = self.ready_since and time.monotonic() - self.ready_since >= HEALTHY_RESET_S
        self.failures = 1 if healthy_long else self.failures + 1
        self.ready_since = 0.0
        for task in self.tasks:
            task.cancel()
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()
        self.upstream = None
        self._settle_requests()
        self.hung = False
        if was == "draining" or self.deployment.stopping:
            for exchange in self.replay:
                exchange.fail(502, f"the instance of deployment {self.deployment.name!r} died while running this "
                                   "request and is not restarted (it was being removed)")
            self.replay.clear()
            self.state = "stopped"
            self.close_cage()
            self.deployment.changed()
            return
        delay = backoff(self.failures)
        self.restart_handle = asyncio.get_running_loop().call_later(delay, self._restart)
        self.deployment.changed()

    def _settle_requests(self) -> None:
        if self.isolated is not None and not self.isolated.answered:
            self.isolated.fail(502, f"the instance of deployment {self.deployment.name!r} died while running this "
                                    "request (and its predecessor did too)")
        self.isolated = None
        pending = [e for e in self.outstanding if not e.answered]
        suspect = self.outstanding[0] if self.outstanding and not self.outstanding[0].answered else None
        self.outstanding.clear()
        for exchange in pending:
            if exchange is suspect:
                if exchange.replayed:
                    exchange.fail(502, f"the instance of deployment {self.deployment.name!r} died while running "
                                       "this request")
                else:
                    exchange.replayed = True
                    self.replay.append(exchange)
            else:
                self.deployment.requeue(exchange)

    def _restart(self) -> None:
        self.restart_handle = None
        if self.state == "dead" and not self.deployment.stopping:
            self.restarts += 1
            self.start()

    def restart_now(self) -> None:
        if self.state == "dead" and self.restart_handle is not None:
            self.restart_handle.cancel()
            self.failures = 0
            self._restart()

    def drain(self) -> None:
        """Out of rotation; stopped once its requests are answered (or at once if it has none)."""
        if self.restart_handle is not None:
            self.restart_handle.cancel()
        for exchange in self.replay:
            exchange.fail(502, "the instance running this request died and was removed")
        self.replay.clear()
        if self.state in ("dead", "new", "stopped"):
            self.state = "stopped"
            self.close_cage()
            return
        self.state = "draining"
        newer = [i.generation for i in self.deployment.next if i.generation != self.generation]
        self.kill_reason = ("stopped with SIGTERM: retired, " + (f"version {newer[0][:10]} took over" if newer else
                                                                   "out of rotation (scaled in or replaced)"))
        if not self.outstanding:
            self.terminate()

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            asyncio.get_running_loop().call_later(3.0, self.kill)

    def close_cage(self) -> None:
        if self.cage is not None:
            self.cage.close()
            self.cage = None

    def _unlink_socket(self) -> None:
        for name in (self.socket_name, self.socket_name + ".init"):
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass

    def status(self) -> dict[str, Any]:
        state = self.state
        if state == "ready" and (self.hung or self.unready):
            state = "hung" if self.hung else "unready"
        if state == "dead" and self.failures >= CRASH_LOOP:
            state = "crash-loop"
        return {"index": self.index, "generation": self.generation, "pid": self.proc.pid if self.proc else None,
                "state": state, "restarts": self.restarts, "exits": self.exits, "failures": self.failures,
                "ever_ready": self.ever_ready, "last_exit": self.last_exit, "log": str(self.log.path),
                "memory_limit": self.cage.describe() if self.cage else None, "oom_kills": self.oom_kills}

