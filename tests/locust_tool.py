"""Locust (PyPI `locust`), pinned, in a venv of its own for tests, the emulator's Load Testing engines and benchmarks.

`locust_python()` returns the interpreter of a uv-built venv holding `locust==VERSION`, created once under
`~/.cache/rtsctl-tests/locust-VERSION/` (XDG_CACHE_HOME honoured) and reused while present. xdist workers (and
concurrent pytest runs) build it once between them: the build holds an exclusive file lock, and a finished venv is
marked by a stamp file written last, so a half-built one is never used. Locust lives apart from rtsctl's own
environment because it pins gevent/greenlet versions that must not leak into the package under test.

Helper 17a owns the final version of this module (the `--engine locust` work); this is the same name and signature.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

VERSION = "2.47.0"
INSTALL_TIMEOUT = 900.0


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "rtsctl-tests" / f"locust-{VERSION}"


def _uv() -> str:
    from uv import find_uv_bin   # rtsctl depends on uv (pyproject): the same tool builds deployment envs

    return find_uv_bin()


def locust_python() -> Path:
    """The python of a venv with locust==VERSION installed (built on first use, then reused)."""
    folder = cache_dir()
    python = folder / "venv" / "bin" / "python"
    stamp = folder / "ready"
    if stamp.exists() and python.exists():
        return python
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".locust-{VERSION}.install-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and python.exists():
            return python
        folder.mkdir(parents=True, exist_ok=True)
        uv = _uv()
        steps = ([uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(folder / "venv")],
                 [uv, "pip", "install", "--quiet", "--python", str(python), f"locust=={VERSION}"])
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
            if done.returncode != 0:
                raise RuntimeError(f"installing locust=={VERSION} failed ({' '.join(argv[:3])}):\n"
                                   f"{done.stdout}\n{done.stderr}")
        stamp.write_text(VERSION)
    return python
