"""Render a result document: a text report (with terminal charts) or JSON."""

from __future__ import annotations

import json

from rtsctl.bench.chart import fmt_ms, percentile_bars, timeline_charts
from rtsctl.bench.summary import STATUS_TEXT


def to_json(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=False)


def _n(v) -> str:
    return f"{v:,}"


def describe_load(load: dict) -> str:
    if load.get("runs"):  # merged runs: each keeps its own mode
        return "; ".join(f"{r['source'].rsplit('/', 1)[-1]}: {describe_load(r)}" for r in load["runs"])
    parts = []
    open_loop = load.get("mode") == "open" if load.get("mode") else bool(load.get("rate"))
    if load.get("stages"):
        parts.append(f"{'open' if open_loop else 'closed'} loop ramp {load['stages']}")
    elif open_loop and load.get("rate"):
        parts.append(f"open loop at {load['rate']:g} req/s (latency from the intended send time)")
    else:
        parts.append("open loop" if open_loop else "closed loop")
    w = load.get("workers", 1)
    if load.get("engine") == "locust":    # Locust's users each keep one request in flight, like a connection
        parts.append(f"{load.get('connections', '?')} Locust users, {w} Locust worker" + ("s" if w != 1 else ""))
    elif load.get("engine") == "azure-load-testing":   # the service's engine instances, not processes here
        e = load.get("engines", 1)
        parts.append(f"{load.get('connections', '?')} Locust users on {e} engine" + ("s" if e != 1 else "")
                     + (f" in {', '.join(load['regions'])}" if load.get("regions") else ""))
    else:
        parts.append(f"{load.get('connections', '?')} connections")
        parts.append(f"{w} process" + ("es" if w != 1 else ""))
    if load.get("per_connection"):
        parts.append(f"{load['per_connection']} requests each")
    elif load.get("requests") and "rps" not in load:
        parts.append(f"{_n(load['requests'])} requests")
    if load.get("duration_s"):
        parts.append(f"{load['duration_s']:g} s")
    if "rps" in load:
        parts.append(f"{_n(load['requests'])} requests = {load['rps']:,.1f} req/s")
    if load.get("warmup_s"):
        parts.append(f"after {load['warmup_s']:g} s warm-up")
    return ", ".join(parts)


def engine_note(load: dict) -> str | None:
    """Who measured, when it was not the native engine, and how its figures differ (text and HTML reports)."""
    if load.get("engine") == "azure-load-testing":  # rtsctl.bench.cloud: the service's own aggregates
        return "measured by Azure Load Testing (Locust on its engines): " + "; ".join(load.get("notes", []))
    if load.get("engine") != "locust":
        return None
    info = load.get("locust") or {}
    return f"measured by Locust {info.get('version', '')}".rstrip() + ": " + "; ".join(info.get("notes", []))


def _latency_line(lat: dict) -> str:
    if not lat.get("count"):
        return "none recorded"
    keys = (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"), ("p99.9", "p99.9_ms"), ("max", "max_ms"))
    return "  ".join(f"{k} {fmt_ms(lat[v])}" for k, v in keys) + \
        f"   (mean {fmt_ms(lat['mean_ms'])}, min {fmt_ms(lat['min_ms'])})"


def chart_widths() -> tuple[int, int]:
    """Chart widths that fit the terminal (or $COLUMNS; 80 when neither says) with the last column left free:
    percentile bars carry 21 columns of labels, column charts 13 of axis; never narrower than 10 nor wider than 120."""
    import shutil

    cols = shutil.get_terminal_size((80, 24)).columns
    return max(10, min(cols - 22, 120)), max(10, min(cols - 14, 120))


def printable(value) -> str:
    """A service's own words for the terminal: no control characters (an escape sequence is not a message)."""
    return "".join(c for c in str(value) if c.isprintable())


def service_lines(doc: dict) -> list[str]:
    """Where a managed service ran the load (Azure Load Testing): its run, verdict and the portal's link to it."""
    svc = doc.get("service")
    if not svc:
        return []
    said = {k: printable(v) for k, v in svc.items() if v}
    verdict = f", test result {said['test_result']}" if said.get("test_result") else ""
    out = [f"  {said['name']} {said['resource']}: test {said['test_id']}, run {said['run_id']} ({said['status']}"
           f"{verdict})"]
    if said.get("portal_url"):
        out.append(f"  portal     {said['portal_url']}")
    return out


def to_text(doc: dict, chart: bool = True) -> str:
    t, load = doc["target"], doc["load"]
    where = t.get("url", "")
    extra = [f"{k} {t[k]}" for k in ("endpoint", "deployment") if t.get(k)]
    if extra:
        where += f"  ({', '.join(extra)})"
    if t.get("sources"):
        where = f"merged {len(t['sources'])} runs: " + ", ".join(t["sources"])
    runs = [{**r, "runs": None} for r in load.get("runs") or [load]]
    lines = [f"rtsctl bench  {where}"]
    lines += [f"  {r['source'].rsplit('/', 1)[-1] + ': ' if 'source' in r else ''}{describe_load(r)}" for r in runs]
    note = engine_note(load)
    if note:
        lines.append(f"  {note}")
    lines += service_lines(doc)
    lines.append("")
    req, ok = doc["requests"], doc["ok"]
    lines.append(f"  requests   {_n(req)} in {doc['duration_s']:.2f} s = {doc['rps']:,.1f} req/s")
    if doc.get("achieved_rate") is not None:
        lines.append(f"  sent       {_n(doc['sent'])} ({doc['achieved_rate']:,.1f} req/s of {load['rate']:g} asked)"
                     + (f", {_n(doc['unsent'])} due but never sent" if doc["unsent"] else ""))
    pct = f" ({ok / req:.2%})" if req else ""
    lines.append(f"  ok (2xx)   {_n(ok)}{pct}")
    err = doc["errors"]
    lines.append(f"  errors     {_n(err['total'])}" + (f" ({err['rate']:.2%})" if req else ""))
    for code, n in err["by_status"].items():
        text = STATUS_TEXT.get(int(code), "")
        lines.append(f"    HTTP {code} {text}".rstrip() + f": {_n(n)}")
    for kind, n in err["by_kind"].items():
        lines.append(f"    {kind}: {_n(n)}")
    lines.append("  status     " + ("  ".join(f"{k}×{_n(v)}" for k, v in doc["status"].items()) or "no HTTP answer"))
    lines.append("  latency    " + _latency_line(doc["latency_ms"])
                 + ("  (429s excluded)" if doc.get("throttled") else ""))
    if doc.get("throttled"):
        lines.append("  throttled  " + _latency_line(doc["throttled"]["latency_ms"]) + "  (429 answers only)")
    if "service_time_ms" in doc:
        lines.append("  service    " + _latency_line(doc["service_time_ms"]) + "  (from the actual send)")
    if chart and doc["latency_ms"].get("count"):
        bars, columns = chart_widths()
        lines += ["", "  latency by percentile"] + percentile_bars(doc["latency_ms"], bars)
        tl = timeline_charts(doc["timeline"], columns)
        if tl:
            lines += [""] + tl
    th = doc.get("thresholds") or {}
    if th:
        lines.append("")
        for name, t in th.items():
            if name == "max_error_rate":
                desc = f"error rate {t['value']:.2%} (limit {t['limit']:.2%})"
            else:
                v = "n/a" if t["value"] is None else fmt_ms(t["value"])
                desc = f"p99 {v} (limit {fmt_ms(t['limit'])})"
            lines.append(f"  {'PASS' if t['ok'] else 'FAIL'}  {desc}")
    return "\n".join(lines) + "\n"
