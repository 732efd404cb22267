"""`rtsctl bench --engine azure-load-testing`: the bench's Locust script run by a managed load service on N engines
(Azure Load Testing), watched live, judged and reported as any bench run.

The service is reached through the backend (`Backend.load_service`, reconcilers/azure/load_runs.py), which hands
plain dicts back: this module owns what every engine shares -- the bundle (the locustfile and its config, from
rtsctl.bench.locust.script), thresholds mapped onto the service's pass/fail criteria AND checked here on the
figures it reports, the live progress line, the result document (rtsctl's text/JSON/HTML report, with the
portal's link to the run) and the exit codes: 0 ok, 1 error, 3 a threshold crossed, 130 interrupted (Ctrl-C
stops the service's run first).
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from rtsctl.bench.config import BenchConfig
from rtsctl.bench.locust.script import KEY_VARIABLE
from rtsctl.bench.report import printable
from rtsctl.support.errors import RtsctlError

ENGINE = "azure-load-testing"
#: engine instances per test run (azure-developer-loadtesting models LoadTestConfiguration.engine_instances:
#: "Supported values are in range of 1-400")
MAX_ENGINES = 400
STOP_WAIT_S = 300.0        # after a Ctrl-C, how long the service may take to wind its engines down
#: the service's terminal run states (azure-developer-loadtesting _operations/_patch.py TestRunStatusPoller)
DONE = frozenset({"DONE", "FAILED", "CANCELLED"})
LINE_EVERY_S = 1.0         # off a terminal, at most one progress line a second (the native engine's pace)
GRAIN_S = 5.0              # the finest grain of the service's client metrics (ListTestRunMetricsDefinitions.json)
#: what the live line reads while the engines run (a run's statistics only come at its end)
LIVE = (("TotalRequests", "Total"), ("Errors", "Total"), ("ResponseTime", "Percentile99"))
FIGURES_NOTE = ("counts and percentiles as the service aggregated them over all engines (no HDR histogram: no "
                "percentile plot); the timeline is its 5-second client metrics, where a mean stands for p50")


class LoadService(Protocol):
    """What a backend's load testing service offers a bench run (reconcilers/azure/load_runs.AzureLoadTesting)."""

    address: str
    poll_interval: float

    def store_key(self, endpoint: str, key: str) -> str: ...
    def prepare(self, test_id: str, *, display: str, files: Mapping[str, bytes], script: str, secret_uri: str,
                secret_env: str, key: str | None, engines: int, regions: Sequence[str],
                criteria: Mapping[str, Any]) -> dict: ...
    def start(self, test_id: str, run_id: str, display: str) -> None: ...
    def status(self, run_id: str) -> dict: ...
    def stop(self, run_id: str) -> None: ...
    def metrics(self, run_id: str, start: str, end: str,
                wanted: Sequence[tuple[str, str]] = ...) -> dict[str, dict[str, float]]: ...
    def download(self, run: Mapping[str, Any], dest: Path) -> list[Path]: ...
    def close(self) -> None: ...


@dataclass
class CloudRun:
    """The cloud-only choices of one run (the load shape itself is the BenchConfig's)."""

    engines: int = 1
    regions: tuple[str, ...] = ()
    test_id: str = ""
    results_dir: str | None = None
    poll_s: float = 5.0


def parse_regions(text: str | None) -> tuple[str, ...]:
    """--regions eastus,westeurope -> ('eastus', 'westeurope'); Azure region names are lower-case letters and
    digits (azure-docs: `az account list-locations --query [].name`)."""
    if not text:
        return ()
    import re

    regions = tuple(r.strip().lower() for r in text.split(",") if r.strip())
    bad = [r for r in regions if not re.fullmatch(r"[a-z][a-z0-9]{1,39}", r)]
    if bad or not regions:
        raise RtsctlError(f"--regions: {bad[0] if bad else text!r} is not an Azure region name "
                          "(e.g. eastus,westeurope)")
    if len(set(regions)) != len(regions):
        raise RtsctlError("--regions: a region is named twice")
    return regions


