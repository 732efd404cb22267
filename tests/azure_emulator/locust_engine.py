"""The Load Testing engines, for real: one headless Locust master and one Locust worker per engine instance on
127.0.0.1, running the uploaded script; the figures a run reports are read back from Locust's own CSV files.

How the service runs a Locust test, and how this module follows it:
  * the script and the additional artifacts sit in one folder on every engine, the script refers to them by file
    name (learn.microsoft.com/azure/load-testing/reference-test-config-yaml, `configurationFiles`: "Azure Load
    Testing uploads all files in the same folder as the test script"); the processes run in that folder;
  * load parameters come as Locust's own environment variables LOCUST_USERS, LOCUST_SPAWN_RATE, LOCUST_RUN_TIME,
    LOCUST_HOST (docs.locust.io configuration: every option has a LOCUST_* variable; that the service sets these:
    a public Azure Load Testing Locust artifact's README, "ALT overrides via LOCUST_USERS, LOCUST_SPAWN_RATE,
    LOCUST_RUN_TIME env vars" -- third-party, so treat as a guess); the number of users is PER ENGINE (quickstart-
    create-run-load-test-with-locust.md, Load tab: "Each test engine simulates the traffic of Number of users"), so
    the master is asked for LOCUST_USERS x engines and the spawn rate likewise;
  * a Locust configuration file uploaded with the test (fileType USER_PROPERTIES: the portal's "Locust
    configuration" file relevance, same quickstart; mapping: guess) is passed as `--config`;
  * secrets reach the engines only as environment variables named as in the test's `secrets` map (how-to-test-
    secured-endpoints: "For Locust-based tests, retrieve the secret with getenv"); so do `environmentVariables`;
  * the engines' environment is built from nothing but those values plus PATH/LANG, the emulator's CA
    (REQUESTS_CA_BUNDLE / SSL_CERT_FILE, so a script can call the emulator's HTTPS scoring route as it would call
    a public one) and the emulator's proxy for the Azure host names (NO_PROXY 127.0.0.1,localhost): never the
    emulator's or the test runner's own variables (no credentials leak into user code).
Bounds (deviations, this runs on one machine): at most MAX_LOCAL_ENGINES engines and MAX_RUN_SECONDS of run time
(the service allows 45 engines without a quota request and 3 h: Azure CLI load extension constants.py
HighScaleThreshold); without LOCUST_RUN_TIME (or a LoadTestShape that ends) the run is stopped at MAX_RUN_SECONDS.
Every process is started in its own session and its group is killed when the run ends, is stopped, or the
emulator stops.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import signal
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

MAX_LOCAL_ENGINES = 8          # guess: what one test machine can run beside the target
MAX_RUN_SECONDS = 600.0        # guess: the service's limit is 3 h (CLI HighScaleThreshold)
START_TIMEOUT = 60.0           # workers must report to the master within this (guess)
STOP_GRACE = 10.0              # after the run time, the master has this long to write its CSV files
WORKER_GRACE = 2.0             # workers quit on the master's "quit" message; those that did not are killed then
OUTPUT_PREFIX = "results"      # Locust's --csv prefix: results_stats.csv, results_stats_history.csv, ...
RUN_TIME_RE = re.compile(r"^\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s?)?\s*$")


class EngineError(Exception):
    """The run cannot start or failed; the message is shown in the test run's errorDetails."""


def run_seconds(text: str | None) -> float | None:
    """Locust's --run-time syntax (`20`, `90s`, `1m30s`, `1h`), or None when unset or unreadable."""
    match = RUN_TIME_RE.match(text or "")
    if not text or not match or not any(match.groups()):
        return None
    h, m, s = (int(g or 0) for g in match.groups())
    return float(h * 3600 + m * 60 + s)


