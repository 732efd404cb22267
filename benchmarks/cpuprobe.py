"""A pytest plugin that charges each test the CPU of every process it started, detached ones included.

    PYTHONPATH=benchmarks python -m pytest -n 4 -p cpuprobe      # root only (cgroup v1 cpuacct)
    CPUPROBE_OUT=/tmp/cpu.jsonl (default): one JSON line per test: {"test", "cpu", "wall"} in seconds

Each pytest process (controller and xdist workers) moves itself into its own `cpuacct` group at start; everything
it starts afterwards (the pre-forked CLI, rtsctl calls, fronts, hosts, Locust) is born in that group, whoever its
parent becomes. A test's CPU is the group's usage after it minus before it. `time` cannot see this: it counts only
the children a process waited for, and a front or host is never waited for by the test. Not part of the suite.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

ROOT = Path("/sys/fs/cgroup/cpuacct")
OUT = Path(os.environ.get("CPUPROBE_OUT", "/tmp/cpu.jsonl"))
_group: Path | None = None


def _usage() -> float:
    return int((_group / "cpuacct.usage").read_text()) / 1e9


def pytest_configure(config) -> None:
    global _group
    _group = ROOT / f"rtsctl-probe-{os.getpid()}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    _group.mkdir(exist_ok=True)
    (_group / "cgroup.procs").write_text(str(os.getpid()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, wall = _usage(), time.monotonic()
    yield
    with OUT.open("a") as out:
        out.write(json.dumps({"test": item.nodeid, "cpu": _usage() - cpu, "wall": time.monotonic() - wall}) + "\n")
