"""Fault injection on ARM calls: 429 + Retry-After, 500 with an ARM error body, dropped connections.

Sources: ARM throttles with 429 + Retry-After (learn.microsoft.com azure-resource-manager/management/
request-limits-and-throttling.md); the 500 / dropped connection are generic transient failures azure-core's
RetryPolicy is built for. Which requests get them is a test device, not Azure behaviour.

Deterministic for a given seed. A request that was faulted is never faulted again on its next
attempt (same `x-ms-client-request-id`, or same method + URL), so SDK and engine retries
converge. Connection drops are not injected on POST: azure-core never retries a non-idempotent
method after a read error, so a drop there would only test the SDK, not rtsctl.
"""

from __future__ import annotations

import random
import threading

KINDS = ("429", "500", "reset")
RETRY_AFTER_429 = "0.1"

# LRO failure codes for `Emulator.fail_next_lro`. Retryable: the troubleshooting guide says to retry
# (MicrosoftDocs azureml-docs how-to-troubleshoot-online-endpoints.md, "ERROR: OperationCanceled" -- another
# operation took priority -- and "ERROR: ACRTokenExchangeFailed" -- transient token exchange). Non-retryable:
# the guide's user-side errors (e.g. "ERROR: ResourceNotReady" -- the container crashed; "ERROR:
# OutOfQuota"; "ERROR: BadArgument"), which a retry cannot fix.
RETRYABLE_LRO_CODES = ("OperationCanceled", "ACRTokenExchangeFailed")
NON_RETRYABLE_LRO_CODES = ("ResourceNotReady", "OutOfQuota", "BadArgument")
LRO_MESSAGES = {
    "OperationCanceled": "The operation was canceled because another operation on the resource took priority. "
                         "Please retry the operation.",
    "ACRTokenExchangeFailed": "Failed to exchange the Azure Container Registry token. Please retry.",
    "ResourceNotReady": "User container has crashed or terminated. Please see troubleshooting guide, available "
                        "here: https://aka.ms/oe-tsg#error-resourcenotready",
    "OutOfQuota": "Not enough quota available for Standard_DS3_v2 in SubscriptionId. Current usage/limit: 4/4.",
    "BadArgument": "The request is invalid.",
}   # messages: guess (the guide names the codes, the recordings hold no Failed LRO body)


class FaultInjector:
    def __init__(self, rate: float = 0.0, kinds=KINDS, seed: int | None = None):
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {KINDS}")
        self.rate = float(rate)
        self.kinds = tuple(kinds)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._last_faulted: set[str] = set()
        self.injected: list[tuple[str, str, str]] = []     # (kind, method, path) for assertions

    def set_rate(self, rate: float) -> None:
        self.rate = float(rate)

    def decide(self, method: str, url: str, request_id: str | None) -> str | None:
        """The fault to inject for this request, or None."""
        keys = {f"url:{method} {url}"} | ({f"id:{request_id}"} if request_id else set())
        with self._lock:
            if keys & self._last_faulted:
                self._last_faulted -= keys
                return None
            if self.rate <= 0 or not self.kinds or self._rng.random() >= self.rate:
                return None
            choices = [k for k in self.kinds if not (k == "reset" and method == "POST")] or ["429"]
            kind = self._rng.choice(choices)
            self._last_faulted |= keys
            self.injected.append((kind, method, url.split("?")[0]))
            return kind
