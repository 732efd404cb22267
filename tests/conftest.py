"""Shared fixtures: run the CLI as a user would, in a temporary RTSCTL_HOME, on a copy of the manifests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.prefork import Prefork, Result

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config) -> None:
    """Byte-compile the project once, in the controller, before any worker starts. Without it, a machine that sets
    PYTHONDONTWRITEBYTECODE (this one does) compiles rtsctl, serving and reconcilers from source in every one of the
    suite's thousands of processes (CLI calls, fronts, hosts): ~0.1 s of CPU each, minutes in all on two cores.
    py_compile writes the same __pycache__ files Python would (git ignores them); Python only reads them."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    import compileall

    for folder in ("rtsctl", "reconcilers", "serving", "schemas", "tests"):
        compileall.compile_dir(REPO / folder, quiet=2, workers=1)


class Cli:
    """`rtsctl` in a subprocess with its own RTSCTL_HOME; cleans up every process it started."""

    def __init__(self, home: Path, workdir: Path, env: dict[str, str] | None = None):
        self.home, self.workdir = home, workdir
        self.env = {**os.environ, "RTSCTL_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
        self.env.pop("RTSCTL_DEBUG", None)
        # set in this pytest process by azure-ai-ml when an in-process test made a client for an emulator's cloud
        # (gone with that emulator): never the setting of a user running rtsctl
        self.env.pop("AZUREML_CURRENT_CLOUD", None)

    def __call__(self, *args: str, timeout: float = 180, stdin: str | None = None,
                 env: dict[str, str] | None = None) -> Result:
        call_env = {**self.env, **(env or {})}
        if Prefork.serves(call_env):
            return Prefork.instance().run(list(args), self.workdir, call_env, stdin, timeout)
        proc = subprocess.run([sys.executable, "-m", "rtsctl", *args], cwd=self.workdir, capture_output=True,
                              text=True, timeout=timeout, input=stdin, env=call_env)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, **kw) -> Result:
        result = self(*args, **kw)
        assert result.code == 0, str(result)
        return result

    def outputs(self, manifest: str = "dev.yaml") -> dict:
        """The outputs of the manifest's first endpoint (`output -o json` is a list of endpoint objects)."""
        return json.loads(self.ok("output", manifest, "-o", "json", "--show-secrets").out)[0]

    def recorded_pids(self) -> list[int]:
        """PIDs of every endpoint and instance process recorded under RTSCTL_HOME."""
        pids: list[int] = []
        for record in self.home.rglob("*.json"):
            try:
                data = json.loads(record.read_text())
            except (ValueError, OSError):
                continue
            if isinstance(data, dict):
                pids += [data["pid"]] if isinstance(data.get("pid"), int) else []
                pids += [i["pid"] for i in data.get("instances", []) if isinstance(i, dict) and "pid" in i]
        return pids


@pytest.fixture(scope="session", autouse=True)
def prefork_server():
    """Start this worker's pre-forked CLI early, so its imports overlap the first tests; stopped at the end."""
    if os.environ.get("RTSCTL_TEST_EXEC") != "1":
        Prefork.instance()
    yield
    if Prefork._instance is not None:
        Prefork._instance.stop()
        Prefork._instance = None


def kill_recorded(cli: Cli) -> None:
    from reconcilers.local import procs

    for pid in cli.recorded_pids():
        procs.stop(pid, timeout=2.0)


@pytest.fixture(scope="session", autouse=True)
def shared_env_cache() -> Path:
    """Local environments (uv venvs of the base interpreter, keyed by their content) shared by every test and xdist
    worker through RTSCTL_ENV_CACHE, which the CLI subprocesses inherit; each test keeps its own RTSCTL_HOME. Like
    Azurite and Locust they are kept between runs (~/.cache/rtsctl-tests/): a key names exactly what is installed,
    rtsctl's build lock serialises runs side by side, and a half-built one is never used (its marker is written
    last). A test about building itself passes its own RTSCTL_ENV_CACHE."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rtsctl-tests"
    path = root / f"envs-py{sys.version_info.major}{sys.version_info.minor}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["RTSCTL_ENV_CACHE"] = str(path)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A writable copy of manifests/ (dev.yaml and the seed files) that a test may edit."""
    target = tmp_path / "project"
    shutil.copytree(REPO / "manifests", target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture
def cli(tmp_path: Path, project: Path):
    runner = Cli(tmp_path / "home", project)
    yield runner
    kill_recorded(runner)
