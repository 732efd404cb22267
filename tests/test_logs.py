"""`rtsctl logs` end to end: the local backend's rotated instance logs (tail, follow, retention) and Azure's getLogs
through the real SDK against the emulator."""

from __future__ import annotations

import os
import pty
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from tests.conftest import Cli
from tests.helpers import drain_pty, edit_yaml, post
from tests.test_azure_e2e import azure_cli  # noqa: F401 - the fixture, shared

pytest_plugins = ["tests.azure_emulator.fixtures"]

PRINTING = '''

def run(raw_data):
    name = json.loads(raw_data)["name"]
    print(f"scored {name}", flush=True)
    if name == "flood":
        filler = "x" * 1000
        for i in range(6000):
            print(f"flood {i:05d} {filler}")
        print("flood done", flush=True)
    return {"GoAway": f"{name}'s not here."}
'''


def printing_seed(project: Path) -> None:
    """The seed's script, printing one line per request (and 6 MB for the name `flood`)."""
    script = project / "seed" / "src" / "score.py"
    text = script.read_text()
    script.write_text(text[:text.index("\ndef run(")] + PRINTING)


def score(cli: Cli, manifest: str, *names: str) -> None:
    out = cli.outputs(manifest)
    for name in names:
        assert post(out["scoring_uri"], {"name": name}, key=out["primary_key"])[0] == 200


def lines_under(text: str, header: str) -> list[str]:
    """The lines printed under `==> header <==` (up to the next header)."""
    block = text.split(f"==> {header} <==\n", 1)[1].split("\n==> ", 1)[0]
    return [line for line in block.splitlines() if line]


def on_a_terminal(cli: Cli, *args: str) -> str:
    """What `rtsctl ARGS` writes to a terminal (a pseudo-terminal as its stdout)."""
    main, sub = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "rtsctl", *args], cwd=cli.workdir, env=cli.env, stdout=sub,
                            stderr=subprocess.PIPE)
    os.close(sub)
    seen = drain_pty(main)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    return seen.decode("utf-8", "replace").replace("\r\n", "\n")


def opened_logs(count: int):
    """Readiness of a local follower: it holds `count` instance logs open (so it has read their current ends)."""
    def ready(pid: int) -> bool:
        fds = Path(f"/proc/{pid}/fd")
        try:
            return sum("/instance-" in os.readlink(fd) for fd in fds.iterdir()) >= count
        except OSError:
            return False
    return ready


def follow_until(cli: Cli, manifest: str, ready, trigger, markers: tuple[str, ...], timeout: float = 30) -> list[str]:
    """Run `rtsctl logs MANIFEST -f --tail 0`; once `ready(pid)` says it has read the current ends, call
    `trigger()` and collect what it prints until every marker showed; then Ctrl-C it, which must end it with 130."""
    follower = subprocess.Popen([sys.executable, "-m", "rtsctl", "logs", manifest, "-f", "--tail", "0"],
                                cwd=cli.workdir, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True).start()
    seen: list[str] = []
    missing = set(markers)      # checked on each new line only: rescanning `seen` is quadratic (6000 lines)
    try:
        deadline = time.monotonic() + 60
        while not ready(follower.pid):
            assert follower.poll() is None, follower.stderr.read()
            assert time.monotonic() < deadline, "the follower never got ready"
            time.sleep(0.1)
        time.sleep(0.3)
        trigger()
        deadline = time.monotonic() + timeout
        while missing:
            assert time.monotonic() < deadline, f"follow printed only {seen[-20:]} ({len(seen)} lines)"
            try:
                seen.append(lines.get(timeout=0.5).rstrip("\n"))
            except queue.Empty:
                continue
            missing = {m for m in missing if m not in seen[-1]}
        assert follower.poll() is None          # still following
    finally:
        follower.send_signal(signal.SIGINT)     # Ctrl-C ends it
        follower.wait(timeout=10)
    assert follower.returncode == 130
    return seen


