"""Pooled keep-alive HTTP/1.1 connections from an endpoint's front to one scoring instance.

The front forwards every request, so this hop is its hot path: a general client
(aiohttp's) costs more CPU than the scoring itself. The peer is always our own scoring
host, which answers with Content-Length and keeps connections open, so a small
protocol suffices: write pre-encoded bytes, read one response, return the connection
to the pool.
"""

from __future__ import annotations

import asyncio

Response = tuple[int, list[tuple[str, str]], bytes]


class UpstreamError(Exception):
    """The instance did not answer (refused, reset, closed, malformed)."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.buffer = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(UpstreamError(f"connection closed: {exc or 'by the instance'}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None or self.waiter.done():
            return
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        headers, length = [], None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            value = value.strip()
            if name.lower() == "content-length":
                length = int(value)
            headers.append((name, value))
        if length is None:
            self.waiter.set_exception(UpstreamError("response without Content-Length"))
            self.transport.close()
            return
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4:end + 4 + length])
        del self.buffer[:end + 4 + length]
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            self.waiter.set_exception(UpstreamError(f"malformed status line {lines[0][:60]!r}"))
            return
        self.waiter.set_result((status, headers, body))


class Upstream:
    """Connections to one instance at 127.0.0.1:port, reused across requests."""

    def __init__(self, port: int, path: str = "/score"):
        self.port = port
        self.idle: list[_Connection] = []
        self.head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: ").encode()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(_Connection, "127.0.0.1", self.port)
        except OSError as exc:
            raise UpstreamError(f"cannot connect to 127.0.0.1:{self.port}: {exc.strerror or exc}") from None
        return conn

    async def post(self, body: bytes, content_type: str, timeout: float) -> Response:
        """Forward one request; raises UpstreamError, or asyncio.TimeoutError after `timeout` seconds."""
        request = b"".join((self.head, content_type.encode("latin-1"), b"\r\nContent-Length: ",
                            str(len(body)).encode(), b"\r\n\r\n", body))
        while self.idle:
            conn = self.idle.pop()
            if conn.closed:
                continue
            try:
                return await self._exchange(conn, request, timeout)
            except UpstreamError:
                if conn.buffer:  # the instance answered something: do not send the request twice
                    raise
        return await self._exchange(await self._connect(), request, timeout)

    async def _exchange(self, conn: _Connection, request: bytes, timeout: float) -> Response:
        loop = asyncio.get_running_loop()
        conn.waiter = waiter = loop.create_future()
        conn.buffer.clear()
        conn.transport.write(request)
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            result = await waiter
        except BaseException:
            conn.transport.close()
            raise
        finally:
            timer.cancel()
            conn.waiter = None
        self.idle.append(conn)
        return result

    def close(self) -> None:
        for conn in self.idle:
            conn.transport.close()
        self.idle.clear()


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())
