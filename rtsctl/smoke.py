"""The smoke test after apply: one real POST to the scoring URI with the key.

Azure's scoring listener lags a little behind a successful deployment (Microsoft's own
samples sleep 30 s), so connection failures and 404/502/503 are retried until the
test's timeout; a wrong answer fails at once, showing expected and actual bodies.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

from .errors import SmokeTestError

_RETRY_STATUSES = {404, 408, 429, 502, 503, 504}


def post_json(uri: str, key: str | None, body: Any, deployment: str | None = None, verify: Any = True,
              timeout: float = 10.0) -> tuple[int, bytes]:
    return post(uri, key, json.dumps(body).encode(), deployment, verify, timeout)


def post(uri: str, key: str | None, data: bytes, deployment: str | None = None, verify: Any = True,
         timeout: float = 10.0, content_type: str = "application/json") -> tuple[int, bytes]:
    """One POST with the bearer key; any HTTP status is returned, not raised (also for `rtsctl invoke`)."""
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
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def run_smoke_test(endpoint: str, uri: str, key: str | None, test: dict[str, Any], verify: Any = True) -> None:
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
            raise SmokeTestError(f"smoke test of endpoint {endpoint} failed: {last}")
        time.sleep(0.25)
    if status != expected_status:
        raise SmokeTestError(f"smoke test of endpoint {endpoint}: expected HTTP {expected_status}, got {last}")
    if "expected_response" not in test:
        return
    try:
        actual = json.loads(raw)
    except ValueError:
        actual = raw.decode("utf-8", "replace")
    if actual != test["expected_response"]:
        shown = repr(actual) if isinstance(actual, str) else json.dumps(actual)
        raise SmokeTestError(f"smoke test of endpoint {endpoint}: expected {json.dumps(test['expected_response'])}, "
                             f"got {shown}")
