"""The local backend against its host (issue 14): another real user of the machine, and a full disk.

One scenario per function, each returning named checks; tests/test_hostile_host.py asserts every check and
`python -m benchmarks.reliability --only users,disk` counts them in RELIABILITY.md. Both need root (useradd,
mount -t tmpfs); `available()` says why not where they cannot run. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from reconcilers.local.procs import port_is_free

REPO = Path(__file__).resolve().parents[1]
PY = "/usr/bin/python3"                       # the other user's interpreter: the system one, not our venv
SLOW_SCORE = '''import json, time


def init():
    pass


def run(raw):
    doc = json.loads(raw)
    time.sleep(float(doc.get("sleep", 0)))
    return {"GoAway": f"{doc['name']}'s not here."}
'''
TIMEOUT_MS = 1000
SLOW_S = 1.3                                  # past the timeout; a request behind it still waits < TIMEOUT_MS


@dataclass
class Checks:
    results: list[tuple[str, bool, str]] = field(default_factory=list)

    def __call__(self, name: str, ok: bool, detail: str = "") -> bool:
        self.results.append((name, bool(ok), "" if ok else detail[-600:]))
        return bool(ok)

    def failed(self) -> list[str]:
        return [f"{name}: {detail}" for name, ok, detail in self.results if not ok]


def available(what: str) -> str | None:
    """None when the scenario `what` ('users' or 'disk') can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    if what == "users" and not (shutil.which("useradd") and shutil.which("userdel") and Path(PY).exists()):
        return "needs useradd, userdel and /usr/bin/python3"
    if what == "disk":
        probe = Path(tempfile.mkdtemp(prefix="rts-tmpfs-probe-"))
        try:
            if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
                              capture_output=True).returncode != 0:
                return "mounting a tmpfs is not permitted here"
            subprocess.run(["umount", str(probe)], capture_output=True)
        finally:
            probe.rmdir()
    return None


# --- the project under test -------------------------------------------------------------------------------------

