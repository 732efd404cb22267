"""The result document of a run (or of merged runs): counts, rates, latency, timeline, diagnostics, verdict.

The same dict feeds the text report, `-o json`, the HTML report and the `#rtsctl` line of an interval log.
"""

from __future__ import annotations

from rtsctl.bench import histogram as H

STATUS_TEXT = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
               408: "Request Timeout", 413: "Payload Too Large", 424: "Failed Dependency",
               429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
               503: "Service Unavailable", 504: "Gateway Timeout"}


def merge_results(results) -> dict:
    """Add up the workers' PhaseResults."""
    out = {"status": {}, "errors": {}, "samples": {}, "elapsed": 0.0, "unsent": 0, "cancelled": 0,
           "interrupted": False, "connected": 0, "throttled": {}}
    for r in results:
        if r is None:
            continue
        for k, v in r.status.items():
            out["status"][k] = out["status"].get(k, 0) + v
        for k, v in r.errors.items():
            out["errors"][k] = out["errors"].get(k, 0) + v
        for k, v in r.samples.items():
            out["samples"].setdefault(k, v)
        out["elapsed"] = max(out["elapsed"], r.elapsed)
        out["unsent"] += r.unsent
        out["cancelled"] += r.cancelled
        out["interrupted"] = out["interrupted"] or r.interrupted
        out["connected"] += r.connected
        H.add_counts(out["throttled"], getattr(r, "throttled", None) or {})
    return out


def build(target: dict, load: dict, totals: dict, hist, svc_hist, timeline: list, sent: int) -> dict:
    status = {int(k): v for k, v in totals["status"].items()}
    errors = dict(totals["errors"])
    answered = sum(status.values())
    failed_transport = sum(errors.values())
    requests = answered + failed_transport
    ok = sum(v for k, v in status.items() if 200 <= k < 300)
    bad = requests - ok
    elapsed = totals["elapsed"]
    doc = {
        "target": target,
        "load": load,
        "requests": requests,
        "ok": ok,
        "errors": {"total": bad, "rate": round(bad / requests, 6) if requests else 0.0,
                   "by_status": {str(k): v for k, v in sorted(status.items()) if not 200 <= k < 300},
                   "by_kind": dict(sorted(errors.items(), key=lambda kv: -kv[1]))},
        "status": {str(k): v for k, v in sorted(status.items())},
        "samples": {str(k): v for k, v in sorted(totals.get("samples", {}).items())},
        "duration_s": round(elapsed, 3),
        "rps": round(requests / elapsed, 1) if elapsed > 0 else 0.0,
        "sent": sent,
        "unsent": totals.get("unsent", 0),
        "cancelled": totals.get("cancelled", 0),
        "interrupted": bool(totals.get("interrupted")),
        "latency_ms": H.summarize(hist),
        "timeline": timeline,
        "histogram": H.encode(hist),
    }
    if totals.get("throttled"):  # 429s answer at once: in the percentiles they would hide the service's latency
        doc["throttled"] = {"count": status.get(429, 0), "latency_ms": H.summarize(H.to_hist(totals["throttled"]))}
    if svc_hist is not None:
        doc["service_time_ms"] = H.summarize(svc_hist)
        doc["service_histogram"] = H.encode(svc_hist)
    if load.get("rate"):
        doc["achieved_rate"] = round(sent / elapsed, 1) if elapsed > 0 else 0.0
    if load.get("rate") or load.get("mode") == "open":      # a rate ramp falls behind the same way
        doc["falling_behind"] = falling_behind(doc)
    doc["messages"] = diagnose(doc)
    return doc


def falling_behind(doc: dict) -> dict | None:
    """Open loop: did the server fall behind the asked rate? Requests left unsent at the end, or latency that grew
    while a backlog built up (requests due but waiting for a free connection at the end of a second)."""
    full = [p for p in doc["timeline"] if p.get("len", 1.0) >= 0.5 and "p50_ms" in p]
    first = full[0]["p50_ms"] if full else None
    last = full[-1]["p50_ms"] if full else None
    rate = doc["load"].get("rate") or 0
    grew = (len(full) >= 2 and last > 4 * first and last - first >= 1.0
            and full[-1].get("queued", 0) >= max(1, rate * 0.02))
    if not (doc["unsent"] or grew):
        return None
    return {"behind": True, "first_p50_ms": first, "last_p50_ms": last, "unsent": doc["unsent"],
            "queued_at_end": full[-1].get("queued", 0) if full else 0}


