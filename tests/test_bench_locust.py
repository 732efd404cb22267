"""`rtsctl bench --engine locust`: a real Locust master and workers against the local backend's endpoint, rendered
in rtsctl's own report; the locustfile bundle (data never becomes code, the key never in it); Locust's stats
converted; the Python that runs Locust (refused when another user could have replaced it; provisioned once)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from test_bench_server import report

from rtsctl.bench.config import BenchConfig
from rtsctl.bench.locust import results, script
from rtsctl.support.errors import RtsctlError
from tests.conftest import REPO, Cli, kill_recorded

pytest_plugins = ["tests.locust_tool"]      # the session fixture locust_env


@pytest.fixture(scope="module")
def applied(tmp_path_factory, locust_env):
    """manifests/dev.yaml applied once for the module (a real local endpoint), Locust's Python at hand."""
    base = tmp_path_factory.mktemp("locust")
    project = base / "project"
    shutil.copytree(REPO / "manifests", project, ignore=shutil.ignore_patterns("__pycache__"))
    tmp = base / "tmp"
    tmp.mkdir(mode=0o700)
    runner = Cli(base / "home", project, {**locust_env, "TMPDIR": str(tmp)})
    runner.ok("apply", "dev.yaml", "-y")
    yield runner, tmp
    kill_recorded(runner)


def processes_under(folder: Path) -> list[str]:
    """Live processes whose working folder or command line is under `folder` (a run's Locust bundle is there)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(str(folder)) or str(folder) in cmd:
            found.append(f"{proc.name}: {cmd[:200]}")
    return found


def test_locust_master_and_two_workers_report_like_the_native_engine(applied):
    cli, tmp = applied
    key = cli.outputs()["primary_key"]
    # one run shows the count, the errors, the percentiles and a crossed threshold (exit 3, as native); paced at
    # 40 req/s (closed-loop pacing: Locust's constant_throughput) so that 4 users do not hammer the endpoint flat
    # out for 2 s (~2 s of CPU) -- the unpaced locustfile runs for real in test_azure_load_testing.py's cloud run
    run = cli("bench", "dev.yaml", "--engine", "locust", "--workers", "2", "-c", "4", "-d", "2s", "--rate", "40",
              "-o", "json",
              "--max-error-rate", "0", "--max-p99", "0.001ms", "--html-out", "locust.html")
    doc = report(run)
    assert run.code == 3, str(run)
    assert doc["requests"] > 0 and doc["errors"]["total"] == 0 and doc["status"] == {"200": doc["requests"]}
    assert doc["latency_ms"]["count"] == doc["requests"] and doc["latency_ms"]["p99_ms"] >= doc["latency_ms"]["p50_ms"] > 0
    assert doc["verdict"] == "threshold crossed"
    assert doc["thresholds"]["max_error_rate"]["ok"] and not doc["thresholds"]["max_p99_ms"]["ok"]
    assert doc["load"]["engine"] == "locust" and doc["load"]["workers"] == 2
    assert "running Locust" in run.err and key not in run.out + run.err
    html = (cli.workdir / "locust.html").read_text()
    assert "measured by Locust 2.47.0" in html and "<svg" in html    # the same HTML report, saying who measured
    assert processes_under(tmp) == []                       # master and workers ended with the command
    assert list(tmp.iterdir()) == []                        # and the bundle (script + data) is gone

    native = report(cli.ok("bench", "dev.yaml", "-c", "4", "-d", "0.3s", "-o", "json"))
    # the same report, key for key, plus the two figures a paced native run adds too (test_bench.py open loop)
    assert set(doc) == set(native) | {"achieved_rate", "falling_behind"}
    for part in ("errors", "latency_ms", "target"):
        assert set(doc[part]) == set(native[part]), part
    assert set(native["load"]) <= set(doc["load"])


def test_flags_locust_cannot_honour_are_refused_before_the_manifest_is_read(cli):
    for flags, named in ((["--template", '{"n": "{i}"}'], "--template"), (["-n", "10"], "-n"),
                         (["-t", "2", "-i", "5"], "-i"), (["--hdr-out", "x.hlog"], "--hdr-out")):
        result = cli("bench", "dev.yaml", "--engine", "locust", *flags)   # nothing applied: refused first
        assert result.code != 0 and f"{named} cannot be used with --engine locust" in result.err, str(result)
    result = cli("bench", "dev.yaml", "--remote-workers", "2")
    assert result.code != 0 and "--remote-workers is for --engine locust" in result.err


def _cfg(**kw) -> BenchConfig:
    base = {"url": "http://127.0.0.1:8080/score?x=1", "concurrency": 4, "duration": 2.0, "bodies": ['{"a": 1}']}
    return BenchConfig(**{**base, **kw})


def test_the_bundle_keeps_data_out_of_the_code_and_the_key_out_of_both(tmp_path: Path):
    hostile = '{"name": "\\"\\"\\" + __import__(\'os\').system(\'id\') + \\"\\"\\"\\n{i}"}'
    cfg = _cfg(bodies=[hostile, 'line\nbreak """ \' "'], key="s3cret-key", deployment="blue",
               headers={"X-Trace": 'a"b\'c """'})
    config = script.bench_config(cfg)
    written = script.write_bundle(tmp_path / "b", config)
    code, data = written[0].read_text(), written[1].read_text()
    assert code == script.LOCUSTFILE                        # the same text for every run
    assert json.loads(data)["bodies"] == cfg.bodies         # the values are data, read back exactly
    assert json.loads(data)["headers"] == {"Content-Type": "application/json", "azureml-model-deployment": "blue",
                                           "X-Trace": 'a"b\'c """'}
    assert "s3cret-key" not in code + data and "Authorization" not in data
    assert oct((tmp_path / "b").stat().st_mode & 0o777) == "0o700"
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {"0o600"}
    compile(code, "locustfile.py", "exec")                  # it is Python (Locust runs it in the test above)

    (tmp_path / "c").mkdir()
    (tmp_path / "elsewhere").write_text("keep")
    (tmp_path / "c" / script.CONFIG_NAME).symlink_to(tmp_path / "elsewhere")
    script.write_bundle(tmp_path / "c", config)             # replaces the link, never writes through it
    assert (tmp_path / "elsewhere").read_text() == "keep" and not (tmp_path / "c" / script.CONFIG_NAME).is_symlink()


