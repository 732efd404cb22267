"""Shared by benchmark scripts: timing commands, wrk runs, tool installs. Traffic stays on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POST_LUA = """wrk.method = "POST"
wrk.body = '{"name": "Daniel"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "none")
"""


def timed(argv: list[str], env: dict[str, str] | None = None, check: bool = True) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if check and proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def median_of(n: int, fn) -> float:
    return statistics.median(fn() for _ in range(n))


def ensure_wrk() -> str:
    if shutil.which("wrk") is None:
        print("installing wrk (apt-get)...", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True)
    path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is required: apt-get install wrk")
    return path


def wrk(url: str, key: str, connections: int = 64, seconds: int = 5) -> float:
    """Requests/s that wrk (1 thread) measured; non-2xx answers make the run invalid."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(POST_LUA)
    try:
        proc = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", lua.name, url],
                              env={**os.environ, "BENCH_KEY": key}, capture_output=True, text=True,
                              timeout=seconds + 30)
    finally:
        os.unlink(lua.name)
    if "Non-2xx" in proc.stdout:
        sys.exit(f"wrk saw errors against {url}:\n{proc.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", proc.stdout)
    if not match:
        sys.exit(f"wrk failed against {url}:\n{proc.stdout}\n{proc.stderr}")
    return float(match.group(1))


def table(rows: list[tuple[str, str, str, str, str]]) -> str:
    header = ("measure", "rtsctl", "anchor", "ratio", "target")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def one_instance_project(prefix: str) -> tuple[Path, Path, dict[str, str]]:
    """(work dir, a copy of manifests/ whose dev.yaml serves blue on 1 instance taking 32 requests at once,
    env with its own RTSCTL_HOME): the starting point of the issue-10 rollout benchmarks."""
    import yaml

    work = Path(tempfile.mkdtemp(prefix=prefix))
    project = work / "project"
    shutil.copytree(REPO / "manifests", project)
    data = yaml.safe_load((project / "dev.yaml").read_text())
    blue = data["endpoints"][0]["deployments"][0]
    blue["instance_count"] = 1
    blue["request_settings"] = {"max_concurrent_requests_per_instance": 32}
    (project / "dev.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return work, project, {**os.environ, "RTSCTL_HOME": str(work / "home"), "NO_COLOR": "1", "PYTHONPATH": str(REPO)}
