"""What the distance to Azure costs a no-op `rtsctl plan`: the emulator answers every call 100 ms late.

    python benchmarks/azure_roundtrips.py [--rounds 5] [--latency-ms 100] [--endpoints 10] [--pin 1:0]

Against `tests/azure_emulator` with `latency_ms` (every ARM, Entra token/discovery, blob and scoring answer waits
that long -- real Azure calls take 50-300 ms), the real SDKs in the rtsctl subprocess:

* a no-op `plan manifests/azure.yaml` (AKS + extension + compute + Kubernetes endpoint, 1 deployment): the calls it
  makes (by kind) and its wall time minus the SDK import (`IMPORT`: a process that starts the interpreter, imports
  rtsctl, the Azure backend and the SDKs this manifest loads -- azure-ai-ml, azure-identity, the resource, AKS and
  extension management clients -- and ends), target <= 1.0 s;
* the same manifest with N endpoints (one deployment each, in a resource group of its own): target <= 1.5x the
  one-endpoint time;
* the calls an `apply` makes, step by step (each step's calls carry its own x-ms-correlation-request-id, which the
  emulator keeps: tests/azure_emulator/steps.py): the first apply of manifests/azure.yaml and a one-change apply
  (instance_count 1 -> 2), with what each step reads more than once between its own writes (issue 15: nothing).

Both manifests are applied once with no latency, then planned in interleaved rounds (import, plan 1, plan N) on one
pinned CPU (`taskset`; the emulator stays on the benchmark's own CPU); each round's plan time minus the same
round's import time, median over the rounds.
"""

from __future__ import annotations

import argparse
import collections
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
from tests.azure_emulator.steps import step_lines, steps  # noqa: E402


#: the SDK import as a process: interpreter start, rtsctl and the Azure SDKs it loads, ended without teardown
#: (as rtsctl ends, rtsctl/__main__.py `leave`)
IMPORT = ("import rtsctl.cli, reconcilers.azure, azure.identity, azure.mgmt.resource.resources, "
          "azure.mgmt.containerservice, azure.mgmt.kubernetesconfiguration.extensions, os, sys; "
          "sys.stdout.flush(); os._exit(0)")


