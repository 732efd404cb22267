"""Locust's final stats -> rtsctl's result document (rtsctl.bench.summary.build), so `--engine locust` prints the
same text, JSON and HTML reports as the native engine and meets the same thresholds and exit codes.

Input: the file Locust writes with `--json-file NAME` (NAME.json: `RequestStats.serialize_stats()`, one entry per
request name). Chosen over the `--csv` files because it carries Locust's whole response-time histogram
(`response_times`: {bucket ms: count}) and per-second request and failure counts, so every percentile, the HTML
percentile plot and the throughput timeline come from what Locust measured; the CSVs hold only eleven
percentiles. Any Locust >= 2.x run (a local master, or Azure Load Testing's engines running the same script) can
write it. Azure Load Testing itself hands back per-request results in the Apache JMeter CSV log format:
entries_from_jtl() turns those into the same entries (exact whole milliseconds rather than Locust's buckets).

The locustfile (script.py) names each request by its outcome (`HTTP 200`, `HTTP 429`, `transport: TimeoutError`),
so the entries are the status codes and transport errors. How the figures differ from the native engine's:
- Locust rounds each response time to a bucket before counting it (whole milliseconds below 100 ms, then two
  significant digits: 147 ms counts as 150), so a percentile is one of those buckets. rtsctl's native engine keeps
  an HDR histogram of microseconds with three significant digits. Locust's figures are coarser, never finer.
- Latency is measured from the actual send (Locust has no open loop; --rate is closed-loop pacing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rtsctl.bench import histogram as H
from rtsctl.bench.summary import build
from rtsctl.support.errors import RtsctlError

MAX_STATS_BYTES = 32 << 20
MAX_ENTRIES = 10_000
BUCKETS_NOTE = ("percentiles from Locust's response-time buckets (whole ms below 100 ms, 2 significant digits "
                "above: 147 ms counts as 150 ms), coarser than the native engine's HDR histogram "
                "(microseconds, 3 significant digits)")
PACING_NOTE = ("--rate is closed-loop pacing in Locust (constant_throughput per user): a slow server lowers the "
               "rate instead of queueing requests, and latency is measured from the actual send")
#: Locust's transport error class names -> the native engine's error kinds (rtsctl.bench.wire.error_kind), so the
#: report's hints (`is the endpoint running?`) read the same
_KINDS = {"ConnectionRefusedError": "connect: connection refused", "ConnectionResetError": "connection reset by peer",
          "TimeoutError": "timeout", "timeout": "timeout", "ConnectionTimeout": "connect: timeout",
          "SSLCertVerificationError": "tls: certificate verify failed", "SSLError": "tls: ssl error",
          "gaierror": "dns: name not resolved", "BrokenPipeError": "connection closed before the response ended"}


def read_stats(path: Path) -> list[dict[str, Any]]:
    """Locust's `--json-file` output, bounded and checked for the fields used here."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_STATS_BYTES + 1)
    except FileNotFoundError:
        raise RtsctlError(f"Locust wrote no results ({path} is missing): see its log above") from None
    except OSError as exc:
        raise RtsctlError(f"cannot read Locust's results {path}: {exc.strerror}") from None
    if len(raw) > MAX_STATS_BYTES:
        raise RtsctlError(f"Locust's results {path} are larger than {MAX_STATS_BYTES >> 20} MiB")
    try:
        entries = json.loads(raw)
    except ValueError:
        raise RtsctlError(f"Locust's results {path} are not JSON") from None
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES or not all(_entry(e) for e in entries):
        raise RtsctlError(f"Locust's results {path} are not a list of Locust stats entries")
    return entries


def _entry(e: Any) -> bool:
    return (isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("num_requests"), int)
            and isinstance(e.get("num_failures"), int) and isinstance(e.get("response_times"), dict))


def outcome(name: str) -> tuple[int | None, str | None]:
    """An entry's name -> (status code, None) or (None, transport error kind)."""
    if name.startswith("HTTP "):
        try:
            return int(name[5:]), None
        except ValueError:
            pass
    if name.startswith("transport: "):
        cls = name[len("transport: "):]
        return None, _KINDS.get(cls, f"locust: {cls}"[:80])
    return None, f"locust: {name}"[:80]


def _counts(response_times: dict) -> dict[int, int]:
    """Locust's {bucket ms (a string key in JSON): count} as the native engine's {microseconds: count}."""
    out: dict[int, int] = {}
    for ms, n in response_times.items():
        us = H.bucket(max(0, round(float(ms) * 1000)))
        out[us] = out.get(us, 0) + int(n)
    return out