class Project:
    """A copy of manifests/ (one instance, a sleeping score.py, a short request timeout) and its RTSCTL_HOME."""

    def __init__(self, root: Path, home: Path):
        self.dir, self.home = root / "project", home
        shutil.copytree(REPO / "manifests", self.dir, ignore=shutil.ignore_patterns("__pycache__"))
        (self.dir / "seed" / "src" / "score.py").write_text(SLOW_SCORE)
        manifest = self.dir / "dev.yaml"
        doc = yaml.safe_load(manifest.read_text())
        deployment = doc["endpoints"][0]["deployments"][0]
        deployment["instance_count"] = 1
        deployment["request_settings"] = {"max_concurrent_requests_per_instance": 4,
                                          "request_timeout_ms": TIMEOUT_MS}
        manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
        # environments are built outside the home (a small tmpfs could not hold one), once per machine
        cache = os.environ.get("RTSCTL_ENV_CACHE") or str(Path(tempfile.gettempdir()) / "rtsctl-hostile-envs")
        self.env = {**os.environ, "RTSCTL_HOME": str(home), "RTSCTL_ENV_CACHE": cache, "NO_COLOR": "1",
                    "COLUMNS": "200"}
        self.env.pop("RTSCTL_DEBUG", None)

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rtsctl", *args], cwd=self.dir, capture_output=True, text=True,
                              env={**self.env, **(env or {})}, timeout=timeout)

    def outputs(self) -> dict:
        proc = self.run("output", "dev.yaml", "-o", "json", "--show-secrets")
        return json.loads(proc.stdout)[0] if proc.returncode == 0 else {}

    def endpoint_dir(self) -> Path:
        return self.home / "local" / "rts-dev" / "workspaces" / "rts-workspace" / "endpoints" / "rts-score"

    def port(self) -> int:
        return json.loads((self.endpoint_dir() / "endpoint.json").read_text())["port"]

    def front(self) -> int | None:
        from reconcilers.local.routes import front_pid

        return front_pid(self.endpoint_dir())

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.run("destroy", "dev.yaml", "-y", timeout=120)
        from reconcilers.local import procs

        for pid in procs.owned_by(self.endpoint_dir()):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def score(port: int, key: str, body: dict, timeout: float = 10.0) -> int:
    """The status of one scoring request; 0 when the connection itself fails."""
    from benchmarks.reliability import post_status

    try:
        return post_status(f"http://127.0.0.1:{port}/score", json.dumps(body).encode(), timeout=timeout,
                           headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    except OSError:
        return 0


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def private_modes(home: Path) -> list[str]:
    """Files and folders under `home` (environments aside: uv links their files from its own cache) that
    group or others could use."""
    loose = []
    for path in [home, *home.rglob("*")]:
        if "envs" in path.relative_to(home).parts[:1] or path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            loose.append(f"{path.relative_to(home)} {mode:o}")
    return loose


# --- another user ---------------------------------------------------------------------------------------------------

@dataclass
class Stranger:
    name: str
    uid: int
    gid: int
    started: list[subprocess.Popen] = field(default_factory=list)

    def run(self, code: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([PY, "-c", code, *args], user=self.uid, group=self.gid, extra_groups=[], cwd="/",
                              capture_output=True, text=True, timeout=timeout, env={"PATH": "/usr/bin:/bin"})

    def start(self, code: str, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen([PY, "-c", code, *args], user=self.uid, group=self.gid, extra_groups=[], cwd="/",
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={"PATH": "/usr/bin:/bin"})
        self.started.append(proc)
        return proc


@contextlib.contextmanager
def stranger() -> Iterator[Stranger]:
    """A real local user made for the scenario, removed afterwards with whatever it ran for us."""
    name = f"rts14x{os.getpid() % 100000}"
    subprocess.run(["userdel", name], capture_output=True)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True,
                   capture_output=True)
    import pwd

    entry = pwd.getpwnam(name)
    user = Stranger(name, entry.pw_uid, entry.pw_gid)
    try:
        yield user
    finally:
        for proc in user.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        subprocess.run(["userdel", name], capture_output=True)


READ = """import json, sys
out = {}
for path in sys.argv[1:]:
    try:
        with open(path, 'rb') as handle:
            handle.read(1)
        out[path] = 'read'
    except OSError as exc:
        out[path] = exc.strerror
print(json.dumps(out))
"""
FLOCK = """import fcntl, json, sys
out = {}
for path in sys.argv[1:]:
    try:
        fd = open(path, 'a')
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        out[path] = 'locked'
    except OSError as exc:
        out[path] = exc.strerror
print(json.dumps(out))
"""
KILL = """import json, os, signal, sys
out = {}
for pid in sys.argv[1:]:
    try:
        os.kill(int(pid), signal.SIGTERM)
        out[pid] = 'signalled'
    except OSError as exc:
        out[pid] = exc.strerror
print(json.dumps(out))
"""
# An impostor front: the endpoint folder and `serving.front` in its argv, "Healthy" on the endpoint's port,
# and every request head it receives printed (a bearer key sent to it would show here).
IMPOSTOR = """import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(('127.0.0.1', int(sys.argv[-1])))
server.listen(16)
print('listening', flush=True)
while True:
    conn, _ = server.accept()
    conn.settimeout(2)
    try:
        data = conn.recv(65536)
        print('GOT', data.decode('latin-1').replace('\\r\\n', ' | '), flush=True)
        conn.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 7\\r\\nConnection: close\\r\\n\\r\\nHealthy')
    except OSError:
        pass
    conn.close()
"""


def _refused(proc: subprocess.CompletedProcess, *needles: str) -> bool:
    return proc.returncode == 1 and "Traceback" not in proc.stderr and all(n in proc.stderr for n in needles)


def loose_homes(root: Path, user: Stranger) -> Checks:
    """A home or cache that another user owns or may write is refused before anything runs."""
    check = Checks()
    cases = []
    wide = root / "wide-home"
    wide.mkdir(mode=0o777)
    os.chmod(wide, 0o777)
    cases.append(("0777 home", {"RTSCTL_HOME": str(wide)}, wide, (str(wide), "chmod 700")))
    theirs = root / "their-home"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, user.uid, user.gid)
    cases.append(("home of another user", {"RTSCTL_HOME": str(theirs)}, theirs, (str(theirs), "another user")))
    cache = root / "wide-cache"
    cache.mkdir()
    os.chmod(cache, 0o777)
    own = root / "own-home"
    cases.append(("0777 RTSCTL_ENV_CACHE", {"RTSCTL_HOME": str(own), "RTSCTL_ENV_CACHE": str(cache)}, cache,
                  (str(cache), "RTSCTL_ENV_CACHE")))
    project = Project(root, own)
    for label, env, folder, needles in cases:
        for verb in (("apply", "dev.yaml", "-y"), ("plan", "dev.yaml")):
            proc = project.run(*verb, env=env)
            check(f"{label}: `{verb[0]}` refused naming the path and what to do", _refused(proc, *needles),
                  proc.stderr)
        check(f"{label}: nothing written in it", not any(p.name != "envs" for p in folder.iterdir())
              if folder != cache else not any(folder.iterdir()), str(list(folder.iterdir())))
        check(f"{label}: its mode and owner are left as they were",
              folder.stat().st_uid == (user.uid if folder == theirs else 0) and folder.stat().st_mode & 0o777 ==
              (0o700 if folder == theirs else 0o777))
    check("nothing made in the home of the refused cache", not (own / "local").exists())
    found = _processes_under(wide, theirs, cache, own)
    check("no process started for any of them", not found, str(found))
    return check


def _processes_under(*folders: Path) -> list[int]:
    from reconcilers.local.procs import command_lines

    marks = [str(f).encode() for f in folders]
    return [(pid, argv) for pid, argv in command_lines() if any(m in arg for arg in argv for m in marks)]


def other_user(user: Stranger) -> Checks:
    """Another user can neither read keys, models or state, nor block, impersonate or signal anything of ours."""
    check = Checks()
    root = Path(tempfile.mkdtemp(prefix="rts-shared-", dir="/tmp"))
    root.chmod(0o755)                       # the stranger may reach the home's parent, as in a shared /srv
    home = root / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)                   # made by hand, readable: rtsctl tightens it
    project = Project(root, home)
    project.env["RTSCTL_HOME"] = os.path.relpath(home, project.dir)   # relative: made absolute once, for all
    try:
        applied = project.run("apply", "dev.yaml", "-y")
        if not check("apply with a relative RTSCTL_HOME (../home), pre-made 0755 by us",
                     applied.returncode == 0 and "Smoke test passed" in applied.stdout, applied.stderr):
            return check
        check("home tightened to 0700", home.stat().st_mode & 0o777 == 0o700, oct(home.stat().st_mode))
        check("every file 0600 and folder 0700 (models, keys, records, locks, logs)", not private_modes(home),
              str(private_modes(home)[:10]))
        folder = project.endpoint_dir()
        secrets = [folder / "keys" / "primary", folder / "keys" / "secondary", folder / "endpoint.json",
                   folder / "status.json", folder / "routes.json",
                   *sorted((home / "local").rglob("model.pkl")), *sorted((home / "applied").glob("*.json"))]
        seen = json.loads(user.run(READ, *map(str, secrets)).stdout or "{}")
        check("another user reads no key, model or state file",
              len(seen) == len(secrets) and all(v != "read" for v in seen.values()), str(seen))
        locks = sorted(str(p) for p in home.rglob("*.lock")) + [str(home / "local" / ".rts-dev.lock")]
        held = json.loads(user.run(FLOCK, *locks).stdout or "{}")
        check("another user cannot open (so cannot flock) any lock", all(v != "locked" for v in held.values()),
              str(held))
        out = project.outputs()
        pids = [str(p) for p in _owned(folder)]
        signalled = json.loads(user.run(KILL, *pids).stdout or "{}")
        check("another user cannot signal the front or an instance",
              pids and all(v != "signalled" for v in signalled.values()), str(signalled))
        check("the endpoint still answers", score(project.port(), out["primary_key"], {"name": "x"}) == 200)
        _impostor(project, user, out["primary_key"], check)
    finally:
        project.destroy()
        shutil.rmtree(root, ignore_errors=True)
    return check


