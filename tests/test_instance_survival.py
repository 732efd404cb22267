"""Hostile or careless scoring scripts, and a dying front (issue 14), on one applied endpoint:

- an instance over its memory limit (`resources.limits.memory`) is OOMKilled and restarted while the other
  instance keeps answering; `rtsctl logs` and `plan` say so;
- what a scoring script starts (a child, one in its own session, a double-forked daemon) dies with its instance:
  on restart and on destroy;
- an answer over the response bound is refused; a client that never reads is cut off, the front stays small;
- SIGKILL of the front under steady load: it answers 200 again on the same port within 2 s with no apply,
  and `plan` shows the restart.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from benchmarks.survival import HOSTILE, Load, alive, never_reading, rss_mb, until
from tests.conftest import Cli
from tests.helpers import edit_yaml, post


def status(cli: Cli) -> dict:
    folder = next(cli.home.rglob("endpoints/rts-score"))
    return json.loads((folder / "status.json").read_text())


def hostile_deployment(project: Path, script: str, instances: int, memory: str, **request_settings) -> None:
    """dev.yaml's blue serving `script` from the bare environment (it needs the standard library only), with
    `instances` instances, each limited to `memory`, and no smoke test."""
    (project / "hostile").mkdir()
    (project / "hostile" / "score.py").write_text(script)

    def change(m: dict) -> None:
        dep = m["endpoints"][0]["deployments"][0]
        dep.pop("environment")
        dep["code_configuration"] = {"code": "hostile", "scoring_script": "score.py"}
        dep["instance_count"] = instances
        dep["resources"] = {"limits": {"memory": memory}}
        dep["request_settings"].update(request_settings)
        m["endpoints"][0].pop("smoke_test")

    edit_yaml(project / "dev.yaml", change)


def test_limits_orphans_and_a_killed_front(cli: Cli, project: Path):
    # request timeout: an OOM kill, restart and replay on a busy machine
    hostile_deployment(project, HOSTILE, 2, "256Mi", request_timeout_ms=60000)
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()
    uri, key = out["scoring_uri"], out["primary_key"]

    from serving.limits import mechanism
    plan = cli.ok("plan", "dev.yaml").out
    assert f"memory limit of 256Mi ({mechanism()})" in plan, plan

    # what each instance started
    seen: dict[int, list[int]] = {}
    for _ in range(20):
        code, _, body = post(uri, {"who": 1}, key)
        assert code == 200, body
        answer = json.loads(body)
        seen[answer["host"]] = answer["kids"]
        if len(seen) == 2:
            break
    assert len(seen) == 2, seen
    kids = [pid for pids in seen.values() for pid in pids]
    assert len(kids) == 6 and all(alive(pid) for pid in kids), kids

    # restart: a killed host takes what it started along (child, new session, daemon)
    victim, orphans = next(iter(seen.items()))
    os.kill(victim, signal.SIGKILL)
    assert until(lambda: not any(alive(pid) for pid in orphans), 3.0), [p for p in orphans if alive(p)]

    # over the memory limit: OOMKilled (twice: the instance, then its successor running the request alone),
    # restarted, while the other requests keep being answered
    with Load(out) as load:
        time.sleep(0.3)
        code, _, body = post(uri, {"allocate": 4 * 1024 ** 3}, key, timeout=60)
        time.sleep(0.3)
    assert code == 502, (code, body)
    assert load.results and not load.failed(), load.failed()[:5]
    assert until(lambda: all(i["state"] == "ready" for i in status(cli)["deployments"]["blue"]["instances"]),
                    10.0), status(cli)
    assert sum(i["oom_kills"] for i in status(cli)["deployments"]["blue"]["instances"]) >= 2
    assert until(lambda: "OOMKilled: over its memory limit of 256Mi" in cli.ok("logs", "dev.yaml", "--tail", "200").out,
                 5.0)
    assert "OOMKilled instance restart(s) so far" in cli.ok("plan", "dev.yaml").out

    # answers over the bound are refused; a client that never reads is cut off and the front stays small
    from serving.wire import MAX_RESPONSE
    code, headers, body = post(uri, {"big": MAX_RESPONSE + 1}, key, timeout=30)
    assert code == 424 and b"larger than" in body, (code, body[:200])
    def answered() -> int:
        return status(cli)["deployments"]["blue"]["answers"].get("200", 0)

    before = answered()
    greedy = never_reading(out)
    assert until(lambda: answered() >= before + 64, 60.0), answered() - before   # every answer was made
    rss = rss_mb(status(cli)["worker"])
    for sock in greedy:
        sock.close()
    assert rss < 400, f"front RSS {rss} MB with 8 clients that never read"

    # SIGKILL of the front under steady load: back on the same port within 2 s, no apply
    with Load(out) as load:
        time.sleep(0.5)
        worker = status(cli)["worker"]
        os.kill(worker, signal.SIGKILL)
        until(lambda: not alive(worker), 2.0)
        killed = time.monotonic()
        assert until(lambda: load.back_after(killed) is not None, 5.0)
        time.sleep(0.5)
    back = load.back_after(killed)
    assert back < 2.0, f"answered again after {back:.2f}s"
    lost = [f for f in load.failed() if f[2] != 429]
    assert len(lost) <= 3, load.failed()                  # at most the requests in flight at the kill
    # Known, and in the closing note: a restarted front can answer 429 (its documented overload answer) for a few
    # milliseconds while it reattaches the instances, whose slots the killed front's requests still hold. Only then.
    assert all(end - killed <= back + 0.5 for _, end, status in load.failed() if status == 429), load.failed()
    plan = cli.ok("plan", "dev.yaml").out
    assert "the front restarted 1 time(s)" in plan and "killed by signal SIGKILL" in plan, plan

    # a front that keeps dying: restarted with backoff, and drift in plan with its log named
    for _ in range(2):
        worker = status(cli)["worker"]
        os.kill(worker, signal.SIGKILL)
        assert until(lambda: status(cli).get("worker") not in (None, worker), 5.0)
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2 and "keeps dying" in plan.out and "front.log" in plan.out, str(plan)
    assert post(uri, {"who": 3}, key)[0] == 200

    # destroy: nothing an instance started survives (the crash loop above killed none of them either)
    survivors = [answer for answer in (json.loads(post(uri, {"who": 2}, key)[2]) for _ in range(4))]
    kids = {pid for answer in survivors for pid in answer["kids"]}
    assert kids and all(alive(pid) for pid in kids)
    cli.ok("destroy", "dev.yaml", "-y")
    assert until(lambda: not any(alive(pid) for pid in kids), 3.0), [p for p in kids if alive(p)]


def test_without_cgroups_the_limit_is_rlimit_as_and_a_memoryerror_is_oomkilled(cli: Cli, project: Path):
    hostile_deployment(project, HOSTILE, 1, "512Mi")
    cli.ok("apply", "dev.yaml", "-y", env={"RTSCTL_MEMORY_CGROUPS": "0"})
    out = cli.outputs()
    assert "memory limit of 512Mi (RLIMIT_AS)" in cli.ok("plan", "dev.yaml").out
    code, _, body = post(out["scoring_uri"], {"allocate": 4 * 1024 ** 3}, out["primary_key"], timeout=60)
    assert code == 502, (code, body)
    said = ("ran out of memory (MemoryError)", "OOMKilled: over its memory limit of 512Mi (RLIMIT_AS)")
    assert until(lambda: all(s in cli.ok("logs", "dev.yaml", "--tail", "100").out for s in said), 5.0), \
        cli.ok("logs", "dev.yaml", "--tail", "100").out
    assert until(lambda: status(cli)["deployments"]["blue"]["ready"] == 1, 10.0)
    assert post(out["scoring_uri"], {"who": 1}, out["primary_key"])[0] == 200


def test_an_init_over_the_limit_fails_apply_as_oomkilled_with_what_to_do(cli: Cli, project: Path):
    hog = "hog = None\n\ndef init():\n    global hog\n    hog = b'x' * (1024 ** 3)\n\ndef run(raw):\n    return 1\n"
    hostile_deployment(project, hog, 1, "128Mi")
    result = cli("apply", "dev.yaml", "-y")
    assert result.code == 1, str(result)
    said = result.out + result.err
    assert "(OOMKilled)" in said and "raise the deployment's resources.limits.memory" in said, str(result)
    assert "instance 0 OOMKilled: over its memory limit of 128Mi" in result.err and "Traceback" not in said
