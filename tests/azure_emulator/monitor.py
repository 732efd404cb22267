"""Azure Monitor's metrics API for online endpoints: GET {resourceUri}/providers/Microsoft.Insights/metrics.

Shape: azure-rest-api-specs monitor/resource-manager/Microsoft.Insights/stable/2024-02-01/metrics_API.json and its
example GetMetric.json (`cost`, `timespan`, `interval`, `namespace`, `resourceregion`, `value[]` of metrics with
`name{value, localizedValue}`, `unit`, `timeseries[]` of `metadatavalues` (dimension names lower-cased, as the
example answers `tier` to a `Tier` filter) and `data[]` per time grain, `errorCode: Success`).
The metric set, dimensions and aggregations of onlineEndpoints: MicrosoftDocs azure-monitor-docs
reference/supported-metrics/microsoft-machinelearningservices-workspaces-onlineendpoints-metrics.md.
An unknown metric is 400 with the flat `{"code": "BadRequest", "message": "Failed to find metric configuration
for provider: ..., Valid metrics: ..."}` that Azure answers (the wording monitoring agents parse, e.g.
Checkmk's agent_azure `_get_available_metrics_from_exception`). An unsupported aggregation is 400 BadRequest too;
its wording is a guess.
A Kubernetes endpoint's RequestsPerMinute has no series (`_kubernetes`). Counts come from the data plane's tallies
(dataplane.py), so they are available at once: real Azure Monitor ingests
a minute or more late (see reconcilers/azure/metrics.py), a deliberate simplification here.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from aiohttp import web

from .errors import json_response
from .ids import ArmPath

NAMESPACE = "microsoft.machinelearningservices/workspaces/onlineendpoints"
#: metric -> (unit, supported aggregations, dimensions), from the supported-metrics page
METRICS = {
    "ConnectionsActive": ("Count", {"average"}, ()),
    "NetworkBytes": ("BytesPerSecond", {"average"}, ()),
    "NewConnectionsPerSecond": ("CountPerSecond", {"average"}, ()),
    "RequestLatency": ("Milliseconds", {"average"}, ("deployment",)),
    "RequestLatency_P50": ("Milliseconds", {"average"}, ("deployment",)),
    "RequestLatency_P90": ("Milliseconds", {"average"}, ("deployment",)),
    "RequestLatency_P95": ("Milliseconds", {"average"}, ("deployment",)),
    "RequestLatency_P99": ("Milliseconds", {"average"}, ("deployment",)),
    "RequestsPerMinute": ("Count", {"average"}, ("deployment", "statusCode", "statusCodeClass", "modelStatusCode")),
}
MAX_POINTS = 1440       # guess: a day of minutes per answer; Azure's own limit is not documented on the page
_CLAUSE = re.compile(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)


def _bad(message: str) -> web.Response:
    return json_response({"code": "BadRequest", "message": message}, status=400)


def _parse_filter(text: str) -> dict[str, str] | None:
    """`deployment eq 'blue' and statusCode eq '*'` -> {"deployment": "blue", "statuscode": "*"}; None if not
    of that shape (or/not/parentheses are not modelled)."""
    found: dict[str, str] = {}
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE) if text.strip() else []:
        match = _CLAUSE.fullmatch(clause)
        if not match:
            return None
        found[match[1].lower()] = match[2].replace("''", "'")
    return found


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def list_metrics(ctx, resource: ArmPath, query) -> web.Response:
    if not ctx.store.exists(resource.path):
        return json_response({"error": {"code": "ResourceNotFound", "message":
                              f"The Resource '{resource.path}' was not found."}}, status=404)
    if not resource.type_key().endswith("/onlineendpoints"):
        return _bad(f"The emulator keeps metrics of online endpoints only, not of {resource.arm_type()}.")
    names = [n.strip() for n in (query.get("metricnames") or "").split(",") if n.strip()]
    known = {n.lower(): n for n in METRICS}
    unknown = [n for n in names if n.lower() not in known]
    if not names or unknown:
        return _bad("Failed to find metric configuration for provider: Microsoft.MachineLearningServices, resource "
                    f"Type: workspaces/onlineEndpoints, metric: {','.join(unknown) or '(none)'}, Valid metrics: "
                    f"{','.join(METRICS)}")
    interval = query.get("interval") or "PT1M"
    if interval.upper() != "PT1M":
        return _bad(f"Invalid time grain {interval}: online endpoint metrics are sampled per minute (PT1M) only "
                    "in the emulator.")  # guess: Azure aggregates coarser grains; not modelled
    now = datetime.now(timezone.utc)
    try:
        start, end = (_when(part) for part in query["timespan"].split("/")) if query.get("timespan") else \
            (now - timedelta(hours=1), now)
    except (ValueError, KeyError):
        return _bad(f"Invalid timespan {query.get('timespan')!r}: expected startDateTime_ISO/endDateTime_ISO.")
    start, end = start.replace(second=0, microsecond=0), end
    points = int((end - start).total_seconds() // 60) + (1 if (end - start).total_seconds() % 60 else 0)
    if not 0 < points <= MAX_POINTS:
        return _bad(f"Invalid timespan {query.get('timespan')!r}: the end must follow the start, within "
                    f"{MAX_POINTS} minutes.")
    wanted = {a.strip().lower() for a in (query.get("aggregation") or "average").split(",")}
    filters = _parse_filter(query.get("$filter") or "")
    if filters is None:
        return _bad(f"Invalid $filter {query.get('$filter')!r}: the emulator takes \"dim eq 'value'\" clauses "
                    "joined by 'and'.")
    minutes = [int(start.timestamp()) // 60 + i for i in range(points)]
    value = []
    for name in (known[n.lower()] for n in names):
        unit, aggregations, dims = METRICS[name]
        if not wanted <= aggregations:
            return _bad(f"Metric {name} does not support the aggregation(s) {', '.join(sorted(wanted - aggregations))}"
                        f"; supported: {', '.join(sorted(aggregations))}.")  # wording: guess
        bad_dims = [d for d in filters if d not in {x.lower() for x in dims}]
        if bad_dims:
            return _bad(f"Metric {name} has no dimension {', '.join(bad_dims)}; its dimensions: {', '.join(dims)}.")
        counted = name == "RequestsPerMinute" and not _kubernetes(ctx, resource)
        series = _series(ctx, resource, name, filters, minutes) if counted else []
        # metrics_API.json parameter `top`: "the maximum number of records to retrieve per resource ID ... Valid
        # only if $filter is specified. Defaults to 10." (which series are kept when cut: guess, in sorted order)
        series = series[: _top(query)] if query.get("$filter") else series
        value.append({"id": f"{resource.path}/providers/Microsoft.Insights/metrics/{name}",
                      "type": "Microsoft.Insights/metrics", "name": {"value": name, "localizedValue": name},
                      "unit": unit, "timeseries": series, "errorCode": "Success"})
    return json_response({"cost": len(minutes), "timespan": f"{start:%Y-%m-%dT%H:%M:%SZ}/{end:%Y-%m-%dT%H:%M:%SZ}",
                          "interval": "PT1M", "value": value, "namespace": NAMESPACE,
                          "resourceregion": "westeurope"})


def _top(query) -> int:
    try:
        return max(1, int(query.get("top") or 10))
    except ValueError:
        return 10


def _kubernetes(ctx, resource: ArmPath) -> bool:
    """azure-ai-docs machine-learning/concept-endpoints-online.md (managed vs Kubernetes online endpoints,
    "Out-of-box monitoring & logging": Kubernetes -- user responsibility): Azure Monitor gets no request counts of a
    Kubernetes endpoint. That the metric still answers, with no series, rather than an error: guess."""
    record = ctx.store.get(resource.path)
    return bool(record is not None and (record.body.get("properties") or {}).get("compute"))


def _series(ctx, resource: ArmPath, name: str, filters: dict[str, str], minutes: list[int]) -> list[dict]:
    """One timeseries per value of each dimension filtered with '*' (split), within the other filters."""
    split = [d for d, v in filters.items() if v == "*"]
    cells: dict[tuple, dict[int, int]] = {}
    window = set(minutes)
    for (endpoint, deployment, status, minute), n in (ctx.dataplane.tallies if ctx.dataplane else {}).items():
        if endpoint != resource.path.lower() or minute not in window:
            continue
        dims = {"deployment": deployment, "statuscode": str(status), "statuscodeclass": f"{status // 100}xx",
                "modelstatuscode": ""}  # guess: the model's own status is not kept
        if any(v != "*" and dims.get(d, "").lower() != v.lower() for d, v in filters.items()):
            continue
        group = tuple((d, dims[d]) for d in split)
        cells.setdefault(group, {})
        cells[group][minute] = cells[group].get(minute, 0) + n
    if not split and not cells:
        cells[()] = {}
    return [{"metadatavalues": [{"name": {"value": d, "localizedValue": d}, "value": v} for d, v in group],
             "data": [{"timeStamp": datetime.fromtimestamp(m * 60, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       **({"average": float(per[m])} if m in per else {})} for m in minutes]}
            for group, per in sorted(cells.items())]
