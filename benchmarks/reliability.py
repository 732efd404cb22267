"""RELIABILITY.md: what rtsctl was tried against, how often, and how often it held.

    python -m benchmarks.reliability                 # everything (several minutes), rewrites RELIABILITY.md
    python -m benchmarks.reliability --fast          # bad inputs + secrets only (what CI runs, in tests/test_reliability.py)
    python -m benchmarks.reliability --only faults,crash --out /tmp/R.md

Rows (each counted as tried / held):
  bad inputs   the corpus (tests/corpus/cases) through `plan` and `validate`, plus hypothesis-style mutations of
               valid manifests: exit 1, one `file:line:` line, no traceback, nothing created, < 5 s
  secrets      apply / plan / output (and `bench`) on the local backend without --show-secrets: the endpoint keys
               appear in no stdout, stderr or log file under RTSCTL_HOME
  faults       `rtsctl apply manifests/azure.yaml` against the Azure emulator with 10/20/40 % of ARM calls failing
               (429 / 500 / dropped connection), with faults on retried attempts too, and with dropped POSTs; held =
               converged within 3 applies, each failure one line, no duplicate resources, destroy leaves nothing
  crash        SIGKILL of `apply` at points in its run, then apply again and destroy: no process left behind
               (a process is ours when its environment carries this run's RTSCTL_HOME)
  load         `rtsctl bench` holding the local endpoint busy: no non-2xx, the endpoint answers afterwards
  slow clients slowloris against the local endpoint while a normal client keeps scoring
  malformed    malformed HTTP to the local endpoint: never a 5xx, never a hang, the endpoint answers afterwards
  users        another real local user (useradd; root only) against a shared dev box: cannot read keys, models or
               state, flock a lock, signal a process or impersonate the front; a 0777 or foreign home/cache is
               refused before anything runs (benchmarks/hostile_host.py, also tests/test_hostile_host.py)
  disk         RTSCTL_HOME on a small tmpfs (root only) filled during apply at several levels and while serving:
               a named error, no empty key, no temp file, 408s answered, plan truthful, next apply converges
  supply       hostile `pip:` entries in a conda file: refused at validate/apply, a 127.0.0.1 listener sees nothing
  limits       a 4 GB allocation on a 256Mi instance under load: OOMKilled and restarted, no other request fails
  orphans      what a scoring script started dies with its instance (restart, destroy)
  front        SIGKILL of the front under load: 200 again within 2 s with no apply; failed requests counted
               (supply, limits, orphans, front: benchmarks/survival.py)
Only 127.0.0.1 is used; every process started here is ended by its PID.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@dataclass
class Row:
    area: str
    tried_what: str
    tried: int = 0
    held: int = 0
    notes: list[str] = field(default_factory=list)

    def count(self, ok: bool, note: str | None = None) -> None:
        self.tried += 1
        self.held += bool(ok)
        if not ok and note and len(self.notes) < 5:
            self.notes.append(note[:300])


# --- helpers --------------------------------------------------------------------------------------------------

class Project:
    """A scratch copy of manifests/ with its own RTSCTL_HOME; runs the CLI as a user would."""

    def __init__(self, root: Path, env: dict[str, str] | None = None):
        self.dir = root / "project"
        shutil.copytree(REPO / "manifests", self.dir, ignore=shutil.ignore_patterns("__pycache__"))
        self.home = root / "home"
        self.env = {**os.environ, "RTSCTL_HOME": str(self.home), "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
        self.env.pop("RTSCTL_DEBUG", None)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rtsctl", *args], cwd=self.dir, env=self.env, text=True,
                              capture_output=True, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "rtsctl", *args], cwd=self.dir, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

    def outputs(self, manifest: str = "dev.yaml") -> dict:
        proc = self.run("output", manifest, "-o", "json", "--show-secrets")
        if proc.returncode != 0:
            raise RuntimeError(f"output failed: {proc.stderr.strip()}")
        doc = json.loads(proc.stdout)
        return doc[0] if isinstance(doc, list) else doc

    def our_processes(self) -> list[int]:
        """Every live process whose environment carries this project's RTSCTL_HOME."""
        marker = f"RTSCTL_HOME={self.home}".encode() + b"\0"
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes() + b"\0":
                    stat = (entry / "stat").read_text()
                    if stat.rsplit(")", 1)[1].split()[0] != "Z":
                        pids.append(int(entry.name))
        return pids

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.run("destroy", "dev.yaml", "-y", timeout=120)
        for pid in self.our_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def post_status(uri: str, body: bytes, headers: dict[str, str], timeout: float = 10) -> int:
    """One POST; its HTTP status (an error status too). A connection that fails raises OSError."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(uri, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def _score(out: dict, timeout: float = 10) -> int:
    return post_status(out["scoring_uri"], b'{"name": "Daniel"}',
                 {"Content-Type": "application/json", "Authorization": f"Bearer {out['primary_key']}"}, timeout)


# --- bad inputs -----------------------------------------------------------------------------------------------

def bad_inputs(rows: list[Row], examples: int, every: int = 1) -> None:
    import re

    from rtsctl.cli import main
    from tests import test_corpus as corpus

    row = Row("bad inputs", "the corpus (tests/corpus/cases: names, numbers, env vars, tags, YAML bombs and depth, "
                            "files that are devices / FIFOs / folders / non-UTF-8 / NUL / loops) via plan and validate")
    worst = 0.0
    saved = dict(os.environ)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in corpus.CASES[::every]:
                case = corpus.load_case(name)
                project = corpus.build_project(Path(tmp) / name, case)
                home = Path(tmp) / name / "home"
                os.environ.update({"RTSCTL_HOME": str(home), "NO_COLOR": "1", **case.env})
                for command in ("plan", "validate"):
                    out, err = io.StringIO(), io.StringIO()
                    start = time.monotonic()
                    cwd = os.getcwd()
                    os.chdir(project)
                    try:
                        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                            code = main([command, f"{name}.yaml"])
                    finally:
                        os.chdir(cwd)
                    took = time.monotonic() - start
                    worst = max(worst, took)
                    text = err.getvalue()
                    lines = text.strip().split("\n")
                    expected_ok = command == "validate" and "is not set" in case.fragment
                    ok = (code == 0) if expected_ok else (
                        code == 1 and "Traceback" not in text and case.fragment in text and took < 5
                        and all(re.match(rf"Error: {re.escape(name)}\.yaml:\d+: ", line) for line in lines)
                        and (command == "validate" or len(lines) == 1) and not home.exists())
                    row.count(ok, f"{name} ({command}): exit {code}: {text.strip()[:200]}")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    row.notes.insert(0, f"slowest case {worst * 1000:.0f} ms")
    rows.append(row)

    warnings.filterwarnings("ignore")
    from tests.test_manifest_properties import _run, structural, textual

    prow = Row("bad inputs", f"random mutations of valid manifests ({examples} structural + {examples} textual, "
                             "tests/test_manifest_properties.py strategies) via validate, then plan when invalid")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "manifests" / "seed", root / "seed")
        path = root / "m.yaml"
        os.environ["RTSCTL_HOME"] = str(root / "home")
        try:
            for strategy in (structural(), textual()):
                for _ in range(examples):
                    text = strategy.example()
                    path.write_text(text, encoding="utf-8", errors="surrogatepass")
                    code, out, err = _run(["validate", str(path)])
                    prefix = re.compile(rf"(Error|note): {re.escape(str(path))}:\d+: ")
                    ok = "Traceback" not in err and all(prefix.match(line) for line in err.strip().split("\n") if line)
                    if ok and code != 0:
                        code2, out2, err2 = _run(["plan", str(path)])
                        ok = code == 1 and code2 == 1 and "\n" not in err2.strip() and bool(prefix.match(err2))
                    prow.count(ok and not (root / "home").exists(), f"{err.strip()[:200]}")
        finally:
            os.environ.clear()
            os.environ.update(saved)
    rows.append(prow)


# --- secrets --------------------------------------------------------------------------------------------------

def secrets(rows: list[Row]) -> None:
    row = Row("secrets", "endpoint keys searched in stdout/stderr of apply, plan, output (text and json), bench, "
                         "destroy (no --show-secrets), and in every *.log file under RTSCTL_HOME")
    with tempfile.TemporaryDirectory() as tmp:
        project = Project(Path(tmp))
        try:
            streams: list[tuple[str, str]] = []

            def record(label: str, proc: subprocess.CompletedProcess) -> None:
                streams.extend([(f"{label} stdout", proc.stdout), (f"{label} stderr", proc.stderr)])

            applied = project.run("apply", "dev.yaml", "-y")
            if applied.returncode != 0:
                row.count(False, f"apply failed: {applied.stderr.strip()[-300:]}")
                rows.append(row)
                return
            record("apply", applied)
            keys = [project.outputs()[k] for k in ("primary_key", "secondary_key")]
            record("apply (no changes)", project.run("apply", "dev.yaml", "-y"))
            record("apply -o json", project.run("apply", "dev.yaml", "-y", "-o", "json"))
            record("plan", project.run("plan", "dev.yaml"))
            record("plan -o json", project.run("plan", "dev.yaml", "-o", "json"))
            record("output", project.run("output", "dev.yaml"))
            record("output -o json", project.run("output", "dev.yaml", "-o", "json"))
            record("bench", project.run("bench", "dev.yaml", "-n", "50", "-c", "2"))
            record("bench -o json", project.run("bench", "dev.yaml", "-n", "50", "-c", "2", "-o", "json"))
            for log in sorted(project.home.rglob("*.log")):
                streams.append((f"log {log.relative_to(project.home)}", log.read_text(errors="replace")))
            for label, text in streams:
                leaked = [k[:4] + "..." for k in keys if k and k in text]
                row.count(not leaked, f"{label} shows a key ({', '.join(leaked)})")
            shown = project.run("output", "dev.yaml", "--show-secrets")
            # the control: the scan must see a key where one is asked for, or it proves nothing
            if not all(k in shown.stdout for k in keys):
                row.count(False, "control failed: the keys were not found in `output --show-secrets`")
            destroyed = project.run("destroy", "dev.yaml", "-y")
            row.count(not any(k in destroyed.stdout + destroyed.stderr for k in keys), "destroy shows a key")
            logs = sum(1 for label, _ in streams if label.startswith("log "))
            row.notes.append(f"{len(streams)} streams scanned ({logs} log files), and a control "
                             "(`output --show-secrets` must show the keys, or the scan proves nothing)")
        finally:
            project.cleanup()
    rows.append(row)


# --- faults on the Azure emulator ---------------------------------------------------------------------------

def faults(rows: list[Row], seeds: int) -> None:
    from tests.azure_emulator import Emulator
    from tests.azure_emulator.faults import FaultInjector

    class RetriedToo(FaultInjector):
        """Every attempt draws again: a retry is as likely to fail as the first try (the emulator's own injector
        never faults a request's next attempt)."""

        def decide(self, method: str, url: str, request_id: str | None) -> str | None:
            with self._lock:
                if self.rate <= 0 or self._rng.random() >= self.rate:
                    return None
                kind = self._rng.choice([k for k in self.kinds if not (k == "reset" and method == "POST")] or ["429"])
                self.injected.append((kind, method, url.split("?")[0]))
                return kind

    class PostDrops(FaultInjector):
        """Drops the connection of a share of POSTs (listKeys, ...) after reading the request."""

        def decide(self, method: str, url: str, request_id: str | None) -> str | None:
            with self._lock:
                if method != "POST" or self._rng.random() >= self.rate:
                    return None
                self.injected.append(("reset", method, url.split("?")[0]))
                return "reset"

    scenarios: list[tuple[str, float, type | None]] = [
        ("10 % of ARM calls fail (429 / 500 / reset)", 0.10, None),
        ("20 % of ARM calls fail", 0.20, None),
        ("40 % of ARM calls fail", 0.40, None),
        ("20 % fail, retried attempts faulted too", 0.20, RetriedToo),
        ("30 % of POSTs dropped (connection reset)", 0.30, PostDrops),
    ]
    for label, rate, injector in scenarios:
        row = Row("azure faults", f"apply + plan + destroy of manifests/azure.yaml, async LROs: {label}")
        injected = 0
        for seed in range(seeds):
            emu = Emulator(lro_mode="async", fault_rate=0 if injector else rate, seed=seed).start()
            if injector is not None:
                emu.faults = injector(rate, seed=seed)
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    # RTSCTL_ENDPOINT: the shipped azure.yaml asks for a name unique in the region (no default)
                    env = {**emu.env(), "AZUREML_CURRENT_CLOUD": "", "RTSCTL_ENDPOINT": f"rts-rel-{seed}"}
                    ok, note = _converge(Project(Path(tmp), env), emu)
                    injected += len(emu.faults.injected)
                    row.count(ok, f"seed {seed}: {note}")
            finally:
                emu.stop()
        row.notes.insert(0, f"{injected} faults injected over {seeds} runs")
        rows.append(row)


def _converge(project: Project, emu) -> tuple[bool, str]:
    project.env.pop("AZUREML_CURRENT_CLOUD", None)
    failures = []
    for _ in range(3):
        proc = project.run("apply", "azure.yaml", "-y")
        if proc.returncode == 0:
            break
        lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("Error")]
        if len(lines) != 1 or "Traceback" in proc.stderr:
            return False, f"apply failed without one clear line: {proc.stderr.strip()[-300:]}"
        failures.append(lines[0])
    else:
        return False, f"no convergence in 3 applies: {failures[-1][:200]}"
    if project.run("plan", "azure.yaml", "--detailed-exitcode").returncode != 0:
        return False, "plan after apply still shows changes"
    ids = emu.resources()
    if len({i.lower() for i in ids}) != len(ids):
        return False, "duplicate resources"
    destroyed = project.run("destroy", "azure.yaml", "-y")
    for _ in range(2):
        if destroyed.returncode == 0 and not emu.resources():
            break
        destroyed = project.run("destroy", "azure.yaml", "-y")
    if emu.resources():
        return False, f"destroy left {len(emu.resources())} resources: {destroyed.stderr.strip()[-200:]}"
    return True, f"{len(failures)} failed applies before convergence"


