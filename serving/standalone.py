"""One scoring host on a TCP port of 127.0.0.1, without a front: for the Azure emulator's data plane.

The emulator plays Azure's scoring container, behind its own key-checking front, so it
runs the host directly. The local backend never does this: its instances listen only on
Unix sockets in a private folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .runtime import isolated_path


def spawn(code_dir: Path, scoring_script: str, model_dir: Path | None, port: int, log_path: Path,
          env: dict[str, str] | None = None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "serving.host", "--tcp-port", str(port), "--code", str(code_dir),
            "--script", scoring_script]
    if model_dir is not None:
        argv += ["--model-dir", str(model_dir)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, **(env or {}),
                 "PYTHONPATH": str(isolated_path(log_path.parent / ".runtime")), "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, cwd=code_dir, env=child_env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)


def wait_healthy(port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    """Block until `GET /` answers 200; raise RuntimeError on timeout or if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"scoring instance exited with code {proc.returncode} before becoming healthy")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"scoring instance on port {port} not healthy after {timeout:.0f}s")
