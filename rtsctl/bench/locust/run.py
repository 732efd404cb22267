"""Run a bench configuration on Locust: one master and N workers on this machine (plus, if asked, workers the user
starts on other machines), then rtsctl's result document from Locust's stats.

Every process runs in a session of its own (its own process group) and dies with rtsctl (PR_SET_PDEATHSIG); rtsctl
ends each group when the run ends, fails or is interrupted, so no Locust process outlives the command. The endpoint
key reaches the processes as RTSCTL_ENDPOINT_KEY in their environment, never on their command line. Locust reads
options from LOCUST_* variables and ~/.locust.conf: neither reaches them (LOCUST_* dropped, HOME is the bundle's
private folder), so a run does what its flags say.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from rtsctl.bench.config import BenchConfig
from rtsctl.bench.locust import results, script
from rtsctl.bench.locust.tool import LOCUST_VERSION, locust_python
from rtsctl.bench.progress import Progress
from rtsctl.support.errors import RtsctlError

STATS = "stats"                 # --json-file stats -> stats.json
PROGRESS = "progress.json"
LOCAL_WAIT_S = 60.0             # local workers connect within seconds; past this something is wrong
STOP_GRACE_S = 10.0


@dataclass
class Fleet:
    """The processes of one run, ended together."""

    procs: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self, argv: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
        from serving.reaper import die_with_parent

        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=die_with_parent(os.getpid()))  # noqa: PLW1509 - no threads here
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def signal_all(self, sig: int) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass

    def end(self, interrupt: bool = False) -> None:
        """Ctrl-C: SIGINT to the master, which stops its workers and writes its stats (while a LoadTestShape runs,
        Locust installs no SIGTERM handler: SIGTERM would lose them). Then SIGTERM to every group, SIGKILL to what
        is left a few seconds later."""
        master = self.procs[0] if self.procs else None
        if interrupt and master is not None and master.poll() is None:
            try:
                os.kill(master.pid, signal.SIGINT)
                master.wait(STOP_GRACE_S)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        for proc in self.procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.signal_all(signal.SIGKILL)
        for proc in self.procs:
            proc.wait()


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def child_env(home: Path, key: str | None) -> dict[str, str]:
    """rtsctl's environment without what would steer Locust (LOCUST_*) or a stale key; the key if there is one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_") and k != script.KEY_VARIABLE}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")
    if key:
        env[script.KEY_VARIABLE] = key
    return env


