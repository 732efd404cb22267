"""A pre-forked `python -m rtsctl` for the test suite: the same CLI in a real child process, minus the import.

Every CLI call of an Azure test pays ~2 s of azure-ai-ml / azure-mgmt import before rtsctl does anything, and the
suite makes hundreds of them. This server (one per pytest worker) imports those third-party libraries once, then
forks one child per call. The child is a fresh process as far as rtsctl can tell: it gets its own pid, working
folder, environment, argv and standard streams, runs `rtsctl/__main__.py` with runpy exactly as `python -m rtsctl`
does, and exits through the interpreter's normal shutdown (atexit, thread
joins). What it cannot give is a different interpreter start-up, so `tests.conftest.Cli` falls back to a real
`exec` when a call changes a `PYTHON*` variable, and tests about start-up itself (signals on a terminal, import
laziness) run their own subprocesses. `RTSCTL_TEST_EXEC=1` runs every call with a real exec.

The server also imports rtsctl's own modules (~0.08 s of CPU per call, a fifth of the suite's CPU), but only if
importing them read no environment variable, no working folder and no time: module-level code then computes nothing
a call's environment could change, and a forked child sees exactly what a fresh import would give it. Should an
import ever read one of those, every rtsctl module is dropped again and each child imports them itself.

Wire protocol on a Unix SOCK_SEQPACKET socket (0600, in the worker's private temp folder): the client sends one
JSON message {"argv", "cwd", "env"} with three file descriptors attached (stdin, stdout, stderr); the server
answers "<pid>" once forked and "<wait status>" when the child has ended, then closes the connection.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: third-party modules worth importing once; only ever libraries, never rtsctl's own code
WARM = (
    "yaml", "jsonschema", "deepdiff", "tenacity", "rich.console", "rich.table", "aiohttp", "hdrhistogram",
    "azure.identity", "azure.ai.ml", "azure.ai.ml.entities", "azure.mgmt.resource",
    "azure.mgmt.containerservice", "azure.mgmt.kubernetesconfiguration.extensions", "azure.mgmt.monitor",
    "azure.storage.blob", "packaging.requirements", "packaging.tags", "rich._emoji_codes", "getpass", "termios",
    "msal_extensions",
)


#: the project's own packages, pre-imported under `_no_ambient_reads`
OWN = ("rtsctl", "reconcilers", "schemas", "serving")


def _warm() -> None:
    import importlib

    for name in WARM:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    _warm_own()


def _warm_own() -> None:
    """Import every module of OWN, or none: see the module docstring."""
    import importlib
    import pkgutil

    read: list[str] = []
    with _no_ambient_reads(read):
        for package in OWN:
            try:
                root = importlib.import_module(package)
                for info in pkgutil.walk_packages(root.__path__, f"{package}."):
                    if not info.name.endswith("__main__"):
                        importlib.import_module(info.name)
            except Exception as exc:  # an import that fails here fails the same way in the child, on its own
                read.append(f"import failed: {exc!r}")
    if read:
        for name in [m for m in sys.modules if m.split(".")[0] in OWN]:
            del sys.modules[name]
        print(f"prefork: rtsctl imported fresh per call: its import read {sorted(set(read))[:5]}", file=sys.stderr)


class _no_ambient_reads:
    """Record (in `read`) every environment variable, working-folder and clock read made inside the block."""

    def __init__(self, read: list[str]):
        self.read = read

    def __enter__(self) -> None:
        import time

        read, real = self.read, os.environ

        class Recording(type(real)):
            def __getitem__(self, key):
                read.append(f"env {key}")
                return super().__getitem__(key)

            def __contains__(self, key):
                read.append(f"env {key}")
                return super().__contains__(key)

        self.saved = (os.environ, os.getcwd, time.time, time.monotonic)
        os.environ = Recording(real._data, real.encodekey, real.decodekey, real.encodevalue, real.decodevalue)

        active = self.active = [True]   # a module that kept a reference (`from time import time`) stops recording

        def noting(what, fn):
            def call(*args, **kwargs):
                if active[0]:
                    read.append(what)
                return fn(*args, **kwargs)
            return call

        os.getcwd = noting("cwd", os.getcwd)
        time.time, time.monotonic = noting("time", time.time), noting("time", time.monotonic)

    def __exit__(self, *exc) -> None:
        import time

        self.active[0] = False
        os.environ, os.getcwd, time.time, time.monotonic = self.saved


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become `python -m rtsctl ARGS` and never return to the server loop."""
    import io
    import runpy

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # what the interpreter sets up at start: default signal handlers, SIGPIPE ignored, fresh text streams
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    encoding = os.environ.get("PYTHONIOENCODING", "utf-8")
    sys.stdin = io.TextIOWrapper(io.open(0, "rb", closefd=False), encoding=encoding)
    sys.stdout = io.TextIOWrapper(io.open(1, "wb", closefd=False), encoding=encoding, write_through=False)
    sys.stderr = io.TextIOWrapper(io.open(2, "wb", closefd=False), encoding=encoding, errors="backslashreplace",
                                  line_buffering=True)
    sys.argv = ["rtsctl", *request["argv"]]
    sys.path[0] = os.getcwd()
    try:
        runpy.run_module("rtsctl", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:   # argparse's usage errors and --help exit from inside main(), before its fast exit
        code = stop.code
    except BaseException:        # --debug lets a traceback out: printed and exit 1, as the interpreter does
        import traceback

        traceback.print_exc()
        code = 1
    # a real `python -m rtsctl` stopped by a usage error never imported the Azure SDKs, but this child inherited
    # them from the server: it ends through rtsctl's own fast exit, or tearing them down would cost it a second
    from rtsctl.cli import leave

    leave(code)


def _die_with_parent() -> None:
    """A killed pytest worker must not leave this server behind (prctl PR_SET_PDEATHSIG = 1, SIGKILL)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the line above ran
        sys.exit(0)


def serve(path: str) -> None:
    _die_with_parent()
    _warm()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    waiting: dict[int, socket.socket] = {}
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    listener.close()
                    conn.close()
                    os.close(wake_r)
                    os.close(wake_w)
                    _run_child(json.loads(message), fds)
                for fd in fds:
                    os.close(fd)
                conn.sendall(f"{pid}\n".encode())
                waiting[pid] = conn
            else:
                os.read(wake_r, 4096)
        while waiting:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = waiting.pop(pid, None)
            if conn is not None:
                try:
                    conn.sendall(f"{status}\n".encode())
                except OSError:
                    pass
                conn.close()



# --- the client, used by tests.conftest.Cli -------------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


class Prefork:
    """The client of this worker's pre-forked CLI server (tests/prefork.py: why it exists and what it keeps)."""

    _instance: Prefork | None = None
    _environ = dict(os.environ)  # as the worker started, before any test's monkeypatching

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="rtsctl-prefork-"))
        self.path = str(self.folder / "cli.sock")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.prefork", self.path], cwd=REPO,
                                     env=self._environ, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        self.ready = False

    @classmethod
    def instance(cls) -> Prefork:
        if cls._instance is None:
            cls._instance = Prefork()
        return cls._instance

    @classmethod
    def serves(cls, env: dict[str, str]) -> bool:
        """False where only a real exec is faithful: asked for, or an interpreter start-up setting differs."""
        if os.environ.get("RTSCTL_TEST_EXEC") == "1":
            return False
        names = {n for n in (*env, *cls._environ) if n.startswith("PYTHON")}
        return all(env.get(n) == cls._environ.get(n) for n in names)

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], stdin: str | None, timeout: float) -> Result:
        if not self.ready:
            line = self.proc.stdout.readline()
            assert line == b"ready\n", f"the pre-forked CLI server did not start: {line!r}"
            self.ready = True
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
                (tempfile.TemporaryFile() if stdin is not None else open(os.devnull, "rb")) as source, \
                socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
            if stdin is not None:
                source.write(stdin.encode())
                source.seek(0)
            conn.connect(self.path)
            request = json.dumps({"argv": argv, "cwd": str(cwd), "env": env}).encode()
            socket.send_fds(conn, [request], [source.fileno(), out.fileno(), err.fileno()])
            conn.settimeout(60)
            pid = int(conn.recv(64))
            conn.settimeout(timeout)
            try:
                status = int(conn.recv(64))
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                conn.settimeout(10)
                conn.recv(64)
                raise subprocess.TimeoutExpired(["rtsctl", *argv], timeout) from None
            return Result(os.waitstatus_to_exitcode(status), _text(out), _text(err))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _text(stream) -> str:
    """What `subprocess.run(text=True)` would have read: decoded, universal newlines."""
    stream.seek(0)
    return stream.read().decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")


if __name__ == "__main__":
    serve(sys.argv[1])
