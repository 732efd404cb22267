"""Issue "The spine": cold apply, no-op plan, --help, and endpoint throughput vs azmlinfsrv.

    python benchmarks/spine.py [--seconds 5] [--rounds 2]

Prints a side-by-side table. Times are medians; throughput is wrk -t1 -c64 POST with the
key, rounds interleaved (A, B, A, B) so a noisy neighbour hits both sides alike.
azmlinfsrv (azureml-inference-server-http) is installed into benchmarks/.venv-azmlinfsrv
and run through gunicorn bound to 127.0.0.1 (its own CLI binds 0.0.0.0), default 1 worker.
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
import urllib.request
from pathlib import Path

from _common import REPO, ensure_wrk, median_of, table, timed, wrk

VENV = REPO / "benchmarks" / ".venv-azmlinfsrv"
RTSCTL = [sys.executable, "-m", "rtsctl"]
SEED = REPO / "manifests" / "seed"


def ensure_azmlinfsrv() -> Path:
    gunicorn = VENV / "bin" / "gunicorn"
    if not gunicorn.exists():
        print("installing azureml-inference-server-http into benchmarks/.venv-azmlinfsrv ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "azureml-inference-server-http"], check=True)
    return gunicorn


def start_azmlinfsrv(gunicorn: Path, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "AZUREML_ENTRY_SCRIPT": "score.py", "AML_APP_ROOT": str(SEED / "src"),
           "AZUREML_MODEL_DIR": str(SEED)}
    proc = subprocess.Popen([str(gunicorn), "-b", f"127.0.0.1:{port}", "--no-control-socket", "-w", str(workers),
                             "azureml_inference_server_http.server.entry:app"], cwd=SEED / "src", env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("azmlinfsrv did not start")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ensure_wrk()
    gunicorn = ensure_azmlinfsrv()
    home = tempfile.mkdtemp(prefix="rtsctl-bench-")
    env = {**os.environ, "RTSCTL_HOME": home}
    manifest = str(Path(home) / "project" / "dev.yaml")
    shutil.copytree(REPO / "manifests", Path(home) / "project")
    # wrk's 64 connections need room: Azure's default max_concurrent_requests_per_instance (1) admits
    # 2 × 1 × instance_count requests in flight and answers 429 beyond, as the local front does too.
    text = Path(manifest).read_text().replace("        instance_count: 2\n", "        instance_count: 2\n"
                                               "        request_settings: {max_concurrent_requests_per_instance: 32}\n")
    Path(manifest).write_text(text)

    def cold_apply() -> float:
        elapsed = timed(RTSCTL + ["apply", manifest, "-y"], env)
        timed(RTSCTL + ["destroy", manifest, "-y"], env)
        return elapsed

    apply_s = median_of(3, cold_apply)
    timed(RTSCTL + ["apply", manifest, "-y"], env)
    plan_s = median_of(5, lambda: timed(RTSCTL + ["plan", manifest, "--detailed-exitcode"], env))
    help_s = median_of(5, lambda: timed(RTSCTL + ["--help"], env))
    out = json.loads(subprocess.run(RTSCTL + ["output", manifest, "-o", "json", "--show-secrets"], env=env,
                                    cwd=REPO, capture_output=True, text=True, check=True).stdout)

    from reconcilers.local.procs import free_port

    ours, theirs1, theirs2 = [], [], []
    try:
        for _ in range(args.rounds):
            ours.append(wrk(out["scoring_uri"], out["primary_key"], seconds=args.seconds))
            for workers, sink in ((1, theirs1), (2, theirs2)):
                port = free_port()
                proc = start_azmlinfsrv(gunicorn, port, workers)
                try:
                    sink.append(wrk(f"http://127.0.0.1:{port}/score", "unused", seconds=args.seconds))
                finally:
                    stop(proc)
    finally:
        timed(RTSCTL + ["destroy", manifest, "-y"], env)

    rps, rps1, rps2 = statistics.median(ours), statistics.median(theirs1), statistics.median(theirs2)
    print(table([
        ("cold apply of dev.yaml (s)", f"{apply_s:.2f}", "2.00 (target)", f"{apply_s / 2.0:.2f}x", "<= 1.0x"),
        ("no-op plan (s)", f"{plan_s:.2f}", "0.50 (target)", f"{plan_s / 0.5:.2f}x", "<= 1.0x"),
        ("rtsctl --help (s)", f"{help_s:.3f}", "0.30 (target)", f"{help_s / 0.3:.2f}x", "<= 1.0x"),
        ("req/s, 64 conns vs azmlinfsrv 1 worker", f"{rps:.0f}", f"{rps1:.0f}", f"{rps / rps1:.2f}x", ">= 2.0x"),
        ("req/s, 64 conns vs azmlinfsrv 2 workers", f"{rps:.0f}", f"{rps2:.0f}", f"{rps / rps2:.2f}x", "(info)"),
    ]))
    print(f"\nrtsctl endpoint: dev.yaml (front + 2 instances); wrk rounds: ours {[round(x) for x in ours]}, "
          f"azmlinfsrv 1w {[round(x) for x in theirs1]}, 2w {[round(x) for x in theirs2]}")


if __name__ == "__main__":
    main()