def _owned(folder: Path) -> list[int]:
    from reconcilers.local import procs

    return procs.owned_by(folder)


def _impostor(project: Project, user: Stranger, key: str, check: Checks) -> None:
    """Our front dies; another user's process with the endpoint folder and `serving.front` in its argv takes the
    port and answers "Healthy". It is never trusted (no key sent), never signalled, and apply says the port is
    taken."""
    folder, port = project.endpoint_dir(), project.port()
    for pid in _owned(folder):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not port_is_free(port):
        time.sleep(0.05)
    impostor = user.start(IMPOSTOR, "serving.front", "--dir", str(folder), "--port", str(port))
    assert impostor.stdout is not None
    ready = impostor.stdout.readline().strip() == "listening"
    if not check("impostor listens on the endpoint's port", ready):
        return
    request = project.dir / "request.json"
    request.write_text('{"name": "Daniel"}')
    invoked = project.run("invoke", "dev.yaml", "--request", str(request))
    check("invoke refuses to call a front that is not ours", invoked.returncode == 1 and "Traceback" not in
          invoked.stderr, invoked.stderr + invoked.stdout)
    planned = project.run("plan", "dev.yaml", "--detailed-exitcode")
    check("plan shows the endpoint not running", planned.returncode == 2 and "not running" in planned.stdout,
          planned.stdout + planned.stderr)
    applied = project.run("apply", "dev.yaml", "-y")
    check("apply fails naming the port taken by another process",
          applied.returncode == 1 and f"port {port}" in applied.stdout + applied.stderr
          and "Operation not permitted" not in applied.stderr, applied.stdout[-400:] + applied.stderr)
    destroyed = project.run("destroy", "dev.yaml", "-y")
    check("destroy succeeds without touching the other user's process",
          destroyed.returncode == 0 and impostor.poll() is None, destroyed.stderr)
    impostor.kill()
    heard = impostor.communicate(timeout=10)[0]
    check("the impostor never received a bearer key", key not in heard and "Bearer" not in heard, heard[-400:])


