"""What a finished Load Testing run reports, computed from the Locust CSV files of that run (never invented):
`testRunStatistics`, pass/fail criteria results, and the client metrics time series.

Sources:
  * statistics: keyed by request name plus "Total", fields transaction/sampleCount/errorCount/errorPct/meanResTime/
    medianResTime/maxResTime/minResTime/pct1ResTime/pct2ResTime/pct3ResTime/throughput/receivedKBytesPerSec/
    sentKBytesPerSec (recording azure-sdk-for-python sdk/loadtesting/azure-developer-loadtesting/tests/recordings/
    test_run_ops.pyTestRunOpstest_get_metrics.json); pct1/pct2/pct3 are p90/p95/p99 (Azure CLI load extension
    data_plane/utils/constants.py LoadTestTrendsKeys.RESPONSE_TIME_METRICS); pct75/pct96/pct97/pct98/pct999/pct9999
    per the SDK model TestRunStatistics (Locust reports 75/98/99.9/99.99 only, so 96/97 are absent). Locust does not
    count sent bytes: sentKBytesPerSec is 0.0, as in that recording; received = average content size x rate;
  * pass/fail: client metrics response_time_ms / latency (Locust has no separate latency: both use the response
    time -- guess), error (percentage), requests_per_sec (avg), requests (count); conditions '>' and '<'; a
    criterion whose condition holds FAILS the run (reference-test-config-yaml.md failureCriteria: "If one or more
    fail criteria are met, the test gets a failed test result"); result strings passed/failed/undetermined and
    testResult PASSED/FAILED/NOT_APPLICABLE (spec models PFResult / PFTestResult; NOT_APPLICABLE without criteria:
    the recording above). Action `stop` is not applied during the run (deviation);
  * metrics: namespace LoadTestRunMetrics (and EngineHealthMetrics, listed but empty), metrics VirtualUsers,
    ResponseTime, TotalRequests, Errors with the recorded definitions (same recording; dimension name: the spec
    example 2024-03-01-preview ListTestRunMetricsDefinitions.json says SamplerName, the 2023 recording RequestName --
    both are accepted in filters, SamplerName is what definitions list). Values per time grain from Locust's
    stats_history (one row a second): VirtualUsers = most users running in the grain; TotalRequests / Errors = new
    requests / failures in the grain; ResponseTime Average = mean of the grain's requests, Percentile90/95/99 =
    Locust's current percentile at the end of the grain (Locust keeps a ~10 s window: an approximation, say so).
    There is no RequestsPerSecond metric in the recorded definitions: a client divides TotalRequests by the grain.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

NAMESPACES = [{"description": "Load test run client metrics", "name": "LoadTestRunMetrics"},
              {"description": "Engine health metrics", "name": "EngineHealthMetrics"}]   # recorded (2023 recording)
GRAINS = {"PT5S": 5, "PT10S": 10, "PT1M": 60, "PT5M": 300, "PT1H": 3600}   # spec enum TimeGrain
DIMENSION = "SamplerName"
DIMENSION_ALIASES = {"samplername", "requestname"}
TOTAL = "Total"
LOCUST_TOTAL = "Aggregated"


def _definition(name: str, description: str, primary: str, supported: list[str], unit: str,
                errors_dimension: bool = False) -> dict:
    dimensions = [{"description": "Sampler Name", "name": DIMENSION}]
    if errors_dimension:
        dimensions.append({"description": "Error response code", "name": "Errors"})
    return {"dimensions": dimensions, "description": description, "name": name, "namespace": "LoadTestRunMetrics",
            "primaryAggregationType": primary, "supportedAggregationTypes": supported, "unit": unit,
            "metricAvailabilities": [{"timeGrain": g} for g in GRAINS]}


DEFINITIONS = [
    _definition("VirtualUsers", "No of concurrent virtual users", "Total", ["Total"], "Count"),
    _definition("ResponseTime", "Response time (Successful request)", "Percentile90",
                ["Average", "Percentile90", "Percentile95", "Percentile99"], "Milliseconds"),
    _definition("TotalRequests", "Total Requests", "Total", ["Total"], "Count"),
    _definition("Errors", "Total Errors", "Total", ["Total"], "Count", errors_dimension=True),
]


def number(value: str | None) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _stat(row: dict[str, str], name: str) -> dict:
    count = number(row.get("Request Count")) or 0.0
    failures = number(row.get("Failure Count")) or 0.0
    rate = number(row.get("Requests/s")) or 0.0
    size = number(row.get("Average Content Size")) or 0.0
    out = {"transaction": name, "sampleCount": count, "errorCount": failures,
           "errorPct": round(100.0 * failures / count, 2) if count else 0.0,
           "meanResTime": number(row.get("Average Response Time")),
           "medianResTime": number(row.get("Median Response Time")),
           "maxResTime": number(row.get("Max Response Time")), "minResTime": number(row.get("Min Response Time")),
           "pct1ResTime": number(row.get("90%")), "pct2ResTime": number(row.get("95%")),
           "pct3ResTime": number(row.get("99%")),
           "pct75ResTime": number(row.get("75%")), "pct98ResTime": number(row.get("98%")),
           "pct999ResTime": number(row.get("99.9%")), "pct9999ResTime": number(row.get("99.99%")),
           "throughput": round(rate, 2), "receivedKBytesPerSec": round(size * rate / 1024.0, 2),
           "sentKBytesPerSec": 0.0}
    return {k: v for k, v in out.items() if v is not None}


def statistics(rows: list[dict[str, str]]) -> dict[str, dict]:
    """testRunStatistics from Locust's results_stats.csv rows."""
    out: dict[str, dict] = {}
    for row in rows:
        name = row.get("Name") or ""
        if name == LOCUST_TOTAL and not row.get("Type"):
            out[TOTAL] = _stat(row, TOTAL)
        elif name:
            out[name] = _stat(row, name)
    return out


