"""`rtsctl bench merge FILE...`: combine interval logs from several runs (or machines) into one report.

Histograms add exactly (HDR counts); status codes and transport errors add up; the timeline is laid on wall-clock
seconds, so runs that overlapped (several machines loading one endpoint) stack. req/s is the total over the time
some run was loading (the union of the runs' own intervals): runs one after another do not count the gaps between
them, runs side by side are not counted twice. Each run keeps its own label (open loop at R req/s, closed loop with
N connections, a ramp) in `load.runs`; the merged load is "mixed" when the modes differ.
"""

from __future__ import annotations

import json

from rtsctl.bench import histogram as H
from rtsctl.bench.config import fraction, millis
from rtsctl.support.errors import RtsctlError


def _read(path: str):
    try:
        start, meta, intervals = H.read_log(path)
    except FileNotFoundError:
        raise RtsctlError(f"{path}: not found") from None
    except IsADirectoryError:
        raise RtsctlError(f"{path}: is a directory") from None
    except (ValueError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RtsctlError(f"{path}: not an HdrHistogram interval log ({exc})") from None
    if not meta and not intervals:
        raise RtsctlError(f"{path}: no histograms in it (was it written by --hdr-out?)")
    return start or meta.get("start_epoch", 0.0), meta, intervals


def _slot() -> dict:
    return {"ok": 0, "errors": 0, "sent": 0, "queued": 0, "len": 0.0, "hist": None}


def _add(into: dict, other: dict) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


def combine(paths: list[str]):
    """-> (result document parts) for summary.build, plus the merged interval lines."""
    runs = [(p, *_read(p)) for p in paths]
    t0 = min(start for _, start, _, _ in runs)
    hist, svc = H.new_hist(), H.new_hist()
    svc_complete = True
    totals = {"status": {}, "errors": {}, "samples": {}, "unsent": 0, "cancelled": 0, "interrupted": False}
    sent, end = 0, t0
    seconds: dict[int, dict] = {}
    lines = []
    urls, spans, labels = [], [], []
    for path, start, meta, intervals in runs:
        shift = start - t0
        for off, length, h in intervals:
            hist.add(h)
            slot = seconds.setdefault(int(round(shift + off)), _slot())
            if slot["hist"] is None:
                slot["hist"] = H.new_hist()
            slot["hist"].add(h)
            lines.append(f"{shift + off:.3f},{length:.3f},{h.get_max_value() / 1000.0:.3f},{H.encode(h)}")
        for t, length, ok, bad, n_sent, *rest in meta.get("timeline", []):
            queued = rest[0] if rest else 0
            slot = seconds.setdefault(int(round(shift + t - length)), _slot())
            slot["len"] = max(slot["len"], length)
            slot["queued"] += queued
            slot["ok"] += ok
            slot["errors"] += bad
            slot["sent"] += n_sent
        _add(totals["status"], meta.get("status", {}))
        _add(totals["errors"], meta.get("errors", {}))
        for k, v in meta.get("samples", {}).items():
            totals["samples"].setdefault(k, v)
        for key in ("unsent", "cancelled"):
            totals[key] += meta.get(key, 0)
        totals["interrupted"] = totals["interrupted"] or bool(meta.get("interrupted"))
        sent += meta.get("sent", 0)
        duration = meta.get("duration_s") or max((o + ln for o, ln, _ in intervals), default=0.0)
        end = max(end, start + duration)
        spans.append((start, start + duration))
        if meta.get("service_histogram"):
            svc.add(H.decode(meta["service_histogram"]))
        else:
            svc_complete = False
        tgt = meta.get("target", {})
        if tgt.get("url") and tgt["url"] not in urls:
            urls.append(tgt["url"])
        labels.append(run_label(path, meta, duration))
    totals["elapsed"] = busy_time(spans)
    timeline = []
    for sec in sorted(seconds):
        slot = seconds[sec]
        n = slot["ok"] + slot["errors"]
        length = slot["len"] or 1.0
        point = {"t": round(sec + length, 3), "len": length, "ok": slot["ok"], "errors": slot["errors"],
                 "sent": slot["sent"], "rps": round(n / length, 1), "queued": slot["queued"]}
        h = slot["hist"]
        if h is not None and h.get_total_count():
            point.update({"p50_ms": h.get_value_at_percentile(50) / 1000.0,
                          "p90_ms": h.get_value_at_percentile(90) / 1000.0,
                          "p99_ms": h.get_value_at_percentile(99) / 1000.0, "max_ms": h.get_max_value() / 1000.0})
        timeline.append(point)
    target = {"url": urls[0] if len(urls) == 1 else ", ".join(urls), "sources": paths}
    return target, merged_load(labels, spans), totals, hist, (svc if svc_complete and svc.get_total_count() else None), timeline, \
        sent, t0, lines


def busy_time(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of the (start, end) spans: gaps between runs are not load."""
    total, reach = 0.0, None
    for start, end in sorted(spans):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def run_label(path: str, meta: dict, duration: float) -> dict:
    """One run as it was run: its mode (from the log; a log without one is open loop if it had a rate)."""
    load = meta.get("load", {})
    mode = load.get("mode") or ("open" if load.get("rate") or "/s" in str(load.get("stages", "")) else "closed")
    label = {"source": path, "mode": mode, "connections": load.get("connections", 0),
             "workers": load.get("workers", 1), "duration_s": round(duration, 3)}
    for key in ("rate", "stages"):
        if load.get(key):
            label[key] = load[key]
    requests = sum(meta.get("status", {}).values()) + sum(meta.get("errors", {}).values())
    label["requests"] = requests
    label["rps"] = round(requests / duration, 1) if duration > 0 else 0.0
    return label


def merged_load(runs: list[dict], spans: list[tuple[float, float]]) -> dict:
    """The merged runs' load: side by side (every run overlaps every other) the loads add up; one after another,
    the largest one; a single asked rate only when it is one (all open loop, side by side or all the same)."""
    modes = {r["mode"] for r in runs}
    together = all(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])
    pick = sum if together else max
    load: dict = {"mode": modes.pop() if len(modes) == 1 else "mixed",
                  "connections": pick(r["connections"] for r in runs), "workers": pick(r["workers"] for r in runs),
                  "runs": runs}
    rates = [r.get("rate") for r in runs]
    if load["mode"] == "open" and all(rates):
        if together:
            load["rate"] = sum(rates)
        elif len(set(rates)) == 1:
            load["rate"] = rates[0]
    return load


def run_merge(paths: list[str], args) -> int:
    from rtsctl.bench.session import emit, log_meta, saying
    from rtsctl.bench.summary import build
    if not paths:
        raise RtsctlError("bench merge: give the files written by --hdr-out (two or more, or one to re-report)")
    max_error_rate = fraction(args.max_error_rate, "--max-error-rate") if args.max_error_rate is not None else None
    max_p99 = millis(args.max_p99, "--max-p99") if args.max_p99 is not None else None
    target, load, totals, hist, svc, timeline, sent, t0, lines = combine(paths)
    doc = build(target, load, totals, hist, svc, timeline, sent)
    writes = []
    if args.hdr_out:
        writes.append(saying(lambda: H.write_log(args.hdr_out, t0, lines, log_meta(doc, t0)), "the interval log",
                             args.hdr_out))
    return emit(doc, args.output, not args.no_chart, args.html_out, max_error_rate, max_p99, writes)