@pytest.mark.parametrize("name, value, says", [
    ("X Bad", "v", "not a valid header name"), ("X:y", "v", "not a valid header name"),
    ("Authorization", "Bearer k", "RTSCTL_ENDPOINT_KEY"), ("authorization", "k", "RTSCTL_ENDPOINT_KEY"),
    ("X-Ok", "a\r\nInjected: 1", "line break"), ("Host", "evil", "Host from the URL"),
])
def test_header_names_and_values_are_checked(name, value, says):
    with pytest.raises(RtsctlError, match=says):
        script.bench_config(_cfg(headers={name: value}))


def test_rate_and_ramps_map_onto_locust():
    from rtsctl.bench.stages import parse_stages

    paced = script.bench_config(_cfg(rate=100.0, concurrency=4))
    assert paced["rate"] == 100.0 and paced["pacing"] == "closed-loop" and paced["users"] == 4
    ramp = script.bench_config(_cfg(stages=parse_stages("1s:8,2s:2"), duration=3.0, concurrency=8))
    assert ramp["stages"] == {"unit": "connections", "points": [[0.0, 0.0], [1.0, 8.0], [3.0, 2.0]], "peak": 8.0}
    assert ramp["duration_s"] == 3.0 and ramp["origin"] == "http://127.0.0.1:8080" and ramp["path"] == "/score?x=1"