# --- a full disk ----------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(path: Path, size: str = "24m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True,
                   capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of `folder` to the last block, then give back `leave` bytes."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        chunk = b"\0" * (1 << 20)
        while chunk:
            try:
                os.write(fd, chunk)
            except OSError:
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def _keys_sound(home: Path) -> bool:
    """No key file exists empty (a key is whole or absent)."""
    return all(p.stat().st_size > 0 for p in home.rglob("keys/*"))


def _temp_files(home: Path) -> list[str]:
    return [str(p.relative_to(home)) for p in home.rglob("*") if p.name.endswith(".tmp")
            or p.name.startswith(".status.json.")]


def full_disk_apply(mount: Path, leaves: tuple[int, ...] = (0, 16 << 10, 160 << 10)) -> Checks:
    """A first apply on a full (or nearly full) disk: a named error, no empty key, no temp file; `plan` does not
    say "No changes"; once space is freed the next apply converges."""
    check = Checks()
    for leave in leaves:
        root = mount / f"apply-{leave}"
        root.mkdir()
        project = Project(Path(tempfile.mkdtemp(prefix="rts-disk-project-")), root / "home")
        try:
            filler = fill(mount, leave)
            applied = project.run("apply", "dev.yaml", "-y")
            said = applied.stdout + applied.stderr
            if applied.returncode == 0:     # everything fitted: nothing to check at this level
                check(f"{leave // 1024} KiB free: apply fitted and serves", project.front() is not None, said)
            else:
                check(f"{leave // 1024} KiB free: the error names the file and the full disk",
                      "No space left on device" in said and str(root / "home") in said
                      and "Traceback" not in said and "OSError: [Errno 28]" not in said, said[-600:])
                check(f"{leave // 1024} KiB free: no empty key", _keys_sound(root / "home"))
                check(f"{leave // 1024} KiB free: no temp file left", not _temp_files(root / "home"),
                      str(_temp_files(root / "home")))
                planned = project.run("plan", "dev.yaml", "--detailed-exitcode")
                check(f"{leave // 1024} KiB free: plan shows changes", planned.returncode == 2,
                      planned.stdout[-400:] + planned.stderr)
            filler.unlink()
            again = project.run("apply", "dev.yaml", "-y")
            check(f"{leave // 1024} KiB free: after freeing space the next apply converges (smoke test passes)",
                  again.returncode == 0 and "Smoke test passed" in again.stdout, again.stdout[-400:] + again.stderr)
            out = project.outputs()
            check(f"{leave // 1024} KiB free: the key works", out and score(project.port(), out["primary_key"],
                                                                             {"name": "a"}) == 200)
        finally:
            project.destroy()
            shutil.rmtree(project.dir.parent, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)
    return check