# --- crash points ---------------------------------------------------------------------------------------------

def crash(rows: list[Row], points: list[float]) -> None:
    row = Row("crash points", f"SIGKILL of `rtsctl apply dev.yaml` at {', '.join(f'{p:g}' for p in points)} s into "
                              "its run, then apply again (smoke-tested) and destroy: no process left behind")
    for point in points:
        with tempfile.TemporaryDirectory() as tmp:
            project = Project(Path(tmp))
            try:
                proc = project.start("apply", "dev.yaml", "-y")
                time.sleep(point)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)  # rtsctl alone: what it started must be found again
                proc.wait(timeout=10)
                again = project.run("apply", "dev.yaml", "-y")
                served = again.returncode == 0 and _score(project.outputs()) == 200
                destroyed = project.run("destroy", "dev.yaml", "-y").returncode == 0
                time.sleep(0.5)
                left = project.our_processes()
                shown = "; ".join(_cmdline(pid) for pid in left[:3])
                row.count(served and destroyed and not left,
                          f"killed at {point:g}s: re-apply exit {again.returncode} "
                          f"({again.stderr.strip()[-160:]}), destroy ok={destroyed}, {len(left)} processes left"
                          + (f" ({shown})" if left else ""))
            finally:
                project.cleanup()
    rows.append(row)


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return " ".join(a.decode(errors="replace") for a in args if a)[-120:]
    return str(pid)