def engine_env(values: dict[str, str], ca_path: str, proxy_url: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
           "REQUESTS_CA_BUNDLE": ca_path, "SSL_CERT_FILE": ca_path,
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    if proxy_url:
        env.update({"HTTPS_PROXY": proxy_url, "https_proxy": proxy_url})
    env.update(values)
    return env


@dataclass
class LocustRun:
    """One test run's Locust processes and results folder."""

    folder: Path                  # the script, its artifacts, and (later) Locust's output
    script: str
    engines: int
    env: dict[str, str]
    config_file: str | None = None
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)
    started: float | None = None  # epoch seconds the engines were started (the run's startDateTime)
    stopped: bool = False
    users: int | None = None

    def master_argv(self, python: Path, port: int) -> list[str]:
        argv = [str(python), "-m", "locust", "-f", self.script, "--master", "--headless",
                "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                "--expect-workers", str(self.engines), "--expect-workers-max-wait", str(int(START_TIMEOUT)),
                "--csv", OUTPUT_PREFIX, "--csv-full-history", "--only-summary", "--exit-code-on-error", "0"]
        if self.config_file:
            argv += ["--config", self.config_file]
        per_engine_users = self.env.get("LOCUST_USERS", "").strip()
        if per_engine_users.isdigit():
            self.users = int(per_engine_users) * self.engines
            argv += ["--users", str(self.users)]
        rate = self.env.get("LOCUST_SPAWN_RATE", "").strip()
        if re.fullmatch(r"\d+(\.\d+)?", rate):
            argv += ["--spawn-rate", f"{float(rate) * self.engines:g}"]
        seconds = run_seconds(self.env.get("LOCUST_RUN_TIME"))
        if self.env.get("LOCUST_RUN_TIME") and seconds is None:
            raise EngineError(f"LOCUST_RUN_TIME '{self.env['LOCUST_RUN_TIME']}' is not a Locust run time "
                              f"(e.g. 30s, 1m30s).")
        if seconds is not None and seconds > MAX_RUN_SECONDS:
            raise EngineError(f"LOCUST_RUN_TIME {seconds:g}s exceeds the emulator's limit of {MAX_RUN_SECONDS:g}s.")
        argv += ["--run-time", f"{int(seconds or MAX_RUN_SECONDS)}s"]
        return argv

    async def start(self, python: Path, port: int) -> None:
        if not 1 <= self.engines <= MAX_LOCAL_ENGINES:
            raise EngineError(f"engineInstances {self.engines}: the emulator runs 1 to {MAX_LOCAL_ENGINES} engines "
                              f"on this machine.")
        master = self.master_argv(python, port)
        worker = [str(python), "-m", "locust", "-f", self.script, "--worker", "--master-host", "127.0.0.1",
                  "--master-port", str(port)]
        logs = self.folder / "logs"
        logs.mkdir(exist_ok=True)
        self.procs.append(await self._spawn(master, logs / "master.log"))
        for index in range(self.engines):
            self.procs.append(await self._spawn(worker, logs / f"engine{index + 1}.log"))

    async def _spawn(self, argv: list[str], log: Path) -> asyncio.subprocess.Process:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)    # a local file: no blocking worth a thread
        try:
            return await asyncio.create_subprocess_exec(*argv, cwd=self.folder, env=self.env, stdout=out,
                                                        stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        finally:
            os.close(out)

    async def wait(self, timeout: float) -> int:
        """The master's exit code once it ends (it stops its workers); killed after `timeout` seconds."""
        try:
            code = await asyncio.wait_for(self.procs[0].wait(), timeout)
        except TimeoutError:
            await self.kill()
            raise EngineError(f"the Locust master did not finish within {timeout:g}s and was stopped.")
        await self.kill(grace=WORKER_GRACE)
        return code

    async def stop(self) -> None:
        """Stop the run early: SIGTERM to the master, which stops its workers and writes its CSV files."""
        self.stopped = True
        if self.procs and self.procs[0].returncode is None:
            self._signal(self.procs[0], signal.SIGTERM)

    async def kill(self, grace: float = 0.0) -> None:
        """End every process of this run (workers left alone after the master ended included)."""
        alive = [p for p in self.procs if p.returncode is None]
        if grace and alive:
            await asyncio.wait([asyncio.ensure_future(p.wait()) for p in alive], timeout=grace)
        for proc in self.procs:
            if proc.returncode is None:
                self._signal(proc, signal.SIGKILL)
        for proc in self.procs:
            if proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), 5.0)
                except TimeoutError:
                    pass

    @staticmethod
    def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def log_tail(self, lines: int = 15) -> str:
        path = self.folder / "logs" / "master.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- results -----------------------------------------------------------------------------------
    def rows(self, suffix: str) -> list[dict[str, str]]:
        path = self.folder / f"{OUTPUT_PREFIX}_{suffix}.csv"
        if not path.exists():
            return []
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))

    def zip_outputs(self, what: str) -> bytes:
        """csv.zip (Locust's CSV files) or logs.zip (master and engine logs): the run's output artifacts."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            if what == "csv":
                for path in sorted(self.folder.glob(f"{OUTPUT_PREFIX}_*.csv")):
                    archive.write(path, path.name)
            else:
                for path in sorted((self.folder / "logs").glob("*.log")):
                    archive.write(path, path.name)
        return buffer.getvalue()
