"""One `rtsctl bench` run: config -> engine(s) -> result document -> report, files, exit code."""

from __future__ import annotations

import sys
import time

from rtsctl.bench import histogram as H
from rtsctl.bench.aggregate import Aggregator
from rtsctl.bench.config import BenchConfig
from rtsctl.bench.progress import Progress
from rtsctl.bench.runner import Phase
from rtsctl.bench.summary import build, merge_results, thresholds, verdict
from rtsctl.bench.wire import parse_url, request_head
from rtsctl.bench.workers import RunSpec, run_here, run_workers
from rtsctl.support.errors import RtsctlError


def _spec(cfg: BenchConfig) -> RunSpec:
    target = parse_url(cfg.url)
    headers = {}
    if cfg.key:
        headers["Authorization"] = f"Bearer {cfg.key}"
    if cfg.bodies != [""] or cfg.template:
        headers["Content-Type"] = cfg.content_type
    if cfg.deployment:
        headers["azureml-model-deployment"] = cfg.deployment
    headers.update(cfg.headers)
    total = cfg.total
    if cfg.per_conn is not None:
        total = cfg.per_conn * cfg.concurrency
    measure = Phase(duration=cfg.duration, total=total, per_conn=cfg.per_conn, rate=cfg.rate, stages=cfg.stages)
    warmup = Phase(duration=cfg.warmup, rate=cfg.rate, record=False) if cfg.warmup else None
    return RunSpec(target=target, verify=cfg.verify, head=request_head(target, cfg.method, headers),
                   method=cfg.method, bodies=cfg.bodies, template=cfg.template, concurrency=cfg.concurrency,
                   timeout=cfg.timeout, measure=measure, warmup=warmup, workers=cfg.workers)


def describe(cfg: BenchConfig) -> tuple[dict, dict]:
    target = {"url": cfg.url}
    if cfg.endpoint:
        target["endpoint"] = cfg.endpoint
    if cfg.deployment:
        target["deployment"] = cfg.deployment
    load = {"mode": "open" if cfg.open_loop else "closed", "connections": cfg.concurrency, "workers": cfg.workers,
            "method": cfg.method, "timeout_s": cfg.timeout}
    for key, value in (("rate", cfg.rate), ("stages", cfg.stages_text), ("duration_s", cfg.duration),
                       ("per_connection", cfg.per_conn),
                       ("requests", cfg.expected_requests if cfg.duration is None else None),
                       ("warmup_s", cfg.warmup or None), ("template", cfg.template)):
        if value is not None:
            load[key] = value
    if cfg.bodies and len(cfg.bodies) > 1:
        load["payloads"] = len(cfg.bodies)
    return target, load


def log_meta(doc: dict, start_epoch: float) -> dict:
    """What an interval log carries beside its histograms, so `bench merge` can rebuild the whole report."""
    keep = ("target", "load", "status", "samples", "duration_s", "sent", "unsent", "cancelled", "interrupted")
    meta = {k: doc[k] for k in keep}
    meta["errors"] = doc["errors"]["by_kind"]
    meta["start_epoch"] = start_epoch
    meta["timeline"] = [[p["t"], p.get("len", 1.0), p["ok"], p["errors"], p["sent"], p.get("queued", 0)]
                        for p in doc["timeline"]]
    if "service_histogram" in doc:
        meta["service_histogram"] = doc["service_histogram"]
    meta["version"] = 1
    return meta


def emit(doc: dict, cfg_output: str, chart: bool, html_out: str | None, max_error_rate, max_p99_ms,
         extra_writes=()) -> int:
    """Thresholds, verdict, files, report on stdout, diagnostics on stderr -> exit code."""
    from rtsctl.bench.report import to_json, to_text
    doc["thresholds"] = thresholds(doc, max_error_rate, max_p99_ms)
    doc["verdict"], code = verdict(doc)
    failures = []
    writes = list(extra_writes)
    if html_out:
        from rtsctl.bench.html import write_html
        writes.append(saying(lambda: write_html(html_out, doc), "the HTML report", html_out))
    wrote = []
    for write in writes:
        try:
            wrote.append(write())
        except OSError as exc:
            failures.append(f"cannot write {exc.filename}: {exc.strerror}")
    out = to_json(doc) + "\n" if cfg_output == "json" else to_text(doc, chart=chart)
    sys.stdout.write(out)
    sys.stdout.flush()
    for msg in doc["messages"] + failures + [w for w in wrote if w]:
        print(f"rtsctl bench: {msg}", file=sys.stderr)
    if failures and code == 0:
        code = 1
    return code


def saying(write, what: str, path: str):
    """A file write that, once done, says what it wrote where (the path in full, so it can be opened)."""
    import os

    def run() -> str:
        write()
        return f"wrote {what} to {os.path.abspath(path)}"

    return run


def execute(cfg: BenchConfig) -> int:
    if cfg.engine == "locust":
        from rtsctl.bench.locust.run import measure as on_locust
        doc, writes = on_locust(cfg, *describe(cfg))
    else:
        doc, writes = measure(cfg)
    return emit(doc, cfg.output, cfg.chart, cfg.html_out, cfg.max_error_rate, cfg.max_p99_ms, writes)


def measure(cfg: BenchConfig) -> tuple[dict, list]:
    """One run -> (result document, pending file writes); also what a rollout gate runs (rtsctl.rollout.gates)."""
    spec = _spec(cfg)
    progress = Progress(cfg.progress, cfg.expected_requests)
    agg = Aggregator(cfg.workers, keep_log=bool(cfg.hdr_out), on_interval=progress)
    try:
        if cfg.workers == 1:
            result = run_here(spec, agg)
            agg.finish(0, result)
            results = [result]
        else:
            results = run_workers(spec, agg)
    finally:
        agg.close()
        progress.clear()
    totals = merge_results(results)
    start_epoch = time.time() - totals["elapsed"]
    hist = H.to_hist(agg.lat)
    svc = H.to_hist(agg.svc) if cfg.open_loop else None
    target, load = describe(cfg)
    doc = build(target, load, totals, hist, svc, agg.timeline, agg.sent)
    writes = []
    if cfg.hdr_out:
        writes.append(saying(lambda: H.write_log(cfg.hdr_out, start_epoch, agg.log, log_meta(doc, start_epoch)),
                             "the interval log", cfg.hdr_out))
    if totals["connected"] == 0 and doc["requests"] == 0 and not totals["interrupted"]:
        raise RtsctlError(f"no connection to {cfg.url} could be opened")
    return doc, writes
