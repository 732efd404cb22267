"""The smoke test after apply: one real POST per deployment that takes traffic, with the key.

Each deployment is addressed directly with the `azureml-model-deployment` header (as
`az ml online-endpoint invoke --deployment-name` does), so a 90/10 split whose deployments answer
differently is judged deployment by deployment, never by whichever one the split picked. A
deployment's own `smoke_test` overrides its endpoint's; `smoke_test.deployment` tests only that one.

Azure's scoring listener lags a little behind a successful deployment (Microsoft's own
samples sleep 30 s), so connection failures and 404/502/503 are retried until the
test's timeout; a wrong answer fails at once, showing expected and actual bodies.

A failure is remembered (`SmokeRecord`) until the deployment passes again, so the next plan shows it
as failing its smoke test rather than "No changes".
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rtsctl.support.errors import SmokeTestError
from rtsctl.support.home import write_json

_RETRY_STATUSES = {404, 408, 429, 502, 503, 504}


def post_json(uri: str, key: str | None, body: Any, deployment: str | None = None, verify: Any = True,
              timeout: float = 10.0) -> tuple[int, bytes]:
    return post(uri, key, json.dumps(body).encode(), deployment, verify, timeout)


def post(uri: str, key: str | None, data: bytes, deployment: str | None = None, verify: Any = True,
         timeout: float = 10.0, content_type: str = "application/json") -> tuple[int, bytes]:
    """One POST with the bearer key; any HTTP status is returned, not raised."""
    status, raw, _ = exchange(uri, key, data, deployment, verify, timeout, content_type)
    return status, raw


def exchange(uri: str, key: str | None, data: bytes, deployment: str | None = None, verify: Any = True,
             timeout: float = 10.0, content_type: str = "application/json") -> tuple[int, bytes, dict[str, str]]:
    """`post`, with the answer's headers (for `rtsctl invoke`: which deployment answered)."""
    headers = {"Content-Type": content_type}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if deployment:
        headers["azureml-model-deployment"] = deployment
    request = urllib.request.Request(uri, data=data, headers=headers, method="POST")
    context = None
    if uri.startswith("https"):
        context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
        if verify is False:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            return resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as err:
        return err.code, err.read(), {k.lower(): v for k, v in (err.headers or {}).items()}


def run_smoke_test(endpoint: str, uri: str, key: str | None, test: dict[str, Any], verify: Any = True) -> None:
    """`endpoint` names what is tested in errors (an endpoint, or `endpoint/deployment`)."""
    expected_status = test.get("expected_status", 200)
    deadline = time.monotonic() + float(test.get("timeout", 30))
    last = "no answer"
    while True:
        try:
            status, raw = post_json(uri, key, test["request"], test.get("deployment"), verify)
        except (urllib.error.URLError, OSError) as exc:
            status, raw, last = None, b"", f"cannot connect to {uri}: {getattr(exc, 'reason', exc)}"
        if status is not None:
            last = f"HTTP {status}: {raw[:300].decode('utf-8', 'replace')}"
            if status == expected_status or status not in _RETRY_STATUSES:
                break
        if time.monotonic() >= deadline:
            raise SmokeTestError(f"smoke test of {_what(endpoint)} failed: {last}")
        time.sleep(0.25)
    if status != expected_status:
        raise SmokeTestError(f"smoke test of {_what(endpoint)}: expected HTTP {expected_status}, got {last}")
    if "expected_response" not in test:
        return
    try:
        actual = json.loads(raw)
    except ValueError:
        actual = raw.decode("utf-8", "replace")
    if actual != test["expected_response"]:
        shown = repr(actual) if isinstance(actual, str) else json.dumps(actual)
        raise SmokeTestError(f"smoke test of {_what(endpoint)}: expected {json.dumps(test['expected_response'])}, "
                             f"got {shown}")


def _what(target: str) -> str:
    return f"deployment {target}" if "/" in target else f"endpoint {target}"


@dataclass(frozen=True)
class Target:
    """One smoke request: deployment `name` (manifest) of `endpoint`, sent to `live` (its live name)."""
    endpoint: str
    name: str
    live: str
    test: dict[str, Any]

    @property
    def address(self) -> str:
        return f"deployment.{self.endpoint}/{self.name}"

    @property
    def label(self) -> str:
        shown = f"{self.endpoint}/{self.name}"
        return shown if self.live == self.name else f"{shown} (live as {self.live})"


def targets(endpoint: str, endpoint_test: Mapping[str, Any] | None, own_tests: Mapping[str, Any],
            live: Mapping[str, str], weights: Mapping[str, Any], failing: Iterable[str] = ()) -> list[Target]:
    """What to smoke-test on `endpoint`: the deployment `smoke_test.deployment` names, else every deployment that
    takes traffic (`weights`, manifest names), plus any that declares its own test or failed its last one. Each
    gets its own test, else the endpoint's; a deployment that does not exist (yet) is not tested."""
    named = (endpoint_test or {}).get("deployment")
    if named:
        chosen = [named]
    else:
        failed = {a.rsplit("/", 1)[1] for a in failing if a.startswith(f"deployment.{endpoint}/")}
        chosen = [d for d in own_tests if (weights.get(d) or 0) > 0 or own_tests[d] or d in failed]
    out = []
    for name in chosen:
        test = own_tests.get(name) or endpoint_test
        if test and name in live:
            out.append(Target(endpoint, name, live[name], {k: v for k, v in test.items() if k != "deployment"}))
    return out


def run_targets(uri: str, key: str | None, chosen: list[Target], verify: Any = True) -> dict[str, str]:
    """Send each target its test; returns address -> failure for those that failed (all are tried)."""
    failures: dict[str, str] = {}
    for target in chosen:
        try:
            run_smoke_test(target.label, uri, key, {**target.test, "deployment": target.live},
                           verify)
        except SmokeTestError as exc:
            failures[target.address] = str(exc)
    return failures


class SmokeRecord:
    """Deployments whose last smoke test failed, with when and why, next to the applied record
    (RTSCTL_HOME/applied/, one file per backend scope): a plan reads it to show them as failing."""

    MAX_BYTES = 1024 * 1024

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> dict[str, dict[str, str]]:
        try:
            if self.path.stat().st_size > self.MAX_BYTES:
                return {}
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        failing = doc.get("failing") if isinstance(doc, dict) else None
        if not isinstance(failing, dict):
            return {}
        return {str(a): {"at": str(v.get("at", "")), "reason": str(v.get("reason", ""))[:2000]}
                for a, v in failing.items() if isinstance(v, dict)}

    def update(self, failed: Mapping[str, str], passed: Iterable[str]) -> None:
        """Remember `failed` (address -> reason) and forget `passed` (or no longer tested) addresses; atomic."""
        record = self.read()
        before = dict(record)
        for address in passed:
            record.pop(address, None)
        at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        record.update({a: {"at": at, "reason": reason} for a, reason in failed.items()})
        if record != before:
            write_json(self.path, {"format": 1, "failing": record})
