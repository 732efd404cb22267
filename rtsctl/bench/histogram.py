"""HDR histograms: the engine's fast recording format, conversion to HdrHistogram, interval logs, percentiles.

The engine records a latency `v` (microseconds) as `counts[v >> b << b] += 1` with `b = bit_length(v | 2047) - 11`:
the lowest value of v's bucket in an HdrHistogram(1 us, 1 h, 3 significant digits). Replaying those counts into an
HdrHistogram gives exactly the histogram `record_value()` would have built, at a quarter of the CPU.

Files written by `--hdr-out` are standard HdrHistogram interval logs (readable by HistogramLogAnalyzer and the other
HdrHistogram tools) with one line per second, plus an `#rtsctl {json}` comment carrying what a histogram cannot hold
(status codes, transport errors, duration, target).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

HIGHEST_US = 3_600_000_000          # 1 hour, in microseconds
SIG_FIGS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new_hist():
    from hdrh.histogram import HdrHistogram
    return HdrHistogram(1, HIGHEST_US, SIG_FIGS)


def bucket(v: int) -> int:
    """The key the engine records `v` under (lowest equivalent value of its HDR bucket)."""
    v = min(int(v), HIGHEST_US)
    b = (v | 2047).bit_length() - 11
    return v >> b << b


def counts_of(values) -> dict[int, int]:
    out: dict[int, int] = {}
    for v in values:
        k = bucket(v)
        out[k] = out.get(k, 0) + 1
    return out


def add_counts(into: dict, other: dict | None) -> dict:
    if other:
        for k, c in other.items():
            into[k] = into.get(k, 0) + c
    return into


def to_hist(counts: dict, hist=None):
    hist = hist if hist is not None else new_hist()
    for v, c in counts.items():
        hist.record_value(v, c)
    return hist


def encode(hist) -> str:
    return hist.encode().decode("ascii")


def decode(text: str):
    from hdrh.histogram import HdrHistogram
    return HdrHistogram.decode(text.strip().encode("ascii"))


def summarize(hist) -> dict:
    """Milliseconds: min/mean/p50/p90/p99/p99.9/max, plus count."""
    n = hist.get_total_count()
    if not n:
        return {"count": 0}
    out = {"count": n, "min_ms": hist.get_min_value() / 1000.0, "mean_ms": round(hist.get_mean_value() / 1000.0, 3)}
    for p in PERCENTILES:
        out[f"p{p:g}_ms"] = hist.get_value_at_percentile(p) / 1000.0
    out["max_ms"] = hist.get_max_value() / 1000.0
    return out


def quick_percentiles(counts: dict, pcts=(50.0, 90.0, 99.0)) -> dict:
    """Percentiles (ms) straight from an engine counts dict: for the per-second timeline."""
    total = sum(counts.values())
    if not total:
        return {}
    items = sorted(counts.items())
    out = {}
    targets = [(p, max(1, math.ceil(p / 100.0 * total))) for p in pcts]
    seen, ti = 0, 0
    for v, c in items:
        seen += c
        while ti < len(targets) and seen >= targets[ti][1]:
            out[f"p{targets[ti][0]:g}_ms"] = _highest_equivalent(v) / 1000.0
            ti += 1
        if ti == len(targets):
            break
    out["max_ms"] = _highest_equivalent(items[-1][0]) / 1000.0
    return out


def _highest_equivalent(v: int) -> int:
    b = (v | 2047).bit_length() - 11
    return v + (1 << b) - 1 if b else v


def distribution(hist, ticks_per_half: int = 5) -> list[tuple[float, float]]:
    """(percentile, latency ms) points of the classic HDR percentile plot, up to the max."""
    pts = []
    if not hist.get_total_count():
        return pts
    for item in hist.get_percentile_iterator(ticks_per_half):
        pts.append((item.percentile_level_iterated_to, item.value_iterated_to / 1000.0))
        if item.percentile_level_iterated_to >= 100.0:
            break
    return pts


# -- interval logs --------------------------------------------------------------------------------------------
def log_line(start: float, length: float, counts: dict) -> str:
    """One interval line: start offset (s), length (s), max (ms), compressed histogram."""
    h = to_hist(counts)
    return f"{start:.3f},{length:.3f},{h.get_max_value() / 1000.0:.3f},{encode(h)}"


def write_log(path: str | Path, start_epoch: float, lines: list[str], meta: dict):
    head = ["#[Histogram log format version 1.2]",
            f"#[StartTime: {start_epoch:.3f} (seconds since epoch)]",
            "#rtsctl " + json.dumps(meta, sort_keys=True, separators=(",", ":")),
            '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"']
    Path(path).write_text("\n".join(head + lines) + "\n", encoding="utf-8")


def read_log(path: str | Path) -> tuple[float, dict, list[tuple[float, float, object]]]:
    """-> (start epoch, rtsctl meta or {}, [(start offset, length, HdrHistogram)]). Raises ValueError on junk."""
    start, meta, intervals = 0.0, {}, []
    text = Path(path).read_text(encoding="utf-8")
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith('"'):
            continue
        if line.startswith("#"):
            if line.startswith("#[StartTime:"):
                start = float(line.split(":", 1)[1].split()[0])
            elif line.startswith("#rtsctl "):
                meta = json.loads(line[len("#rtsctl "):])
            continue
        parts = line.split(",")
        if parts[0].startswith("Tag="):
            parts = parts[1:]
        if len(parts) != 4:
            raise ValueError(f"line {n}: not an HdrHistogram interval line")
        try:
            intervals.append((float(parts[0]), float(parts[1]), decode(parts[3])))
        except Exception as exc:          # noqa: BLE001 - any decode failure means the same thing to the user
            raise ValueError(f"line {n}: cannot decode the histogram ({exc.__class__.__name__})") from None
    return start, meta, intervals
