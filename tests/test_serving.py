"""The local serving runtime under stress, through the CLI and real HTTP: supervision, Azure's front codes,
auth boundaries, and crash safety of apply/destroy (counted in /proc)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import REPO, Cli, kill_recorded
from helpers import edit_yaml, post

from reconcilers.local import procs

SCRIPT = '''\
import json, os, time

def init():
    if os.path.exists(os.environ["BROKEN_FLAG"]):
        raise RuntimeError("model file corrupted")

def run(raw):
    body = json.loads(raw)
    what = body.get("do")
    if what == "poison":
        os._exit(1)
    if what == "break":
        open(os.environ["BROKEN_FLAG"], "w").close()
        os._exit(1)
    if what == "hang":
        time.sleep(3600)
    if what == "fail":
        raise ValueError("bad input")
    time.sleep(body.get("sleep", 0))
    return {"GoAway": body["name"] + "'s not here."}
'''


def setup(cli, project, **deployment) -> tuple[str, str]:
    (project / "seed" / "src" / "score.py").write_text(SCRIPT)

    def change(d: dict) -> None:
        dep = d["endpoints"][0]["deployments"][0]
        dep["environment_variables"]["BROKEN_FLAG"] = str(project / "broken.flag")
        dep.update(deployment)

    edit_yaml(project / "dev.yaml", change)
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()
    return out["scoring_uri"], out["primary_key"]


def endpoint_dir(cli):
    return cli.home / "local" / "rts-dev" / "workspaces" / "rts-workspace" / "endpoints" / "rts-score"


def status(cli) -> dict:
    return json.loads((endpoint_dir(cli) / "status.json").read_text())["deployments"]["blue"]


def serving_processes(home) -> list[int]:
    """Every live front or scoring host whose argv names a path under `home`."""
    marker = str(home).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if any(marker in a for a in argv) and (b"serving.front" in argv or b"serving.host" in argv) \
                and procs.start_time(int(entry)) is not None:
            found.append(int(entry))
    return found


def test_sigkill_of_apply_or_destroy_at_any_point_leaves_no_orphan(cli, project):
    script = project / "seed" / "src" / "score.py"
    script.write_text(script.read_text().replace("def init():", "def init():\n    __import__('time').sleep(0.3)"))
    argv = [sys.executable, "-m", "rtsctl"]

    def killed_after(verb: str, delay: float) -> None:
        proc = subprocess.Popen(argv + [verb, "dev.yaml", "-y"], cwd=cli.workdir, env=cli.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()

    delays = [0.3, 0.5, 0.7, 0.9, 1.1, 1.4, 1.8]
    for delay in delays:
        killed_after("apply", delay)
        assert len(serving_processes(cli.home)) <= 4
    cli.ok("apply", "dev.yaml", "-y")
    assert len(serving_processes(cli.home)) == 4   # one front (keeper, worker), two instances: nothing else survived
    for delay in [0.2, 0.4, 0.6, 0.9]:
        killed_after("destroy", delay)
        cli.ok("apply", "dev.yaml", "-y")
        assert len(serving_processes(cli.home)) == 4
    for delay in delays[:4]:
        killed_after("apply", delay)
        killed_after("destroy", delay)
    cli.ok("destroy", "dev.yaml", "-y")
    assert serving_processes(cli.home) == []


def test_instance_count_without_a_compute_is_one_rule_checked_first(cli, project):
    """One capacity rule, with its number and where it comes from: validate refuses, and plan and apply refuse the
    same way before anything runs (no log lines of anything else)."""
    cores = len(os.sched_getaffinity(0))

    def change(d: dict) -> None:
        d.pop("computes")
        d["endpoints"][0].pop("compute")
        d["endpoints"][0]["deployments"][0]["instance_count"] = cores + 1

    edit_yaml(project / "dev.yaml", change)
    rule = (f"deployments ask for {cores + 1} local instances (rts-score/blue {cores + 1}); without a compute the local "
            f"backend runs at most {cores}, one per CPU core rtsctl may use on this machine (os.sched_getaffinity)")
    for verb in (("validate",), ("plan",), ("apply", "-y")):
        result = cli(*verb, "dev.yaml")
        assert result.code == 1 and rule in result.err and "Traceback" not in result.err, str(result)
        assert "dev.yaml:" in result.err and "max_instances" in result.err
        assert "|" not in result.out + result.err  # no instance log lines
    assert not (cli.home / "local").exists() or not list((cli.home / "local").rglob("deployment.json"))


def test_instance_logs_are_size_capped_and_rotated(cli, project):
    (project / "seed" / "src" / "score.py").write_text(
        "import sys\n\ndef init():\n    pass\n\ndef run(raw):\n    sys.stdout.write('x' * 1_000_000 + '\\n')\n"
        "    return {'GoAway': \"Daniel's not here.\"}\n")
    edit_yaml(project / "dev.yaml", lambda d: d["endpoints"][0]["deployments"][0].update(instance_count=1))
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()
    for _ in range(12):
        assert post(out["scoring_uri"], {"name": "x"}, out["primary_key"])[0] == 200
    logs = cli.home / "local" / "rts-dev" / "workspaces" / "rts-workspace" / "logs" / "rts-score" / "blue"
    assert procs.wait_until(lambda: (logs / "instance-0.log.2").exists(), 10)
    names = sorted(p.name for p in logs.iterdir())
    assert names == ["access.log", "instance-0.log", "instance-0.log.1", "instance-0.log.2"]  # access: the front's
    assert all(p.stat().st_size <= 5 * 1024 * 1024 for p in logs.iterdir())
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in logs.iterdir())


def listening_addresses(port: int) -> set[str]:
    found = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found




# ---- one endpoint (2 instances, 32 requests in flight each) shared by the tests that only score it, or whose
# checks are relative to what it had before (exits, restarts): one apply for the module, not one per test.
# Its RTSCTL_HOME is under a folder every user may traverse, so the only barriers are the ones rtsctl makes.

@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    base = Path(tempfile.mkdtemp(prefix="rtsctl-auth-", dir="/tmp"))
    os.chmod(base, 0o755)
    project = tmp_path_factory.mktemp("serving-shared") / "project"
    shutil.copytree(REPO / "manifests", project, ignore=shutil.ignore_patterns("__pycache__"))
    cli = Cli(base / "home", project)
    try:
        uri, key = setup(cli, project, request_settings={"max_concurrent_requests_per_instance": 32})
        yield cli, uri, key, base
    finally:
        cli("destroy", "dev.yaml", "-y")
        kill_recorded(cli)
        shutil.rmtree(base, ignore_errors=True)


def test_hostile_http_gets_a_clear_status_and_never_reaches_an_instance(shared):
    cli, uri, key, _ = shared
    exits = {i["index"]: i["exits"] for i in status(cli)["instances"]}
    port = int(uri.rsplit(":", 1)[1].split("/")[0])
    auth = b"Authorization: Bearer " + key.encode() + b"\r\n"

    def exchange(raw: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(raw)
            return sock.recv(65536)

    cases = {
        b"POST /score HTTP/1.1\r\n" + auth + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n": b"431",
        b"POST /score HTTP/1.1\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n": b"411",
        b"POST /score HTTP/1.1\r\n" + auth + b"Content-Length: 12abc\r\n\r\n": b"400",
        b"POST /score\r\n\r\n": b"400",
        b"POST /score HTTP/1.1\r\n" + auth + b"Content-Length: 99999999999\r\n\r\n": b"413",
        b"GET /score HTTP/1.1\r\n" + auth + b"\r\n": b"405",
        b"POST /admin HTTP/1.1\r\n" + auth + b"Content-Length: 0\r\n\r\n": b"404",
        b"POST /score HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}": b"401",
        # refused at once, not when the client gives up: a TLS hello on the plain port, a bare-LF head
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03": b"400",
        b"POST /score HTTP/1.1\nHost: x\n" + auth.replace(b"\r\n", b"\n"): b"400",
    }
    for raw, expected in cases.items():
        assert exchange(raw).split(b" ", 2)[1] == expected, raw[:60]
    assert {i["index"]: i["exits"] for i in status(cli)["instances"]} == exits   # no instance died of any of it
    assert post(uri, {"name": "x"}, key)[0] == 200


def test_a_head_that_never_completes_gets_408_and_the_connection_is_closed(shared):
    """Slowloris: a client trickling a request head holds no slot forever (serving.wire.HEAD_TIMEOUT_S)."""
    from serving.wire import HEAD_TIMEOUT_S

    _, uri, key, _ = shared
    port = int(uri.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=HEAD_TIMEOUT_S + 10) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")          # ...and never the rest
        answer = sock.recv(65536)
        waited = time.monotonic() - started
        assert answer.split(b" ", 2)[1] == b"408" and HEAD_TIMEOUT_S - 1 <= waited <= HEAD_TIMEOUT_S + 8, (answer, waited)
        assert sock.recv(65536) == b""                                   # closed
    assert post(uri, {"name": "x"}, key)[0] == 200


def test_pipelined_requests_are_answered_in_order(shared):
    _, uri, key, _ = shared
    port = int(uri.rsplit(":", 1)[1].split("/")[0])
    count = 150   # more than the front reads ahead per connection (64): it must pause and resume
    requests = b"".join(
        b"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (key.encode(), len(body), body)
        for body in (json.dumps({"name": f"n{i}"}).encode() for i in range(count)))
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(requests)
        data, names = b"", []
        while len(names) < count:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(names)} answers"
            data += chunk
            while b"\r\n\r\n" in data:
                head, rest = data.split(b"\r\n\r\n", 1)
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                if len(rest) < length:
                    break
                assert head.startswith(b"HTTP/1.1 200 "), head
                names.append(json.loads(rest[:length])["GoAway"].split("'")[0])
                data = rest[length:]
    assert names == [f"n{i}" for i in range(count)]


def test_non_ascii_authorization_is_401_and_instances_are_unreachable_without_the_front(shared):
    cli, uri, _, base = shared
    assert procs.wait_until(lambda: status(cli)["ready"] == 2, 10)
    port = int(uri.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xc3\xa9\xff\r\n"
                     b"Content-Length: 2\r\n\r\n{}")
        assert sock.recv(4096).startswith(b"HTTP/1.1 401 ")
    # instances listen on Unix sockets only, in a folder only the owner may enter
    run = endpoint_dir(cli) / "run"
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    sockets = sorted(p.name for p in run.iterdir() if stat.S_ISSOCK(p.stat().st_mode))
    assert len(sockets) == 2
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                listening.add(fields[9])
    for instance in status(cli)["instances"]:
        links = [os.readlink(f"/proc/{instance['pid']}/fd/{fd}") for fd in os.listdir(f"/proc/{instance['pid']}/fd")]
        inodes = {link[8:-1] for link in links if link.startswith("socket:")}
        assert inodes and not inodes & listening, "a scoring instance listens on TCP"
    # another local user (nobody) cannot connect to an instance's socket, even with the endpoint folder opened up;
    # the same probe does connect to a socket nothing protects
    os.chmod(endpoint_dir(cli), 0o755)
    (base / "instance.sock").symlink_to(run / sockets[0])   # AF_UNIX paths are limited to 107 bytes
    control = socket.socket(socket.AF_UNIX)
    control.bind(str(base / "open.sock"))
    control.listen(1)
    os.chmod(base / "open.sock", 0o777)
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect(sys.argv[1])\n"
             "except PermissionError:\n    print('denied')\nelse:\n    print('connected')\n")

    def as_nobody(path) -> str:
        result = subprocess.run([python, "-c", probe, str(path)], capture_output=True, text=True,
                                user=65534, group=65534, cwd="/", timeout=30)
        return result.stdout.strip() or result.stderr

    try:
        assert as_nobody(base / "open.sock") == "connected"
        assert as_nobody(base / "instance.sock") == "denied"
    finally:
        control.close()
        os.chmod(endpoint_dir(cli), 0o700)
    # state that reveals ports or keys is private
    for name in ("endpoint.json", "routes.json", "status.json", "keys/primary"):
        assert stat.S_IMODE((endpoint_dir(cli) / name).stat().st_mode) == 0o600, name


def test_poison_request_fails_alone_and_the_instance_comes_back(shared):
    cli, uri, key, _ = shared
    assert procs.wait_until(lambda: status(cli)["ready"] == 2, 10)
    before = {i["index"]: (i["pid"], i["exits"]) for i in status(cli)["instances"]}

    def died() -> dict[int, int]:   # exits since this test began, by instance
        return {i["index"]: i["exits"] - before[i["index"]][1] for i in status(cli)["instances"]}

    started = time.monotonic()
    code, headers, body = post(uri, {"name": "x", "do": "poison"}, key)
    assert code == 502 and "died while running this request" in json.loads(body)["message"]
    assert headers["azureml-model-deployment"] == "blue"
    assert time.monotonic() - started < 5
    # it was replayed once, alone, on the restarted instance: exactly one instance died, twice
    assert procs.wait_until(lambda: sum(died().values()) == 2, 5), status(cli)
    assert sorted(died().values()) == [0, 2]
    survivor = next(index for index, n in died().items() if n == 0)
    assert next(i["pid"] for i in status(cli)["instances"] if i["index"] == survivor) == before[survivor][0]
    answers = [post(uri, {"name": "x"}, key) for _ in range(20)]
    assert [a[0] for a in answers] == [200] * 20
    assert procs.wait_until(lambda: status(cli)["ready"] == 2, 10)  # the victim is back in rotation
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0


def test_kill_9_of_an_instance_under_load_loses_no_request(shared):
    cli, uri, key, _ = shared
    assert procs.wait_until(lambda: status(cli)["ready"] == 2, 10)
    results: list[int] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            results.append(post(uri, {"name": "x", "sleep": 0.005}, key)[0])

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)     # both instances busy (6 clients back to back) when one is killed
    victim = status(cli)["instances"][0]
    os.kill(victim["pid"], signal.SIGKILL)
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join(20)
    assert len(results) > 100
    assert [r for r in results if r != 200] == []
    assert status(cli)["instances"][0]["restarts"] == victim["restarts"] + 1
    assert procs.wait_until(lambda: status(cli)["ready"] == 2, 10)


def test_azure_front_codes_424_429_408_502_and_a_crash_loop_is_drift_with_its_last_log_lines(cli, project):
    """One instance, one request at a time: Azure's front codes; then a script whose init() now fails: a crash
    loop, which plan shows as drift and apply explains with the instance's last log lines, until healed."""
    uri, key = setup(cli, project, instance_count=1, request_settings={
        "request_timeout_ms": 3000, "max_concurrent_requests_per_instance": 1})
    code, headers, body = post(uri, {"name": "x", "do": "fail"}, key)
    assert code == 424 and headers["ms-azureml-model-error-statuscode"] == "500"
    assert headers["x-ms-run-function-failed"] == "True" and "scoring script" in json.loads(body)["message"]
    with ThreadPoolExecutor(4) as pool:  # 2 × 1 × 1 in flight at most
        codes = sorted(pool.map(lambda _: post(uri, {"name": "x", "sleep": 1.0}, key)[0], range(4)))
    assert codes == [200, 200, 429, 429], codes
    code, _, body = post(uri, {"name": "x", "sleep": 4}, key)
    assert code == 408
    # with a single instance, requests that arrive while it restarts wait for it
    with ThreadPoolExecutor(2) as pool:
        poison = pool.submit(post, uri, {"name": "x", "do": "poison"}, key)
        time.sleep(0.05)
        patient = pool.submit(post, uri, {"name": "x"}, key)
        assert poison.result()[0] == 502
        assert patient.result()[0] == 200

    # the crash loop
    assert post(uri, {"name": "x", "do": "break"}, key)[0] == 502   # every restart now fails in init()
    assert procs.wait_until(lambda: status(cli)["instances"][0]["state"] == "crash-loop", 20)
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2, str(plan)
    assert "crash-looping" in plan.out and "RuntimeError: model file corrupted" in plan.out
    still = cli("apply", "dev.yaml", "-y")   # restarts it at once; it keeps dying: a crash loop, explained
    assert still.code == 1, str(still)
    assert "deployment.rts-score/blue failed (CrashLoop)" in still.out, str(still)
    assert "is crash-looping (" in still.out and "RuntimeError: model file corrupted" in still.out
    assert "what to do: the instance keeps exiting after it starts" in still.out
    (project / "broken.flag").unlink()
    cli.ok("apply", "dev.yaml", "-y")   # heals: restarts at once
    assert post(uri, {"name": "x"}, key)[0] == 200


