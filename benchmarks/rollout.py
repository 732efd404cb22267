"""Issue 10: a gated progressive rollout on the local backend under constant load.

    python benchmarks/rollout.py [--rate 100] [--rounds 3]

Each round: the endpoint serves blue at 100 %; the manifest adds green and moves the traffic to it with
`rollout: {steps: [10, 50, 100], gate: {duration: 1, rate: 20, max_error_rate: 0}}` while `rtsctl bench --rate R`
(open loop, latency from the intended send time) loads the endpoint throughout. Reported, medians over rounds:
non-2xx answers seen by the constant load during the rollout (target 0), its p99 before (the same load for the same
time, blue alone) and during the rollout, and the rollout's wall time (`apply`, green's creation included). Then the
round is undone (traffic back to blue, green removed) outside the measurement.
Pinning: the endpoint (front + instances) on CPU 0, the constant load on CPU 1, rtsctl apply unpinned.
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
import time
from pathlib import Path

import yaml
from _common import REPO

RTSCTL = [sys.executable, "-m", "rtsctl"]


def run(env: dict[str, str], cwd: Path, *args: str, pin: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run((["taskset", "-c", pin] if pin else []) + RTSCTL + list(args), cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        sys.exit(f"rtsctl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def with_green(d: dict) -> None:
    ep = d["endpoints"][0]
    blue = ep["deployments"][0]
    ep["deployments"] = [blue, {**blue, "name": "green", "environment_variables": {"GREETING_STYLE": "green"}}]
    ep["traffic"] = {"green": 100}
    # the gates send the smoke test's request
    ep["rollout"] = {"steps": [10, 50, 100], "gate": {"duration": 1, "rate": 20, "max_error_rate": 0}}


def blue_only(d: dict) -> None:
    ep = d["endpoints"][0]
    ep["deployments"] = ep["deployments"][:1]
    ep["traffic"] = {"blue": 100}
    ep.pop("rollout", None)


def load(env: dict[str, str], cwd: Path, rate: float, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(["taskset", "-c", "1"] + RTSCTL + ["bench", "dev.yaml", "--rate", str(rate), "-c", "16",
                                                           "-d", f"{seconds:g}s", "-o", "json"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    if not out.strip():
        sys.exit(f"bench failed ({proc.returncode}):\n{err}")
    return json.loads(out)


def apply_under_load(env: dict[str, str], cwd: Path, rate: float) -> tuple[subprocess.CompletedProcess, float, dict]:
    """`apply` while a bench holds `rate` req/s on the endpoint (started 1 s before, stopped 0.5 s after):
    (the apply's result, its wall time, the bench report of the load during it)."""
    bench = load(env, cwd, rate, 600)
    time.sleep(1.0)  # the load is running before the change starts
    started = time.perf_counter()
    applied = run(env, cwd, "apply", "dev.yaml", "-y")
    wall = time.perf_counter() - started
    time.sleep(0.5)
    bench.send_signal(2)  # Ctrl-C: the bench stops and reports what it measured
    return applied, wall, finish(bench)


def round_row(before: dict, during: dict, wall: float) -> dict:
    """One round's figures from the bench reports of the load before and during the change."""
    return {"non_2xx": during["errors"]["total"], "requests": during["requests"],
            "p99_before_ms": before["latency_ms"]["p99_ms"], "p99_during_ms": during["latency_ms"]["p99_ms"],
            "wall_s": round(wall, 3), "before_non_2xx": before["errors"]["total"]}


def summarize(rows: list[dict], what: str, title: str) -> None:
    """Non-2xx over all rounds (target 0), medians of p99 before / during and of the apply's wall time."""
    med = lambda k: statistics.median(row[k] for row in rows)  # noqa: E731
    lines = {f"non-2xx during the {what}": f"{sum(row['non_2xx'] for row in rows)} of "
                                           f"{sum(row['requests'] for row in rows)} requests (target 0)",
             "p99 before / during": f"{med('p99_before_ms'):.2f} ms / {med('p99_during_ms'):.2f} ms "
                                    f"(ratio {med('p99_during_ms') / med('p99_before_ms'):.2f})",
             f"{what} wall time (apply)": f"{med('wall_s'):.2f} s"}
    width = max(map(len, lines))
    print(title)
    for label, value in lines.items():
        print(f"  {label:<{width}} : {value}")

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rtsctl-rollout-bench-"))
    project = work / "project"
    shutil.copytree(REPO / "manifests", project)
    env = {**os.environ, "RTSCTL_HOME": str(work / "home"), "NO_COLOR": "1", "PYTHONPATH": str(REPO)}

    def settings(d: dict) -> None:
        blue = d["endpoints"][0]["deployments"][0]
        blue["instance_count"] = 1
        blue["request_settings"] = {"max_concurrent_requests_per_instance": 32}

    edit(project / "dev.yaml", settings)
    rows = []
    try:
        run(env, project, "apply", "dev.yaml", "-y", pin="0")  # the endpoint's processes inherit CPU 0
        for r in range(args.rounds):
            # the rollout's length, measured once without load, sizes the "before" window the same
            edit(project / "dev.yaml", with_green)
            _, wall, during = apply_under_load(env, project, args.rate)
            edit(project / "dev.yaml", blue_only)
            run(env, project, "apply", "dev.yaml", "-y")
            before = finish(load(env, project, args.rate, wall + 1.5))
            rows.append(round_row(before, during, wall))
            print(f"round {r + 1}: {json.dumps(rows[-1])}", file=sys.stderr)
    finally:
        subprocess.run(RTSCTL + ["destroy", "dev.yaml", "-y"], cwd=project, env=env, capture_output=True, timeout=300)
        shutil.rmtree(work, ignore_errors=True)
    summarize(rows, "rollout", f"rollout blue -> green, steps 10/50/100, gates 1 s at 20 req/s; constant load "
                               f"{args.rate:g} req/s; {args.rounds} rounds (medians)")


if __name__ == "__main__":
    main()
