"""`rtsctl bench` against a real aiohttp server on 127.0.0.1, run as a user runs it (CLI subprocess)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from test_bench_server import KEY, report, server, tls_server  # noqa: F401 - fixtures

from rtsctl.bench import histogram as H


def bench(cli, srv, *args, path="/score", key=KEY):
    base = ["bench", "-u", srv.url(path)]
    if key is not None:
        base += ["-k", key]
    return cli(*base, *args, timeout=60)


def test_seed_flags_send_exactly_threads_times_iterations(cli, server):
    # the passing thresholds of test_thresholds_set_exit_code_3 ride on this run (one bench call fewer): exit 0
    result = bench(cli, server, "-t", "4", "-i", "25", "--max-error-rate", "1%", "--max-p99", "5s", "-o", "json")
    assert result.code == 0, str(result)
    doc = report(result)
    assert all(t["ok"] for t in doc["thresholds"].values()) and set(doc["thresholds"]) == {"max_error_rate",
                                                                                          "max_p99_ms"}
    assert doc["requests"] == 100 and doc["ok"] == 100
    assert doc["status"] == {"200": 100}
    assert doc["errors"]["total"] == 0
    assert doc["latency_ms"]["count"] == 100
    assert server.hits["/score"] == 100
    assert doc["latency_ms"]["p50_ms"] <= doc["latency_ms"]["p99_ms"] <= doc["latency_ms"]["max_ms"]


def test_total_count_is_exact_across_workers_and_reconnects(cli, server):
    doc = report(bench(cli, server, "-n", "250", "-c", "8", "--workers", "2", "-o", "json"))
    assert doc["requests"] == 250 and doc["status"] == {"200": 250}
    assert doc["load"]["workers"] == 2
    assert server.hits["/score"] == 250
    # the server closes every connection after its answer: the client reconnects and the count stays exact
    doc = report(bench(cli, server, "-t", "3", "-i", "10", "-o", "json", path="/close"))
    assert doc["status"] == {"200": 30} and server.hits["/close"] == 30
    # chunked responses are framed correctly
    doc = report(bench(cli, server, "-t", "2", "-i", "20", "-o", "json", path="/chunked"))
    assert doc["status"] == {"200": 40} and doc["errors"]["total"] == 0


def test_wrong_key_counts_401s_and_says_so(cli, server):
    result = bench(cli, server, "-t", "4", "-i", "25", "-o", "json", key="wrong")
    doc = report(result)
    assert doc["requests"] == 100 and doc["ok"] == 0
    assert doc["status"] == {"401": 100}
    assert doc["errors"]["by_status"] == {"401": 100} and doc["errors"]["rate"] == 1.0
    assert result.code == 1                      # nothing succeeded
    assert "100 of 100 requests were refused with 401 Unauthorized: check the key" in result.err
    assert "Traceback" not in result.err
    text = bench(cli, server, "-n", "10", "--no-chart", key="wrong")
    assert "HTTP 401 Unauthorized: 10" in text.out


def test_thresholds_set_exit_code_3(cli, server):
    # thresholds that pass (exit 0) are checked on the run of test_seed_flags_send_exactly_threads_times_iterations
    slow = bench(cli, server, "-n", "50", "-c", "4", "--max-p99", "0.001ms")
    assert slow.code == 3, str(slow)
    assert "FAIL  p99" in slow.out
    errors = bench(cli, server, "-n", "50", "-c", "4", "--max-error-rate", "0.5", "-o", "json", key="wrong")
    assert errors.code == 3
    assert report(errors)["thresholds"]["max_error_rate"] == {"limit": 0.5, "value": 1.0, "ok": False}


def test_open_loop_keeps_the_rate_when_the_server_keeps_up(cli, server):
    doc = report(bench(cli, server, "--rate", "200", "-d", "3", "-c", "8", "-o", "json"))
    assert doc["load"]["rate"] == 200
    assert abs(doc["sent"] - 600) <= 30 and abs(doc["requests"] - 600) <= 30
    assert abs(doc["achieved_rate"] - 200) <= 10                  # within 5 %
    assert abs(doc["rps"] - 200) <= 10
    assert doc["unsent"] == 0 and doc["falling_behind"] is None
    assert doc["service_time_ms"]["count"] == doc["latency_ms"]["count"] == doc["requests"]
    full = [p for p in doc["timeline"] if p["len"] >= 0.9]
    assert full and all(abs(p["sent"] - 200) <= 12 for p in full)


def test_open_loop_reports_latency_growth_when_the_server_falls_behind(cli, server):
    # /slow serves ~20 req/s; asking 60 req/s for 3 s queues requests: latency from the intended send time grows
    result = bench(cli, server, "--rate", "60", "-d", "3", "-c", "4", "--timeout", "20", "-o", "json", path="/slow")
    doc = report(result)
    fb = doc["falling_behind"]
    assert fb and fb["behind"], doc
    assert fb["last_p50_ms"] > 3 * fb["first_p50_ms"]
    # corrected latency is far above the service time (what a closed-loop tool would have shown)
    assert doc["latency_ms"]["p99_ms"] > 5 * doc["service_time_ms"]["p50_ms"]
    assert "did not keep up with 60 req/s" in result.err
    p50s = [p["p50_ms"] for p in doc["timeline"] if "p50_ms" in p]
    assert p50s[-1] > p50s[0]


def test_merge_of_two_runs_equals_one_histogram_of_both(cli, server, tmp_path):
    a, b = tmp_path / "a.hlog", tmp_path / "b.hlog"
    ra = report(bench(cli, server, "-n", "300", "-c", "4", "--hdr-out", str(a), "-o", "json"))
    rb = report(bench(cli, server, "-n", "200", "-c", "2", "--hdr-out", str(b), "-o", "json", key="wrong"))
    merged = cli("bench", "merge", str(a), str(b), "-o", "json")
    doc = report(merged)
    assert doc["requests"] == 500 and doc["status"] == {"200": 300, "401": 200}
    both = H.decode(ra["histogram"])
    both.add(H.decode(rb["histogram"]))
    assert H.decode(doc["histogram"]).equals(both)
    assert doc["latency_ms"] == H.summarize(both)
    assert doc["target"]["sources"] == [str(a), str(b)]
    # the interval logs are standard HdrHistogram logs: their intervals add up to each run's histogram
    _, meta, intervals = H.read_log(a)
    one = H.new_hist()
    for _, _, h in intervals:
        one.add(h)
    assert one.equals(H.decode(ra["histogram"])) and meta["status"] == {"200": 300}
    bad = cli("bench", "merge", str(tmp_path / "missing.hlog"))
    assert bad.code == 1 and "missing.hlog: not found" in bad.err


def test_ctrl_c_prints_the_partial_report(cli, server):
    for extra in ([], ["--workers", "2"]):
        proc = subprocess.Popen([sys.executable, "-m", "rtsctl", "bench", "-u", server.url(), "-k", KEY, "-d", "60",
                                 "-c", "4", "--no-chart", *extra], cwd=cli.workdir, env=cli.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while server.hits["/score"] < 200 and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, f"{out}\n{err}"
        assert "requests" in out and "status     200×" in out
        assert "interrupted: partial results" in err
        assert "Traceback" not in err
        server.hits.clear()


def test_bad_input_gives_one_clear_line(cli, server, tmp_path):
    broken = tmp_path / "payload.json"
    broken.write_text('{"name": "x",,}')
    r = bench(cli, server, "--payload", str(broken), "-n", "5")
    assert r.code == 1 and "payload file" in r.err and "not valid JSON" in r.err and "line 1, column 14" in r.err
    assert "Traceback" not in r.err and server.hits["/score"] == 0
    lines = tmp_path / "many.jsonl"
    lines.write_text('{"name": "a"}\n{"name": \n')
    r = bench(cli, server, "--payload", str(lines), "-n", "5")
    assert r.code == 1 and "line 2: not valid JSON" in r.err
    for args, needle in ((["--template", "{\"name\": \"x\"}"], "--template must contain {i}"),
                         (["-t", "4", "-c", "8"], "-t (workers"),
                         (["-d", "ten"], "-d: 'ten' is not a duration"),
                         (["--rate", "10", "-i", "5"], "--rate sets the pace")):
        r = bench(cli, server, *args)
        assert r.code == 1 and needle in r.err, str(r)
    r = cli("bench", "-u", "ftp://x/", "-n", "1")
    assert r.code == 1 and "bad URL" in r.err


def test_unreachable_url_reports_what_it_measured(cli):
    import socket
    with socket.socket() as s:           # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cli("bench", "-u", f"http://127.0.0.1:{port}/score", "-k", KEY, "-n", "20", "-c", "4", "-o", "json")
    doc = report(r)
    assert r.code == 1
    assert doc["ok"] == 0 and doc["errors"]["by_kind"].get("connect: connection refused", 0) >= 4
    assert "could not get any answer" in r.err and "connection refused" in r.err and "is the endpoint running" in r.err


def test_timeouts_are_counted_and_the_connection_replaced(cli, server):
    doc = report(bench(cli, server, "-n", "4", "-c", "2", "--timeout", "0.3", "-o", "json", path="/hang"))
    assert doc["errors"]["by_kind"] == {"timeout": 4} and doc["requests"] == 4


def test_https_with_a_ca_bundle_and_a_clear_tls_error(cli, tls_server):
    ok = report(cli("bench", "-u", tls_server.url(), "-k", KEY, "-t", "2", "-i", "10", "--cacert", tls_server.cafile,
                    "-o", "json"))
    assert ok["status"] == {"200": 20}
    bad = cli("bench", "-u", tls_server.url(), "-k", KEY, "-n", "4", "-c", "2", "-o", "json")
    assert bad.code == 1
    assert "tls: certificate verify failed" in bad.err and "--cacert" in bad.err
    assert report(bad)["ok"] == 0


def test_template_varies_names_and_deployment_header_is_sent(cli, server):
    doc = report(bench(cli, server, "-n", "100", "-c", "4", "--workers", "2", "--template", '{"name": "user-{i}"}',
                       "-H", "azureml-model-deployment: green", "-o", "json"))
    assert doc["ok"] == 100
    assert sorted(server.names) == sorted(f"user-{i}" for i in range(100))
    assert server.hits["deployment:green"] == 100
    payloads = cli.workdir / "p.jsonl"
    payloads.write_text('{"name": "a"}\n{"name": "b"}\n')
    server.names.clear()
    bench(cli, server, "-n", "10", "-c", "1", "--payload", str(payloads))
    assert server.names == {"a": 5, "b": 5}


def test_text_report_and_html_report(cli, server, tmp_path):
    html = tmp_path / "r.html"
    # /sleep (50 ms an answer) keeps 4 connections at ~80 req/s: the same report and charts over the same 2.2 s,
    # without a closed loop spinning both cores on /score for the whole run (~2 s of CPU)
    r = bench(cli, server, "-d", "2.2", "-c", "4", "--html-out", str(html), "--progress", path="/sleep")
    assert r.code == 0, str(r)
    for needle in ("requests", "req/s", "latency by percentile", "throughput over time", "p99 latency over time"):
        assert needle in r.out
    assert "req/s" in r.err and "p99" in r.err           # progress lines (not a TTY: one per second)
    page = html.read_text()
    assert page.startswith("<!doctype html>") and page.count("<svg") >= 2 and "p99.9" in page
    assert os.path.getsize(html) < 200_000
    doc = report(bench(cli, server, "-n", "20", "-o", "json"))
    json.dumps(doc)
    assert set(doc) >= {"requests", "rps", "status", "errors", "latency_ms", "timeline", "histogram", "verdict"}
