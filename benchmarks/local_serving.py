"""Issue 8: the local endpoint (front + scoring instances) vs azmlinfsrv, same score.py, same cores.

    python benchmarks/local_serving.py [--seconds 5] [--rounds 3]

Scenarios, each as interleaved rounds (A, B, A, B, ...; medians reported):
  1 core : rtsctl endpoint with 1 instance, every process pinned to CPU 0, vs azmlinfsrv with
           1 worker pinned to CPU 0; wrk (1 thread, 64 connections) pinned to CPU 1.
  2 cores: rtsctl endpoint with 2 instances vs azmlinfsrv with 2 workers, servers and wrk unpinned.
  scaling: the rtsctl endpoint with 1 and then 2 instances on CPUs 0-1, wrk on CPU 1 too (2 cores only).
  scaling, CPU-bound: the same with a run() that spends ~1 ms of CPU per request (as a real model does), where
           the instances, not the front, are the limit: what a second instance is for.
Memory is the largest RSS of one process of each server after the runs.
The endpoint's manifest is manifests/dev.yaml with max_concurrent_requests_per_instance: 32 (Azure's
default of 1 would answer 429 beyond 2 × 1 × instance_count requests in flight, as Azure does).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from _common import POST_LUA, REPO, ensure_wrk, table
from spine import ensure_azmlinfsrv, start_azmlinfsrv, stop

RTSCTL = [sys.executable, "-m", "rtsctl"]
CPU_RUN = """def run(raw_data):
    import time
    end = time.thread_time() + %r
    while time.thread_time() < end:
        pass
"""


def wrk(url: str, key: str, seconds: int, cpus: str | None) -> tuple[float, float]:
    """(requests/s, p99 ms) from wrk -t1 -c64 --latency; any non-2xx answer invalidates the run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(POST_LUA)
    pin = ["taskset", "-c", cpus] if cpus else []
    try:
        proc = subprocess.run(pin + ["wrk", "-t1", "-c64", f"-d{seconds}s", "--latency", "-s", lua.name, url],
                              env={**os.environ, "BENCH_KEY": key}, capture_output=True, text=True,
                              timeout=seconds + 30)
    finally:
        os.unlink(lua.name)
    if "Non-2xx" in proc.stdout or "Socket errors" in proc.stdout:
        sys.exit(f"wrk saw errors against {url}:\n{proc.stdout}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", proc.stdout)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", proc.stdout)
    if not rps or not p99:
        sys.exit(f"wrk failed against {url}:\n{proc.stdout}\n{proc.stderr}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return float(rps.group(1)), float(p99.group(1)) * scale


def tree(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid] + [p for child in out for p in tree(int(child))]


def pin(pid: int, cpus: str) -> None:
    for p in tree(pid):
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(p)], capture_output=True)


def max_rss_mb(pid: int) -> float:
    sizes = []
    for p in tree(pid):
        try:
            text = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        sizes.append(int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024)
    return max(sizes)


