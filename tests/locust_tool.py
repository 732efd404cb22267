"""Locust for tests: a Python with the Locust that rtsctl pins, installed once with uv into a cache folder.

`locust_python()` provisions or reuses it and returns the interpreter; `pytest_plugins = ["tests.locust_tool"]` gives
the session fixture `locust_env`, which names it in RTSCTL_LOCUST_PYTHON for the CLI subprocesses (so a run does not
build rtsctl's own Locust environment in every test's RTSCTL_HOME). The Azure emulator runs uploaded locustfiles with
it. A fresh machine installs it on first use (a few seconds: uv); xdist workers install it once between them (a file
lock), and later runs reuse it (~/.cache/rtsctl-tests/, as tests/azurite.py keeps Azurite).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rtsctl.bench.locust.tool import REQUIREMENT

MARKER = ".rtsctl-complete"


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    return root / "rtsctl-tests" / f"{REQUIREMENT.replace('==', '-')}-{tag}"


def locust_python() -> Path:
    """The interpreter of the cached Locust environment, built now if it is missing or incomplete."""
    folder = cache_dir()
    python = folder / "bin" / "python"
    if (folder / MARKER).exists():
        return python
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.install-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / MARKER).exists():
            return python
        from reconcilers.local.envs import uv_bin, uv_environment

        staging = folder.with_name(folder.name + ".staging")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        for argv in ([uv_bin(), "venv", "--no-config", "--quiet", "--relocatable", "--python", sys.executable, str(staging)],
                     [uv_bin(), "pip", "install", "--no-config", "--quiet", "--compile-bytecode", "--python",
                      str(staging / "bin" / "python"), "--", REQUIREMENT]):
            done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=600, env=uv_environment())
            if done.returncode != 0:
                shutil.rmtree(staging, ignore_errors=True)
                raise RuntimeError(f"{' '.join(argv[:3])} failed:\n{done.stdout}\n{done.stderr}")
        staging.rename(folder)   # --relocatable: its scripts find their interpreter after the rename
        (folder / MARKER).write_text("ok\n")
    return python


@pytest.fixture(scope="session")
def locust_env() -> dict[str, str]:
    """The environment a CLI subprocess needs to run `bench --engine locust` with the cached Locust."""
    return {"RTSCTL_LOCUST_PYTHON": str(locust_python())}