def test_logs_local_rotation_scale_out_tail_instance_follow_and_retention(cli: Cli, project: Path):
    """The local backend's logs on one endpoint taken through its life (an apply per change, not per check):
    reading and following across a rotation (1 instance), a scale-out while following, then with 2 instances
    --tail/--instance/control characters/usage errors and following new lines, then logs outliving the endpoint
    and going with the workspace."""
    printing_seed(project)
    edit_yaml(project / "dev.yaml", lambda m: m["endpoints"][0]["deployments"][0].update(instance_count=1))
    cli.ok("apply", "dev.yaml", "-y")
    _read_and_follow_across_a_rotation(cli)
    _follow_picks_up_instances_started_after_it_began(cli, project)
    _tail_and_instance(cli)
    _follow_prints_new_lines_as_they_come(cli)
    _outlive_the_endpoint_and_go_with_the_workspace(cli, project)


def _read_and_follow_across_a_rotation(cli: Cli) -> None:
    """6 MB printed by one request: the supervisor rotates the instance log at 5 MB (instance-0.log -> .log.1)
    while a follower reads it; both reading and following go across the rotation."""
    seen = follow_until(cli, "dev.yaml", opened_logs(1), lambda: score(cli, "dev.yaml", "flood"), ("flood done",),
                        timeout=60)
    folder = next(cli.home.rglob("logs/rts-score/blue"))
    assert (folder / "instance-0.log.1").is_file(), sorted(p.name for p in folder.iterdir())   # it did rotate
    floods = [s.removeprefix("[blue/0] ") for s in seen if s.removeprefix("[blue/0] ").startswith("flood ")]
    assert floods[-1] == "flood done" and len(floods) == 6001, (len(floods), floods[:2], floods[-2:])
    assert floods[:-1] == [f"flood {i:05d} {'x' * 1000}" for i in range(6000)]     # nothing lost or doubled
    assert cli.ok("logs", "dev.yaml", "--tail", "2", "--instance", "0").out.splitlines() == [
        f"flood 05999 {'x' * 1000}", "flood done"]  # the instance's own log (beside it: blue/access, the front's)
    whole = cli.ok("logs", "dev.yaml").out.splitlines()
    assert whole.count("flood done") == 1 and f"flood 00000 {'x' * 1000}" in whole      # both generations


def _follow_picks_up_instances_started_after_it_began(cli: Cli, project: Path) -> None:
    """A scale-out while following: the new instance's log joins the stream from its first line."""
    def scale_out() -> None:
        edit_yaml(project / "dev.yaml", lambda d: d["endpoints"][0]["deployments"][0].update(instance_count=2))
        cli.ok("apply", "dev.yaml", "-y")

    seen = follow_until(cli, "dev.yaml", opened_logs(1), scale_out, ("starting instance 1",))
    assert any(s.startswith("[blue/1] ") and "starting instance 1" in s for s in seen), seen


def _follow_prints_new_lines_as_they_come(cli: Cli) -> None:
    seen = follow_until(cli, "dev.yaml", opened_logs(2), lambda: score(cli, "dev.yaml", "first-marker", "second-marker"),
                        ("scored first-marker", "scored second-marker"))
    marked = [s for s in seen if "-marker" in s]
    assert all(s.startswith(("[blue/0] scored ", "[blue/1] scored ")) for s in marked), marked
    assert not [s for s in seen if "Daniel" in s or "scored n" in s]      # --tail 0: nothing from before


def _outlive_the_endpoint_and_go_with_the_workspace(cli: Cli, project: Path) -> None:
    score(cli, "dev.yaml", "before-removal")

    # the same manifest (its identity `name: dev`, in another file), the endpoint renamed: apply deletes
    # rts-score (no longer declared)
    other = project / "other.yaml"
    other.write_text((project / "dev.yaml").read_text())
    edit_yaml(other, lambda m: (m["endpoints"][0].update(name="rts-other"), m.update(name="dev")))
    applied = cli.ok("apply", "other.yaml", "-y").out
    assert "endpoint.rts-score: Destruction complete" in applied, applied
    kept = cli.ok("logs", "dev.yaml").out
    assert "scored before-removal" in kept, kept

    cli.ok("destroy", "other.yaml", "-y")      # the workspace goes, and its logs with it
    gone = cli("logs", "dev.yaml")
    assert gone.code == 1 and "no logs for deployment blue" in gone.err, str(gone)
    assert not list(cli.home.rglob("instance-*.log*"))


