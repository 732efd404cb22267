"""An HTTP CONNECT proxy that splices Azure host names to the emulator's own TLS listener.

Blob URLs are hard-coded as `https://{account}.blob.core.windows.net` (Key Vault `https://{vault}.vault.azure.net`,
Load Testing `https://{guid}.{region}.cnt-prod.loadtesting.azure.com`), so with
`HTTPS_PROXY=http://127.0.0.1:{proxy}` every tunnel to an emulated host lands on the emulator,
which routes by the `Host` header (its certificate carries those names). `routes` sends one host's tunnels to
another listener instead (a storage account served by Azurite, say), so a client reaches it by its real name.
"""

from __future__ import annotations

import asyncio

EMULATED_SUFFIXES = (".blob.core.windows.net", ".vault.azure.net", ".cnt-prod.loadtesting.azure.com")
EMULATED_HOSTS = ("management.azure.com", "login.microsoftonline.com", "127.0.0.1", "localhost")


def emulated(host: str) -> bool:
    host = host.lower()
    return host in EMULATED_HOSTS or host.endswith(EMULATED_SUFFIXES)


class ConnectProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        #: host name (lowercase) -> (host, port) its tunnels go to instead of the emulator
        self.routes: dict[str, tuple[str, int]] = {}
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            request_line = (await reader.readline()).decode("latin-1").split()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            if len(request_line) < 2 or request_line[0].upper() != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host = request_line[1].rsplit(":", 1)[0].strip("[]")
            if not emulated(host):
                message = f"host {host} is not emulated".encode()
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n%s" % (len(message), message))
                return
            up_reader, up_writer = await asyncio.open_connection(*self.routes.get(host.lower(), self.target))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass                      # client went away, or the emulator is stopping
        finally:
            self._tasks.discard(task)
            writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.close()
            except RuntimeError:
                pass