# -- pass/fail ------------------------------------------------------------------------------------
PERCENTILE_FIELDS = {"p50": "medianResTime", "p90": "pct1ResTime", "p95": "pct2ResTime", "p99": "pct3ResTime",
                     "avg": "meanResTime", "min": "minResTime", "max": "maxResTime"}
CLIENT_METRICS = {"response_time_ms", "latency", "error", "requests_per_sec", "requests"}


def criterion_problem(criterion: dict) -> str | None:
    """Why a passFailMetrics entry is refused at test creation (spec PassFailMetric doc: allowed aggregates per
    metric; conditions '>' / '<'), or None."""
    metric, aggregate, condition = criterion.get("clientMetric"), criterion.get("aggregate"), criterion.get("condition")
    allowed = {"response_time_ms": set(PERCENTILE_FIELDS), "latency": set(PERCENTILE_FIELDS), "error": {"percentage"},
               "requests_per_sec": {"avg"}, "requests": {"count"}}
    if metric not in CLIENT_METRICS:
        return f"clientMetric '{metric}' is not one of {sorted(CLIENT_METRICS)}"
    if aggregate not in allowed[metric]:
        return f"aggregate '{aggregate}' is not allowed for {metric} (allowed: {sorted(allowed[metric])})"
    if condition not in (">", "<"):
        return f"condition '{condition}' must be '>' or '<'"
    if not isinstance(criterion.get("value"), (int, float)):
        return "value must be a number"
    return None


def actual_value(stats: dict[str, dict], criterion: dict) -> float | None:
    stat = stats.get(criterion.get("requestName") or TOTAL)
    if stat is None:
        return None
    metric, aggregate = criterion["clientMetric"], criterion["aggregate"]
    if metric in ("response_time_ms", "latency"):
        return stat.get(PERCENTILE_FIELDS[aggregate])
    if metric == "error":
        return stat.get("errorPct")
    if metric == "requests_per_sec":
        return stat.get("throughput")
    return stat.get("sampleCount")