def totals_of(entries: list[dict[str, Any]], interrupted: bool = False) -> tuple[dict, dict, int]:
    """-> (totals as summary.merge_results makes them, latency counts (429s apart, as the native engine keeps
    them), requests)."""
    totals: dict[str, Any] = {"status": {}, "errors": {}, "samples": {}, "elapsed": 0.0, "unsent": 0,
                              "cancelled": 0, "interrupted": interrupted, "connected": 0, "throttled": {}}
    lat: dict[int, int] = {}
    starts, ends, requests = [], [], 0
    for e in entries:
        status, kind = outcome(e["name"])
        n = e["num_requests"]
        requests += n
        if status is not None:
            totals["status"][status] = totals["status"].get(status, 0) + n
        else:
            totals["errors"][kind] = totals["errors"].get(kind, 0) + n
        if status is not None:      # as the native engine: latency of HTTP answers, 429s apart, no transport error
            H.add_counts(totals["throttled"] if status == 429 else lat, _counts(e["response_times"]))
        if isinstance(e.get("start_time"), (int, float)):
            starts.append(float(e["start_time"]))
        if isinstance(e.get("last_request_timestamp"), (int, float)):
            ends.append(float(e["last_request_timestamp"]))
    if starts and ends:
        totals["elapsed"] = max(0.0, max(ends) - min(starts))
    totals["connected"] = 1 if totals["status"] else 0
    return totals, lat, requests


def timeline_of(entries: list[dict[str, Any]]) -> list[dict]:
    """One point per wall-clock second from Locust's per-second request and failure counts (Locust keeps no
    per-second latency: the points carry none, and the report draws throughput only)."""
    per_sec: dict[int, list[int]] = {}
    starts = [float(e["start_time"]) for e in entries if isinstance(e.get("start_time"), (int, float))]
    for e in entries:
        for key, field in (("num_reqs_per_sec", 0), ("num_fail_per_sec", 1)):
            for sec, n in (e.get(key) or {}).items():
                per_sec.setdefault(int(float(sec)), [0, 0])[field] += int(n)
    if not per_sec:
        return []
    t0 = min(starts) if starts else float(min(per_sec))
    points = []
    for sec in sorted(per_sec):
        total, failed = per_sec[sec]
        begin, end = max(float(sec), t0), float(sec + 1)
        length = max(end - begin, 1e-9)
        points.append({"t": round(end - t0, 3), "len": round(length, 3), "ok": total - failed, "errors": failed,
                       "sent": total, "rps": round(total / length, 1), "queued": 0})
    return points


def to_doc(entries: list[dict[str, Any]], target: dict, load: dict, interrupted: bool = False,
           locust: dict | None = None, figures: str = BUCKETS_NOTE) -> dict:
    """rtsctl's result document for what Locust measured; `load` says the run was Locust's (load["engine"]) and
    how its figures differ (load["locust"]["notes"], starting with `figures`), which the text and HTML reports
    print."""
    totals, lat, requests = totals_of(entries, interrupted)
    notes = [figures] + ([PACING_NOTE] if load.get("rate") or load.get("mode") == "open" else [])
    load = {**load, "engine": "locust", "locust": {**(locust or {}), "notes": notes}}
    if load.get("mode") == "open":      # Locust paces a closed loop: say what ran, not what was asked
        load["mode"] = "closed"
    doc = build(target, load, totals, H.to_hist(lat), None, timeline_of(entries), requests)
    exact(doc["latency_ms"], [e for e in entries if outcome(e["name"])[0] not in (None, 429)])
    return doc


def percentile(buckets: dict[float, int], count: int, fraction: float) -> float:
    """Locust's own percentile of its buckets (locust.stats.calculate_response_time_percentile), so the report
    shows the figures Locust itself prints: the bucket below which `fraction` of the requests finished."""
    wanted = int(count * fraction)
    seen = 0
    for ms in sorted(buckets, reverse=True):
        seen += buckets[ms]
        if count - seen <= wanted:
            return ms
    return 0.0


