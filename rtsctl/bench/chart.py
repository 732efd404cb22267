"""Terminal charts from block characters: latency by percentile (bars) and per-second series (column charts)."""

from __future__ import annotations

import math

_EIGHTHS = " ▏▎▍▌▋▊▉█"
_LEVELS = " ▁▂▃▄▅▆▇█"


def fmt_ms(v: float) -> str:
    if v == 0:
        return "0"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 100:
        return f"{v:.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    return f"{v:.2f} ms"


def fmt_count(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def hbar(value: float, top: float, width: int) -> str:
    if top <= 0:
        return ""
    cells = max(0.0, value / top * width)
    full = int(cells)
    rest = int((cells - full) * 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")


def percentile_bars(latency: dict, width: int = 44) -> list[str]:
    rows = [(name, latency.get(key)) for name, key in
            (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"), ("p99.9", "p99.9_ms"), ("max", "max_ms"))]
    rows = [(n, v) for n, v in rows if v is not None]
    if not rows:
        return []
    top = max(v for _, v in rows)
    return [f"  {name:<6}{fmt_ms(v):>10}  {hbar(v, top, width)}" for name, v in rows]


def _fit(values: list[float], width: int, reduce) -> tuple[list[float], int]:
    """Squeeze to `width` columns (grouping seconds with `reduce`), or widen short series (repeat columns)."""
    n = len(values)
    if n > width:
        g = math.ceil(n / width)
        return [reduce(values[i:i + g]) for i in range(0, n, g)], 1
    return values, max(1, min(4, width // max(n, 1)))


def columns(values: list[float], label, height: int = 6, width: int = 60, reduce=max, title: str = "") -> list[str]:
    """A column chart of one value per second. `label` formats the axis values."""
    if not values:
        return []
    vals, rep = _fit(values, width, reduce)
    top = max(vals) or 1.0
    lines = [f"  {title}"] if title else []
    for row in range(height, 0, -1):
        cells = []
        for v in vals:
            fill = v / top * height - (row - 1)
            ch = "█" if fill >= 1 else (" " if fill <= 0 else _LEVELS[max(1, int(fill * 8))])
            cells.append(ch * rep)
        axis = label(top) if row == height else (label(0) if row == 1 else "")
        lines.append(f"  {axis:>9} ┤{''.join(cells)}")
    span = len(values)
    lines.append(f"  {'':>9} └{'─' * (len(vals) * rep)}")
    lines.append(f"  {'':>10}0 s{'':>{max(1, len(vals) * rep - 3 - len(str(span)) - 2)}}{span} s")
    return lines


def timeline_charts(timeline: list[dict], width: int = 60) -> list[str]:
    timeline = [p for p in timeline if p.get("len", 1.0) >= 0.5]      # drop a short last partial second
    if len(timeline) < 2:
        return []
    rps = [p.get("rps", 0.0) for p in timeline]
    out = columns(rps, fmt_count, title="throughput over time (req/s, one column per second)", width=width,
                  reduce=lambda xs: sum(xs) / len(xs))
    p99 = [p.get("p99_ms", 0.0) for p in timeline]
    if any(p99):
        out.append("")
        out += columns(p99, fmt_ms, title="p99 latency over time", width=width, reduce=max)
    return out