def default_test_id(endpoint: str) -> str:
    """rtsctl-<endpoint>, lower-cased: the data plane's test ids are lower-case (rtsctl.manifest.names load_test_id)."""
    return f"rtsctl-{endpoint}".lower()[:50]


def criteria(cfg: BenchConfig) -> dict[str, dict[str, Any] | None]:
    """--max-error-rate / --max-p99 as the service's pass/fail criteria (azure-developer-loadtesting models
    PassFailMetric: clientMetric error|response_time_ms, aggregate percentage|p99, condition '>'). The test is
    updated by JSON merge patch, so a threshold this run does not set is sent as null: a reused test keeps no
    criterion of an earlier run."""
    out: dict[str, dict[str, Any] | None] = {"rtsctl-max-error-rate": None, "rtsctl-max-p99": None}
    if cfg.max_error_rate is not None:
        out["rtsctl-max-error-rate"] = {"clientMetric": "error", "aggregate": "percentage", "condition": ">",
                                        "value": round(cfg.max_error_rate * 100.0, 6), "action": "continue"}
    if cfg.max_p99_ms is not None:
        out["rtsctl-max-p99"] = {"clientMetric": "response_time_ms", "aggregate": "p99", "condition": ">",
                                 "value": cfg.max_p99_ms, "action": "continue"}
    return out


def bundle(cfg: BenchConfig) -> tuple[dict[str, bytes], str]:
    """The locustfile and its config JSON, as the locust engine writes them (one generator for both engines):
    ({file name: bytes}, the script's name)."""
    from rtsctl.bench.locust.script import bench_config, write_bundle

    with tempfile.TemporaryDirectory(prefix="rtsctl-bench-") as folder:
        paths = write_bundle(Path(folder), bench_config(cfg))
        files = {p.name: p.read_bytes() for p in paths}
    script = next((n for n in files if n.endswith(".py")), None)
    if script is None:
        raise RtsctlError("the Locust bundle holds no script")
    return files, script


def execute(cfg: BenchConfig, service: LoadService, run: CloudRun) -> int:
    """Prepare the test, run it, watch it, report it -> the bench exit code."""
    from rtsctl.bench.session import emit

    doc, writes = measure(cfg, service, run)
    code = emit(doc, cfg.output, cfg.chart, cfg.html_out, cfg.max_error_rate, cfg.max_p99_ms, writes)
    return judged(doc, code)


def measure(cfg: BenchConfig, service: LoadService, run: CloudRun) -> tuple[dict, list]:
    """One run on the service -> (result document, pending file writes); also what a rollout gate with
    `engine: azure-load-testing` runs (rtsctl.rollout.gates)."""
    if not 1 <= run.engines <= MAX_ENGINES:
        raise RtsctlError(f"--engines must be 1-{MAX_ENGINES}")
    if isinstance(cfg.verify, str):  # a CA file of THIS machine (REQUESTS_CA_BUNDLE): the engines use their own store
        cfg = replace(cfg, verify=True)
    files, script = bundle(cfg)
    endpoint = cfg.endpoint or "endpoint"
    if not cfg.key:
        raise RtsctlError(f"endpoint {endpoint} gave no key: the azure-load-testing engine hands the engines a key "
                          "through Key Vault")
    secret_uri = service.store_key(endpoint, cfg.key)
    display = f"rtsctl bench {endpoint}"
    service.prepare(run.test_id, display=display, files=files, script=script, secret_uri=secret_uri,
                    secret_env=KEY_VARIABLE, key=cfg.key, engines=run.engines, regions=run.regions,
                    criteria=criteria(cfg))
    run_id = f"rtsctl-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
    try:
        service.start(run.test_id, run_id, display)
    except KeyboardInterrupt:  # the run may exist already: it must not load the endpoint with nobody watching
        try:
            service.stop(run_id)
        except RtsctlError:
            pass  # never started
        raise
    final, interrupted = watch(service, run_id, run.poll_s, cfg.progress)
    doc = document(cfg, run, final, service, run_id, interrupted)
    notes = run_notes(final, run_id, interrupted)
    if run.results_dir and not interrupted:  # downloaded now: the report prefers the per-request results in them
        dest = Path(run.results_dir)
        doc = per_request(doc, service.download(final, dest))
        notes.append(f"wrote the service's result files to {dest.resolve()}")
    doc["messages"] = notes + doc["messages"]
    return doc, []


