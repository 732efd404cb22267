"""The engine: a lean HTTP/1.1 keep-alive client on raw asyncio Protocols.

Why not aiohttp: a stock ClientSession spends ~90 us of CPU per request (measured, see
shared/reference/load-tester-measurements.md); this engine pre-encodes request bytes, parses only the status line and
the framing headers (Content-Length / chunked / Connection: close), drives each connection from its own
data_received callback (no coroutine, no future per request) and records latency into a dict keyed by the
HdrHistogram bucket's lowest value (~0.2 us), so a run spends its CPU on syscalls, not on bookkeeping.

Closed loop: each connection sends its next request as soon as the previous answer is complete.
Open loop (`rate`): a pacer schedules requests at t0 + i/rate; a request waits for an idle connection if none is
free, and its latency is measured from that *intended* send time (coordinated-omission corrected); the service time
(from the actual send) is recorded beside it.
Ramps (`stages`): open loop schedules the i-th request when the ramp's integral reaches i; closed loop lets only the
ramp's current number of connections have a request in flight (the rest wait idle, connected).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from rtsctl.bench.histogram import HIGHEST_US
from rtsctl.bench.pacer import Waker
from rtsctl.bench.stages import Stages
from rtsctl.bench.wire import error_kind

_now = time.perf_counter
BIG = 1 << 62
UNTIL_CLOSE = -2            # response framed by connection close
CHUNKED = -3
_WAIT_HEAD = -1
RAMP_TICK = 0.02            # closed-loop ramp: how often the allowed number of busy connections is recomputed


@dataclass
class Phase:
    """What to do in one phase (warm-up or measurement)."""
    duration: float | None = None        # seconds; None = until the counts are done
    total: int | None = None             # total requests (closed loop: shared; open loop: scheduled)
    per_conn: int | None = None          # closed loop: exactly this many per connection (-t/-i)
    rate: float | None = None            # open loop: requests per second
    stages: Stages | None = None         # a ramp of rates (open loop) or of connections (closed loop)
    record: bool = True

    @property
    def open_loop(self) -> bool:
        return self.rate is not None or (self.stages is not None and self.stages.open_loop)


@dataclass
class PhaseResult:
    status: dict = field(default_factory=dict)       # int status -> count
    errors: dict = field(default_factory=dict)       # error kind -> count
    samples: dict = field(default_factory=dict)      # int status -> first body (non-2xx)
    elapsed: float = 0.0
    sent: int = 0
    unsent: int = 0          # open loop: due but never sent before the deadline (the server fell behind)
    cancelled: int = 0       # in flight when interrupted (not counted)
    #: latency bucket counts of throttled answers (429): kept out of the percentiles, reported apart
    throttled: dict = field(default_factory=dict)
    interrupted: bool = False
    connected: int = 0       # connections alive at the start


class Conn(asyncio.Protocol):
    __slots__ = ("eng", "tr", "t0", "ts", "busy", "hbuf", "need", "got", "st", "close_after", "quota",
                 "cbuf", "csize", "failures")

    def __init__(self, eng: "Engine", quota: int = BIG):
        self.eng = eng
        self.tr = None
        self.busy = False
        self.hbuf = b""
        self.need = _WAIT_HEAD
        self.got = 0
        self.st = b""
        self.close_after = False
        self.quota = quota
        self.cbuf = None
        self.csize = 0
        self.failures = 0
        self.t0 = self.ts = 0.0

    # -- asyncio callbacks ------------------------------------------------------------------------------------
    def connection_made(self, transport):
        self.tr = transport

    def connection_lost(self, exc):
        tr, self.tr = self.tr, None
        eng = self.eng
        if self.busy:
            if self.need == UNTIL_CLOSE:
                self._complete()
            else:
                eng.fail(self, error_kind(exc) if exc else "connection closed before the response ended")
        if tr is not None:
            eng.lost(self)

    def data_received(self, data):
        need = self.need
        if need == _WAIT_HEAD:
            if self.hbuf:
                data = self.hbuf + data
                self.hbuf = b""
            he = data.find(b"\r\n\r\n")
            if he < 0:
                if len(data) > 65536 or not self.busy:
                    self._protocol_error("response headers too large" if self.busy else "unsolicited data")
                else:
                    self.hbuf = data
                return
            if data[:5] != b"HTTP/":
                return self._protocol_error("not an HTTP response")
            st = self.st = data[9:12]
            if st[0] != 50 and st not in self.eng.samples:
                self.eng.samples[st] = data[he + 4:he + 260]
            # fast path: the two spellings servers use, searched in the raw header block (no lowercased copy)
            i = data.find(b"ontent-Length:", 0, he)
            if i < 0:
                i = data.find(b"ontent-length:", 0, he)
            if i > 1 and data[i - 2] == 10:
                try:
                    need = self.need = int(data[i + 14:data.find(b"\r", i + 14, he + 1)])
                except ValueError:
                    return self._protocol_error("bad Content-Length")
                self.got = len(data) - he - 4
                close = data.find(b"lose", 0, he) > 0 and b"\r\nconnection: close" in data[:he].lower()
            else:
                head = data[:he].lower()
                close = b"\r\nconnection: close" in head
                i = head.find(b"\r\ncontent-length:")
                if i >= 0:
                    j = head.find(b"\r\n", i + 17)
                    try:
                        need = self.need = int(head[i + 17:j] if j > 0 else head[i + 17:])
                    except ValueError:
                        return self._protocol_error("bad Content-Length")
                    self.got = len(data) - he - 4
                elif b"\r\ntransfer-encoding:" in head and b"chunked" in head:
                    self.need = CHUNKED
                    self.cbuf = bytearray(data[he + 4:])
                    self.csize = 0
                    self.close_after = close
                    return self._chunks()
                elif st[0] == 49 or st == b"204" or st == b"304":
                    need = self.need = 0
                    self.got = 0
                else:
                    self.need = UNTIL_CLOSE
                    return
            self.close_after = close or data[5:8] == b"1.0"
            if self.got >= need:
                self._complete()
        elif need >= 0:
            self.got += len(data)
            if self.got >= need:
                self._complete()
        elif need == CHUNKED:
            self.cbuf += data
            self._chunks()

    def eof_received(self):
        return False

    # -- framing ----------------------------------------------------------------------------------------------
    def _chunks(self):
        buf = self.cbuf
        pos = 0
        while True:
            if self.csize:
                take = min(len(buf) - pos, self.csize)
                pos += take
                self.csize -= take
                if self.csize:
                    break
            j = buf.find(b"\r\n", pos)
            if j < 0:
                break
            try:
                size = int(bytes(buf[pos:j]).split(b";")[0], 16)
            except ValueError:
                return self._protocol_error("bad chunk size")
            if size == 0:
                end = buf.find(b"\r\n\r\n", j)
                if end < 0:
                    break
                self.cbuf = None
                return self._complete()
            pos = j + 2
            self.csize = size + 2
        if pos:
            del buf[:pos]

    def _protocol_error(self, why: str):
        if self.busy:
            self.eng.fail(self, f"protocol: {why}")
        if self.tr is not None:
            self.tr.abort()

    # -- one response done ------------------------------------------------------------------------------------
    def _complete(self):
        t = _now()
        eng = self.eng
        self.busy = False
        self.need = _WAIT_HEAD
        eng.inflight -= 1
        if eng.recording:
            # histogram.bucket() inlined (twice: latency, service time): this runs once per response, and a
            # call would cost more than the quantization itself
            v = int((t - self.t0) * 1e6)
            if v > HIGHEST_US:
                v = HIGHEST_US
            b = (v | 2047).bit_length() - 11
            v = v >> b << b
            # a 429 is the service refusing, in microseconds: its latency is not the service's (reported apart)
            lat = eng.lat if self.st != b"429" else eng.throttled
            try:
                lat[v] += 1
            except KeyError:
                lat[v] = 1
            if eng.svc is not None and lat is eng.lat:
                v = int((t - self.ts) * 1e6)
                if v > HIGHEST_US:
                    v = HIGHEST_US
                b = (v | 2047).bit_length() - 11
                v = v >> b << b
                svc = eng.svc
                try:
                    svc[v] += 1
                except KeyError:
                    svc[v] = 1
            st = self.st
            sc = eng.status
            try:
                sc[st] += 1
            except KeyError:
                sc[st] = 1
            if st[0] == 50:
                eng.i_ok += 1
            else:
                eng.i_bad += 1
        if self.close_after:
            self.close_after = False
            if self.tr is not None:
                self.tr.close()
            return
        eng.after(self)

    def send(self, t_intended: float):
        eng = self.eng
        self.busy = True
        eng.inflight += 1
        eng.i_sent += 1
        self.ts = _now()
        self.t0 = t_intended or self.ts
        self.tr.write(eng.static_req or eng.next_req())


class Engine:
    """Drives `concurrency` connections to one target through phases; reports per-second intervals to `sink`."""

    def __init__(self, loop, target, ssl_ctx, requests, concurrency: int, timeout: float, sink,
                 connect_timeout: float | None = None, interval: float = 1.0):
        self.loop = loop
        self.target = target
        self.ssl_ctx = ssl_ctx
        self.requests = requests            # payload.RequestSource: .static or .next()
        self.static_req = requests.static
        self.next_req = requests.next
        self.concurrency = concurrency
        self.timeout = timeout
        self.connect_timeout = connect_timeout or min(timeout, 10.0)
        self.sink = sink
        self.interval = interval
        self.conns: list[Conn] = []
        self.idle: list[Conn] = []
        self.pending: deque = deque()
        self.inflight = 0
        self.connecting = 0
        self.sending = False
        self.recording = False
        self.after = self._closed_next
        self.done: asyncio.Future | None = None
        self.waker = None
        self.stages: Stages | None = None
        self.limit = BIG                    # closed-loop ramp: connections allowed a request in flight now
        self._reset()

    # -- stats ------------------------------------------------------------------------------------------------
    def _reset(self):
        self.lat: dict = {}
        self.throttled: dict = {}
        self.svc: dict | None = None
        self.status: dict = {}
        self.errors: dict = {}
        self.samples: dict = {}
        self.i_ok = self.i_bad = self.i_sent = 0
        self.remaining = BIG
        self.unsent = 0

    def fail(self, conn: Conn, kind: str, count_sent: bool = True):
        """A request failed without an HTTP answer (or a send slot was consumed by a failed connect)."""
        if conn.busy:
            conn.busy = False
            conn.need = _WAIT_HEAD
            self.inflight -= 1
        if self.recording:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            self.i_bad += 1

    def flush_interval(self, k: int, t_rel: float):
        lat, self.lat = self.lat, {}
        svc = None
        if self.svc is not None:
            svc, self.svc = self.svc, {}
        sample = (k, t_rel, self.i_ok, self.i_bad, self.i_sent, lat, svc, len(self.pending))
        self.i_ok = self.i_bad = self.i_sent = 0
        self.sink.interval(sample)

    # -- connections ------------------------------------------------------------------------------------------
    def _has_work(self) -> bool:
        return self.sending or bool(self.pending)

    async def _open(self, conn: Conn, delay: float = 0.0) -> bool:
        self.connecting += 1
        try:
            if delay:
                await asyncio.sleep(delay)
            t = self.target
            await asyncio.wait_for(
                self.loop.create_connection(lambda: conn, t.host, t.port, ssl=self.ssl_ctx,
                                            server_hostname=t.host if self.ssl_ctx else None),
                self.connect_timeout)
            conn.failures = 0
            return True
        except asyncio.CancelledError:
            raise
        except BaseException as exc:           # noqa: BLE001 - every failure is named and counted
            conn.failures += 1
            kind = error_kind(exc)
        finally:
            self.connecting -= 1
        self._connect_failed(conn, kind)
        return False

    def _connect_failed(self, conn: Conn, kind: str):
        """A failed connect consumes one request slot (so counted runs end) and is retried with backoff."""
        if self.pending:
            self.pending.popleft()
            self.fail(conn, kind)
        elif self.sending and conn.quota:
            conn.quota -= 1
            self.remaining -= 1
            if self.remaining <= 0:
                self.sending = False
            self.i_sent += 1
            self.fail(conn, kind)
        if self._has_work() and (conn.quota or self.pending):
            self._reopen(conn, min(0.05 * 2 ** min(conn.failures, 5), 1.0))
        else:
            self._check_done()

    def _reopen(self, conn: Conn, delay: float = 0.0):
        fresh = Conn(self, conn.quota)
        fresh.failures = conn.failures
        try:
            self.conns[self.conns.index(conn)] = fresh
        except ValueError:
            return
        self.loop.create_task(self._open_then_go(fresh, delay))

    async def _open_then_go(self, conn: Conn, delay: float):
        if await self._open(conn, delay):
            self.after(conn)

    def lost(self, conn: Conn):
        """The transport closed (server close, timeout abort, error): replace the connection if work remains."""
        if conn in self.idle:
            self.idle.remove(conn)
        if self.done is not None and not self.done.done() and self._has_work() and (conn.quota or self.pending):
            self._reopen(conn)
        else:
            if conn in self.conns:
                self.conns[self.conns.index(conn)] = Conn(self, conn.quota)     # dead slot, reopened next phase
            self._check_done()

    # -- scheduling -------------------------------------------------------------------------------------------
    def _closed_next(self, conn: Conn):
        if self.sending and conn.quota and self.inflight < self.limit:
            conn.quota -= 1
            self.remaining -= 1
            if self.remaining <= 0:
                self.sending = False
            conn.send(0.0)
        else:
            self.idle.append(conn)
            if not self.inflight:
                self._check_done()

    def _open_next(self, conn: Conn):
        if self.pending:
            conn.send(self.pending.popleft())
        else:
            self.idle.append(conn)
            if not self.inflight:
                self._check_done()

    def _pace(self):
        """Send (or queue, when no connection is idle) every request due by now; wake up when the next one is."""
        if not self.sending:
            return
        due = self._due(_now() - self.t_start)
        if due > self.to_schedule:
            due = self.to_schedule
        idle, pending, when = self.idle, self.pending, self._when
        while self.scheduled < due:
            t_int = when(self.scheduled)
            self.scheduled += 1
            if idle:
                idle.pop().send(t_int)
            else:
                pending.append(t_int)
        if self.scheduled >= self.to_schedule:
            self.sending = False
            self._check_done()
            return
        self.waker.at(when(self.scheduled))

    def _schedule(self, phase: Phase):
        """Open loop: `_due(elapsed)` = requests due by then, `_when(i)` = intended send time of request i (from 0).
        A constant rate sends request i at i/rate; a ramp when its integral reaches i + 1."""
        t0, st = self.t_start, phase.stages
        if st is None:
            rate = phase.rate
            self._due = lambda elapsed: int(elapsed * rate) + 1
            self._when = lambda i: t0 + i / rate
        else:
            self._due = lambda elapsed: int(st.count(elapsed) + 1e-9)
            self._when = lambda i: t0 + st.time_of(i + 1)

    def _ramp_connections(self):
        """Closed-loop ramp: follow the ramp's connection count, waking idle connections as it grows."""
        if self.done is None or self.done.done():
            return
        self.limit = int(self.stages.value(_now() - self.t_start) + 0.5)
        idle = self.idle
        while idle and self.sending and self.inflight < self.limit:
            self._closed_next(idle.pop())
        self._ramp_handle = self.loop.call_later(RAMP_TICK, self._ramp_connections)

    def _check_done(self):
        if (self.done is not None and not self.done.done() and not self.sending and not self.pending
                and self.inflight <= 0 and self.connecting <= 0):
            self.done.set_result(None)

    def _tick(self):
        if self.done is None or self.done.done():
            return
        now = _now()
        limit = now - self.timeout
        for conn in list(self.conns):
            if conn.busy and conn.ts < limit and conn.tr is not None:
                self.fail(conn, "timeout")
                conn.tr.abort()
        while now >= self.t_start + (self.k + 1) * self.interval - 0.001:
            self.k += 1
            if self.recording:
                self.flush_interval(self.k - 1, self.k * self.interval)
        boundary = self.t_start + (self.k + 1) * self.interval
        self._tick_handle = self.loop.call_later(max(min(boundary - _now(), 0.25), 0.0), self._tick)

    def _deadline(self):
        self.sending = False
        if self.pending:
            self.unsent += len(self.pending)
            self.pending.clear()
        self._check_done()

    def interrupt(self):
        """Ctrl-C: stop sending, abandon what is in flight (counted as cancelled), end the phase now."""
        self.interrupted = True
        self.sending = False
        self.pending.clear()
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    # -- a phase ----------------------------------------------------------------------------------------------
    async def run_phase(self, phase: Phase) -> PhaseResult:
        loop = self.loop
        self._reset()
        self.interrupted = False
        self.recording = phase.record
        open_loop = phase.open_loop
        self.stages = phase.stages
        self.limit = BIG
        self._ramp_handle = None
        self.after = self._open_next if open_loop else self._closed_next
        self.svc = {} if open_loop and phase.record else None
        self.done = loop.create_future()
        self.sending = True
        if phase.total is not None and not open_loop:
            self.remaining = phase.total
        if phase.total is not None and phase.total <= 0:      # a worker whose share of -n is nothing
            self.sending = False
        if not self.conns:
            self.conns = [Conn(self) for _ in range(self.concurrency)]
        per = phase.per_conn
        for conn in self.conns:
            conn.quota = per if per is not None else BIG
        self.idle = []
        # connect every dead connection first (the clock starts once they are up)
        dead = [c for c in self.conns if c.tr is None]
        if dead:
            self.connecting += 1           # hold the phase open while connecting
            oks = await asyncio.gather(*(self._open(c) for c in dead))
            self.connecting -= 1
            for conn, ok in zip(dead, oks):
                if ok:
                    self.idle.append(conn)
        else:
            self.idle = list(self.conns)
        result = PhaseResult(connected=sum(1 for c in self.conns if c.tr is not None))
        if result.connected == 0 or self.interrupted:
            self.sending = False
        self.t_start = _now()
        self.k = 0
        deadline = None
        to_schedule = phase.total
        if phase.duration is not None and self.sending:
            grace = 0.0
            if open_loop and phase.total is None:        # the pacer stops at exactly rate x duration requests
                to_schedule = (int(phase.stages.count(phase.duration) + 1e-9) if phase.stages is not None
                               else int(round(phase.rate * phase.duration)))
                grace = 0.005                            # (timers are ms-coarse: never cut the last ones)
            deadline = loop.call_at(loop.time() + phase.duration + grace, self._deadline)
        self._tick_handle = loop.call_later(min(0.25, self.interval), self._tick)
        if self.sending:
            if open_loop:
                self.waker = Waker(loop, self._pace)
                self._schedule(phase)
                self.scheduled = 0
                self.to_schedule = to_schedule if to_schedule is not None else BIG
                self._pace()
            else:
                if phase.stages is not None:
                    self.limit = int(phase.stages.value(0.0) + 0.5)
                    self._ramp_handle = loop.call_later(RAMP_TICK, self._ramp_connections)
                starters, self.idle = self.idle, []
                for conn in starters:
                    self._closed_next(conn)
        self._check_done()
        try:
            await self.done
        finally:
            if self.waker is not None:
                self.waker.close()
                self.waker = None
            if deadline is not None:
                deadline.cancel()
            if self._ramp_handle is not None:
                self._ramp_handle.cancel()
            self._tick_handle.cancel()
            self.limit = BIG
        result.elapsed = _now() - self.t_start
        result.interrupted = self.interrupted
        if self.interrupted:
            result.cancelled = self.inflight
            for conn in self.conns:
                if conn.busy and conn.tr is not None:
                    conn.busy = False
                    conn.tr.abort()
            self.inflight = 0
        if phase.record:
            self.flush_interval(self.k, result.elapsed)
        result.status = {int(k): v for k, v in self.status.items()}
        result.errors = dict(self.errors)
        result.samples = {int(k): v.decode("utf-8", "replace") for k, v in self.samples.items()}
        result.unsent = self.unsent
        result.throttled = dict(self.throttled)
        self.recording = False
        return result

    def close(self):
        for conn in self.conns:
            if conn.tr is not None:
                conn.tr.abort()
