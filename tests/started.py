"""A CLI call started without waiting for it (test_azure_fixes, test_azure_lock), through the worker's pre-forked
CLI server (tests/prefork.py), so a test that must stop or watch an `rtsctl apply` mid-way does not pay a fresh
interpreter's ~3 s azure-ai-ml import for it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.prefork import Prefork


class Started:
    """`python -m rtsctl ARGS` running in the background, like a `subprocess.Popen` with text stdout/stderr pipes:
    forked by the pre-forked server when it is faithful for `env` (tests.prefork.Prefork.serves), else exec'd."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], stdin: int | None = None):
        self.returncode: int | None = None
        self._popen: subprocess.Popen | None = None
        if not Prefork.serves(env):
            self._popen = subprocess.Popen([sys.executable, "-m", "rtsctl", *argv], cwd=cwd, env=env,
                                           stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.pid, self.stdout, self.stderr = self._popen.pid, self._popen.stdout, self._popen.stderr
            return
        server = Prefork.instance()
        if not server.ready:
            line = server.proc.stdout.readline()
            assert line == b"ready\n", f"the pre-forked CLI server did not start: {line!r}"
            server.ready = True
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        source = stdin if stdin is not None else os.open(os.devnull, os.O_RDONLY)
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._conn.connect(server.path)
            request = json.dumps({"argv": argv, "cwd": str(cwd), "env": env}).encode()
            socket.send_fds(self._conn, [request], [source, out_w, err_w])
            self._conn.settimeout(60)
            self.pid = int(self._conn.recv(64))
        finally:
            for fd in (out_w, err_w, *((source,) if stdin is None else ())):
                os.close(fd)
        # kept open past __init__, like Popen's pipes: closed by communicate()
        self.stdout = open(out_r, encoding="utf-8")  # noqa: SIM115
        self.stderr = open(err_r, encoding="utf-8")  # noqa: SIM115

    def poll(self) -> int | None:
        if self._popen is not None:
            return self._popen.poll()
        if self.returncode is None:
            self._conn.setblocking(False)
            try:
                self._status(self._conn.recv(64))
            except BlockingIOError:
                pass
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self._popen is not None:
            return self._popen.wait(timeout)
        if self.returncode is None:
            self._conn.settimeout(timeout)
            self._status(self._conn.recv(64))
        return self.returncode

    def _status(self, answer: bytes) -> None:
        # the server answers the wait status once the child has ended (nothing if it went first)
        self.returncode = os.waitstatus_to_exitcode(int(answer)) if answer.strip() else -1
        self._conn.close()

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the end, then read what is left on both streams (small outputs only: the pipes are not drained
        while waiting)."""
        self.wait(timeout)
        out, err = self.stdout.read(), self.stderr.read()
        self.stdout.close()
        self.stderr.close()
        return out, err