def watch(service: LoadService, run_id: str, poll_s: float, progress_on: bool | None) -> tuple[dict, bool]:
    """Poll the run until the service ends it, showing its status and figures; Ctrl-C stops the service's run
    (then waits for it to wind down) -> (the last run state, interrupted)."""
    from rtsctl.bench.progress import Progress

    progress = Progress(progress_on)
    # shown: when the last line was drawn, when the metrics were last read, the figures they gave
    interrupted, stop_deadline, said, shown = False, None, "", [float("-inf"), float("-inf"), {}]
    began = time.monotonic()
    try:
        while True:
            try:
                state = service.status(run_id)
                status = str(state.get("status", "")).upper()
                if status != said and progress.enabled:  # the service's phases: provisioning, executing, ...
                    progress.clear()
                    print(f"rtsctl bench: {service.address} run {run_id}: {status}", file=sys.stderr)
                said = status
                if status in DONE:
                    return state, interrupted
                show(progress, live(service, run_id, state, shown), time.monotonic() - began, shown)
                if stop_deadline is not None and time.monotonic() > stop_deadline:
                    raise RtsctlError(f"{service.address} run {run_id}: still {state.get('status')} "
                                      f"{STOP_WAIT_S:g} s after it was asked to stop; see the portal")
                time.sleep(poll_s)
            except KeyboardInterrupt:
                if interrupted:  # a second Ctrl-C: stop waiting for the service
                    raise
                interrupted, stop_deadline = True, time.monotonic() + STOP_WAIT_S
                progress.clear()
                print(f"rtsctl bench: interrupted: stopping {service.address} run {run_id} ...", file=sys.stderr)
                service.stop(run_id)
    finally:
        progress.clear()


class _Counts:
    """What Progress reads off an aggregator: requests and errors so far."""

    def __init__(self, done: int, errors: int):
        self.done_requests, self.done_errors = done, errors


def live(service: LoadService, run_id: str, state: Mapping[str, Any], shown: list[float]) -> Mapping[str, Any]:
    """The run's figures so far: its statistics when the service gives them, else (while the engines run) the sum
    of its client metrics, read once per grain; a metrics read that fails only leaves the line as it was."""
    if (state.get("testRunStatistics") or {}).get("Total") or str(state.get("status")).upper() != "EXECUTING":
        return state
    if not state.get("startDateTime") or time.monotonic() - shown[1] < GRAIN_S:
        return {**state, "testRunStatistics": {"Total": shown[2]}}
    shown[1] = time.monotonic()
    try:
        now = datetime.now(timezone.utc).isoformat()
        series = service.metrics(run_id, str(state["startDateTime"]), now, LIVE)
    except RtsctlError:
        return state
    requests, errors = series.get("TotalRequests/Total") or {}, series.get("Errors/Total") or {}
    p99 = series.get("ResponseTime/Percentile99") or {}
    last = max(requests, key=_instant, default=None)
    shown[2] = {"sampleCount": sum(requests.values()), "errorCount": sum(errors.values()),
                "throughput": requests[last] / GRAIN_S if last else 0.0,
                **({"pct3ResTime": p99[last], "medianResTime": None} if last in p99 else {})}
    return {**state, "testRunStatistics": {"Total": shown[2]}}


def show(progress: Any, state: Mapping[str, Any], elapsed: float, last: list) -> None:
    """The progress line from the service's figures so far; off a terminal at most one line per LINE_EVERY_S."""
    if not progress.tty and elapsed - last[0] < LINE_EVERY_S:
        return
    last[0] = elapsed
    total = (state.get("testRunStatistics") or {}).get("Total") or {}
    requests, errors = int(total.get("sampleCount") or 0), int(total.get("errorCount") or 0)
    point = {"t": elapsed, "rps": float(total.get("throughput") or 0.0)}
    if total.get("pct3ResTime") is not None:
        point["p99_ms"] = float(total["pct3ResTime"])
        if total.get("medianResTime") is not None:
            point["p50_ms"] = float(total["medianResTime"])
    progress(point, _Counts(requests, errors))


