"""The live progress line (stderr): rewritten in place on a terminal, one line per second otherwise."""

from __future__ import annotations

import sys

from rtsctl.bench.chart import fmt_ms


class Progress:
    def __init__(self, enabled: bool | None, expected: int | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.enabled = self.tty if enabled is None else enabled
        self.expected = expected
        self.shown = False

    def __call__(self, point: dict, agg) -> None:
        if not self.enabled:
            return
        done = agg.done_requests
        line = f"{point['t']:7.1f}s  {done:>11,} req  {point['rps']:>10,.0f} req/s"
        if "p50_ms" in point:
            line += f"  p50 {fmt_ms(point['p50_ms']):>9}  p99 {fmt_ms(point['p99_ms']):>9}"
        line += f"  errors {point['errors']:,}"
        if self.expected:
            line += f"  {min(done / self.expected, 1.0):4.0%}"
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.enabled and self.tty and self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