def pinned(argv: list[str], cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if cpu and shutil.which("taskset") else argv


def many_endpoints(project: Path, count: int) -> str:
    """azure.yaml with `count` endpoints (rts-bench-0..), each serving one deployment `blue`."""
    import yaml

    data = yaml.safe_load((project / "azure.yaml").read_text())
    template = data["endpoints"][0]
    data["endpoints"] = [{**template, "name": f"rts-bench-{i}"} for i in range(count)]
    (project / f"azure{count}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return f"azure{count}.yaml"


def run(argv: list[str], env: dict[str, str], cwd: Path, cpu: str | None) -> float:
    started = time.perf_counter()
    proc = subprocess.run(pinned(argv, cpu), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def kinds(calls: list[tuple[str, str, int]]) -> dict[str, int]:
    out: collections.Counter = collections.Counter()
    for method, path, _ in calls:
        if path.startswith("//"):  # blob storage (the model and code uploads)
            out[f"{method} blob"] += 1
        elif path.endswith("openid-configuration"):
            out["discovery"] += 1
        elif path.endswith("/token"):
            out["token"] += 1
        else:
            out[f"{method} ARM"] += 1
    return dict(out)


def apply_report(label: str, calls: list[tuple[str, str, int]], correlated: list) -> list[str]:
    """An apply's calls: all of them by kind, those its steps made (GETs among them), then one line per step."""
    in_steps = [c for group in steps(correlated).values() for c in group]
    gets = sum(1 for m, _ in in_steps if m == "GET")
    return [f"  apply {label}: {len(calls)} calls {kinds(calls)}; {len(in_steps)} in its steps ({gets} GETs)",
            *(f"      {line}" for line in step_lines(correlated))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--pin", default="1:0", help="CPU for rtsctl : CPU for the emulator ('' = no pinning)")
    args = parser.parse_args()

    from tests.azure_emulator import Emulator

    rtsctl_cpu, _, emulator_cpu = args.pin.partition(":")
    if emulator_cpu and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(emulator_cpu)})
    cpu = rtsctl_cpu or None
    work = Path(tempfile.mkdtemp(prefix="rtsctl-roundtrips-"))
    emu = Emulator(lro_mode="sync").start()
    try:
        project = work / "project"
        shutil.copytree(REPO / "manifests", project)
        many = many_endpoints(project, args.endpoints)
        env = {**os.environ, **emu.env(), "RTSCTL_HOME": str(work / "home"), "NO_COLOR": "1", "COLUMNS": "200",
               "RTSCTL_ENDPOINT": "rts-bench", "PYTHONPATH": str(REPO)}
        env.pop("AZUREML_CURRENT_CLOUD", None)
        env_many = {**env, "RTSCTL_RESOURCE_GROUP": "rts-rg-many"}
        rtsctl = [sys.executable, "-m", "rtsctl"]
        log0, steps0 = len(emu.request_log), len(emu.correlated)
        run([*rtsctl, "apply", "azure.yaml", "-y"], env, project, cpu)
        applies = apply_report("azure.yaml (first)", emu.request_log[log0:], emu.correlated[steps0:])
        run([*rtsctl, "apply", many, "-y"], env_many, project, cpu)

        emu.settings.latency_ms = args.latency_ms
        times: dict[str, list[float]] = {"import": [], "one": [], "many": []}
        calls: dict[str, list] = {}
        for _ in range(args.rounds):
            times["import"].append(run([sys.executable, "-c", IMPORT], env, REPO, cpu))
            for label, manifest, e in (("one", "azure.yaml", env), ("many", many, env_many)):
                start = len(emu.request_log)
                times[label].append(run([*rtsctl, "plan", manifest, "--detailed-exitcode"], e, project, cpu))
                calls[label] = emu.request_log[start:]

        emu.settings.latency_ms = 0  # calls counted, not timed: the LROs would poll at 100 ms a round trip
        import yaml

        data = yaml.safe_load((project / "azure.yaml").read_text())
        data["endpoints"][0]["deployments"][0]["instance_count"] = 2
        (project / "azure.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        log0, steps0 = len(emu.request_log), len(emu.correlated)
        run([*rtsctl, "apply", "azure.yaml", "-y"], env, project, cpu)
        applies += apply_report("instance_count 1 -> 2", emu.request_log[log0:], emu.correlated[steps0:])
    finally:
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)

    # each round's plan minus the same round's import: the rounds share the machine's load of the moment
    one = statistics.median(p - i for p, i in zip(times["one"], times["import"]))
    many_t = statistics.median(p - i for p, i in zip(times["many"], times["import"]))
    print(f"latency {args.latency_ms:.0f} ms per answer; {args.rounds} interleaved rounds, medians of per-round "
          f"differences; load average {os.getloadavg()[0]:.1f}")
    for label in ("one", "many"):
        print(f"  {label:4} plan: {len(calls[label])} calls {kinds(calls[label])}; rounds "
              + " / ".join(f"{t:.2f}" for t in times[label]))
    print("  SDK import (interpreter + rtsctl + azure SDKs): rounds " + " / ".join(f"{t:.2f}" for t in times["import"]))
    print("\n".join(applies))
    print(table([
        ("no-op plan azure.yaml minus import (s)", f"{one:.2f}", "1.00 (target)", f"{one / 1.0:.2f}x", "<= 1.0x"),
        (f"no-op plan {args.endpoints} endpoints minus import (s)", f"{many_t:.2f}", f"{one:.2f} (1 endpoint)",
         f"{many_t / one:.2f}x", "<= 1.5x"),
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