def document(cfg: BenchConfig, run: CloudRun, state: Mapping[str, Any], service: LoadService, run_id: str,
             interrupted: bool) -> dict:
    """The bench result document from the service's own figures: totals and percentiles of its "Total" sampler,
    the timeline from its 5-second client metrics."""
    from rtsctl.bench.locust.results import PACING_NOTE
    from rtsctl.bench.session import describe
    from rtsctl.bench.summary import diagnose

    status = str(state.get("status", "")).upper()
    stats = (state.get("testRunStatistics") or {}).get("Total") or {}
    requests, errors = int(stats.get("sampleCount") or 0), int(stats.get("errorCount") or 0)
    ok = max(requests - errors, 0)
    # the service's throughput is its own requests/s while loading; the run's duration also counts provisioning
    throughput = float(stats.get("throughput") or 0.0)
    duration = requests / throughput if throughput > 0 else float(state.get("duration") or 0.0) / 1000.0 \
        or _seconds(state)
    target, load = describe(cfg)
    notes = [FIGURES_NOTE] + ([PACING_NOTE] if cfg.open_loop else [])
    load.update(engine=ENGINE, engines=run.engines, notes=notes,
                **({"regions": list(run.regions)} if run.regions else {}))
    latency: dict[str, Any] = {"count": requests}
    for key, field in (("min_ms", "minResTime"), ("mean_ms", "meanResTime"), ("p50_ms", "medianResTime"),
                       ("p90_ms", "pct1ResTime"), ("p99_ms", "pct3ResTime"), ("p99.9_ms", "pct999ResTime"),
                       ("max_ms", "maxResTime")):
        if stats.get(field) is not None:
            latency[key] = float(stats[field])
    if not requests:
        latency = {"count": 0}
    doc: dict[str, Any] = {
        "target": target, "load": load, "requests": requests, "ok": ok,
        "errors": {"total": errors, "rate": round(errors / requests, 6) if requests else 0.0, "by_status": {},
                   "by_kind": {"not 2xx (the service counts every failure together)": errors} if errors else {}},
        "status": {"2xx": ok} if ok else {}, "samples": {}, "duration_s": round(duration, 3),
        "rps": round(throughput or (requests / duration if duration > 0 else 0.0), 1), "sent": requests, "unsent": 0,
        "cancelled": 0, "interrupted": interrupted, "latency_ms": latency,
        "timeline": timeline(service, run_id, state), "histogram": "",
        "service": {"name": "Azure Load Testing", "resource": service.address, "test_id": run.test_id,
                    "run_id": run_id, "status": status, "test_result": state.get("testResult"),
                    "portal_url": state.get("portalUrl"), "virtual_users": state.get("virtualUsers")},
    }
    doc["messages"] = [m for m in diagnose(doc) if not m.startswith("interrupted")]
    return doc


def run_notes(state: Mapping[str, Any], run_id: str, interrupted: bool) -> list[str]:
    """What the report says about the service's run: where to see it, why it failed, that it was stopped."""
    notes = []
    if state.get("portalUrl"):
        notes.append(f"the run in the Azure portal: {printable(state['portalUrl'])}")
    if str(state.get("status", "")).upper() == "FAILED":
        details = "; ".join(printable((e or {}).get("message") or e)[:500] for e in state.get("errorDetails") or [])
        notes.append(f"the service failed the run {run_id}" + (f": {details}" if details else ""))
    if interrupted:
        notes.append(f"interrupted: the service's run {run_id} was stopped; partial figures")
    return notes