# --- the host: other users and a full disk (benchmarks/hostile_host.py) ----------------------------------------

def _scenario_row(area: str, what: str, needs: str, run: Callable[[], list]) -> Row:
    from benchmarks import hostile_host

    row = Row(area, what)
    why = hostile_host.available(needs)
    if why:
        row.notes.append(f"not run: {why}")
        return row
    for checks in run():
        for name, ok, detail in checks.results:
            row.count(ok, f"{name}: {detail}")
    row.notes.append(f"{row.tried} checks, among them: " + "; ".join(n for n, _, _ in checks.results[:4])[:260])
    return row


def other_users(rows: list[Row]) -> None:
    from benchmarks import hostile_host

    def run() -> list:
        with hostile_host.stranger() as user, tempfile.TemporaryDirectory() as tmp:
            return [hostile_host.loose_homes(Path(tmp), user), hostile_host.other_user(user)]

    rows.append(_scenario_row(
        "other users", "another real local user (useradd) on a shared box: reads keys / models / state, flocks every "
        "lock, signals the front and instances, impersonates the front on its port after it died (invoke, plan, "
        "apply, destroy); a 0777 home, a home of theirs and a 0777 env cache, via apply and plan", "users", run))


def full_disk(rows: list[Row]) -> None:
    from benchmarks import hostile_host

    def run() -> list:
        with tempfile.TemporaryDirectory() as tmp, hostile_host.tmpfs(Path(tmp) / "mnt") as mount:
            return [hostile_host.full_disk_apply(mount, leaves=(0, 16 << 10, 48 << 10, 160 << 10, 400 << 10)),
                    hostile_host.full_disk_environment(mount), hostile_host.full_disk_serving(mount)]

    rows.append(_scenario_row(
        "full disk", "RTSCTL_HOME on a 24 MiB tmpfs: a first apply with 0 / 16 / 48 / 160 / 400 KiB free, then "
        "freed; RTSCTL_ENV_CACHE filling during uv's install; and filled while serving (200s and 408s, health, "
        "plan, status, then freed and applied)", "disk", run))


