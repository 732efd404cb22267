"""Full `rtsctl apply manifests/azure.yaml` against the Azure emulator, async LROs with realistic relative durations.

Prints, per run, the wall time of the apply next to
  * the sum of every step's duration -- the seed's path, which runs the steps one after another, and
  * the graph's critical path -- the best any executor can do with these durations.
Per-step durations, the wall time and the critical path come from `rtsctl apply -o json` (exact, not rounded).

    python benchmarks/azure_apply.py [--runs 3] [--scale 1.0]

Durations (seconds, x --scale) model Azure's relative times, 1 s ~ 1 real minute: AKS cluster 6, AzureML extension 3,
online deployment 4 (the workspace's ARM template deployment shares the "deployments" type segment, so it takes 4
too), endpoint 1, compute attach 0.5; model and environment versions are synchronous PUTs (plus the model upload).
The real SDKs run in the rtsctl subprocess; only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DURATIONS = {"managedClusters": 6.0, "extensions": 3.0, "deployments": 4.0, "onlineEndpoints": 1.0, "computes": 0.5}


def run_once(scale: float, home: Path) -> dict:
    from tests.azure_emulator import Emulator

    emu = Emulator(lro_mode="async", durations={k: v * scale for k, v in DURATIONS.items()}).start()
    try:
        env = {**os.environ, **emu.env(), "RTSCTL_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
        env.pop("AZUREML_CURRENT_CLOUD", None)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "rtsctl", "apply", "manifests/azure.yaml", "-y", "-o", "json"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        process_wall = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"apply failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        timing = json.loads(proc.stdout)["timing"]
        destroy = subprocess.run([sys.executable, "-m", "rtsctl", "destroy", "manifests/azure.yaml", "-y"], cwd=REPO,
                                 env=env, capture_output=True, text=True, timeout=600)
        if destroy.returncode != 0:
            sys.exit(f"destroy failed ({destroy.returncode}):\n{destroy.stdout}\n{destroy.stderr}")
        return {"steps": timing["steps"], "sequential": timing["sequential"], "critical": timing["critical_path"],
                "path": timing["critical_path_steps"], "apply_wall": timing["wall"], "process_wall": process_wall}
    finally:
        emu.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every emulated duration")
    args = parser.parse_args()

    runs = []
    with tempfile.TemporaryDirectory(prefix="rtsctl-azure-bench-") as tmp:
        for i in range(args.runs):
            runs.append(run_once(args.scale, Path(tmp) / f"home{i}"))
            r = runs[-1]
            print(f"run {i + 1}: apply {r['apply_wall']:.2f}s (process {r['process_wall']:.2f}s), "
                  f"sum of steps {r['sequential']:.2f}s, critical path {r['critical']:.2f}s", file=sys.stderr)

    med = {k: statistics.median(r[k] for r in runs) for k in ("apply_wall", "process_wall", "sequential", "critical")}
    last = runs[-1]
    print(f"\nAzure apply against the emulator (async LROs, durations x{args.scale}, {args.runs} runs, medians)\n")
    print("| step | seconds (last run) |\n|---|---|")
    for address in sorted(last["steps"], key=lambda a: -last["steps"][a]):
        mark = " *" if address in last["path"] else ""
        print(f"| {address}{mark} | {last['steps'][address]:.2f} |")
    print("\n(* on the critical path)\n")
    print("| measure | seconds | vs rtsctl apply |\n|---|---|---|")
    print(f"| rtsctl apply (wall, executor) | {med['apply_wall']:.2f} | 1.00x |")
    print(f"| seed's sequential path (sum of steps) | {med['sequential']:.2f} | "
          f"{med['sequential'] / med['apply_wall']:.2f}x |")
    print(f"| graph critical path (lower bound) | {med['critical']:.2f} | {med['critical'] / med['apply_wall']:.2f}x |")
    print(f"| rtsctl apply process end to end (import, observe, apply, smoke) | {med['process_wall']:.2f} | "
          f"{med['process_wall'] / med['apply_wall']:.2f}x |")
    print(f"\ncritical path: {' -> '.join(last['path'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
