"""The HTTP/1.1 wire: parse the target URL, pre-encode request bytes, build the TLS context, name errors."""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from rtsctl.support.errors import RtsctlError

USER_AGENT = "rtsctl-bench/0.1"


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str          # path + query, as sent on the request line

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RtsctlError(f"bad URL {url!r}: expected http://HOST[:PORT]/PATH or https://...")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RtsctlError(f"bad URL {url!r}: the port is not a number") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url, parts.scheme, parts.hostname, port, path)


def request_head(target: Target, method: str, headers: dict[str, str]) -> bytes:
    """Everything before the Content-Length value: request line + fixed headers."""
    lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.host_header}", f"User-Agent: {USER_AGENT}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    for line in lines:
        if "\r" in line or "\n" in line:
            raise RtsctlError(f"header contains a line break: {line.split(':')[0]!r}")
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


def encode_request(head: bytes, body: bytes, method: str) -> bytes:
    if not body and method in ("GET", "HEAD", "DELETE", "OPTIONS"):
        return head + b"\r\n"
    return head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


def ssl_context(target: Target, verify: bool | str = True) -> ssl.SSLContext | None:
    """verify: True (system CAs), False (no verification, --insecure) or a CA bundle path."""
    if not target.tls:
        return None
    if verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        try:
            ctx = ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            raise RtsctlError(f"cannot load CA bundle {verify}: {exc}") from None
    else:
        ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def error_kind(exc: BaseException) -> str:
    """A short, stable name for a transport failure (the key of the `errors` breakdown)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls: certificate verify failed ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {exc.reason or exc.__class__.__name__}".lower()
    if isinstance(exc, socket.gaierror):
        return "dns: name not resolved"
    if isinstance(exc, ConnectionRefusedError):
        return "connect: connection refused"
    if isinstance(exc, TimeoutError):
        return "connect: timeout"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"connect: {errno.errorcode.get(exc.errno, exc.errno)} {exc.strerror or ''}".strip().lower()
    return f"{exc.__class__.__name__}: {exc}".lower()[:80]