# --- the local endpoint under load, slow clients and malformed HTTP ------------------------------------------

def local_endpoint(rows: list[Row], which: set[str], duration: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Project(Path(tmp))
        try:
            applied = project.run("apply", "dev.yaml", "-y")
            if applied.returncode != 0:
                rows.append(Row("local endpoint", "apply dev.yaml", 1, 0, [applied.stderr.strip()[-300:]]))
                return
            out = project.outputs()
            if "load" in which:
                rows.append(_load(project, out, duration))
            if "slow" in which:
                rows.append(_slowloris(out, duration))
            if "malformed" in which:
                rows.append(_malformed(out))
        finally:
            project.cleanup()


def _load(project: Project, out: dict, duration: int) -> Row:
    row = Row("load", f"`rtsctl bench dev.yaml -c 32 -d {duration}s` (closed loop) and `--rate 200` open loop: "
                      "no error, endpoint answers afterwards")
    for args in (["-c", "32"], ["--rate", "200", "-c", "64"]):
        proc = project.run("bench", "dev.yaml", *args, "-d", f"{duration}s", "-o", "json", timeout=duration + 120)
        try:
            doc = json.loads(proc.stdout)
            total, errors = doc.get("requests", {}), doc["errors"]["total"]
            count = total.get("total") if isinstance(total, dict) else total
            row.count(proc.returncode == 0 and errors == 0, f"{' '.join(args)}: {errors} errors ({doc['errors']})")
            row.notes.append(f"{' '.join(args)}: {count} requests, {errors} errors")
        except (ValueError, KeyError, TypeError):
            row.count(False, f"{' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()[-200:]}")
    row.count(_score(out) == 200, "endpoint did not answer after the load")
    return row


def _slowloris(out: dict, duration: int, sockets: int = 200) -> Row:
    row = Row("slow clients", f"slowloris: {sockets} connections trickling header bytes for {duration} s while a "
                              "normal client scores every 0.5 s; held = each normal request answered 200 within 5 s")
    parsed = urllib.parse.urlsplit(out["scoring_uri"])
    host, port = parsed.hostname, parsed.port or 80
    stop = threading.Event()
    slow: list[socket.socket] = []
    closed_by_server = 0

    def trickle() -> None:
        nonlocal closed_by_server
        for _ in range(sockets):
            with contextlib.suppress(OSError):
                s = socket.create_connection((host, port), timeout=5)
                s.sendall(f"POST {parsed.path} HTTP/1.1\r\nHost: {host}\r\n".encode())
                slow.append(s)
        while not stop.wait(1.0):
            for s in list(slow):
                try:
                    s.sendall(b"X-a: b\r\n")
                except OSError:
                    slow.remove(s)
                    closed_by_server += 1

    worker = threading.Thread(target=trickle, daemon=True)
    worker.start()
    deadline = time.monotonic() + duration
    time.sleep(1.0)
    while time.monotonic() < deadline:
        start = time.monotonic()
        try:
            status = _score(out, timeout=5)
        except OSError as exc:
            status = f"{type(exc).__name__}"
        row.count(status == 200 and time.monotonic() - start < 5, f"normal request: {status}")
        time.sleep(0.5)
    stop.set()
    worker.join(timeout=5)
    for s in slow:
        with contextlib.suppress(OSError):
            s.close()
    row.notes.append(f"{closed_by_server} of {sockets} slow connections closed by the server within {duration} s "
                     "(the front answers 408 to a request head not complete within serving.wire.HEAD_TIMEOUT_S)")
    return row


def _malformed(out: dict) -> Row:
    row = Row("malformed HTTP", "raw requests to the local endpoint: bad request lines, huge or many headers, bad "
                                "Content-Length / chunking, smuggling shapes, non-ASCII or NUL in headers; held = no 5xx "
                                "and no hang (answer or close within 5 s), and a normal request still scores")
    parsed = urllib.parse.urlsplit(out["scoring_uri"])
    host, port, path = parsed.hostname, parsed.port or 80, parsed.path
    key = out["primary_key"]
    auth = f"Authorization: Bearer {key}\r\n"
    body = b'{"name": "Daniel"}'
    cases: dict[str, bytes] = {
        "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),
        "no version": f"POST {path}\r\n\r\n".encode(),
        "HTTP/9.9": f"POST {path} HTTP/9.9\r\nHost: x\r\n\r\n".encode(),
        "absurd method": f"{'A' * 5000} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        "100 KB URL": f"POST {path}?{'a' * 100_000} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode(),
        "1 MB header": f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Big: {'b' * 1_000_000}\r\n\r\n".encode(),
        "10000 headers": (f"POST {path} HTTP/1.1\r\nHost: x\r\n" + "X-h: v\r\n" * 10_000 + "\r\n").encode(),
        "negative Content-Length": f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: -1\r\n\r\n".encode(),
        "non-numeric Content-Length": f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: ten\r\n\r\n".encode(),
        "two Content-Lengths": f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 5\r\nContent-Length: 18\r\n\r\n"
                               .encode() + body,
        "Content-Length 10^12, short body": f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 1000000000000\r\n"
                                            "\r\n".encode() + body,
        "bad chunk size": f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"
                          .encode(),
        "chunk size overflow": f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\n"
                               f"{'f' * 40}\r\nab\r\n0\r\n\r\n".encode(),
        "CL + TE smuggling": f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"
                             "\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        "non-ASCII Authorization": f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \u00e9\u00e8\r\n"
                                   f"Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body,
        "UTF-8 Authorization": f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ключ\r\n"
                               f"Content-Length: {len(body)}\r\n\r\n".encode() + body,
        "NUL in header": f"POST {path} HTTP/1.1\r\nHost: x\r\nX-a: b\0c\r\n{auth}Content-Length: {len(body)}\r\n\r\n"
                         .encode() + body,
        "NUL in path": f"POST {path}\0x HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {len(body)}\r\n\r\n".encode() + body,
        "header without colon": f"POST {path} HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n".encode(),
        "bare LF line ends": f"POST {path} HTTP/1.1\nHost: x\n{auth.strip()}\nContent-Length: {len(body)}\n\n".encode()
                             + body,
        "invalid JSON body": f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
                             "Content-Length: 9\r\n\r\n{\"name\": ".encode(),
        "JSON nested 100000 deep": (f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
                                    f"Content-Length: 200000\r\n\r\n").encode() + b"[" * 100_000 + b"]" * 100_000,
        "path traversal": f"POST /../../etc/passwd HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode(),
        "wrong key": f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {'x' * 10_000}\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body,
        "100 pipelined requests": (f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {len(body)}\r\n\r\n"
                                   .encode() + body) * 100,
    }
    for name, payload in cases.items():
        status, note = _raw(host, port, payload)
        row.count(not (isinstance(status, int) and status >= 500) and status != "hang", f"{name}: {note}")
    row.count(_score(out) == 200, "a normal request failed afterwards")
    return row


def _raw(host: str, port: int, payload: bytes) -> tuple[int | str, str]:
    """Send raw bytes; the first status line's code, 'closed' or 'hang'."""
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            with contextlib.suppress(OSError):
                s.sendall(payload)
            s.settimeout(5)
            data = b""
            try:
                while b"\r\n" not in data and len(data) < 4096:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except TimeoutError:
                return "hang", "no answer and no close within 5 s"
            except OSError as exc:
                return "closed", f"connection {type(exc).__name__}"
    except OSError as exc:
        return "closed", f"connect: {exc}"
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    if len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].isdigit():
        return int(parts[1]), line
    return "closed", f"closed ({line[:60]!r})" if line else "closed without an answer"


