"""`--stages 10s:100,30s:500,10s:0`: a load that ramps, like k6's stages.

Each stage moves the target linearly from where the previous stage ended (the first starts at 0) to its own value
over its duration. Plain numbers are connections (closed loop: that many connections keep a request in flight);
numbers ending in `/s` are request rates (open loop: arrivals at that rate, latency from the intended send time).

Open loop needs the time of the n-th arrival: the count of arrivals by time t is the integral of the rate, a
piecewise quadratic, so the n-th arrival is found by solving one quadratic in the stage where the count reaches n.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rtsctl.support.errors import RtsctlError

MAX_STAGES = 100
MAX_SECONDS = 24 * 3600.0
MAX_RATE = 1_000_000.0
MAX_CONNECTIONS = 10_000

_STAGE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*:\s*(\d+(?:\.\d*)?|\.\d+)\s*(/s)?\s*\Z")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Stages:
    """Breakpoints (t, value) from (0, 0) to (duration, last target); `unit` is "rate" or "connections"."""

    points: tuple[tuple[float, float], ...]
    unit: str

    @property
    def duration(self) -> float:
        return self.points[-1][0]

    @property
    def peak(self) -> float:
        return max(v for _, v in self.points)

    @property
    def open_loop(self) -> bool:
        return self.unit == "rate"

    def scaled(self, factor: float) -> "Stages":
        """This ramp for one worker that carries `factor` of the load."""
        return Stages(tuple((t, v * factor) for t, v in self.points), self.unit)

    def value(self, t: float) -> float:
        """The target at `t` seconds (linear between breakpoints; the last value after the end)."""
        pts = self.points
        if t <= 0:
            return pts[0][1]
        for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
            if t <= t1:
                return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
        return pts[-1][1]

    def count(self, t: float) -> float:
        """Arrivals due by `t` seconds: the integral of the rate from 0 to t."""
        total = 0.0
        for (t0, v0), (t1, v1) in zip(self.points, self.points[1:]):
            if t <= t0:
                break
            end = min(t, t1)
            total += (v0 + self.value(end)) / 2 * (end - t0)
        return total

    def time_of(self, n: float) -> float | None:
        """When the count of arrivals reaches `n` (n > 0); None if it never does within the ramp."""
        done = 0.0
        for (t0, v0), (t1, v1) in zip(self.points, self.points[1:]):
            d = t1 - t0
            area = (v0 + v1) / 2 * d
            if done + area >= n and area > 0:
                need = n - done
                slope = (v1 - v0) / d
                if abs(slope) < 1e-12:
                    return t0 + need / v0
                # v0*x + slope*x^2/2 = need  ->  x = (-v0 + sqrt(v0^2 + 2*slope*need)) / slope
                disc = max(v0 * v0 + 2 * slope * need, 0.0)
                return t0 + min(max((-v0 + math.sqrt(disc)) / slope, 0.0), d)
            done += area
        return self.duration if n <= done + 1e-6 else None  # float dust at the very end


def parse_stages(text: str) -> Stages:
    """'10s:100,30s:500,10s:0' (connections) or '10s:100/s,...' (rates) -> Stages; one clear line on error."""
    parts = [p for p in str(text).split(",") if p.strip()]
    if not parts:
        raise RtsctlError("--stages: give DURATION:TARGET[,...], e.g. 10s:100,30s:500,10s:0 (connections) "
                          "or 10s:100/s,30s:500/s (request rates)")
    if len(parts) > MAX_STAGES:
        raise RtsctlError(f"--stages: {len(parts)} stages, at most {MAX_STAGES}")
    points, units, t = [(0.0, 0.0)], set(), 0.0
    for part in parts:
        m = _STAGE.match(part)
        if not m:
            raise RtsctlError(f"--stages: {part.strip()!r} is not DURATION:TARGET (examples: 30s:200, 1m:500/s)")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
        if seconds <= 0:
            raise RtsctlError(f"--stages: {part.strip()!r}: a stage lasts more than 0 seconds")
        t += seconds
        points.append((t, float(m.group(3))))
        units.add("rate" if m.group(4) else "connections")
    if len(units) > 1:
        raise RtsctlError("--stages: mix of rates (N/s) and connections (N): use one kind for the whole ramp")
    unit = units.pop()
    stages = Stages(tuple(points), unit)
    if stages.duration > MAX_SECONDS:
        raise RtsctlError(f"--stages: {stages.duration:g} s in all, at most {MAX_SECONDS:g}")
    limit = MAX_RATE if unit == "rate" else MAX_CONNECTIONS
    if stages.peak > limit:
        raise RtsctlError(f"--stages: a target of {stages.peak:g} {'req/s' if unit == 'rate' else 'connections'}; "
                          f"at most {limit:g}")
    if stages.peak <= 0:
        raise RtsctlError("--stages: every target is 0: nothing would be sent")
    return stages
