"""The local backend against its host (issue 14): another real user of this machine, and a full disk.

The scenarios live in benchmarks/hostile_host.py (RELIABILITY.md counts the same checks); here every check
must hold. They need root (useradd, mount -t tmpfs) and skip where it is missing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from benchmarks import hostile_host as hh


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
    _assert_all(hh.other_user(stranger))


def test_relative_home_serves(tmp_path: Path, monkeypatch):
    """RTSCTL_HOME=relhome: made absolute once, so the front and its instances (started elsewhere) find it."""
    project = hh.Project(tmp_path, Path("relhome"))
    try:
        applied = project.run("apply", "dev.yaml", "-y")
        assert applied.returncode == 0 and "Smoke test passed" in applied.stdout, applied.stderr
        assert (project.dir / "relhome" / "local").is_dir()
        assert not hh.private_modes(project.dir / "relhome")
    finally:
        project.home = project.dir / "relhome"
        project.destroy()


@pytest.fixture
def small_disk():
    _need("disk")
    with tempfile.TemporaryDirectory(prefix="rts-tmpfs-") as where, hh.tmpfs(Path(where) / "mnt") as mount:
        yield mount


def test_full_disk_during_apply_then_converges(small_disk: Path):
    _assert_all(hh.full_disk_apply(small_disk, leaves=(0, 64 << 10)))


def test_full_disk_while_serving(small_disk: Path):
    _assert_all(hh.full_disk_serving(small_disk))
