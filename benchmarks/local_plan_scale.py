"""A no-op `rtsctl plan` of the local backend with many running endpoints vs one (issue 15).

    python benchmarks/local_plan_scale.py [--endpoints 64] [--rounds 5] [--cpu 1]

manifests/dev.yaml with N endpoints (one deployment, one instance each: real front and scoring processes on
127.0.0.1) is applied once, then planned in interleaved rounds against the one-endpoint manifest, both pinned to one
CPU (`taskset`). Target: the N-endpoint no-op plan <= 2x the one-endpoint one. Everything is destroyed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._common import table  # noqa: E402


def manifest(project: Path, count: int) -> str:
    import yaml

    data = yaml.safe_load((project / "dev.yaml").read_text())
    template = data["endpoints"][0]
    template["deployments"][0]["instance_count"] = 1
    data["computes"][0]["max_instances"] = max(count, 4)
    data["endpoints"] = [{**template, "name": f"ep-{i}"} for i in range(count)]
    (project / f"dev{count}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return f"dev{count}.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoints", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cpu", default="1", help="CPU to pin rtsctl to ('' = no pinning)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rtsctl-local-scale-"))
    project = work / "project"
    shutil.copytree(REPO / "manifests", project)
    one, many = manifest(project, 1), manifest(project, args.endpoints)
    env = {**os.environ, "RTSCTL_HOME": str(work / "home"), "NO_COLOR": "1", "PYTHONPATH": str(REPO)}
    env_many = {**env, "RTSCTL_RESOURCE_GROUP": "rts-many"}
    pin = ["taskset", "-c", args.cpu] if args.cpu and shutil.which("taskset") else []

    def run(*argv: str, environ: dict[str, str] = env, check: bool = True) -> float:
        started = time.perf_counter()
        proc = subprocess.run([*pin, sys.executable, "-m", "rtsctl", *argv], cwd=project, env=environ,
                              capture_output=True, text=True, timeout=1800)
        if check and proc.returncode != 0:
            sys.exit(f"rtsctl {' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return time.perf_counter() - started

    try:
        run("apply", one, "-y")
        run("apply", many, "-y", environ=env_many)
        times: dict[str, list[float]] = {"one": [], "many": []}
        for _ in range(args.rounds):
            times["one"].append(run("plan", one, "--detailed-exitcode"))
            times["many"].append(run("plan", many, "--detailed-exitcode", environ=env_many))
    finally:
        subprocess.run([sys.executable, "-m", "rtsctl", "destroy", many, "-y"], cwd=project, env=env_many,
                       capture_output=True, timeout=1800)
        subprocess.run([sys.executable, "-m", "rtsctl", "destroy", one, "-y"], cwd=project, env=env,
                       capture_output=True, timeout=600)
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.rounds} interleaved rounds, medians; load average {os.getloadavg()[0]:.1f}")
    for label in ("one", "many"):
        print(f"  {label:4}: " + " / ".join(f"{t:.2f}" for t in times[label]))
    print(table([(f"no-op plan, {args.endpoints} running endpoints (s)", f"{med['many']:.2f}",
                  f"{med['one']:.2f} (1 endpoint)", f"{med['many'] / med['one']:.2f}x", "<= 2.0x")]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
