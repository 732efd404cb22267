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
import subprocess
import sys

from _common import one_instance_project
from rollout import RTSCTL, apply_under_load, edit, finish, load, round_row, run, summarize


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
            applied, wall, during = apply_under_load(env, project, args.rate)
            if "create before destroy" not in applied.stdout:
                sys.exit(f"expected a create-before-destroy step:\n{applied.stdout}")
            rows.append(round_row(before, during, wall))
            print(f"round {r + 1}: {json.dumps(rows[-1])}", file=sys.stderr)
    finally:
        subprocess.run(RTSCTL + ["destroy", "dev.yaml", "-y"], cwd=project, env=env, capture_output=True, timeout=300)
        shutil.rmtree(work, ignore_errors=True)
    summarize(rows, "replacement", f"instance_type replacement (create before destroy); constant load "
                                   f"{args.rate:g} req/s; {args.rounds} rounds (medians)")


if __name__ == "__main__":
    main()
