"""The scoring host: one instance of a deployment, serving the user's code to the front only.

It runs inside the deployment's own environment (any Python >= 3.11 that has the
user's packages) with only this `serving` package added to its path, so it uses the
standard library alone. It is a single thread on purpose, like azmlinfsrv's sync
worker: requests are handled one at a time in arrival order, and each response is
sent before the next request starts. That order is what lets the front know, when an
instance dies, which request it was running (the first unanswered one) and which it
had not started yet (all the others).

It listens on a Unix socket in the endpoint's private (0700) run folder: no TCP port,
so no local user can reach it without going through the front and its key check. The
socket appears under its final name only after `init()` succeeded: its existence
means "initialised". `GET /` answers `Healthy` (the probes); `POST /score` goes to the
engine's handler.

Run as `python -m serving.host --socket NAME --code DIR --script FILE [--model-dir DIR]
[--engine native] --owner MARKER`, with the run folder as working directory.
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import sys
import traceback
from pathlib import Path
from typing import NoReturn

from . import engines
from .limits import OOM_EXIT
from .reaper import become_subreaper
from .wire import MAX_RESPONSE, BadRequest, parse_request, response

INIT_FAILED_EXIT = 3
MAX_BODY = 64 * 1024 * 1024   # the front enforces the endpoint's limit; this only bounds memory
HEALTHY = response(200, b"Healthy", b"Content-Type: text/plain\r\n")
NOT_FOUND = response(404, b'{"message": "not found"}', b"Content-Type: application/json\r\n")


def _answer(handler: engines.Handler, request) -> bytes:
    path = request.path.split(b"?", 1)[0]
    if request.method == b"GET" and path == b"/":
        return HEALTHY
    if request.method != b"POST" or path != b"/score":
        return NOT_FOUND
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers.items()}
    status, extra, body = handler(request.body, headers)
    if len(body) > MAX_RESPONSE:
        print(f"run() returned {len(body)} bytes; the limit is {MAX_RESPONSE}: answered 500 instead",
              file=sys.stderr, flush=True)
        return response(500, b'{"message": "the scoring script\'s response is larger than the %d-byte limit"}'
                        % MAX_RESPONSE, b"Content-Type: application/json\r\n")
    block = "".join(f"{k}: {v}\r\n" for k, v in extra).encode("latin-1", "replace")
    return response(status, body, block)


def serve_forever(listener: socket.socket, handler: engines.Handler) -> None:
    selector = selectors.DefaultSelector()
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    buffers: dict[socket.socket, bytearray] = {}

    def drop(conn: socket.socket) -> None:
        selector.unregister(conn)
        buffers.pop(conn, None)
        conn.close()

    while True:
        for key, _ in selector.select():
            if key.fileobj is listener:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(True)
                buffers[conn] = bytearray()
                selector.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj  # type: ignore[assignment]
            try:
                data = conn.recv(262144)
            except OSError:
                data = b""
            if not data:
                drop(conn)
                continue
            buf = buffers[conn]
            buf += data
            try:
                while (parsed := parse_request(buf, MAX_BODY)) is not None:
                    used, request = parsed
                    del buf[:used]
                    conn.sendall(_answer(handler, request))
            except BadRequest as exc:
                conn.sendall(response(exc.status, exc.message.encode(), keep_alive=False))
                drop(conn)
            except OSError:
                drop(conn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.host", description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="socket file name, relative to the working directory")
    where.add_argument("--tcp-port", type=int, help="listen on 127.0.0.1:PORT instead (serving.standalone only)")
    parser.add_argument("--code", required=True, type=Path)
    parser.add_argument("--script", required=True)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--engine", default="native")
    parser.add_argument("--owner", default="", help="marker naming the endpoint, found again in /proc")
    args = parser.parse_args(argv)
    become_subreaper()   # what the script starts stays below this host while it lives (serving.reaper)

    run_dir = os.open(".", os.O_RDONLY)
    staging = f"{args.socket}.init"
    if args.socket:
        for name in (staging, args.socket):
            try:
                os.unlink(name, dir_fd=run_dir)
            except FileNotFoundError:
                pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(staging)
        listener.listen(128)

    code_dir = args.code.resolve()
    os.chdir(code_dir)
    os.environ.setdefault("AML_APP_ROOT", str(code_dir))
    if args.model_dir is not None:
        os.environ["AZUREML_MODEL_DIR"] = str(args.model_dir)
    try:
        handler = engines.load(args.engine, code_dir, args.script, args.model_dir)
    except MemoryError:
        return out_of_memory("init()")
    except BaseException:
        print(f"scoring script failed to initialise:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        return INIT_FAILED_EXIT
    if args.socket:
        os.rename(staging, args.socket, src_dir_fd=run_dir, dst_dir_fd=run_dir)
    else:
        listener = socket.create_server(("127.0.0.1", args.tcp_port), backlog=128)
    print(f"serving {code_dir / args.script} ({args.engine} engine)", file=sys.stderr, flush=True)
    try:
        serve_forever(listener, handler)
    except MemoryError:
        return out_of_memory("run()")
    return 0


def out_of_memory(where: str) -> NoReturn:
    """A MemoryError is the memory limit (RLIMIT_AS where no cgroup could be made): exit as OOM-killed, at once
    (an orderly exit would close the front's connection first, and the front would SIGKILL the host over it)."""
    os.write(2, f"{where} ran out of memory (MemoryError): the instance is over its memory limit\n".encode())
    os._exit(OOM_EXIT)


if __name__ == "__main__":
    sys.exit(main())
