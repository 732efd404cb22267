"""Issue 10: a create-before-destroy replacement on the local backend under constant load.

    python benchmarks/successor.py [--rate 100] [--rounds 3]

Each round changes the deployment's instance_type (local <-> local-large, an immutable field), so `apply`
creates a successor beside it at 0 %, smoke-tests it alone, moves the traffic, deletes the old one, while
`rtsctl bench --rate R` (open loop: latency from the intended send time) loads the endpoint throughout.
Reported over the rounds: non-2xx answers seen by the load during the replacement (target 0; the old
delete-then-create lost 45.7 % of requests for 1.8 s), its p99 before (the same load for the same time, no
change; measured first in each round, so before/during alternate) and during, and the replacement's wall time.
Pinning: the endpoint (front + instances) on CPU 0, the load on CPU 1, rtsctl apply unpinned.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

from _common import one_instance_project
from rollout import RTSCTL, edit, finish, load, run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work, project, env = one_instance_project("rtsctl-successor-bench-")
    rows = []
    wall = 2.0
    try:
        run(env, project, "apply", "dev.yaml", "-y", pin="0")  # the endpoint's processes inherit CPU 0
        for r in range(args.rounds):
            before = finish(load(env, project, args.rate, wall + 1.5))
            kind = "local-large" if r % 2 == 0 else "local"
            edit(project / "dev.yaml", lambda d: d["endpoints"][0]["deployments"][0].update(instance_type=kind))
            bench = load(env, project, args.rate, 600)
            time.sleep(1.0)  # the load is running before the replacement starts
            started = time.perf_counter()
            applied = run(env, project, "apply", "dev.yaml", "-y")
            wall = time.perf_counter() - started
            if "create before destroy" not in applied.stdout:
                sys.exit(f"expected a create-before-destroy step:\n{applied.stdout}")
            time.sleep(0.5)
            bench.send_signal(2)  # Ctrl-C: the bench stops and reports what it measured
            during = finish(bench)
            rows.append({"non_2xx": during["errors"]["total"], "requests": during["requests"],
                         "p99_before_ms": before["latency_ms"]["p99_ms"],
                         "p99_during_ms": during["latency_ms"]["p99_ms"],
                         "wall_s": round(wall, 3), "before_non_2xx": before["errors"]["total"]})
            print(f"round {r + 1}: {json.dumps(rows[-1])}", file=sys.stderr)
    finally:
        subprocess.run(RTSCTL + ["destroy", "dev.yaml", "-y"], cwd=project, env=env, capture_output=True, timeout=300)
        shutil.rmtree(work, ignore_errors=True)
    med = lambda k: statistics.median(row[k] for row in rows)  # noqa: E731
    print(f"instance_type replacement (create before destroy); constant load {args.rate:g} req/s; "
          f"{args.rounds} rounds (medians)")
    print(f"  non-2xx during the replacement : {sum(row['non_2xx'] for row in rows)} of "
          f"{sum(row['requests'] for row in rows)} requests (target 0)")
    print(f"  p99 before / during            : {med('p99_before_ms'):.2f} ms / {med('p99_during_ms'):.2f} ms "
          f"(ratio {med('p99_during_ms') / med('p99_before_ms'):.2f})")
    print(f"  replacement wall time (apply)  : {med('wall_s'):.2f} s")


if __name__ == "__main__":
    main()