def full_disk_environment(mount: Path) -> Checks:
    """RTSCTL_ENV_CACHE on a disk that fills while uv installs: the error says "No space left on device" (not
    lost in the cut of uv's output), no half-built environment is left, and nothing after it is attempted."""
    check = Checks()
    project = Project(Path(tempfile.mkdtemp(prefix="rts-disk-project-")), mount / "env-home")
    project.env["RTSCTL_ENV_CACHE"] = str(mount / "envs")
    try:
        filler = fill(mount, 4 << 20)                 # room for the venv, not for its packages
        applied = project.run("apply", "dev.yaml", "-y")
        said = applied.stdout + applied.stderr
        check("environment build on a full disk: the error says No space left on device and names the cache",
              applied.returncode == 1 and "environment.scoring-env: " in said and "No space left on device" in said
              and str(mount / "envs") in said and "Traceback" not in said, said[-800:])
        check("no half-built environment left", not [p.name for p in (mount / "envs").iterdir()
                                                     if not p.name.endswith(".lock")],
              str(list((mount / "envs").iterdir())))
        filler.unlink()
    finally:
        project.destroy()
        shutil.rmtree(project.dir.parent, ignore_errors=True)
    return check


def full_disk_serving(mount: Path, seconds: float = 3.0) -> Checks:
    """The disk fills while the endpoint serves: requests keep their answers (200, and 408 past
    request_timeout_ms), the sweeper and the front live on, plan says the disk is full; once freed, status is
    written again and apply converges."""
    check = Checks()
    root = mount / "serving"
    root.mkdir()
    project = Project(Path(tempfile.mkdtemp(prefix="rts-disk-project-")), root / "home")
    try:
        applied = project.run("apply", "dev.yaml", "-y")
        if not check("apply on a roomy disk", applied.returncode == 0, applied.stderr):
            return check
        key, port, front = project.outputs()["primary_key"], project.port(), project.front()
        status_file = project.endpoint_dir() / "status.json"
        filler = fill(mount)
        full_since = time.time()
        answers: list[int] = []
        timeouts: list[int] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:         # status writes fail (answers are counted) all along
            answers.append(score(port, key, {"name": "a"}))
            timeouts.append(score(port, key, {"name": "slow", "sleep": SLOW_S}))
        check("while full: every request answered 200", answers and set(answers) == {200}, str(sorted(set(answers))))
        check("while full: a request past request_timeout_ms still gets 408 (the sweeper lives)",
              timeouts and set(timeouts) == {408}, str(sorted(set(timeouts))))
        check("while full: the same front serves", project.front() == front)
        check("while full: the health check (GET /) answers 200", _healthy(port))
        check("while full: no temp file left", not _temp_files(project.home), str(_temp_files(project.home)))
        check("while full: no empty key", _keys_sound(project.home))
        planned = project.run("plan", "dev.yaml", "--detailed-exitcode")
        check("while full: plan does not say 'No changes' and names the full disk",
              planned.returncode == 2 and "full" in planned.stdout, planned.stdout[-600:] + planned.stderr)
        filler.unlink()
        freed = time.monotonic()
        while time.monotonic() - freed < 10:
            score(port, key, {"name": "b"})
            with contextlib.suppress(OSError, ValueError):
                if json.loads(status_file.read_text())["updated"] > full_since + seconds:
                    break
            time.sleep(0.1)
        updated = 0.0
        with contextlib.suppress(OSError, ValueError):
            updated = json.loads(status_file.read_text())["updated"]
        check("after freeing: the front writes its status again", updated > full_since + seconds)
        log = project.home / "local" / "rts-dev" / "workspaces" / "rts-workspace" / "logs" / "rts-score" / "front.log"
        check("after freeing: front.log says its status is written again", "status.json written again" in
              log.read_text(errors="replace"), log.read_text(errors="replace")[-600:])
        after = score(port, key, {"name": "slow", "sleep": SLOW_S})
        check("after freeing: 408 still answered", after == 408, str(after))
        again = project.run("apply", "dev.yaml", "-y")
        check("after freeing: apply converges", again.returncode == 0, again.stdout[-400:] + again.stderr)
        calm = project.run("plan", "dev.yaml", "--detailed-exitcode")
        check("after freeing: plan says No changes", calm.returncode == 0, calm.stdout[-400:])
    finally:
        project.destroy()
        shutil.rmtree(project.dir.parent, ignore_errors=True)
    return check
