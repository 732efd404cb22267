"""`rtsctl bench --stages` (ramps), `bench merge` (labels and rates of mixed runs), and the live progress line on an
80-column terminal: the CLI in a subprocess against the aiohttp test server on 127.0.0.1."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time

import pyte
import pytest
from helpers import drain_pty
from test_bench_server import KEY, report, server  # noqa: F401 - fixtures

from rtsctl.bench import histogram as H


def bench(cli, srv, *args, path="/score"):
    return cli("bench", "-u", srv.url(path), "-k", KEY, *args, timeout=60)


def test_open_loop_ramp_sends_at_the_ramped_rate(cli, server):
    # 0 -> 100 req/s over 2 s, then 100 -> 300 req/s over 2 s: 25, 75, 150, 250 requests in the four seconds
    doc = report(bench(cli, server, "--stages", "2s:100/s,2s:300/s", "-c", "16", "-o", "json"))
    assert doc["load"]["mode"] == "open" and doc["load"]["stages"] == "2s:100/s,2s:300/s"
    # every scheduled request is sent, or counted as due but unsent when the deadline fell just before its slot
    assert doc["sent"] + doc["unsent"] == 500 and doc["unsent"] <= 2, doc
    assert doc["requests"] == doc["ok"] == doc["sent"] == server.hits["/score"]
    seconds = [p["sent"] for p in doc["timeline"] if p["len"] >= 0.9]
    assert len(seconds) == 4, doc["timeline"]
    for sent, expected in zip(seconds, (25, 75, 150, 250)):
        assert abs(sent - expected) <= max(5, expected * 0.1), (seconds, doc["timeline"])


def test_a_rate_ramp_the_server_cannot_follow_is_called_out(cli, server):
    # /slow serves ~20 req/s; a ramp to 80 req/s over 2 s asks for 80 requests
    result = bench(cli, server, "--stages", "2s:80/s", "-c", "4", "--timeout", "20", "-o", "json", path="/slow")
    doc = report(result)
    assert doc["falling_behind"] and doc["falling_behind"]["behind"], doc
    assert 76 <= doc["sent"] + doc["unsent"] <= 80        # (the last ones may fall after the deadline)
    assert "the server did not keep up with the ramp 2s:80/s" in result.err


def test_closed_loop_ramp_adds_connections_as_the_stages_say(cli, server):
    # 0 -> 8 connections over 2 s, then 8 for 1 s; /sleep takes 50 ms, so req/s follows the connections
    doc = report(bench(cli, server, "--stages", "2s:8,1s:8", "-o", "json", path="/sleep"))
    assert doc["load"]["mode"] == "closed" and doc["load"]["connections"] == 8
    assert doc["errors"]["total"] == 0
    seen = server.concurrency
    assert max(n for _, n in seen) == 8                        # the peak is reached and never passed
    early = [n for t, n in seen if t < 0.4]                   # the ramp is at round(4 t) <= 2 here
    assert early and max(early) <= 3, early
    late = [n for t, n in seen if 2.2 < t < 2.9]
    assert late and max(late) == 8
    rps = [p["rps"] for p in doc["timeline"] if p["len"] >= 0.9]
    assert len(rps) == 3 and rps[0] < rps[1] < rps[2], rps
    assert rps[2] > 2.5 * rps[0], rps


def test_stages_bad_input_is_one_line(cli, server):
    cases = {("--stages", "10s:5,3s:4/s"): "mix of rates (N/s) and connections (N)",
             ("--stages", "10x:5"): "'10x:5' is not DURATION:TARGET",
             ("--stages", "1s:5", "-d", "3"): "--stages sets the length and the load of the run: drop -d",
             ("--stages", "1s:50", "-c", "8"): "--stages ramps to 50 connections but -c/-t is 8",
             ("--stages", "1s:0"): "every target is 0"}
    for args, message in cases.items():
        result = bench(cli, server, *args)
        assert result.code == 1 and message in result.err and "Traceback" not in result.err, (args, result)
    assert server.hits["/score"] == 0


def test_merge_labels_each_run_and_rates_over_their_own_durations(cli, server, tmp_path):
    a, b = tmp_path / "open.hlog", tmp_path / "closed.hlog"
    ra = report(bench(cli, server, "--rate", "100", "-d", "1", "--hdr-out", str(a), "-o", "json"))
    time.sleep(1.5)                                            # a gap between the runs: not load
    rb = report(bench(cli, server, "-n", "300", "-c", "2", "--hdr-out", str(b), "-o", "json"))
    doc = report(cli("bench", "merge", str(a), str(b), "-o", "json"))
    load = doc["load"]
    assert load["mode"] == "mixed" and "rate" not in load
    assert [r["mode"] for r in load["runs"]] == ["open", "closed"]
    assert load["runs"][0]["rate"] == 100 and load["runs"][1]["connections"] == 2
    assert [r["requests"] for r in load["runs"]] == [ra["requests"], rb["requests"]]
    own = ra["duration_s"] + rb["duration_s"]
    span = (H.read_log(b)[0] + rb["duration_s"]) - H.read_log(a)[0]
    assert span > own + 1.0                                    # the wall span holds the gap ...
    assert abs(doc["duration_s"] - own) < 0.05                 # ... the merged duration does not
    assert doc["requests"] == ra["requests"] + rb["requests"]
    assert abs(doc["rps"] - doc["requests"] / own) <= 0.01 * doc["rps"] + 0.1
    text = cli("bench", "merge", str(a), str(b), "--no-chart").out
    assert "open.hlog: open loop at 100 req/s" in text and "closed.hlog: closed loop, 2 connections" in text


def test_merge_of_runs_side_by_side_counts_their_time_once(cli, server, tmp_path):
    logs = [tmp_path / "m1.hlog", tmp_path / "m2.hlog"]
    procs = [subprocess.Popen([sys.executable, "-m", "rtsctl", "bench", "-u", server.url("/sleep"), "-k", KEY,
                               "-d", "2", "-c", "2", "--hdr-out", str(log), "-o", "json"], env=cli.env,
                              cwd=cli.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for log in logs]
    for proc in procs:
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    doc = report(cli("bench", "merge", *map(str, logs), "-o", "json"))
    spans = []
    for log in logs:
        start, meta, _ = H.read_log(log)
        spans.append((start, start + meta["duration_s"]))
    union = max(end for _, end in spans) - min(start for start, _ in spans)
    own = sum(end - start for start, end in spans)
    assert union < own - 0.5                                   # they did run side by side (launched together)
    assert abs(doc["duration_s"] - union) < 0.05               # their time counted once, not twice
    assert doc["load"]["mode"] == "closed" and doc["load"]["connections"] == 4
    assert abs(doc["rps"] - doc["requests"] / doc["duration_s"]) <= 0.01 * doc["rps"] + 0.1


def _run_on_terminal(args: list[str], env: dict[str, str], columns: int = 80, rows: int = 24) -> tuple[int, bytes]:
    """Run with stderr on a pseudo-terminal of `columns` x `rows` (stdout to a pipe); -> (exit code, terminal bytes)."""
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=side, env=env)
    os.close(side)
    seen = drain_pty(main)
    proc.stdout.read()
    return proc.wait(timeout=30), seen


@pytest.mark.parametrize("columns", [80, 40])
def test_live_progress_fits_the_terminal_and_leaves_nothing_behind(cli, server, columns):
    env = {**cli.env, "COLUMNS": str(columns), "LINES": "24", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    code, raw = _run_on_terminal([sys.executable, "-m", "rtsctl", "bench", "-u", server.url("/score"), "-k", KEY,
                                  "--rate", "50", "-d", "3", "-o", "json"], env, columns)
    assert code == 0, raw.decode(errors="replace")
    text = raw.decode("utf-8", "replace")
    frames = re.findall(r"\d+\.\ds  [\d,]+ req  [\d,]+ err  [\d,]+ req/s[^\r\n\x1b]*", text)
    assert len(frames) >= 2, text                             # the live line was drawn, once a second
    assert all(len(f) < columns for f in frames), frames     # cropped to whole fields, never wrapped
    assert all(" err " in f for f in frames), frames          # errors so far, next to requests: never dropped first
    if columns == 80:
        assert all("p99" in f and "err" in f for f in frames), frames    # everything fits in 80 columns
    screen = pyte.Screen(columns, 24)
    pyte.ByteStream(screen).feed(raw)
    assert all(not line.strip() for line in screen.display), screen.display   # erased: no debris


def test_report_charts_take_the_terminal_width(cli, server):
    def chart_lines(columns: int) -> list[str]:
        # /sleep (50 ms an answer): a 2 s closed loop of ~40 req/s, not one spinning a core on /score
        out = cli("bench", "-u", server.url("/sleep"), "-k", KEY, "-d", "2", "-c", "2", timeout=60,
                  env={"COLUMNS": str(columns)}).out
        lines = out.splitlines()
        return lines[lines.index("  latency by percentile"):]

    narrow, wide = chart_lines(60), chart_lines(120)
    assert any("throughput over time" in line for line in narrow)
    assert max(map(len, narrow)) < 60, narrow                 # bars, axes and columns all fit
    assert max(map(len, wide)) < 120
    bar = [line for line in wide if line.lstrip().startswith("max ")][0]
    assert len(bar) > 90                                       # the widest bar uses the room it has