def diagnose(doc: dict) -> list[str]:
    """Plain-language lines for what went wrong (the report prints them; JSON carries them)."""
    msgs = []
    url = doc["target"].get("url", "the endpoint")
    req, ok = doc["requests"], doc["ok"]
    kinds = doc["errors"]["by_kind"]
    by_status = {int(k): v for k, v in doc["errors"]["by_status"].items()}
    if req and ok == 0 and kinds and sum(kinds.values()) >= sum(by_status.values()):
        top, n = next(iter(kinds.items()))
        hint = ""
        if "refused" in top:
            hint = " - is the endpoint running? (`rtsctl output MANIFEST` shows its URI)"
        elif top.startswith("tls: certificate"):
            hint = " - pass the CA bundle with --cacert FILE (or --insecure for a throwaway test)"
        elif top.startswith("tls"):
            hint = " - is it really an https endpoint? (try http://)"
        elif top.startswith("dns"):
            hint = " - check the host name in the URL"
        elif top == "timeout" or "timeout" in top:
            hint = " - the endpoint did not answer within --timeout"
        msgs.append(f"could not get any answer from {url}: {top} ({n} of {req} attempts){hint}")
    for code in (401, 403):
        n = by_status.get(code, 0)
        if n and n >= req / 2:
            msgs.append(f"{n} of {req} requests were refused with {code} {STATUS_TEXT[code]}: check the key "
                        "(-k, or `rtsctl output MANIFEST --show-secrets`)")
    if by_status.get(429):
        msgs.append(f"{by_status[429]} requests were throttled (429): lower -c / --rate, or raise the deployment's "
                    "max_concurrent_requests_per_instance / instance_count")
    failing = {k: v for k, v in by_status.items() if k >= 400 and k not in (401, 403, 429)}
    fives = {k: v for k, v in failing.items() if k >= 500}
    if req and sum(failing.values()) > req / 2:  # a run that mostly failed says why, not only how
        code = max(failing, key=failing.get)
        why = ("the scoring script rejected the request body: send what it expects (--body, --payload FILE, or a "
               "smoke_test.request in the manifest, which bench sends when given none)" if code < 500
               else "the service failed: see `rtsctl logs MANIFEST`")
        counts = ", ".join(f"{k} {STATUS_TEXT.get(k, '')}".rstrip() + f" ×{v}" for k, v in failing.items())
        msgs.append(f"most requests failed ({sum(failing.values())} of {req}: {counts}) - {why}"
                    + _first_body(doc, code))
    elif fives:
        code = max(fives, key=fives.get)
        msgs.append(f"{sum(fives.values())} server errors ({', '.join(f'{k}×{v}' for k, v in fives.items())})"
                    + _first_body(doc, code).replace(f"first {code} body", "first body"))
    fb = doc.get("falling_behind")
    if fb:
        load = doc["load"]
        asked = f"{load['rate']:g} req/s" if load.get("rate") else f"the ramp {load.get('stages', '')}".rstrip()
        line = f"the server did not keep up with {asked}"
        if fb["first_p50_ms"] is not None:
            line += f": latency p50 went from {fb['first_p50_ms']:g} ms to {fb['last_p50_ms']:g} ms"
        if fb["unsent"]:
            line += f"; {fb['unsent']} requests were due but never sent before the end"
        msgs.append(line)
    if doc["interrupted"]:
        msgs.append(f"interrupted: partial results ({doc['cancelled']} requests in flight were not counted)")
    return msgs


def _first_body(doc: dict, code: int) -> str:
    body = (doc["samples"].get(str(code)) or "").strip().replace("\n", " ")[:120]
    return f"; first {code} body: {body}" if body else ""


def thresholds(doc: dict, max_error_rate: float | None, max_p99_ms: float | None) -> dict:
    out = {}
    if max_error_rate is not None:
        value = doc["errors"]["rate"]
        out["max_error_rate"] = {"limit": max_error_rate, "value": value, "ok": value <= max_error_rate}
    if max_p99_ms is not None:
        value = doc["latency_ms"].get("p99_ms")
        ok = value is not None and value <= max_p99_ms
        out["max_p99_ms"] = {"limit": max_p99_ms, "value": value, "ok": ok}
    return out


def verdict(doc: dict) -> tuple[str, int]:
    """-> (verdict, exit code): interrupted 130, threshold crossed 3, nothing succeeded 1, else 0."""
    if doc["interrupted"]:
        return "interrupted", 130
    if any(not t["ok"] for t in doc.get("thresholds", {}).values()):
        return "threshold crossed", 3
    if doc["requests"] and doc["ok"] == 0:
        return "failed", 1
    if not doc["requests"]:
        return "failed", 1
    return "ok", 0
