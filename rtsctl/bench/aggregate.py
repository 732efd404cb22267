"""Merge what one or several engines measured into one result: per-second timeline, totals, histograms.

Engines report `(k, t_end, ok, bad, sent, latency counts, service-time counts, queued)` once per second; interval k is
final once every worker has reported it (or finished). Finished intervals feed the timeline, the totals, the live
progress line and (with --hdr-out) the interval log; their counts dicts are then dropped, so memory stays flat.
"""

from __future__ import annotations

from rtsctl.bench import histogram as H


class Aggregator:
    def __init__(self, workers: int = 1, interval: float = 1.0, keep_log: bool = False, on_interval=None):
        self.workers = workers
        self.interval_s = interval
        self.pending: dict[int, list] = {}
        self.last_k = [-1] * workers
        self.finished = [False] * workers
        self.timeline: list[dict] = []
        self.lat: dict = {}
        self.svc: dict | None = None
        self.sent = 0
        self.done_requests = 0
        self.done_errors = 0
        self.log: list[str] | None = [] if keep_log else None
        self.results: list = [None] * workers
        self.on_interval = on_interval
        self._next_k = 0

    # -- inputs -----------------------------------------------------------------------------------------------
    def interval_from(self, worker: int, sample) -> None:
        k, t_end, ok, bad, sent, lat, svc, queued = sample
        slot = self.pending.get(k)
        if slot is None:
            slot = self.pending[k] = [t_end, 0, 0, 0, {}, None, 0]
        slot[6] += queued
        slot[0] = max(slot[0], t_end)
        slot[1] += ok
        slot[2] += bad
        slot[3] += sent
        H.add_counts(slot[4], lat)
        if svc is not None:
            slot[5] = H.add_counts(slot[5] or {}, svc)
        self.last_k[worker] = max(self.last_k[worker], k)
        self._settle()

    def interval(self, sample) -> None:          # the engine's sink interface (single process)
        self.interval_from(0, sample)

    def finish(self, worker: int, result) -> None:
        self.results[worker] = result
        self.finished[worker] = True
        self._settle()

    def close(self) -> None:
        for w in range(self.workers):
            self.finished[w] = True
        self._settle()

    # -- settling ---------------------------------------------------------------------------------------------
    def _settle(self) -> None:
        while self.pending:
            k = min(self.pending)
            if not all(self.finished[w] or self.last_k[w] >= k for w in range(self.workers)):
                return
            self._finalize(k, self.pending.pop(k))

    def _finalize(self, k: int, slot) -> None:
        t_end, ok, bad, sent, lat, svc, queued = slot
        start = k * self.interval_s
        length = max(t_end - start, 1e-9)
        H.add_counts(self.lat, lat)
        if svc is not None:
            self.svc = H.add_counts(self.svc or {}, svc)
        self.sent += sent
        self.done_requests += ok + bad
        self.done_errors += bad
        point = {"t": round(t_end, 3), "len": round(length, 3), "ok": ok, "errors": bad, "sent": sent,
                 "rps": round((ok + bad) / length, 1), "queued": queued}
        point.update(H.quick_percentiles(lat))
        self.timeline.append(point)
        if self.log is not None and (lat or ok or bad):
            self.log.append(H.log_line(start, length, lat))
        if self.on_interval is not None:
            self.on_interval(point, self)
