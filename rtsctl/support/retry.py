"""One retry policy for every backend call: transient errors only, honouring Retry-After."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_random_exponential

from rtsctl.support.errors import TransientError

T = TypeVar("T")
_backoff = wait_random_exponential(multiplier=0.5, max=15)


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, TransientError) and exc.retry_after is not None:
        return min(max(exc.retry_after, 0.0), 60.0)
    return _backoff(state)


def call_with_retry(fn: Callable[..., T], *args: object, attempts: int = 8, budget_s: float = 2700.0) -> T:
    """Call `fn(*args)`, retrying TransientError with backoff; the last error propagates.

    The budget counts from the first attempt, and one attempt can be long: a real Azure ML deployment takes about
    ten minutes (recording 01: 9 m 42 s), so 45 minutes leave room for a retry after a late transient failure."""
    retrying = Retrying(retry=retry_if_exception_type(TransientError), wait=_wait,
                        stop=stop_after_attempt(attempts) | stop_after_delay(budget_s), reraise=True)
    return retrying(fn, *args)
