"""`rtsctl logs` on Azure: the inference server container's log through `online_deployments.get_logs`.

The service returns the last `tail` lines of one container of the deployment (POST .../getLogs,
DeploymentLogsRequest{containerType, tail}); it has no stream and no choice of instance, so following
is polling: each poll asks for the same window and prints what follows the part already printed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from rtsctl.support.errors import RtsctlError

from .errors import azure_errors

#: lines asked for when --tail is not given (the SDK requires a number; `az ml online-deployment get-logs -l`)
DEFAULT_LINES = 1000
POLL_S = 3.0


def new_lines(seen: list[str], now: list[str]) -> list[str]:
    """What `now` has after its longest prefix that ends `seen` (the overlap of two polls of one window)."""
    for k in range(min(len(seen), len(now)), 0, -1):
        if seen[-k:] == now[:k]:
            return now[k:]
    return now


def deployment_logs(clients, endpoint: str, deployment: str, instance: int | None, tail: int | None,
                    follow: bool) -> dict[str, Iterator[str]]:
    if instance is not None:
        raise RtsctlError("--instance is local only: Azure's getLogs returns the log of one instance the service "
                          "picks, with no way to choose")
    lines = DEFAULT_LINES if tail is None else tail
    address = f"deployment.{endpoint}/{deployment}"

    def fetch(count: int) -> list[str]:
        with azure_errors(address):
            return clients.ml.online_deployments.get_logs(deployment, endpoint, count).splitlines()

    def stream() -> Iterator[str]:
        window = max(lines, DEFAULT_LINES) if follow else lines   # following compares whole windows
        seen = fetch(window) if window else []
        yield from seen[-lines:] if lines else []
        while follow:
            time.sleep(POLL_S)
            now = fetch(window)
            yield from new_lines(seen, now)
            seen = now

    return {deployment: stream()}
