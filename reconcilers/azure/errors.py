"""Map azure.core / azure-ai-ml exceptions to rtsctl errors.

* Throttling (429), server errors (5xx) and dropped connections are `TransientError`s carrying the
  server's Retry-After: the engine retries them.
* Everything else becomes one `ResourceError` line naming the resource, the service's error code and
  its message -- also when a long-running operation ends `Failed` (the poller raises an
  `HttpResponseError` whose body is the operation's `error` object).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from rtsctl.support.errors import ResourceError, RtsctlError, TransientError

__all__ = ["azure_errors", "is_not_found", "one_line", "retry_after_of", "code_and_message"]

_CODE_PREFIX = re.compile(r"^\((?P<code>[^)]+)\)\s*")


def one_line(text: str, limit: int = 500) -> str:
    """Collapse whitespace so an error stays on one line; cut overly long service messages."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_after_of(exc: HttpResponseError) -> float | None:
    """The Retry-After hint of a failed response, in seconds (only the delta-seconds form)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = headers.get(name)
        if value:
            with contextlib.suppress(ValueError):
                return float(value) / 1000.0
    value = headers.get("retry-after")
    if value:
        with contextlib.suppress(ValueError):
            return float(value)
    return None


#: top-level codes that only say "your fault" / "our fault": the specific one is in `details`
#: (recording 02: 404 UserError "The specified resource was not found." with details[0] ModelNotFound)
GENERIC_CODES = frozenset({"usererror", "systemerror", "badrequest", "badargument", "validationerror",
                           "deploymentfailed", "internalservererror", "conflict"})

#: long-running operations that end Failed with one of these are worth another attempt, per
#: how-to-troubleshoot-online-endpoints.md: OperationCanceled ("canceled by another operation with higher
#: priority ... retrying the operation might allow it to be performed"), ACRTokenExchangeFailed ("should be
#: transient, and you can try again later"), ACRSecretError ("role assignment isn't completed. Wait for a few
#: seconds and try again").
RETRYABLE_CODES = frozenset({"operationcanceled", "acrtokenexchangefailed", "acrsecreterror"})


def specific_error(error: object) -> object:
    """The most specific entry of an ARM error: down `details` while the code is a generic one."""
    seen = 0
    while seen < 8:  # bounded: a hostile or odd body cannot loop us
        details = getattr(error, "details", None) or (error.get("details") if isinstance(error, dict) else None)
        code = getattr(error, "code", None) or (error.get("code") if isinstance(error, dict) else None)
        if not details or (code and str(code).lower() not in GENERIC_CODES):
            return error
        error, seen = details[0], seen + 1
    return error


def code_and_message(exc: Exception) -> tuple[str | None, str]:
    """The service's (code, message) from an ARM-shaped error, else the exception's own text.

    Real Azure ML errors carry a generic `UserError` at the top and the specific code in `details`: the most
    specific entry is the one shown."""
    error = specific_error(getattr(exc, "error", None))  # ODataV4Format parsed from {"error": {code, message}}
    code = getattr(error, "code", None) or (error.get("code") if isinstance(error, dict) else None)
    message = getattr(error, "message", None) or (error.get("message") if isinstance(error, dict) else None)
    if not message:
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        # azure-core renders "(Code) message\nCode: ...\nMessage: ..." -- keep the first line only
        message = str(message).strip().splitlines()[0] if str(message).strip() else type(exc).__name__
        found = _CODE_PREFIX.match(message)
        if found:
            code = code or found.group("code")
            message = message[found.end():]
    if not code:
        status = getattr(exc, "status_code", None)
        reason = getattr(exc, "reason", None)
        if status:
            code = f"HTTP {status}" + (f" {reason}" if reason else "")
    return code, one_line(message)


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ResourceNotFoundError) or getattr(exc, "status_code", None) == 404


#: failures to reach the service that no retry can fix: configuration, not weather
_DETERMINISTIC = ("certificate verify failed", "certificate_verify_failed", "not permitted for non-tls")


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return not any(marker in str(exc).lower() for marker in _DETERMINISTIC)
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        return status == 429 or status >= 500
    return False


#: what to do when no credential yields a token (azure-identity's DefaultAzureCredential names only its own chain)
NO_CREDENTIAL = ("sign in with `az login` (the default credential uses the Azure CLI's login), or set the service "
                 "principal variables AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET; no subscription? "
                 "run against the offline emulator: python -m tests.azure_emulator --env-file F, then "
                 "env $(cat F) rtsctl plan M (README: Azure without a subscription)")


def to_rtsctl_error(address: str, exc: BaseException) -> RtsctlError:
    if isinstance(exc, RtsctlError):
        return exc
    if isinstance(exc, ClientAuthenticationError):  # CredentialUnavailableError too: no token, no call was made
        first = one_line(str(exc).split("\n", 1)[0], 200)
        return ResourceError(address, f"cannot get an Azure access token ({first}): {NO_CREDENTIAL}",
                             "AuthenticationFailed")
    code, message = code_and_message(exc)
    if "certificate verify failed" in message.lower():
        message += " (a private CA? point REQUESTS_CA_BUNDLE at it)"
    # another writer holds the endpoint ("Cannot create a deployment in endpoint X because it is in Updating
    # provisioning state", azure-sdk-for-net#36961): 409 Conflict or 400 -- the report does not show which, so both
    busy = getattr(exc, "status_code", None) in (400, 409) and "provisioning state" in message.lower()
    if is_transient(exc) or busy or (code or "").lower() in RETRYABLE_CODES:
        retry_after = retry_after_of(exc) if isinstance(exc, HttpResponseError) else None
        return TransientError(f"{address}: " + (f"({code}) " if code else "") + message, retry_after)
    return ResourceError(address, message, code)


@contextlib.contextmanager
def azure_errors(address: str) -> Iterator[None]:
    """Translate SDK exceptions raised inside the block into rtsctl errors naming `address`."""
    try:
        yield
    except RtsctlError:
        raise
    except AzureError as exc:
        raise to_rtsctl_error(address, exc) from exc
    except Exception as exc:  # azure-ai-ml's own exceptions (ValidationException, MlException, ...)
        if type(exc).__module__.startswith("azure."):
            raise to_rtsctl_error(address, exc) from exc
        raise