def per_request(doc: dict, archives: Sequence[Path]) -> dict:
    """`doc` recomputed from the per-request results among the service's archives -- JMeter CSV logs, one per
    engine (learn.microsoft.com/azure/load-testing/how-to-export-test-results) -- through the locust engine's
    converter: an exact count per status, a histogram and a per-second timeline instead of the service's
    aggregates. `doc` as it is when the archives hold no such log."""
    from rtsctl.bench.locust.results import JTL_NOTE, PACING_NOTE, entries_from_jtl, to_doc

    with tempfile.TemporaryDirectory(prefix="rtsctl-results-") as folder:
        logs = jtl_logs(archives, Path(folder))
        if not logs:
            return doc
        load = {k: v for k, v in doc["load"].items() if k not in ("engine", "notes")}
        exact = to_doc(entries_from_jtl(logs), doc["target"], load, doc["interrupted"], figures=JTL_NOTE)
    exact["load"].pop("locust", None)
    exact["load"].update(engine=ENGINE, notes=[JTL_NOTE] + ([PACING_NOTE] if doc["load"].get("rate") else []))
    exact["service"] = doc["service"]
    return exact


def jtl_logs(archives: Sequence[Path], folder: Path) -> list[Path]:
    """The CSV members of the archives whose header is a JMeter CSV log's (timeStamp, elapsed, ...), copied into
    `folder` (bounded: a member larger than the converter reads is refused, not unpacked)."""
    import shutil
    import zipfile

    from rtsctl.bench.locust.results import MAX_JTL_BYTES

    out: list[Path] = []
    for archive in archives:
        if not zipfile.is_zipfile(archive):
            continue
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                if info.is_dir() or not info.filename.lower().endswith(".csv"):
                    continue
                with zipped.open(info) as member:
                    header = member.readline(4096).decode("utf-8", "replace").split(",")
                if "timeStamp" not in header or "elapsed" not in header:
                    continue
                if info.file_size > MAX_JTL_BYTES:
                    raise RtsctlError(f"{archive.name}: {info.filename} is larger than {MAX_JTL_BYTES >> 30} GiB")
                target = folder / f"{len(out)}.csv"   # the member's own name is the archive's, never a path here
                with zipped.open(info) as member, open(target, "wb") as copy:
                    shutil.copyfileobj(member, copy)
                out.append(target)
    return out


def judged(doc: dict, code: int) -> int:
    """The exit code, with the service's own verdict on the same thresholds: a run the service failed (its run,
    or its pass/fail criteria) is not reported as a success."""
    service = doc.get("service") or {}
    if code in (0, 3) and str(service.get("test_result") or "").upper() == "FAILED" and doc.get("thresholds"):
        if code == 0:
            print("rtsctl bench: Azure Load Testing's pass/fail criteria failed the run (its own figures): "
                  "threshold crossed", file=sys.stderr)
        return 3
    if code == 0 and service.get("status") == "FAILED":
        return 1
    return code


def timeline(service: LoadService, run_id: str, state: Mapping[str, Any]) -> list[dict]:
    """One point per 5 s of the run from the service's client metrics (requests, errors, response times);
    empty when it has none to give (a run that never started)."""
    start, end = state.get("startDateTime"), state.get("endDateTime")
    if not start or not end:
        return []
    series = service.metrics(run_id, str(start), str(end))
    requests, errors = series.get("TotalRequests/Total") or {}, series.get("Errors/Total") or {}
    mean, p90, p99 = (series.get(f"ResponseTime/{a}") or {} for a in ("Average", "Percentile90", "Percentile99"))
    began = _instant(start)
    points = []
    for stamp in sorted(set(requests) | set(errors), key=_instant):
        total, bad = int(requests.get(stamp, 0)), int(errors.get(stamp, 0))
        point = {"t": round(_instant(stamp) - began + GRAIN_S, 3), "len": GRAIN_S, "ok": max(total - bad, 0),
                 "errors": bad, "sent": total, "rps": round(total / GRAIN_S, 1)}
        if stamp in p99:  # the service gives mean/p90/p99 per grain: its mean stands where rtsctl shows a p50
            point.update(p50_ms=mean.get(stamp, 0.0), p90_ms=p90.get(stamp, 0.0), p99_ms=p99[stamp])
        points.append(point)
    return points


def _instant(stamp: Any) -> float:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _seconds(state: Mapping[str, Any]) -> float:
    start, end = state.get("startDateTime"), state.get("endDateTime")
    return max(_instant(end) - _instant(start), 0.0) if start and end else 0.0
