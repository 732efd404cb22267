"""What each `rtsctl bench` engine costs on this machine: the native engine vs Locust distributed (a master and
2 workers), same endpoint, same client core; prints req/s, requests per client CPU-second and p99, with ratios.

The endpoint is the local backend's (`rtsctl apply manifests/dev.yaml`, temp RTSCTL_HOME: front + 2 scoring
instances), started pinned to CPU 1; every client run is pinned to CPU 0 (`taskset -c 0 rtsctl bench ...`, which
Locust's master and workers inherit), so "per core" compares the engines on the same core. Both engines get the same
command but `--engine`: `rtsctl bench dev.yaml -c 32 -d 10s -o json [--engine locust --workers 2]`. Client CPU is
user+sys of rtsctl and every process it waited for (wait4). Two figures per engine: requests per CPU-second of the
whole run (start-up included: what a 10 s run costs), and in steady state (each round also runs 2 s: the extra
requests of the long run over its extra CPU, so start-up cancels out).

    python benchmarks/locust_vs_native.py               # 3 interleaved rounds of 10 s each (~2 min)
    python benchmarks/locust_vs_native.py --rounds 5 --seconds 20

Locust comes from RTSCTL_LOCUST_PYTHON if set, else tests/locust_tool.py's cached environment (installed with uv
on first use). Stops only what it started (the endpoint, with `rtsctl destroy`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import REPO, table
from loadtesters import measured, pin, wait_quiet

PY = sys.executable
MANIFEST = str(REPO / "manifests" / "dev.yaml")
SHORT_S = 2


def start_endpoint(home: Path) -> dict[str, str]:
    env = {**os.environ, "RTSCTL_HOME": str(home)}
    done = subprocess.run(pin("1") + [PY, "-m", "rtsctl", "apply", MANIFEST, "-y"], check=False, env=env,
                          capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        sys.exit(f"rtsctl apply failed:\n{done.stdout}\n{done.stderr}")
    return env


def run(env: dict, engine: str, conns: int, secs: int) -> dict:
    extra = ["--engine", "locust", "--workers", "2"] if engine == "locust" else []
    argv = pin("0") + [PY, "-m", "rtsctl", "bench", MANIFEST, "-c", str(conns), "-d", f"{secs}s", "-o", "json",
                       "--no-progress", *extra]
    out, err, cpu_s = measured(argv, env, timeout=secs + 180, cwd=REPO)
    try:
        doc = json.loads(out)
    except ValueError:
        sys.exit(f"{engine}: no JSON report:\n{out[-2000:]}\n{err[-2000:]}")
    if doc["errors"]["total"]:
        sys.exit(f"{engine}: {doc['errors']['total']} errors: {doc['errors']}")
    return {"rps": doc["rps"], "requests": doc["requests"], "cpu_s": cpu_s,
            "per_core": doc["requests"] / cpu_s if cpu_s else 0.0, "p99": doc["latency_ms"]["p99_ms"],
            "p50": doc["latency_ms"]["p50_ms"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("-c", "--connections", type=int, default=32)
    args = ap.parse_args()
    if "RTSCTL_LOCUST_PYTHON" not in os.environ:
        from tests.locust_tool import locust_python

        os.environ["RTSCTL_LOCUST_PYTHON"] = str(locust_python())
    tmp = Path(tempfile.mkdtemp(prefix="rtsctl-locust-bench-"))
    env = start_endpoint(tmp / "home")
    runs: dict[str, list[dict]] = {"native": [], "locust": []}
    try:
        for rnd in range(args.rounds):
            for engine in (("native", "locust") if rnd % 2 == 0 else ("locust", "native")):
                busy = wait_quiet(patience=5.0)
                short = run(env, engine, args.connections, SHORT_S)
                r = run(env, engine, args.connections, args.seconds)
                extra_cpu = r["cpu_s"] - short["cpu_s"]
                r["steady"] = (r["requests"] - short["requests"]) / extra_cpu if extra_cpu > 0 else 0.0
                runs[engine].append(r)
                print(f"round {rnd + 1} {engine:6}: {r['rps']:8,.0f} req/s  {r['per_core']:8,.0f} req per CPU-s "
                      f"(steady {r['steady']:,.0f})  p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms  (client CPU "
                      f"{short['cpu_s']:.1f} s for {SHORT_S} s, {r['cpu_s']:.1f} s for {args.seconds} s; machine busy "
                      f"{busy:.0%} before)", flush=True)
    finally:
        subprocess.run([PY, "-m", "rtsctl", "destroy", MANIFEST, "-y"], check=False, env=env, capture_output=True,
                       cwd=REPO)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {e: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for e, rs in runs.items()}
    n, lo = med["native"], med["locust"]
    print(f"\nmedians of {args.rounds} interleaved rounds, -c {args.connections}, {args.seconds} s each, clients on "
          f"CPU 0, endpoint on CPU 1; load average {os.getloadavg()[0]:.1f}")
    print(table([
        ("req/s", f"{n['rps']:,.0f}", f"{lo['rps']:,.0f} (locust)", f"{n['rps'] / lo['rps']:.2f}x", "(info)"),
        ("requests per client CPU-second", f"{n['per_core']:,.0f}", f"{lo['per_core']:,.0f} (locust)",
         f"{n['per_core'] / lo['per_core']:.2f}x", ">= 1.0x (native the default)"),
        ("  in steady state (start-up out)", f"{n['steady']:,.0f}", f"{lo['steady']:,.0f} (locust)",
         f"{n['steady'] / lo['steady']:.2f}x", ">= 1.0x"),
        ("p99 ms", f"{n['p99']:.2f}", f"{lo['p99']:.2f} (locust)", f"{n['p99'] / lo['p99']:.2f}x", "(info)"),
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
