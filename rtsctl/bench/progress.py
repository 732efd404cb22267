"""The live progress line (stderr): redrawn in place on a terminal, one line per second otherwise.

On a terminal it is a rich live display: cropped (never wrapped) to the terminal's width, measured at every
redraw so a resized window is followed, and erased when the run ends (a wrapped line would leave its first row
behind at every redraw: the "debris" of a hand-rolled \\r line). Fields are dropped from the right when the
terminal is narrow, rather than cut mid-number.
"""

from __future__ import annotations

import sys

from rtsctl.bench.chart import fmt_ms


def fields(point: dict, done: int, expected: int | None, errors: int = 0) -> list[str]:
    """The progress line's fields, most important first (the narrowest terminal keeps the first): requests and
    errors so far (both counted from the start), then this second's rate and latency (429s excluded)."""
    out = [f"{point['t']:6.1f}s", f"{done:,} req", f"{errors:,} err", f"{point['rps']:,.0f} req/s"]
    if "p50_ms" in point:
        out += [f"p50 {fmt_ms(point['p50_ms'])}", f"p99 {fmt_ms(point['p99_ms'])}"]
    if expected:
        out.append(f"{min(done / expected, 1.0):.0%}")
    return out


def fit(parts: list[str], width: int, sep: str = "  ") -> str:
    """As many leading fields as fit in `width` columns."""
    line = ""
    for part in parts:
        candidate = part if not line else line + sep + part
        if len(candidate) > width:
            break
        line = candidate
    return line or parts[0][:width]


class Progress:
    def __init__(self, enabled: bool | None, expected: int | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.enabled = self.tty if enabled is None else enabled
        self.expected = expected
        self.shown = False
        self._live = None

    def __call__(self, point: dict, agg) -> None:
        if not self.enabled:
            return
        parts = fields(point, agg.done_requests, self.expected, agg.done_errors)
        if self.tty:
            self._draw(parts)
        else:
            self.stream.write("  ".join(parts) + "\n")
            self.stream.flush()
        self.shown = True

    def _draw(self, parts: list[str]) -> None:
        from rich.text import Text

        if self._live is None:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, highlight=False, markup=False)
            self._live = Live(console=console, auto_refresh=False, transient=True, redirect_stdout=False,
                              redirect_stderr=False)
            self._live.start()
        width = self._live.console.width - 1  # the last column would make some terminals wrap
        self._live.update(Text(fit(parts, width), no_wrap=True, overflow="crop"), refresh=True)

    def clear(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