# --- the report -----------------------------------------------------------------------------------------------

def render(rows: list[Row], command: str, took: float) -> str:
    out = ["# RELIABILITY", "",
           "What rtsctl was tried against, and how often it held. Regenerated by one command:", "",
           "    python -m benchmarks.reliability          # all rows (several minutes)",
           "    python -m benchmarks.reliability --fast   # bad inputs + secrets: CI runs this part "
           "(tests/test_reliability.py)", "",
           f"This file: `{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {took:.0f} s on "
           f"{platform.machine()} / {os.cpu_count()} CPUs / Python {platform.python_version()}.", "",
           "| Area | Tried | Tried (n) | Held (n) | Held |", "| --- | --- | ---: | ---: | ---: |"]
    for row in rows:
        share = f"{row.held / row.tried:.0%}" if row.tried else "-"
        out.append(f"| {row.area} | {row.tried_what} | {row.tried} | {row.held} | {share} |")
    out += ["", "## Notes", ""]
    for row in rows:
        for note in row.notes:
            out.append(f"- {row.area}: {note.replace(chr(10), ' ')}")
    out += ["", "Bounds the loader enforces: rtsctl/manifest/limits.py; Azure naming rules with their sources: "
                "rtsctl/manifest/names.py; number bounds: schemas/manifest.schema.json (descriptions cite the "
                "az ml YAML reference and the quota page).", ""]
    return "\n".join(out)