def exact(latency: dict, entries: list[dict[str, Any]]) -> None:
    """Percentiles as Locust computes them, and the exact min, max and mean it keeps beside its buckets."""
    n = sum(e["num_requests"] - int(e.get("num_none_requests") or 0) for e in entries)
    if not latency.get("count") or not n:
        return
    buckets: dict[float, int] = {}
    for e in entries:
        for ms, k in e["response_times"].items():
            buckets[float(ms)] = buckets.get(float(ms), 0) + int(k)
    count = sum(buckets.values())
    lows = [e["min_response_time"] for e in entries if isinstance(e.get("min_response_time"), (int, float))]
    highs = [e["max_response_time"] for e in entries if isinstance(e.get("max_response_time"), (int, float))]
    low, high = (min(lows), max(highs)) if lows and highs else (0.0, float("inf"))
    for p in H.PERCENTILES:     # a bucket may lie past the exact extremes (119.4 ms counts as 120): keep within
        latency[f"p{p:g}_ms"] = round(min(max(percentile(buckets, count, p / 100.0), low), high), 3)
    if lows and highs:
        latency["min_ms"], latency["max_ms"] = round(low, 3), round(high, 3)
    total = sum(float(e.get("total_response_time") or 0.0) for e in entries)
    latency["mean_ms"] = round(total / n, 3)


JTL_NOTE = ("percentiles from Azure Load Testing's per-request results (Apache JMeter CSV format: whole "
            "milliseconds), coarser than the native engine's HDR histogram (microseconds)")
MAX_JTL_BYTES = 1 << 30


def entries_from_jtl(paths: list[Path]) -> list[dict[str, Any]]:
    """Per-request results in the Apache JMeter CSV log format (what Azure Load Testing gives back, one file per
    engine: https://learn.microsoft.com/azure/load-testing/how-to-export-test-results; columns timeStamp (epoch
    ms), elapsed (ms), responseCode, success, ...) as Locust-style stats entries, one per outcome, so to_doc
    renders them (with figures=JTL_NOTE). Read row by row: memory follows the distinct latencies, not the rows."""
    import csv

    entries: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            if path.stat().st_size > MAX_JTL_BYTES:
                raise RtsctlError(f"results file {path} is larger than {MAX_JTL_BYTES >> 30} GiB")
            with open(path, newline="", encoding="utf-8", errors="replace") as handle:
                for n, row in enumerate(csv.DictReader(handle), 2):
                    _add_row(entries, row, path, n)
        except OSError as exc:
            raise RtsctlError(f"cannot read results file {path}: {exc.strerror}") from None
        except csv.Error as exc:
            raise RtsctlError(f"results file {path} is not CSV: {exc}") from None
    return list(entries.values())


def _add_row(entries: dict[str, dict[str, Any]], row: dict, path: Path, line: int) -> None:
    try:
        started_ms, elapsed = int(row["timeStamp"]), float(row["elapsed"])
    except (KeyError, TypeError, ValueError):
        raise RtsctlError(f"results file {path}, line {line}: no timeStamp/elapsed (not a JMeter CSV log)") from None
    code = (row.get("responseCode") or "").strip()
    name = f"HTTP {int(code)}" if code.isdigit() and 100 <= int(code) <= 599 else \
        f"transport: {(row.get('responseMessage') or code or 'no answer').strip()[:60]}"
    e = entries.get(name)
    if e is None:
        if len(entries) >= MAX_ENTRIES:
            raise RtsctlError(f"results file {path}: more than {MAX_ENTRIES} distinct outcomes")
        e = entries[name] = {"name": name, "method": "", "num_requests": 0, "num_failures": 0,
                             "num_none_requests": 0, "response_times": {}, "total_response_time": 0.0,
                             "min_response_time": None, "max_response_time": 0.0, "start_time": None,
                             "last_request_timestamp": None, "num_reqs_per_sec": {}, "num_fail_per_sec": {}}
    failed = (row.get("success") or "").strip().lower() != "true"
    start, sec = started_ms / 1000.0, str(started_ms // 1000)
    ms = round(elapsed)
    e["num_requests"] += 1
    e["num_failures"] += failed
    e["response_times"][ms] = e["response_times"].get(ms, 0) + 1
    e["total_response_time"] += elapsed
    e["min_response_time"] = elapsed if e["min_response_time"] is None else min(e["min_response_time"], elapsed)
    e["max_response_time"] = max(e["max_response_time"], elapsed)
    e["start_time"] = start if e["start_time"] is None else min(e["start_time"], start)
    end = start + elapsed / 1000.0
    e["last_request_timestamp"] = end if e["last_request_timestamp"] is None else max(e["last_request_timestamp"], end)
    e["num_reqs_per_sec"][sec] = e["num_reqs_per_sec"].get(sec, 0) + 1
    if failed:
        e["num_fail_per_sec"][sec] = e["num_fail_per_sec"].get(sec, 0) + 1