def _tail_and_instance(cli: Cli) -> None:
    score(cli, "dev.yaml", *(f"n{i}" for i in range(6)))
    every = cli.ok("logs", "dev.yaml").out
    assert "==> blue/0 <==" in every and "==> blue/1 <==" in every, every
    assert sorted(line for line in every.splitlines() if line.startswith("scored n")) == [f"scored n{i}" for i in range(6)]

    tailed = cli.ok("logs", "dev.yaml", "--tail", "1", "--endpoint", "rts-score", "--deployment", "blue").out
    assert [len(lines_under(tailed, f"blue/{i}")) for i in (0, 1)] == [1, 1], tailed
    one = cli.ok("logs", "dev.yaml", "--instance", "1", "--tail", "2").out
    assert "==>" not in one and len(one.splitlines()) == 2, one
    assert one.splitlines() == lines_under(every, "blue/1")[-2:]

    # what a script prints reaches a pipe as written, but a terminal never gets its control characters
    score(cli, "dev.yaml", "\x1b]0;owned\x07\x1b[2Jsneaky")
    assert "scored \x1b]0;owned\x07\x1b[2Jsneaky" in cli.ok("logs", "dev.yaml").out
    # the last lines only: the whole log would also send instance 0's 6 MB flood through the pseudo-terminal
    on_terminal = on_a_terminal(cli, "logs", "dev.yaml", "--tail", "5")
    assert "scored \ufffd]0;owned\ufffd\ufffd[2Jsneaky" in on_terminal and "\x1b" not in on_terminal, on_terminal

    missing = cli("logs", "dev.yaml", "--instance", "7")
    assert missing.code == 1 and "no log for instance 7 (instances with logs: 0, 1" in missing.err, str(missing)
    unknown = cli("logs", "dev.yaml", "--deployment", "green")
    assert unknown.code == 1 and "no deployment 'green'" in unknown.err and "declared: blue" in unknown.err
    negative = cli("logs", "dev.yaml", "--tail", "-1")               # a usage error (its exit code is the CLI's)
    assert negative.code != 0 and "--tail" in negative.err and "must be between 0 and" in negative.err, str(negative)


def test_logs_on_azure_come_from_get_logs_and_engine_native_is_local_only(azure_emulator_factory, azure_cli,  # noqa: F811
                                                                          project: Path):
    printing_seed(project)
    script = project / "seed" / "src" / "score.py"
    script.write_text(script.read_text().replace("def init():\n", "def init():\n    print('azure-log-marker', flush=True)\n"))
    emu = azure_emulator_factory(lro_mode="sync")
    cli = azure_cli(emu)
    manifest = "examples/azure-managed-endpoint.yaml"
    cli.ok("apply", manifest, "-y")
    shown = cli.ok("logs", manifest, "--tail", "50")
    assert "azure-log-marker" in shown.out, str(shown)
    assert any(method == "POST" and path.split("?")[0].endswith("/deployments/blue/getLogs")
               for method, path, _ in emu.request_log), emu.request_log[-5:]
    assert cli.ok("logs", manifest, "--tail", "0").out == ""

    # following polls getLogs and prints only what is new
    out = cli.outputs(manifest)

    def trigger() -> None:
        answer = requests.post(out["scoring_uri"], json={"name": "azure-follow"}, timeout=30,
                               headers={"Authorization": f"Bearer {out['primary_key']}"}, verify=emu.ca_path)
        assert answer.status_code == 200, answer.text

    def get_logs_calls() -> int:
        return sum(1 for method, path, _ in emu.request_log if method == "POST" and "/getLogs" in path)

    before = get_logs_calls()
    # ready once the follower's first poll (its baseline) is answered
    seen = follow_until(cli, manifest, lambda pid: get_logs_calls() > before, trigger, ("scored azure-follow",))
    assert not [s for s in seen if "azure-log-marker" in s], seen      # printed before: not again
    refused = cli("logs", manifest, "--instance", "0")
    assert refused.code == 1 and "--instance is local only" in refused.err, str(refused)

    # Azure runs every deployment under azmlinfsrv: saying so is no change, asking for the native engine is refused
    edit_yaml(project / manifest, lambda m: m["endpoints"][0]["deployments"][0].update(engine="azmlinfsrv"))
    assert cli("plan", manifest, "--detailed-exitcode").code == 0
    edit_yaml(project / manifest, lambda m: m["endpoints"][0]["deployments"][0].update(engine="native"))
    native = cli("apply", manifest, "-y")
    assert native.code == 1 and "engine: native is local only" in native.err, str(native)
