"""HTTP/1.1, the small subset the front and the scoring host speak, parsed by hand.

General HTTP libraries cost more CPU per request than scoring a small model; this
module only frames requests and responses with Content-Length (chunked bodies are
refused with 411), lower-cases header names, and bounds every size. It is stdlib-only
because the scoring host imports it inside the user's own environment.
"""

from __future__ import annotations

MAX_HEAD = 16 * 1024          # request line + headers; over this: 431
MAX_HEADERS = 100
# Largest answer a scoring host may send: past it the host answers 500 instead, and the front drops an instance
# that sends more. Azure's front bounds an endpoint to 5 MBPS of bandwidth and 500 active connections
# (learn.microsoft.com how-to-manage-quotas, "Azure Machine Learning online endpoints"): a 16 MiB answer
# already takes three seconds of that whole budget. rtsctl's bound (guess); Azure documents no per-answer cap.
MAX_RESPONSE = 16 * 1024 * 1024
HEAD_TIMEOUT_S = 10.0         # a started request head must be complete within this (slow clients hold no slot)
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 411: "Length Required", 413: "Payload Too Large", 424: "Failed Dependency",
           429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 505: "HTTP Version Not Supported"}


class BadRequest(Exception):
    """The peer sent something that is not HTTP/1.1 we accept; answer `status` and close."""

    def __init__(self, status: int, message: str, skip: int = 0):
        super().__init__(message)
        self.status = status
        self.message = message
        self.skip = skip  # bytes of the refused message (head + declared body) a server may read and discard


class Request:
    __slots__ = ("method", "path", "headers", "lines", "body", "keep_alive")

    def __init__(self, method: bytes, path: bytes, headers: dict[bytes, bytes], lines: list[bytes], body: bytes,
                 keep_alive: bool):
        self.method, self.path, self.headers, self.lines = method, path, headers, lines
        self.body, self.keep_alive = body, keep_alive


def parse_request(buf: bytearray, max_body: int) -> tuple[int, Request] | None:
    """One complete request from the start of `buf`: (bytes consumed, request), or None if incomplete.

    Raises BadRequest for what cannot be answered normally (malformed, too large, chunked)."""
    end = buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise BadRequest(431, f"request head is larger than {MAX_HEAD} bytes")
        _refuse_early(buf)
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise BadRequest(400, "malformed request line")
    if len(lines) > MAX_HEADERS + 1:
        raise BadRequest(431, f"more than {MAX_HEADERS} headers")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "malformed header line")
        headers[name.lower()] = value.strip()
    if b"transfer-encoding" in headers:
        raise BadRequest(411, "chunked request bodies are not supported; send Content-Length")
    length = headers.get(b"content-length", b"0")
    if not length.isdigit() or len(length) > 12:
        raise BadRequest(400, "bad Content-Length")
    size = int(length)
    if size > max_body:
        raise BadRequest(413, f"Request body is larger than {max_body} bytes", skip=end + 4 + size)
    total = end + 4 + size
    if len(buf) < total:
        return None
    connection = headers.get(b"connection", b"").lower()
    keep_alive = connection != b"close" if parts[2] == b"HTTP/1.1" else connection == b"keep-alive"
    return total, Request(parts[0], parts[1], headers, lines[1:], bytes(buf[end + 4:total]), keep_alive)


def _refuse_early(buf: bytearray) -> None:
    """An incomplete head that can no longer become a request is refused now, not when the client gives up:
    bytes before the method that are not a token (a TLS hello on the plain port, binary noise), or a line
    that ends in a bare LF (RFC 9112 §2.2 lets a server refuse it; accepting it invites request smuggling)."""
    method = bytes(buf[:16]).split(b" ", 1)[0]
    if method and not (method.isalpha() and method.isupper()):
        raise BadRequest(400, "not an HTTP/1.1 request")
    newline = buf.find(b"\n")
    if newline == 0 or (newline > 0 and buf[newline - 1] != 0x0D):
        raise BadRequest(400, "header lines must end in CRLF")


def response(status: int, body: bytes, headers: bytes = b"", keep_alive: bool = True) -> bytes:
    """A full response; `headers` is a block of "Name: value\\r\\n" lines (no Content-Length)."""
    return b"".join((b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n" % (status, REASONS.get(status, "Unknown").encode(),
                                                                       len(body)),
                     headers, b"" if keep_alive else b"Connection: close\r\n", b"\r\n", body))


def parse_response(buf: bytearray) -> tuple[int, int, bytes, bytes] | None:
    """One response from our own scoring host (Content-Length is its first header, by contract):
    (bytes consumed, status, other header lines as one block, body), or None if incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise BadRequest(502, "scoring host sent an oversized response head")
        return None
    first = buf.find(b"\r\n")
    second = buf.find(b"\r\n", first + 2)
    if second < 0 or second > end or buf[first + 2:first + 18].lower() != b"content-length: ":
        raise BadRequest(502, "scoring host sent a malformed response")
    size = int(buf[first + 18:second])
    if size > MAX_RESPONSE:
        raise BadRequest(502, f"scoring host sent a {size}-byte response; the limit is {MAX_RESPONSE}")
    total = end + 4 + size
    if len(buf) < total:
        return None
    return total, int(buf[9:12]), bytes(buf[second + 2:end + 2]) if second < end else b"", bytes(buf[end + 4:total])
