"""A self-contained HTML report (inline SVG, no script, no network): summary, the HDR latency-by-percentile plot,
throughput per second (ok / errors stacked) and latency per second (p50 / p90 / p99)."""

from __future__ import annotations

import html
import math
from pathlib import Path

from rtsctl.bench import histogram as H
from rtsctl.bench.chart import fmt_ms
from rtsctl.bench.report import describe_load, engine_note
from rtsctl.bench.summary import STATUS_TEXT

W, HGT, ML, MR, MT, MB = 760, 300, 64, 40, 16, 40
COLORS = {"latency": "#2563eb", "service": "#9ca3af", "ok": "#16a34a", "err": "#dc2626",
          "p50": "#16a34a", "p90": "#d97706", "p99": "#dc2626"}
NINES = [(0.0, "0%"), (90.0, "90%"), (99.0, "99%"), (99.9, "99.9%"), (99.99, "99.99%"), (99.999, "99.999%")]


def _e(s) -> str:
    return html.escape(str(s))


def _nice(top: float) -> tuple[float, list[float]]:
    if top <= 0:
        top = 1.0
    step = 10 ** math.floor(math.log10(top / 4))
    for m in (1, 2, 2.5, 5, 10):
        if top / (step * m) <= 5:
            step *= m
            break
    ticks = [i * step for i in range(int(math.ceil(top / step)) + 1)]
    return ticks[-1], ticks


def _frame(y_top: float, y_ticks: list[float], y_fmt, x_ticks: list[tuple[float, str]], title: str) -> list[str]:
    pw, ph = W - ML - MR, HGT - MT - MB
    out = [f'<svg viewBox="0 0 {W} {HGT}" width="{W}" height="{HGT}" role="img" aria-label="{_e(title)}">',
           f'<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" fill="#fff" stroke="#d1d5db"/>']
    for v in y_ticks:
        y = MT + ph - v / y_top * ph
        out.append(f'<line x1="{ML}" x2="{ML + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef0f3"/>'
                   f'<text x="{ML - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(y_fmt(v))}</text>')
    for x, label in x_ticks:
        px = ML + x * pw
        out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{MT}" y2="{MT + ph}" stroke="#eef0f3"/>'
                   f'<text x="{px:.1f}" y="{MT + ph + 16}" text-anchor="middle">{_e(label)}</text>')
    return out


def _polyline(points: list[tuple[float, float]], y_top: float, color: str, dash: str = "") -> str:
    pw, ph = W - ML - MR, HGT - MT - MB
    pts = " ".join(f"{ML + x * pw:.1f},{MT + ph - min(y / y_top, 1.0) * ph:.1f}" for x, y in points)
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline fill="none" stroke="{color}" stroke-width="2"{extra} points="{pts}"/>'


