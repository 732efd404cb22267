"""Full `rtsctl apply` against the Azure emulator in its realistic-timing mode (async LROs).

Prints, per run, the wall time of the apply next to
  * the sum of every step's duration -- the seed's path, which runs the steps one after another, and
  * the graph's critical path -- the best any executor can do with these durations.
Per-step durations, the wall time and the critical path come from `rtsctl apply -o json` (exact, not rounded).

    python benchmarks/azure_apply.py [--runs 3] [--scale 0.01] [--manifest manifests/azure.yaml]

Durations: `Emulator(timing="realistic", time_scale=--scale)`, i.e. the recorded real wall times
(tests/azure_emulator/lro.py REALISTIC: online deployment 582 s, endpoint create 90 s, traffic update 20 s --
recording 01; AKS 360 s, AzureML extension 180 s, workspace template 60 s -- guesses, nothing recorded) multiplied
by the scale (0.01: 1 s here ~ 100 s on Azure). Status answers keep the emulator's fractional Retry-After (Azure
sends none and the SDK then waits 5-30 s between polls, which would measure poll granularity, not rtsctl).
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

def pinned(argv: list[str], cpu: str | None) -> list[str]:
    """`taskset -c CPU argv` when asked and available (the emulator stays on the benchmark's own CPU)."""
    import shutil

    return ["taskset", "-c", cpu, *argv] if cpu and shutil.which("taskset") else argv


def run_once(scale: float, home: Path, manifest: str, cpu: str | None = None) -> dict:
    from tests.azure_emulator import Emulator

    emu = Emulator(lro_mode="async", timing="realistic", time_scale=scale).start()
    try:
        env = {**os.environ, **emu.env(), "RTSCTL_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
        env.pop("AZUREML_CURRENT_CLOUD", None)
        env.setdefault("RTSCTL_ENDPOINT", "rts-bench")     # endpoint names are per-region unique on Azure: no default
        started = time.perf_counter()
        proc = subprocess.run(pinned([sys.executable, "-m", "rtsctl", "apply", manifest, "-y", "-o", "json"], cpu),
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        process_wall = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"apply failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        timing = json.loads(proc.stdout)["timing"]
        destroy = subprocess.run([sys.executable, "-m", "rtsctl", "destroy", manifest, "-y"], cwd=REPO,
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
    parser.add_argument("--scale", type=float, default=0.01, help="multiply the recorded durations")
    parser.add_argument("--manifest", default="manifests/azure.yaml")
    parser.add_argument("--pin", default="1:0", help="CPU for rtsctl : CPU for the emulator ('' = no pinning)")
    args = parser.parse_args()

    rtsctl_cpu, _, emulator_cpu = args.pin.partition(":")
    if emulator_cpu and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(emulator_cpu)})
    runs = []
    with tempfile.TemporaryDirectory(prefix="rtsctl-azure-bench-") as tmp:
        for i in range(args.runs):
            runs.append(run_once(args.scale, Path(tmp) / f"home{i}", args.manifest, rtsctl_cpu or None))
            r = runs[-1]
            print(f"run {i + 1}: apply {r['apply_wall']:.2f}s (process {r['process_wall']:.2f}s), "
                  f"sum of steps {r['sequential']:.2f}s, critical path {r['critical']:.2f}s", file=sys.stderr)

    med = {k: statistics.median(r[k] for r in runs) for k in ("apply_wall", "process_wall", "sequential", "critical")}
    last = runs[-1]
    print(f"\n{args.manifest} against the emulator (realistic timing x{args.scale}, async LROs, {args.runs} runs, "
          f"medians)\n")
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