def master_argv(python: Path, bind: str, port: int, workers: int, wait: float | None) -> list[str]:
    argv = [str(python), "-m", "locust", "-f", script.SCRIPT_NAME, "--master", "--headless",
            "--master-bind-host", bind, "--master-bind-port", str(port), "--expect-workers", str(workers),
            "--json-file", STATS, "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    if wait is not None:
        argv += ["--expect-workers-max-wait", str(int(wait))]
    return argv


def worker_argv(python: str, host: str, port: int) -> list[str]:
    return [python, "-m", "locust", "-f", script.SCRIPT_NAME, "--worker", "--master-host", host,
            "--master-port", str(port), "--loglevel", "WARNING"]


def tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(ln.strip() for ln in text.splitlines()[-lines:] if ln.strip())[:1200]


def measure(cfg: BenchConfig, target: dict, load: dict) -> tuple[dict, list]:
    """The Locust run `cfg` asks for -> (rtsctl result document, pending file writes), like session.measure;
    `target` and `load` describe the run in the report (session.describe)."""
    config = script.bench_config(cfg)
    python = locust_python()
    remote = cfg.remote_workers
    bind = cfg.locust_master or "127.0.0.1"
    expected = cfg.workers + remote
    with tempfile.TemporaryDirectory(prefix="rtsctl-locust-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o700)
        script.write_bundle(folder, config)
        port = free_port(bind)
        env = child_env(folder, cfg.key)       # the workers send the requests; the master never needs the key
        fleet = Fleet()
        progress = Progress(cfg.progress)
        interrupted = False
        master = None
        started = time.monotonic()
        try:
            master = fleet.start(master_argv(python, bind, port, expected, None if remote else LOCAL_WAIT_S),
                                 {**child_env(folder, None), "RTSCTL_LOCUST_PROGRESS": str(folder / PROGRESS)}, folder,
                                 folder / "master.log")
            connect = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind
            for n in range(cfg.workers):
                fleet.start(worker_argv(str(python), connect, port), env, folder, folder / f"worker-{n + 1}.log")
            say(f"running Locust {LOCUST_VERSION}: a master and {cfg.workers} worker(s) on this machine"
                + (f", waiting for {remote} more" if remote else "") + f", {cfg.concurrency} users, "
                f"{cfg.duration:g} s")
            if remote:
                say(remote_instructions(folder, bind, port, remote))
            wait(cfg, fleet, master, folder, progress, started)
        except KeyboardInterrupt:
            interrupted = True
            progress.clear()
            say("interrupted: stopping Locust (its partial results follow)")
            fleet.end(interrupt=True)
        finally:
            progress.clear()
            fleet.end()
        code = master.returncode if master is not None else None
        stats = folder / f"{STATS}.json"
        if interrupted and not stats.exists():
            entries = []                # stopped before Locust measured anything: an empty report, exit 130
        elif not stats.exists() or code != 0:
            raise RtsctlError(f"Locust's master failed (exit {code}): {tail(folder / 'master.log') or 'no output'}")
        else:
            entries = results.read_stats(stats)
        if not any(e["num_requests"] for e in entries) and not interrupted:
            said = "; ".join(f"{log.stem}: {tail(log, 4)}" for log in fleet.logs if tail(log, 4))
            raise RtsctlError(f"Locust sent no request to {cfg.url}: {said or 'its processes said nothing'}")
    load = {**load, "workers": expected}
    doc = results.to_doc(entries, target, load, interrupted,
                         {"version": LOCUST_VERSION, "master": f"{bind}:{port}", "workers": expected})
    return doc, []


def wait(cfg: BenchConfig, fleet: Fleet, master: subprocess.Popen, folder: Path, progress: Progress,
         started: float) -> None:
    """Until the master ends the run; a worker dying early, or a master stuck past its time, is an error
    (Ctrl-C raises KeyboardInterrupt through)."""
    remote = cfg.remote_workers
    limit = None if remote else LOCAL_WAIT_S + cfg.duration + 30.0
    while master.poll() is None:
        time.sleep(0.2)
        for n, proc in enumerate(fleet.procs[1:], 1):
            if proc.poll() not in (None, 0):
                raise RtsctlError(f"Locust worker {n} failed (exit {proc.returncode}): "
                                  f"{tail(fleet.logs[n]) or 'no output'}")
        if limit is not None and time.monotonic() - started > limit:
            raise RtsctlError(f"Locust did not finish within {limit:g} s: {tail(folder / 'master.log')}")
        show(progress, folder / PROGRESS)


def show(progress: Progress, path: Path) -> None:
    """The live progress line from the master's totals (written each second by the locustfile)."""
    if not progress.enabled:
        return
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        mtime = path.stat().st_mtime
    except (OSError, ValueError):
        return
    if getattr(progress, "_rtsctl_seen", None) == mtime or not state.get("requests"):
        return
    progress._rtsctl_seen = mtime
    t, done = float(state.get("t") or 0.0), int(state["requests"])
    last_t, last_done = getattr(progress, "_rtsctl_last", (0.0, 0))
    if done == last_done:       # workers report every few seconds: redraw when the totals move
        return
    progress._rtsctl_last = (t, done)
    point = {"t": t, "rps": (done - last_done) / (t - last_t) if t > last_t else 0.0}
    progress(point, SimpleNamespace(done_requests=done, done_errors=int(state.get("failures") or 0)))


def remote_instructions(folder: Path, bind: str, port: int, remote: int) -> str:
    command = " ".join(shlex.quote(a) for a in worker_argv("python3", bind, port))
    return (f"the Locust master listens on {bind}:{port} for {remote} worker(s) from other machines. On each: "
            f"copy {folder / script.SCRIPT_NAME} and {folder / script.CONFIG_NAME} into one folder, pip install "
            f"locust=={LOCUST_VERSION}, set {script.KEY_VARIABLE} to the endpoint key (`rtsctl output MANIFEST "
            f"--show-secrets`), and run there:\n    {command}")


def say(line: str) -> None:
    print(f"rtsctl bench: {line}", file=sys.stderr, flush=True)
