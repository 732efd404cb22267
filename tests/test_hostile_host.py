"""The local backend against its host (issue 14): another real user of this machine, and a full disk.

The scenarios live in benchmarks/hostile_host.py (RELIABILITY.md counts the same checks); here every check
must hold. They need root (useradd, mount -t tmpfs) and skip where it is missing.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from benchmarks import hostile_host as hh
from tests.prefork import Prefork


@pytest.fixture(autouse=True)
def preforked_cli(monkeypatch):
    """The scenarios' ~30 CLI calls go through this worker's pre-forked CLI (tests/prefork.py), as the `cli`
    fixture's do: the same rtsctl in a real child process with the call's folder and environment, minus an
    interpreter start-up and third-party imports per call; a real exec where only that is faithful."""
    real = hh.Project.run

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180):
        call_env = {**self.env, **(env or {})}
        if not Prefork.serves(call_env):
            return real(self, *args, env=env, timeout=timeout)
        result = Prefork.instance().run(list(args), self.dir, call_env, None, timeout)
        return subprocess.CompletedProcess(["rtsctl", *args], result.code, result.out, result.err)

    monkeypatch.setattr(hh.Project, "run", run)


def _need(what: str) -> None:
    why = hh.available(what)
    if why:
        pytest.skip(why)


@pytest.fixture(scope="module")
def stranger():
    _need("users")
    with hh.stranger() as user:
        yield user


def _assert_all(checks: hh.Checks) -> None:
    assert checks.results, "no check ran"
    assert not checks.failed(), "\n".join(checks.failed())


def test_loose_or_foreign_home_and_cache_are_refused_before_anything_runs(tmp_path: Path, stranger):
    _assert_all(hh.loose_homes(tmp_path, stranger))


def test_other_user_cannot_read_block_impersonate_or_signal(stranger):
    """Also: a relative RTSCTL_HOME, and a home we made 0755 by hand (tightened to 0700)."""
    _assert_all(hh.other_user(stranger))


@pytest.fixture
def small_disk():
    _need("disk")
    with tempfile.TemporaryDirectory(prefix="rts-tmpfs-") as where, hh.tmpfs(Path(where) / "mnt") as mount:
        yield mount


def test_full_disk_during_apply_then_converges(small_disk: Path):
    _assert_all(hh.full_disk_apply(small_disk, leaves=(0, 64 << 10)))
    _assert_all(hh.full_disk_environment(small_disk))


def test_full_disk_while_serving(small_disk: Path):
    _assert_all(hh.full_disk_serving(small_disk))