class Endpoint:
    """rtsctl's local endpoint for dev.yaml with `instances` instances, in a throwaway RTSCTL_HOME."""

    def __init__(self, instances: int, cpu_ms: float = 0.0):
        self.root = Path(tempfile.mkdtemp(prefix="rtsctl-serving-bench-"))
        shutil.copytree(REPO / "manifests", self.root / "project")
        if cpu_ms:
            script = self.root / "project" / "seed" / "src" / "score.py"
            script.write_text(script.read_text().replace("def run(raw_data):\n", CPU_RUN % (cpu_ms / 1000)))
        manifest = self.root / "project" / "dev.yaml"
        data = yaml.safe_load(manifest.read_text())
        deployment = data["endpoints"][0]["deployments"][0]
        deployment["instance_count"] = instances
        deployment["request_settings"] = {"max_concurrent_requests_per_instance": 32}
        manifest.write_text(yaml.safe_dump(data, sort_keys=False))
        self.env = {**os.environ, "RTSCTL_HOME": str(self.root / "home")}
        self.run("apply", "dev.yaml", "-y")
        out = json.loads(self.run("output", "dev.yaml", "-o", "json", "--show-secrets"))
        out = out[0] if isinstance(out, list) else out
        self.url, self.key = out["scoring_uri"], out["primary_key"]
        status = next((self.root / "home").rglob("endpoints/rts-score/status.json"))
        self.pid = json.loads(status.read_text())["pid"]

    def run(self, *args: str) -> str:
        proc = subprocess.run(RTSCTL + list(args), cwd=self.root / "project", env=self.env, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            sys.exit(f"rtsctl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def close(self) -> None:
        self.run("destroy", "dev.yaml", "-y")
        shutil.rmtree(self.root, ignore_errors=True)


class Azmlinfsrv:
    def __init__(self, gunicorn: Path, workers: int):
        from reconcilers.local.procs import free_port

        port = free_port()
        self.proc = start_azmlinfsrv(gunicorn, port, workers)
        self.url, self.key, self.pid = f"http://127.0.0.1:{port}/score", "unused", self.proc.pid

    def close(self) -> None:
        stop(self.proc)


def duel(ours, theirs, rounds: int, seconds: int, wrk_cpus: str | None) -> dict[str, list[float]]:
    got: dict[str, list[float]] = {"rps": [], "p99": [], "their_rps": [], "their_p99": []}
    for _ in range(rounds):
        rps, p99 = wrk(ours.url, ours.key, seconds, wrk_cpus)
        got["rps"].append(rps)
        got["p99"].append(p99)
        rps, p99 = wrk(theirs.url, theirs.key, seconds, wrk_cpus)
        got["their_rps"].append(rps)
        got["their_p99"].append(p99)
    return got


def duel_rows(cores: str, who: str, result: dict, rps_target: str, p99_target: str) -> list[tuple[str, ...]]:
    """Table rows (median req/s and p99, ours vs theirs, with ratios) of one duel."""
    med = statistics.median
    return [(f"{cores}: req/s, 64 conns ({who})", f"{med(result['rps']):.0f}", f"{med(result['their_rps']):.0f}",
             f"{med(result['rps']) / med(result['their_rps']):.2f}x", rps_target),
            (f"{cores}: p99 ms", f"{med(result['p99']):.1f}", f"{med(result['their_p99']):.1f}",
             f"{med(result['p99']) / med(result['their_p99']):.2f}x", p99_target)]


def scaling(label: str, cpu_ms: float, target: str, rounds: int, seconds: int) -> tuple[tuple[str, ...], str]:
    """The endpoint with 2 instances vs 1 (2 cores, wrk on them too): a table row and the rounds."""
    single, double = Endpoint(1, cpu_ms), Endpoint(2, cpu_ms)
    try:
        got = duel(double, single, rounds, seconds, None)
    finally:
        single.close()
        double.close()
    med = statistics.median
    row = (label, f"{med(got['rps']):.0f}", f"{med(got['their_rps']):.0f}",
           f"{med(got['rps']) / med(got['their_rps']):.2f}x", target)
    return row, (f"{label} rounds: 2 instances {[round(x) for x in got['rps']]}, "
                 f"1 instance {[round(x) for x in got['their_rps']]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 CPUs (server and load generator on different cores)")
    ensure_wrk()
    gunicorn = ensure_azmlinfsrv()
    rows, notes = [], []

    ours, theirs = Endpoint(1), Azmlinfsrv(gunicorn, 1)
    try:
        pin(ours.pid, "0")
        pin(theirs.pid, "0")
        one = duel(ours, theirs, args.rounds, args.seconds, "1")
        mem = (max_rss_mb(ours.pid), max_rss_mb(theirs.pid))
    finally:
        ours.close()
        theirs.close()
    rows += [*duel_rows("1 core", "1 instance vs 1 worker", one, ">= 5x", "<= 0.33x"),
             ("largest process RSS MB", f"{mem[0]:.0f}", f"{mem[1]:.0f}", f"{mem[0] / mem[1]:.2f}x", "<= 50 MB")]
    notes.append(f"1 core rounds: rtsctl {[round(x) for x in one['rps']]} req/s, p99 {one['p99']} ms; "
                 f"azmlinfsrv {[round(x) for x in one['their_rps']]} req/s, p99 {one['their_p99']} ms")

    ours, theirs = Endpoint(2), Azmlinfsrv(gunicorn, 2)
    try:
        two = duel(ours, theirs, args.rounds, args.seconds, None)
    finally:
        ours.close()
        theirs.close()
    rows += duel_rows("2 cores", "2 instances vs 2 workers", two, "(info)", "(info)")
    notes.append(f"2 cores rounds: rtsctl {[round(x) for x in two['rps']]}, azmlinfsrv {[round(x) for x in two['their_rps']]}")

    for label, cpu_ms, target in (("scaling: req/s 2 instances vs 1 (2 cores)", 0.0, "> 1x"),
                                  ("scaling, ~1 ms CPU per request: 2 instances vs 1", 1.0, "> 1.5x")):
        row, note = scaling(label, cpu_ms, target, args.rounds, args.seconds)
        rows.append(row)
        notes.append(note)
    print(table(rows))
    print()
    print("\n".join(notes))
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (the machine is shared; compare ratios)")


if __name__ == "__main__":
    main()
