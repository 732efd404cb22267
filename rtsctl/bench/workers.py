"""Run the engine in this process, or in P forked processes whose intervals and counters are merged.

Each worker gets a share of the connections (and of -n / --rate, in proportion), numbers its templated payloads
`w, w+P, w+2P, ...` (unique across workers), and streams its per-second intervals over a pipe, so the parent keeps
one live progress line and one timeline. Ctrl-C reaches every worker (the terminal signals the process group; the
parent also forwards SIGINT), each one stops sending, and the parent still gets every partial result.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from dataclasses import dataclass, replace

from rtsctl.bench.runner import Engine, Phase, PhaseResult
from rtsctl.bench.wire import Target


@dataclass
class RunSpec:
    target: Target
    verify: bool | str
    head: bytes
    method: str
    bodies: list | None
    template: str | None
    concurrency: int
    timeout: float
    measure: Phase
    warmup: Phase | None = None
    workers: int = 1
    interval: float = 1.0


def new_loop():
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:            # pragma: no cover - uvloop is a dependency where it exists (not on Windows)
        return asyncio.new_event_loop()


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def shares(spec: RunSpec) -> list[RunSpec]:
    """One RunSpec per worker: connections split evenly; -n, --rate and --stages split in proportion to them."""
    p = spec.workers
    conns = split(spec.concurrency, p)

    def part(phase: Phase | None, w: int) -> Phase | None:
        if phase is None:
            return None
        frac = conns[w] / spec.concurrency
        total = None
        if phase.total is not None:
            total = split_by(phase.total, conns)[w]
        rate = phase.rate * frac if phase.rate is not None else None
        stages = phase.stages.scaled(frac) if phase.stages is not None else None
        return replace(phase, total=total, rate=rate, stages=stages)

    return [replace(spec, concurrency=conns[w], measure=part(spec.measure, w), warmup=part(spec.warmup, w))
            for w in range(p)]


def split_by(total: int, weights: list[int]) -> list[int]:
    """Split an integer total in proportion to weights, exactly (largest remainders)."""
    s = sum(weights)
    raw = [total * w / s for w in weights]
    out = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[:total - sum(out)]:
        out[i] += 1
    return out


def _engine(loop, spec: RunSpec, sink, worker: int, step: int) -> Engine:
    from rtsctl.bench.payload import RequestSource
    from rtsctl.bench.wire import ssl_context
    source = RequestSource(spec.head, spec.method, spec.bodies, spec.template, start=worker, step=step)
    return Engine(loop, spec.target, ssl_context(spec.target, spec.verify), source, spec.concurrency, spec.timeout,
                  sink, interval=spec.interval)


async def _phases(eng: Engine, spec: RunSpec) -> PhaseResult:
    if spec.warmup is not None:
        warm = await eng.run_phase(spec.warmup)
        if warm.interrupted:
            return PhaseResult(interrupted=True)
    return await eng.run_phase(spec.measure)


def run_here(spec: RunSpec, sink, worker: int = 0, step: int = 1) -> PhaseResult:
    """Run in this process (this thread owns the loop). SIGINT -> partial result with interrupted=True."""
    loop = new_loop()
    eng = None
    try:
        eng = _engine(loop, spec, sink, worker, step)
        try:
            loop.add_signal_handler(signal.SIGINT, eng.interrupt)
        except (RuntimeError, ValueError):     # not the main thread
            pass
        gc.collect()
        gc.freeze()             # the hot path makes no garbage cycles: skip the collector's heap walks meanwhile
        gc.disable()
        try:
            return loop.run_until_complete(_phases(eng, spec))
        finally:
            gc.enable()
            gc.unfreeze()
    finally:
        if eng is not None:
            eng.close()
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (RuntimeError, ValueError):
            pass
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


class _PipeSink:
    def __init__(self, conn):
        self.conn = conn

    def interval(self, sample):
        self.conn.send(("iv", sample))


def _worker_main(worker: int, spec: RunSpec, step: int, conn) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # until the loop installs its own handler
    try:
        result = run_here(spec, _PipeSink(conn), worker, step)
        conn.send(("done", result))
    except BaseException as exc:                         # noqa: BLE001 - report, never a silent worker death
        conn.send(("error", f"{exc.__class__.__name__}: {exc}"))
    finally:
        conn.close()


def run_workers(spec: RunSpec, agg) -> list[PhaseResult]:
    """P processes; returns their results (a worker that died yields an interrupted empty result)."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
    procs, readers = [], {}
    for w, share in enumerate(shares(spec)):
        r, s = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker_main, args=(w, share, spec.workers, s), daemon=True)
        p.start()
        s.close()
        procs.append(p)
        readers[r] = w
    interrupted = []

    def forward(signum, frame):
        interrupted.append(signum)
        for p in procs:
            if p.is_alive():
                try:
                    os.kill(p.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass

    previous = signal.signal(signal.SIGINT, forward)
    errors = []
    try:
        while readers:
            ready = wait(list(readers), timeout=1.0)
            if not ready and interrupted:
                forward(signal.SIGINT, None)          # a worker that was still starting missed the first one
            for r in ready:
                w = readers[r]
                try:
                    kind, payload = r.recv()
                except (EOFError, OSError):
                    del readers[r]
                    if agg.results[w] is None:
                        agg.finish(w, PhaseResult(interrupted=True))
                    continue
                if kind == "iv":
                    agg.interval_from(w, payload)
                elif kind == "done":
                    agg.finish(w, payload)
                else:
                    errors.append(payload)
                    agg.finish(w, PhaseResult(interrupted=True))
    finally:
        signal.signal(signal.SIGINT, previous)
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    if errors:
        from rtsctl.support.errors import RtsctlError
        raise RtsctlError(f"a bench worker failed: {errors[0]}")
    results = agg.results
    if interrupted:
        for res in results:
            res.interrupted = True
    return results