def _legend(items: list[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{c}"></i>{_e(n)}</span>' for n, c in items) + "</div>"


def percentile_plot(doc: dict) -> str:
    """Latency against 1/(1-p) on a log axis: the tail is as wide as the body."""
    series = [("latency", doc.get("histogram"))]
    if doc.get("service_histogram"):
        series.append(("service", doc["service_histogram"]))
    curves = []
    for name, enc in series:
        if not enc:
            continue
        pts = [(p, v) for p, v in H.distribution(H.decode(enc)) if p < 100.0]
        if pts:
            curves.append((name, pts))
    if not curves:
        return "<p>No latency recorded.</p>"
    top_p = max(p for _, pts in curves for p, _ in pts)
    span = math.log10(1.0 / (1.0 - min(top_p, 99.9999) / 100.0)) or 1.0
    span = max(span, 2.0)

    def xpos(p: float) -> float:
        return min(math.log10(1.0 / (1.0 - min(p, 99.9999) / 100.0)) / span, 1.0)

    y_top, y_ticks = _nice(max(v for _, pts in curves for _, v in pts))
    ticks = [(xpos(p), label) for p, label in NINES if xpos(p) <= 1.0 and (p == 0 or xpos(p) > 0)]
    out = _frame(y_top, y_ticks, fmt_ms, ticks, "latency by percentile")
    for name, pts in curves:
        out.append(_polyline([(xpos(p), v) for p, v in pts], y_top, COLORS[name], "5,4" if name == "service" else ""))
    out.append("</svg>")
    names = [("latency" + (" (from the intended send)" if len(curves) > 1 else ""), COLORS["latency"])]
    if len(curves) > 1:
        names.append(("service time (from the actual send)", COLORS["service"]))
    return _legend(names) + "".join(out)


def _time_ticks(n: int) -> list[tuple[float, str]]:
    step = max(1, math.ceil(n / 10))
    return [(i / max(n, 1), f"{i} s") for i in range(0, n + 1, step)]


def throughput_plot(timeline: list[dict]) -> str:
    pts = [p for p in timeline if p.get("len", 1.0) >= 0.5]
    if not pts:
        return "<p>Too short for a timeline.</p>"
    rates = [(p["ok"] / p.get("len", 1.0), p["errors"] / p.get("len", 1.0)) for p in pts]
    y_top, y_ticks = _nice(max(a + b for a, b in rates))
    out = _frame(y_top, y_ticks, lambda v: f"{v:,.0f}", _time_ticks(len(pts)), "throughput per second")
    pw, ph = W - ML - MR, HGT - MT - MB
    bw = pw / len(pts)
    for i, (ok, err) in enumerate(rates):
        x = ML + i * bw + bw * 0.1
        h_ok, h_err = ok / y_top * ph, err / y_top * ph
        out.append(f'<rect x="{x:.1f}" y="{MT + ph - h_ok:.1f}" width="{bw * 0.8:.1f}" height="{h_ok:.1f}" '
                   f'fill="{COLORS["ok"]}"><title>{i}-{i + 1} s: {ok:,.0f} ok/s, {err:,.0f} errors/s</title></rect>')
        if h_err:
            out.append(f'<rect x="{x:.1f}" y="{MT + ph - h_ok - h_err:.1f}" width="{bw * 0.8:.1f}" '
                       f'height="{h_err:.1f}" fill="{COLORS["err"]}"/>')
    out.append("</svg>")
    return _legend([("ok req/s", COLORS["ok"]), ("errors/s", COLORS["err"])]) + "".join(out)


def latency_time_plot(timeline: list[dict]) -> str:
    pts = [p for p in timeline if p.get("len", 1.0) >= 0.5 and "p50_ms" in p]
    if len(pts) < 2:
        return "<p>Too short for a latency timeline.</p>"
    y_top, y_ticks = _nice(max(p["p99_ms"] for p in pts))
    out = _frame(y_top, y_ticks, fmt_ms, _time_ticks(len(pts)), "latency per second")
    n = len(pts)
    for key in ("p50", "p90", "p99"):
        out.append(_polyline([((i + 0.5) / n, p[f"{key}_ms"]) for i, p in enumerate(pts)], y_top, COLORS[key]))
    out.append("</svg>")
    return _legend([(k, COLORS[k]) for k in ("p50", "p90", "p99")]) + "".join(out)


def _summary_table(doc: dict) -> str:
    lat = doc["latency_ms"]
    rows = [("requests", f"{doc['requests']:,} in {doc['duration_s']:.2f} s"), ("throughput", f"{doc['rps']:,.1f} req/s"),
            ("ok (2xx)", f"{doc['ok']:,}"), ("errors", f"{doc['errors']['total']:,} ({doc['errors']['rate']:.2%})")]
    if doc.get("achieved_rate") is not None:
        rows.append(("sent", f"{doc['sent']:,} ({doc['achieved_rate']:,.1f} req/s of {doc['load']['rate']:g} asked)"))
    for code, n in doc["errors"]["by_status"].items():
        rows.append((f"HTTP {code}", f"{n:,} {STATUS_TEXT.get(int(code), '')}"))
    for kind, n in doc["errors"]["by_kind"].items():
        rows.append((kind, f"{n:,}"))
    for k in ("p50", "p90", "p99", "p99.9", "max", "mean"):
        if f"{k}_ms" in lat:
            rows.append((f"latency {k}", fmt_ms(lat[f"{k}_ms"])))
    return "<table>" + "".join(f"<tr><th>{_e(a)}</th><td>{_e(b)}</td></tr>" for a, b in rows) + "</table>"


CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:800px;color:#111827}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 6px}.sub{color:#6b7280;margin:0 0 16px}
table{border-collapse:collapse}th{text-align:left;font-weight:500;color:#374151;padding:2px 18px 2px 0}
td{font-variant-numeric:tabular-nums}svg text{font:11px system-ui,sans-serif;fill:#4b5563}
.legend span{margin-right:16px;color:#374151}.legend i{display:inline-block;width:12px;height:3px;margin:0 6px 3px 0}
.msg{background:#fef3c7;padding:6px 10px;border-radius:4px;margin:4px 0}"""


def _service(doc: dict) -> str:
    """The managed service that ran the load, linked to its run in the portal (an https link only)."""
    from rtsctl.bench.report import service_lines

    lines = service_lines(doc)
    if not lines:
        return ""
    url = str((doc.get("service") or {}).get("portal_url") or "")
    link = f' <a href="{_e(url)}">open the run in the Azure portal</a>' if url.startswith("https://") else ""
    return f"<p class=sub>{_e(lines[0].strip())}{link}</p>"


def render(doc: dict) -> str:
    t = doc["target"]
    title = t.get("url", "")
    if t.get("sources"):
        title = f"{len(t['sources'])} merged runs - {title}"
    msgs = "".join(f'<p class="msg">{_e(m)}</p>' for m in doc.get("messages", []))
    note = engine_note(doc["load"])
    msgs = (f"<p class=sub>{_e(note)}</p>" if note else "") + msgs
    return (f"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>rtsctl bench - {_e(title)}</title>"
            f"<style>{CSS}</style></head><body>"
            f"<h1>rtsctl bench</h1><p class=sub>{_e(title)}<br>{_e(describe_load(doc['load']))}</p>"
            f"{_service(doc)}{msgs}"
            f"{_summary_table(doc)}"
            f"<h2>Latency by percentile</h2>{percentile_plot(doc)}"
            f"<h2>Throughput over time</h2>{throughput_plot(doc['timeline'])}"
            f"<h2>Latency over time</h2>{latency_time_plot(doc['timeline'])}"
            "</body></html>\n")


def write_html(path: str, doc: dict) -> None:
    Path(path).write_text(render(doc), encoding="utf-8")