SECTIONS = ("inputs", "secrets", "faults", "crash", "users", "disk", "load", "slow", "malformed", "supply", "limits",
            "orphans", "front")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability", description=__doc__.split("\n")[0])
    parser.add_argument("--fast", action="store_true", help="bad inputs and secrets only (what CI runs)")
    parser.add_argument("--only", help=f"comma-separated sections of {','.join(SECTIONS)}")
    parser.add_argument("--out", default=str(REPO / "RELIABILITY.md"))
    parser.add_argument("--examples", type=int, default=150, help="random mutations per strategy")
    parser.add_argument("--corpus-every", type=int, default=1, metavar="K",
                        help="every K-th corpus case only (tests/test_reliability.py: tests/test_corpus.py runs "
                             "them all)")
    parser.add_argument("--seeds", type=int, default=2, help="emulator runs per fault scenario")
    parser.add_argument("--duration", type=int, default=15, help="seconds of load and of slowloris")
    args = parser.parse_args(argv)
    which = set(args.only.split(",")) if args.only else ({"inputs", "secrets"} if args.fast else set(SECTIONS))
    unknown = which - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")
    started = time.monotonic()
    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], None]]] = [
        ("inputs", lambda: bad_inputs(rows, args.examples, max(1, args.corpus_every))),
        ("secrets", lambda: secrets(rows)),
        ("faults", lambda: faults(rows, args.seeds)),
        ("crash", lambda: crash(rows, [0.5, 1.0, 2.0, 3.0, 5.0])),
        ("users", lambda: other_users(rows)),
        ("disk", lambda: full_disk(rows)),
    ]
    for name, step in steps:
        if name in which:
            print(f"reliability: {name}...", file=sys.stderr, flush=True)
            step()
    if which & {"load", "slow", "malformed"}:
        print("reliability: local endpoint...", file=sys.stderr, flush=True)
        local_endpoint(rows, which, args.duration)
    from benchmarks import survival

    if "supply" in which:
        print("reliability: supply...", file=sys.stderr, flush=True)
        survival.supply(rows)
    if which & {"limits", "orphans", "front"}:
        print("reliability: hostile scripts and a killed front...", file=sys.stderr, flush=True)
        survival.hostile(rows, which)
    command = "python -m benchmarks.reliability" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    Path(args.out).write_text(render(rows, command.strip(), time.monotonic() - started), encoding="utf-8")
    for row in rows:
        print(f"{row.area:15} {row.held}/{row.tried}  {row.tried_what[:80]}", file=sys.stderr)
    return 0 if all(r.held == r.tried for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