def judge(criteria: dict | None, stats: dict[str, dict]) -> tuple[dict, str]:
    """(passFailCriteria with actualValue/result filled, testResult)."""
    metrics = dict((criteria or {}).get("passFailMetrics") or {})
    if not metrics:
        return dict(criteria or {"passFailMetrics": {}}), "NOT_APPLICABLE"
    failed = False
    for key, criterion in metrics.items():
        criterion = dict(criterion)
        actual = actual_value(stats, criterion)
        if actual is None:
            criterion["result"] = "undetermined"
        else:
            crossed = actual > criterion["value"] if criterion["condition"] == ">" else actual < criterion["value"]
            criterion["actualValue"] = actual
            criterion["result"] = "failed" if crossed else "passed"
            failed = failed or crossed
        metrics[key] = criterion
    if not failed and all(c.get("result") == "undetermined" for c in metrics.values()):
        return {**(criteria or {}), "passFailMetrics": metrics}, "NOT_APPLICABLE"   # guess: nothing measured
    return {**(criteria or {}), "passFailMetrics": metrics}, "FAILED" if failed else "PASSED"


# -- metrics ------------------------------------------------------------------------------------------
def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_timespan(text: str | None) -> tuple[float, float] | None:
    """`{start}/{end}` in ISO 8601 (spec parameter `timespan`), as epoch seconds."""
    parts = (text or "").split("/")
    if len(parts) != 2:
        return None
    try:
        start, end = (datetime.fromisoformat(re.sub(r"Z$", "+00:00", p.strip())) for p in parts)
    except ValueError:
        return None
    start, end = (d if d.tzinfo else d.replace(tzinfo=UTC) for d in (start, end))
    return start.timestamp(), end.timestamp()


def _grain_value(metric: str, aggregation: str, rows: list[dict], before: dict | None) -> float | None:
    last = rows[-1]
    if metric == "VirtualUsers":
        return max((number(r.get("User Count")) or 0.0) for r in rows)
    total, failures = number(last.get("Total Request Count")) or 0.0, number(last.get("Total Failure Count")) or 0.0
    prev_total = (number(before.get("Total Request Count")) or 0.0) if before else 0.0
    prev_failures = (number(before.get("Total Failure Count")) or 0.0) if before else 0.0
    if metric == "TotalRequests":
        return total - prev_total
    if metric == "Errors":
        return failures - prev_failures
    if aggregation == "Average":
        mean = number(last.get("Total Average Response Time")) or 0.0
        prev_mean = (number(before.get("Total Average Response Time")) or 0.0) if before else 0.0
        new = total - prev_total
        return round((mean * total - prev_mean * prev_total) / new, 3) if new > 0 else None
    column = {"Percentile90": "90%", "Percentile95": "95%", "Percentile99": "99%"}.get(aggregation, "90%")
    return number(last.get(column))


def series(history: list[dict[str, str]], metric: str, aggregation: str | None, grain: int,
           span: tuple[float, float] | None, samplers: list[str] | None) -> list[dict]:
    """TimeSeriesElement list for one metric: one element per sampler (or one for all requests)."""
    aggregation = aggregation or next(d["primaryAggregationType"] for d in DEFINITIONS if d["name"] == metric)
    names = samplers or [None]
    out = []
    for sampler in names:
        wanted = LOCUST_TOTAL if sampler is None else sampler
        rows = [r for r in history if r.get("Name") == wanted and (sampler is not None or not r.get("Type"))]
        if sampler is not None:
            # per-request rows carry no user count: take it from the Aggregated rows of the same second
            users = {r.get("Timestamp"): r.get("User Count") for r in history if r.get("Name") == LOCUST_TOTAL}
            rows = [{**r, "User Count": users.get(r.get("Timestamp"), r.get("User Count"))} for r in rows]
        buckets: dict[int, list[dict]] = {}
        for row in rows:
            ts = number(row.get("Timestamp"))
            if ts is None or (span and not span[0] <= ts <= span[1]):
                continue
            buckets.setdefault(int(ts // grain) * grain, []).append(row)
        data, before = [], None
        for start in sorted(buckets):
            value = _grain_value(metric, aggregation, buckets[start], before)
            before = buckets[start][-1]
            if value is not None:
                data.append({"timestamp": iso(start), "value": value})
        element: dict = {"data": data, "dimensionValues": []}
        if sampler is not None:
            element["dimensionValues"] = [{"name": DIMENSION, "value": sampler}]
        out.append(element)
    return out
