"""A deployment's answers to live traffic on Azure: Azure Monitor's `RequestsPerMinute` of its endpoint.

The metric (MicrosoftDocs azure-monitor-docs, reference/supported-metrics/
microsoft-machinelearningservices-workspaces-onlineendpoints-metrics.md) lives on the ENDPOINT resource, is
sampled per minute (PT1M), aggregates as Average (the count of that minute) and splits by `deployment`,
`statusCode`, `statusCodeClass` and `modelStatusCode`. It is read through azure-mgmt-monitor's
`metrics.list` (REST: GET {resourceUri}/providers/Microsoft.Insights/metrics, api-version 2024-02-01;
azure-rest-api-specs monitor/.../stable/2024-02-01/metrics_API.json, example GetMetric.json).

Azure Monitor is eventually consistent: the last minutes read as 0 until they are ingested
(Azure/azure-libraries-for-net#499: "Azure Monitor has no values yet for the 2 most recent intervals";
tomkerkhove/promitor#927: ingestion takes "up to 5 minutes", and the newest minute first reads 0.0). So a gate
waits `lag_s` (180 s; RTSCTL_METRICS_LAG_SECONDS) after its window, then reads again every `lag_s / 3` until two
reads agree (at most 4 reads): a minute still being ingested changes between reads, a settled one does not.
`metrics.list` returns 10 series unless `top` says more (metrics_API.json: "top ... Defaults to 10"), and each
status code is a series of its own: `top` is raised to MAX_SERIES.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from rtsctl.support.envvars import env_number

from collections.abc import Sequence

from rtsctl.desired.resources import Resource

from ..base import NotCounted, TrafficWatch
from .common import AzureReconciler
from .errors import azure_errors
from .reads import read_endpoint

METRIC = "RequestsPerMinute"
DEFAULT_LAG_S = 180.0
MAX_SERIES = 100     # status codes a gate can tell apart (metrics.list's default top is 10)
MAX_READS = 4


def metrics_lag() -> float:
    return env_number("RTSCTL_METRICS_LAG_SECONDS", DEFAULT_LAG_S, 0.0, 3600.0)


#: azure-ai-docs machine-learning/concept-endpoints-online.md, managed vs Kubernetes online endpoints:
#: "Out-of-box monitoring & logging" -- managed: Azure Monitor and Log Analytics; Kubernetes: user responsibility
KUBERNETES_BLIND = ("Azure Monitor keeps no request metrics for Kubernetes online endpoints (their monitoring is the "
                    "user's own: concept-endpoints-online.md)")


def kubernetes_not_counted(rec: AzureReconciler, endpoint: str) -> None:
    """Raise NotCounted for a Kubernetes endpoint: its live answers are nowhere to be read. The endpoint as the
    traffic step that runs the gate has read it (read_endpoint: once per step)."""
    ep = read_endpoint(rec, f"endpoint.{endpoint}", endpoint)
    if getattr(ep, "compute", None):
        raise NotCounted(KUBERNETES_BLIND)


def blind_gate_warnings(resources: Sequence[Resource]) -> list[str]:
    """The plan's word on a rollout gate that watches live errors on a Kubernetes endpoint: it cannot judge them
    there, and what it judges instead (validate already refuses min_requests there: it could never be met)."""
    kubernetes = {r.name for r in resources if r.kind == "endpoint" and r.spec.get("compute")}
    out = []
    for res in resources:
        gate = ((res.inputs.get("rollout") or {}).get("gate") or {}) if res.kind == "traffic" else {}
        if res.name in kubernetes and gate.get("watch") and "max_error_rate" in gate:
            from rtsctl.rollout.steps import benches

            instead = ("health while held, and errors in its bench run" if benches(gate)
                       else "health while held only: no bench run is declared, so no errors are judged")
            out.append(f"traffic.{res.name}: the rollout gate's watch cannot judge live errors (max_error_rate) on "
                       f"Kubernetes endpoint {res.name}: {KUBERNETES_BLIND}; it judges {instead}")
    return out


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class MonitorAnswers(TrafficWatch):
    """Counts of the whole minutes the watch spans (the metric's grain), from the minute it began."""

    def __init__(self, clients, endpoint: str, deployment: str):
        self.clients, self.endpoint, self.deployment = clients, endpoint, deployment
        self.lag_s = metrics_lag()
        self.start = datetime.now(timezone.utc).replace(second=0, microsecond=0)

    def answers(self) -> dict[int, int]:
        """Counts once two reads in a row agree (ingestion settled), or the last of MAX_READS."""
        import time

        counts = self._read()
        for _ in range(MAX_READS - 1):
            time.sleep(self.lag_s / 3)
            again = self._read()
            if again == counts:
                break
            counts = again
        return counts

    def _read(self) -> dict[int, int]:
        end = datetime.now(timezone.utc) + timedelta(minutes=1)
        name = self.deployment.replace("'", "''")  # OData string literal
        with azure_errors(f"metrics of deployment.{self.endpoint}/{self.deployment}"):
            result = self.clients.monitor.metrics.list(
                self.clients.endpoint_id(self.endpoint).lstrip("/"), timespan=f"{_iso(self.start)}/{_iso(end)}",
                interval="PT1M", metricnames=METRIC, aggregation="average", top=MAX_SERIES,
                filter=f"deployment eq '{name}' and statusCode eq '*'")
        counts: dict[int, int] = {}
        for metric in result.value or []:
            for series in metric.timeseries or []:
                code = next((m.value for m in series.metadatavalues or [] if (m.name.value or "").lower() ==
                             "statuscode"), None)
                total = round(sum(point.average or 0.0 for point in series.data or []))
                if code and str(code).isdigit() and total > 0:
                    counts[int(code)] = counts.get(int(code), 0) + total
        return counts