def test_a_changed_deployment_rolls_over_then_a_hung_run_is_restarted_by_liveness_and_binds_loopback_unless_told(
        cli, project):
    """One endpoint through three changes (an apply each, not an endpoint each):
    - a changed deployment (environment variable, request timeout, liveness probe): a new generation of instances
      takes over under steady traffic with no failed request;
    - on it, a hung run is taken out of rotation (408 at request_timeout_ms), then restarted by liveness;
    - the front binds 127.0.0.1 unless the manifest says otherwise (provider.bind), and a changed bind keeps the
      port."""
    uri, key = setup(cli, project, request_settings={"max_concurrent_requests_per_instance": 2})
    port = int(uri.rsplit(":", 1)[1].split("/")[0])
    assert listening_addresses(port) == {"127.0.0.1"}
    old = {i["pid"] for i in status(cli)["instances"]}
    results: list[int] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            results.append(post(uri, {"name": "x"}, key)[0])

    thread = threading.Thread(target=client)
    thread.start()
    try:
        def change(d: dict) -> None:
            dep = d["endpoints"][0]["deployments"][0]
            dep["environment_variables"]["GREETING_STYLE"] = "new"
            # one request at a time per instance (Azure's default), so a hung instance is skipped
            dep["request_settings"] = {"request_timeout_ms": 1000}
            dep["liveness_probe"] = {"initial_delay": 1, "period": 1, "timeout": 1, "failure_threshold": 2}

        edit_yaml(project / "dev.yaml", change)
        cli.ok("apply", "dev.yaml", "-y")
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(20)
    assert results and set(results) == {200}
    assert procs.wait_until(lambda: not any(procs.is_alive(pid) for pid in old), 10)   # the old generation is gone
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0

    # a hung run on the new generation
    with ThreadPoolExecutor(1) as pool:
        hung = pool.submit(post, uri, {"name": "x", "do": "hang"}, key)
        time.sleep(0.3)
        during = [post(uri, {"name": "x"}, key)[0] for _ in range(20)]   # the hung instance is skipped
        code, _, body = hung.result()
    assert code == 408 and "request_timeout_ms" in json.loads(body)["message"]
    assert during == [200] * 20
    after = [post(uri, {"name": "x"}, key)[0] for _ in range(20)]
    assert after == [200] * 20
    # liveness (period 1 s, 2 failures) restarts it
    assert procs.wait_until(lambda: any(i["restarts"] >= 1 for i in status(cli)["instances"]), 15)
    log = next(cli.home.rglob("logs/rts-score/blue/instance-*.log"), None)
    assert log is not None
    assert any("liveness probe failed" in p.read_text() for p in cli.home.rglob("logs/rts-score/blue/instance-*.log"))

    edit_yaml(project / "dev.yaml", lambda d: d["provider"].update(bind="0.0.0.0"))
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()
    assert out["scoring_uri"] == uri   # same port; reached from this machine through loopback
    assert listening_addresses(port) == {"0.0.0.0"}
    assert post(uri, {"name": "Daniel"}, out["primary_key"])[0] == 200