def test_locust_stats_become_rtsctl_figures(tmp_path: Path):
    t0 = 1_700_000_000.25
    entries = [
        {"name": "HTTP 200", "method": "POST", "num_requests": 90, "num_failures": 0, "num_none_requests": 0,
         "response_times": {"2": 50, "3": 30, "150": 10}, "min_response_time": 1.6, "max_response_time": 151.2,
         "total_response_time": 1500.0 + 90 + 10, "start_time": t0, "last_request_timestamp": t0 + 1.5,
         "num_reqs_per_sec": {str(int(t0)): 40, str(int(t0) + 1): 50}, "num_fail_per_sec": {}},
        {"name": "HTTP 429", "method": "POST", "num_requests": 6, "num_failures": 6, "response_times": {"0": 6},
         "num_reqs_per_sec": {str(int(t0) + 1): 6}, "num_fail_per_sec": {str(int(t0) + 1): 6}},
        {"name": "transport: ConnectionRefusedError", "method": "POST", "num_requests": 4, "num_failures": 4,
         "response_times": {"1": 4}, "num_reqs_per_sec": {str(int(t0)): 4}, "num_fail_per_sec": {str(int(t0)): 4}},
    ]
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(entries))
    doc = results.to_doc(results.read_stats(path), {"url": "u"}, {"mode": "open", "rate": 50, "workers": 2})
    assert doc["requests"] == 100 and doc["ok"] == 90 and doc["status"] == {"200": 90, "429": 6}
    assert doc["errors"]["by_kind"] == {"connect: connection refused": 4} and doc["errors"]["by_status"] == {"429": 6}
    lat = doc["latency_ms"]                     # as native: HTTP answers only, 429s apart
    assert lat["count"] == 90 and lat["p50_ms"] == 2.0 and lat["p99_ms"] == 150.0
    assert lat["min_ms"] == 1.6 and lat["max_ms"] == 151.2          # Locust's exact extremes, not its buckets
    assert doc["throttled"]["count"] == 6 and doc["duration_s"] == 1.5
    assert [(p["ok"], p["errors"]) for p in doc["timeline"]] == [(40, 4), (50, 6)]
    assert doc["load"]["mode"] == "closed" and any("closed-loop pacing" in n for n in doc["load"]["locust"]["notes"])
    path.write_text('{"not": "a list"}')
    with pytest.raises(RtsctlError, match="not a list of Locust stats entries"):
        results.read_stats(path)


def test_a_locust_python_another_user_could_replace_is_refused(tmp_path: Path, monkeypatch):
    from rtsctl.bench.locust import tool

    folder = tmp_path / "venv"
    folder.mkdir()
    python = folder / "python"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    monkeypatch.setenv(tool.SETTING, str(python))
    assert tool.locust_python() == python
    python.chmod(0o775)
    with pytest.raises(RtsctlError, match="may be written by other users"):
        tool.locust_python()
    python.chmod(0o755)
    folder.chmod(0o777)
    with pytest.raises(RtsctlError, match="may be written by other users"):
        tool.locust_python()
    folder.chmod(0o700)
    monkeypatch.setenv(tool.SETTING, str(folder / "missing"))
    with pytest.raises(RtsctlError, match="RTSCTL_LOCUST_PYTHON"):
        tool.locust_python()


def test_rtsctl_provisions_its_locust_once_and_reuses_it(tmp_path: Path, monkeypatch, locust_env):
    """locust_env installed the same Locust before: uv's cache holds its wheels, so this first use is quick."""
    from rtsctl.bench.locust import tool

    monkeypatch.delenv(tool.SETTING, raising=False)
    monkeypatch.setenv("RTSCTL_ENV_CACHE", str(tmp_path / "envs"))
    said: list[str] = []
    python = tool.locust_python(said.append)
    assert python.exists() and any("first use of --engine locust" in line for line in said)
    said.clear()
    assert tool.locust_python(said.append) == python and said == []


def test_azure_load_testing_per_request_results_become_the_same_figures(tmp_path: Path):
    """Azure Load Testing's results (Apache JMeter CSV log, one file per engine) through the same conversion."""
    head = "timeStamp,elapsed,label,responseCode,responseMessage,threadName,success,bytes,URL\n"
    (tmp_path / "engine1.csv").write_text(head + "1700000000100,12,HTTP 200,200,OK,t1,true,36,u\n"
                                                 "1700000001200,3,HTTP 401,401,Unauthorized,t1,false,36,u\n")
    (tmp_path / "engine2.csv").write_text(head + "1700000000300,15,HTTP 200,200,OK,t1,true,36,u\n"
                                                 "1700000001500,1000,x,Non HTTP response code: java.net."
                                                 "SocketTimeoutException,Read timed out,t1,false,0,u\n")
    entries = results.entries_from_jtl(sorted(tmp_path.glob("engine*.csv")))
    doc = results.to_doc(entries, {"url": "u"}, {"mode": "closed", "workers": 2}, figures=results.JTL_NOTE)
    assert doc["requests"] == 4 and doc["ok"] == 2 and doc["status"] == {"200": 2, "401": 1}
    assert doc["errors"]["by_kind"] == {"locust: Read timed out": 1}
    assert doc["latency_ms"]["max_ms"] == 15.0 and doc["latency_ms"]["min_ms"] == 3.0   # the timeout: no answer
    assert [(p["ok"], p["errors"]) for p in doc["timeline"]] == [(2, 0), (0, 2)]
    assert "JMeter CSV" in doc["load"]["locust"]["notes"][0]
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RtsctlError, match="not a JMeter CSV log"):
        results.entries_from_jtl([tmp_path / "bad.csv"])
