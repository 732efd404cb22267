"""RELIABILITY.md rows for issue 14's hostile inputs: conda files as a supply chain, scoring scripts that eat
memory or leave processes behind, and a front that is killed under load. Run by benchmarks.reliability
(sections `supply`, `limits`, `orphans`, `front`); only 127.0.0.1 is used, every process is ended by PID.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.reliability import Project, Row

HOSTILE = '''
import json, os, subprocess

kids = []


def init():
    kids.append(subprocess.Popen(["sleep", "900"]).pid)
    kids.append(subprocess.Popen(["sleep", "901"], start_new_session=True).pid)
    out = subprocess.run(["sh", "-c", "sleep 902 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
    kids.append(int(out.stdout))


def run(raw):
    data = json.loads(raw)
    if "allocate" in data:
        return {"size": len(b"x" * data["allocate"])}    # touches every page
    if "big" in data:
        return "x" * data["big"]
    return {"host": os.getpid(), "kids": kids}
'''


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def until(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


class Listener:
    """A TCP listener on 127.0.0.1 counting the connections it is offered."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.server.close()


def supply(rows: list[Row]) -> None:
    """Each hostile `pip:` entry through validate and apply: refused with the conda file's line, nothing made,
    and a listener on 127.0.0.1 that the entries point at sees no connection."""
    row = Row("environments", "hostile `pip:` entries in a conda file (options, index URLs with ${HOME}, "
                              "find-links, paths, file:// and name @ URL, CR-split lines, variables) through "
                              "validate and apply; held = refused with conda file:line, RTSCTL_HOME untouched, "
                              "a 127.0.0.1 listener they name sees no connection")
    listener = Listener()
    url = f"http://127.0.0.1:{listener.port}"
    entries = [f'"--extra-index-url {url}/${{HOME}}/simple/"', f"--index-url={url}/simple/", f"--find-links={url}/",
               f"six @ {url}/six-1.17.0-py3-none-any.whl", f"{url}/six.tar.gz", "--requirement=/etc/passwd",
               "--constraint=/etc/passwd", '"six\\r-r /etc/passwd"', "--no-index", "--editable=/tmp", "file:///tmp",
               "/tmp", "./local", f"'six; os_name == \"${{HOME}}\"'"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            project = Project(Path(tmp))
            conda = project.dir / "seed" / "conda.yaml"
            for entry in entries:
                conda.write_text(f"name: env\ndependencies:\n  - pip\n  - pip:\n      - six\n      - {entry}\n")
                for verb in (["validate", "dev.yaml"], ["apply", "dev.yaml", "-y"]):
                    proc = project.run(*verb, timeout=120)
                    ok = (proc.returncode == 1 and "conda file 'seed/conda.yaml': line 6: pip entry" in proc.stderr
                          and "Traceback" not in proc.stderr and not project.home.exists())
                    row.count(ok, f"{verb[0]} {entry}: exit {proc.returncode}: {proc.stderr.strip()[-200:]}")
            project.cleanup()
    finally:
        listener.close()
    if listener.connections:
        row.count(False, f"the listener saw {listener.connections} connection(s)")
    row.notes.append(f"{len(entries)} entries x 2 verbs; the listener saw {listener.connections} connection(s)")
    rows.append(row)


class Load:
    """Keep-alive scoring traffic from a few threads: (end time, status or error name) per request."""

    def __init__(self, out: dict, threads: int = 3):
        self.port = int(out["scoring_uri"].split(":")[2].split("/")[0])
        self.key = out["primary_key"]
        self.results: list[tuple[float, float, int | str]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        conn = None
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("POST", "/score", b'{"name": "load"}', {"Authorization": f"Bearer {self.key}",
                                                                      "Content-Type": "application/json"})
                started = time.monotonic()
                response = conn.getresponse()
                response.read()
                self.results.append((started, time.monotonic(), response.status))
            except (OSError, http.client.HTTPException) as exc:
                self.results.append((started, time.monotonic(), type(exc).__name__))
                conn = None
                time.sleep(0.01)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)

    def failed(self) -> list[tuple[float, float, int | str]]:
        return [r for r in self.results if r[2] != 200]

    def back_after(self, moment: float) -> float | None:
        """Seconds from `moment` until a request sent after it was answered 200 (None: not yet)."""
        ends = [end for start, end, status in list(self.results) if start > moment and status == 200]
        return min(ends) - moment if ends else None


def _hostile_project(tmp: Path) -> Project:
    import yaml

    project = Project(tmp)
    (project.dir / "hostile").mkdir()
    (project.dir / "hostile" / "score.py").write_text(HOSTILE)
    manifest = yaml.safe_load((project.dir / "dev.yaml").read_text())
    dep = manifest["endpoints"][0]["deployments"][0]
    dep.pop("environment")
    dep["code_configuration"] = {"code": "hostile", "scoring_script": "score.py"}
    dep["resources"] = {"limits": {"memory": "256Mi"}}
    dep["request_settings"]["request_timeout_ms"] = 60000   # an OOM kill, restart and replay on a busy machine
    manifest["endpoints"][0].pop("smoke_test")
    (project.dir / "dev.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return project


def _status(project: Project) -> dict:
    folder = next(project.home.rglob("endpoints/rts-score"))
    return json.loads((folder / "status.json").read_text())


def _ask(out: dict, body: dict, timeout: float = 60) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(out["scoring_uri"], data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {out['primary_key']}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def hostile(rows: list[Row], which: set[str], rounds: int = 3, kills: int = 5) -> None:
    """One applied endpoint (2 instances, 256Mi each) running a script that starts 3 kinds of children."""
    with tempfile.TemporaryDirectory() as tmp:
        project = _hostile_project(Path(tmp))
        try:
            applied = project.run("apply", "dev.yaml", "-y")
            if applied.returncode != 0:
                rows.append(Row("hostile scripts", "apply", 1, 0, [applied.stderr.strip()[-300:]]))
                return
            out = project.outputs()
            if "limits" in which:
                rows.append(_memory(project, out, rounds))
                rows.append(_unread(project, out))
            if "orphans" in which:
                rows.append(_orphans(project, out, rounds))
            if "front" in which:
                rows.append(_front(project, out, kills))
        finally:
            project.cleanup()


def _memory(project: Project, out: dict, rounds: int) -> Row:
    from serving.limits import mechanism

    row = Row("memory limits", f"a request whose run() allocates 4 GB on an instance limited to 256Mi "
                               f"({mechanism()}), under steady load from 3 clients; held = it gets 502, the "
                               "instance is OOMKilled (logs say so) and ready again, and no other request fails")
    for i in range(rounds):
        before = sum(x["oom_kills"] for x in _status(project)["deployments"]["blue"]["instances"])
        with Load(out) as load:
            time.sleep(0.3)
            code, _ = _ask(out, {"allocate": 4 * 1024 ** 3})
            time.sleep(0.3)
        failed = load.failed()
        ready = until(lambda: all(x["state"] == "ready" for x in _status(project)["deployments"]["blue"]["instances"]),
                       15.0)
        after = sum(x["oom_kills"] for x in _status(project)["deployments"]["blue"]["instances"])
        logs = project.run("logs", "dev.yaml", "--tail", "300").stdout
        row.count(code == 502 and not failed and ready and after > before and "OOMKilled" in logs,
                  f"round {i}: hog got {code}, {len(failed)} failed of {len(load.results)}, ready={ready}, "
                  f"oom kills {before}->{after}")
        row.notes.append(f"round {i}: {len(load.results)} requests alongside, {len(failed)} failed; "
                         f"OOM kills {before} -> {after}")
    return row


def _unread(project: Project, out: dict, clients: int = 8, pipelined: int = 6) -> Row:
    from serving.wire import MAX_RESPONSE

    row = Row("big answers", f"an answer over the {MAX_RESPONSE >> 20} MiB bound, then {clients} clients pipelining "
                             f"{pipelined} requests for 8 MB answers each and never reading, while another client "
                             f"scores ({clients * pipelined} requests: within the endpoint's admission of 2 x 16 x 2, "
                             "so it is admitted too); held = the big answer is refused (424), the front stays under "
                             "400 MB and the other client's requests are answered 200")
    code, body = _ask(out, {"big": MAX_RESPONSE + 1})
    row.count(code == 424 and b"larger than" in body, f"over-bound answer: {code} {body[:120]!r}")

    def made() -> int:
        return _status(project)["deployments"]["blue"]["answers"].get("200", 0)

    before = made()
    greedy = never_reading(out, clients, pipelined)
    answered = [_ask(out, {"who": 0}, timeout=30)[0] for _ in range(10)]
    until(lambda: made() >= before + clients * pipelined + 10, 60.0)     # every big answer was made
    rss = rss_mb(_status(project)["worker"])
    for sock in greedy:
        sock.close()
    row.count(rss < 400, f"front RSS {rss} MB")
    row.count(answered == [200] * 10, f"other client got {answered}")
    row.notes.append(f"front RSS with {clients} clients that never read: {rss} MB")
    return row


def never_reading(out: dict, clients: int = 8, pipelined: int = 8) -> list[socket.socket]:
    """Connections that each pipeline requests for 8 MB answers and never read one."""
    port = int(out["scoring_uri"].split(":")[2].split("/")[0])
    request = (f"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {out['primary_key']}\r\n"
               f"Content-Type: application/json\r\nContent-Length: 20\r\n\r\n"
               + json.dumps({"big": 8_000_000}).ljust(20)).encode()
    greedy = []
    for _ in range(clients):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(request * pipelined)
        greedy.append(sock)
    return greedy


def rss_mb(pid: int) -> int:
    return int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("VmRSS")).split()[1]) >> 10


def _orphans(project: Project, out: dict, rounds: int) -> Row:
    row = Row("orphans", "what run() started (a child, one with start_new_session, a double-forked daemon) after "
                         "its instance is SIGKILLed (restart) and after destroy; held = all gone within 3 s")
    for _ in range(rounds):
        code, body = _ask(out, {"who": 1})
        if code != 200:
            row.count(False, f"scoring answered {code}")
            continue
        answer = json.loads(body)
        os.kill(answer["host"], signal.SIGKILL)
        row.count(until(lambda: not any(alive(p) for p in answer["kids"]), 3.0),
                  f"restart: left {[p for p in answer['kids'] if alive(p)]}")
        until(lambda: all(x["state"] == "ready" for x in _status(project)["deployments"]["blue"]["instances"]), 15.0)
    kids = {p for _ in range(4) for p in json.loads(_ask(out, {"who": 2})[1])["kids"]}
    project.run("destroy", "dev.yaml", "-y")
    row.count(bool(kids) and until(lambda: not any(alive(p) for p in kids), 3.0),
              f"destroy: left {[p for p in kids if alive(p)]}")
    project.run("apply", "dev.yaml", "-y")
    out.update(project.outputs())
    return row


def _front(project: Project, out: dict, kills: int) -> Row:
    row = Row("front restarts", f"SIGKILL of the endpoint's front under steady load (3 keep-alive clients), {kills} "
                                "times; held = HTTP 200 again on the same port within 2 s with no apply")
    for i in range(kills):
        with Load(out) as load:
            time.sleep(1.0)
            worker = _status(project)["worker"]
            os.kill(worker, signal.SIGKILL)
            until(lambda: not alive(worker), 2.0)       # measured from its death, not from sending the signal
            killed = time.monotonic()
            until(lambda: load.back_after(killed) is not None, 5.0)
            time.sleep(1.0)
        after = load.back_after(killed)
        back = [after] if after is not None else []
        failed = [s for _, _, s in load.failed()]
        row.count(bool(back) and min(back) < 2.0, f"kill {i}: {'not back' if not back else f'back after {min(back):.2f}s'}")
        row.notes.append(f"kill {i}: 200 again after {min(back) if back else float('nan'):.2f} s; {len(failed)} of "
                         f"{len(load.results)} requests failed ({', '.join(sorted({str(s) for s in failed})) or 'none'})")
        time.sleep(10.5)      # past the keeper's healthy-reset time: each kill is a first death, not a crash loop
    plan = project.run("plan", "dev.yaml").stdout
    row.count(f"the front restarted {kills} time(s)" in plan, f"plan does not show {kills} restarts: {plan[-300:]}")
    return row
