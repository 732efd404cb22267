"""Errors a user sees: one clear line each, never a traceback (unless --debug).

Exit codes (documented in README.md):
  0  success (plan --detailed-exitcode: no changes)
  1  error: bad manifest, failed Azure call, failed smoke test, refused confirmation
  2  plan --detailed-exitcode: changes present
  3  bench: a --max-error-rate / --max-p99 threshold was crossed
  130 interrupted (Ctrl-C)
"""

from __future__ import annotations


class RtsctlError(Exception):
    """Base for every error that should reach the user as one line and exit 1."""

    exit_code = 1


class ManifestError(RtsctlError):
    """A broken manifest: names the file, the line and the field at fault."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None, field: str | None = None):
        self.file, self.line, self.field, self.reason = file, line, field, message
        where = file or "<manifest>"
        if line is not None:
            where += f":{line}"
        prefix = f"{where}: " + (f"{field}: " if field else "")
        super().__init__(prefix + message)


class ResourceError(RtsctlError):
    """A backend call failed: names the resource address and the service's reason."""

    def __init__(self, address: str, message: str, code: str | None = None):
        self.address, self.code, self.reason = address, code, message
        super().__init__(f"{address}: " + (f"({code}) " if code else "") + message)


class TransientError(RtsctlError):
    """A failure worth retrying (throttling, 5xx, dropped connection).

    `retry_after` is the server's hint in seconds, honoured by the executor's retry policy.
    """

    def __init__(self, message: str, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(message)


class SmokeTestError(RtsctlError):
    """The endpoint answered, but not what the manifest's smoke test expects."""
