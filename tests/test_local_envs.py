"""Local environments end to end: each deployment runs in an isolated Python environment built with uv from its
conda file, never in rtsctl's own venv.

The CLI runs in a subprocess; environments come from the run-wide cache (conftest's shared_env_cache) unless a
test is about building, in which case it passes its own RTSCTL_ENV_CACHE.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import Cli
from tests.helpers import edit_yaml, post

SCRIPT = '''
import json
import humanize          # listed in the conda file, absent from rtsctl's venv


def init():
    print("init: humanize from", humanize.__file__, flush=True)


def run(raw_data):
    return {"pretty": humanize.intcomma(json.loads(raw_data)["n"])}
'''
CONDA = """\
name: pretty
channels: [conda-forge]
dependencies:
  - python=3.11
  - pip
  - humanize=4          # a conda spec: installed from PyPI as humanize==4.*
"""


def absent_from_rtsctl(module: str) -> None:
    """The tests below prove the environment is used only if rtsctl's own venv cannot import the module."""
    assert importlib.util.find_spec(module) is None, (
        f"{module} is importable in rtsctl's venv ({sys.prefix}): this test needs it absent (check the test extra)")


def make_service(project: Path, script: str = SCRIPT, conda: str = CONDA, engine: str | None = None) -> str:
    """dev.yaml turned into a one-instance service running `script` with its own conda file."""
    (project / "pretty" / "src").mkdir(parents=True)
    (project / "pretty" / "src" / "score.py").write_text(script)
    (project / "pretty" / "conda.yaml").write_text(conda)

    def change(m: dict) -> None:
        m["environments"][0]["conda_file"] = "pretty/conda.yaml"
        dep = m["endpoints"][0]["deployments"][0]
        dep["code_configuration"] = {"code": "pretty/src", "scoring_script": "score.py"}
        dep["instance_count"] = 1
        if engine:
            dep["engine"] = engine
        m["endpoints"][0].pop("smoke_test", None)

    edit_yaml(project / "dev.yaml", change)
    return "dev.yaml"


def test_import_missing_from_the_conda_file_fails_apply_with_the_traceback(cli: Cli, project: Path):
    # yaml is one of rtsctl's own dependencies: the instance must not see it all the same
    assert importlib.util.find_spec("yaml") is not None
    script = SCRIPT.replace("import humanize          # listed in the conda file, absent from rtsctl's venv",
                            "import humanize\nimport yaml  # not in the conda file")
    manifest = make_service(project, script=script)
    result = cli("apply", manifest, "-y")
    assert result.code == 1, str(result)
    assert "deployment.rts-score/blue" in result.err, result.err
    assert "ModuleNotFoundError: No module named 'yaml'" in result.err, result.err
    assert "score.py" in result.err, result.err          # the traceback names the script's line
    assert "Traceback" not in result.err.split("deployment.rts-score/blue", 1)[0]   # rtsctl's own: none


def test_conda_only_and_unknown_packages_fail_naming_them(cli: Cli, project: Path, tmp_path: Path):
    manifest = make_service(project, conda=CONDA + "  - cudatoolkit=11.8\n  - nvidia::cudnn\n")
    result = cli("apply", manifest, "-y")
    assert result.code == 1, str(result)
    assert ("environment.scoring-env: conda_file pretty/conda.yaml: conda-only package(s) cudatoolkit=11.8, "
            "nvidia::cudnn: no PyPI equivalent") in result.err, result.err
    assert "Traceback" not in result.err

    (project / "pretty" / "conda.yaml").write_text(CONDA + "  - pip:\n      - rtsctl-no-such-package-4a7f\n")
    result = cli("apply", manifest, "-y", env={"RTSCTL_ENV_CACHE": str(tmp_path / "envs")})
    assert result.code == 1, str(result)
    assert "not on PyPI: rtsctl-no-such-package-4a7f" in result.err, result.err
    assert not [p for p in (tmp_path / "envs").iterdir() if not p.name.endswith(".lock")]   # nothing half-built


def test_first_apply_builds_with_progress_later_applies_and_workspaces_reuse(cli: Cli, project: Path, tmp_path: Path):
    """One environment's life, on one chain of applies (each apply starts processes: sharing them saves CPU):
    - the package from the conda file serves though rtsctl lacks it, imported from the environment in the cache;
    - the first apply builds with progress, another workspace reuses, destroying it keeps the cache;
    - a cleared cache is drift that apply heals;
    - that new build prunes environments unused for long, but never one a process runs from (RTSCTL_ENV_KEEP_DAYS:
      iterating on conda files must not fill the disk), and recent ones stay."""
    absent_from_rtsctl("humanize")
    cache = tmp_path / "envs"
    env = {"RTSCTL_ENV_CACHE": str(cache)}
    manifest = make_service(project)
    first = cli.ok("apply", manifest, "-y", env=env)
    assert "environment.scoring-env: installing 1 requirement(s) with uv: humanize==4.*" in first.err, first.err
    assert "environment.scoring-env: environment ready in" in first.err and "humanize==4." in first.err
    built = [p for p in cache.iterdir() if p.is_dir()]
    assert len(built) == 1

    # the package from the conda file serves though rtsctl lacks it
    out = cli.outputs(manifest)
    status, _, body = post(out["scoring_uri"], {"n": 1234567}, key=out["primary_key"])
    assert (status, json.loads(body)) == (200, {"pretty": "1,234,567"})
    # the instance imported it from the environment in the cache, not from anywhere else
    log = cli.ok("logs", manifest, "--tail", "50").out
    assert "init: humanize from " + str(cache) in log, log
    assert cli("plan", manifest, "--detailed-exitcode", env=env).code == 0

    # another workspace with the same conda file shares the environment; destroying it keeps the cache
    other = {**env, "RTSCTL_RESOURCE_GROUP": "rts-other"}
    second = cli.ok("apply", manifest, "-y", env=other)
    assert "installing" not in second.err, second.err
    cli.ok("destroy", manifest, "-y", env=other)
    assert [p for p in cache.iterdir() if p.is_dir()] == built
    out = cli.outputs(manifest)          # the first workspace still serves from it
    assert post(out["scoring_uri"], {"n": 1000}, key=out["primary_key"])[0] == 200

    # a cleared cache is drift: plan names it, apply rebuilds it
    subprocess.run(["rm", "-rf", str(built[0])], check=True)
    planned = cli("plan", manifest, "--detailed-exitcode", env=env)
    assert planned.code == 2 and "its local Python environment is not built" in planned.out, str(planned)
    # ... and that new build prunes: environments last used 40 days ago go, unless a running process was started
    # from one; a recent one stays
    old = time.time() - 40 * 86400

    def fake(key: str, age: float | None) -> Path:
        made = cache / key
        (made / "bin").mkdir(parents=True)
        (made / "bin" / "python").symlink_to(sys.executable)
        (made / "rtsctl-env.json").write_text("{}")
        if age is not None:
            os.utime(made / "rtsctl-env.json", (age, age))
        return made

    unused, running, recent = fake("0ld0unused", old), fake("0ld0running", old), fake("recent0", None)
    holder = subprocess.Popen([str(running / "bin" / "python"), "-c", "import time; time.sleep(120)"])
    try:
        healed = cli.ok("apply", manifest, "-y", env=env)
    finally:
        holder.kill()
        holder.wait()
    assert "environment ready" in healed.err and built[0].is_dir()
    assert "removed 1 environment(s) unused for 30 days: 0ld0unused" in healed.err, healed.err
    assert not unused.exists() and running.is_dir() and recent.is_dir()


def test_concurrent_applies_build_one_environment_once(cli: Cli, project: Path, tmp_path: Path):
    cache = tmp_path / "envs"
    manifest = make_service(project)
    cli.ok("validate", manifest)  # the pre-forked CLI is up before two threads call it at once
    # two processes at once, forked by the cli fixture's pre-forked server (no interpreter start and imports each)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda i: cli("apply", manifest, "-y", timeout=300, env={
            "RTSCTL_ENV_CACHE": str(cache), "RTSCTL_RESOURCE_GROUP": f"rts-c{i}"}), range(2)))
    try:
        assert [r.code for r in results] == [0, 0], [str(r) for r in results]
        assert sum(r.err.count("installing 1 requirement(s)") for r in results) == 1, [str(r) for r in results]
        assert len([p for p in cache.iterdir() if p.is_dir()]) == 1
    finally:
        for i in range(2):
            cli("destroy", manifest, "-y", env={"RTSCTL_ENV_CACHE": str(cache), "RTSCTL_RESOURCE_GROUP": f"rts-c{i}"})


def test_sklearn_example_answers_predictions(cli: Cli):
    absent_from_rtsctl("sklearn")
    manifest = "examples/local-sklearn.yaml"
    applied = cli.ok("apply", manifest, "-y")
    assert "Smoke test passed: iris" in applied.out        # its smoke test asks for two predictions
    out = cli.outputs(manifest)
    rows = [[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.7, 3.0, 5.2, 2.3]]
    status, _, body = post(out["scoring_uri"], {"data": rows, "return_probabilities": True}, key=out["primary_key"])
    answer = json.loads(body)
    assert status == 200, body
    assert answer["predictions"] == ["setosa", "versicolor", "virginica"]
    assert all(abs(sum(p) - 1) < 1e-3 and max(p) > 0.5 for p in answer["probabilities"])
    status, _, body = post(out["scoring_uri"], {"data": [[1, 2]]}, key=out["primary_key"])    # wrong width
    assert status != 200, body
    assert cli("plan", manifest, "--detailed-exitcode").code == 0

    # bench sends the manifest's smoke_test.request when given no body, as the rollout gate does (200 requests, not
    # 3 s of them: the same ratio is checked on fewer answers, without 3 s of the host predicting at full speed)
    doc = json.loads(cli.ok("bench", manifest, "-n", "200", "-c", "2", "-o", "json").out)
    assert doc["requests"] > 0 and doc["ok"] / doc["requests"] >= 0.99, doc["status"]
    wrong = cli("bench", manifest, "--body", '{"name": "rtsctl"}', "-n", "20", "-c", "2")
    assert wrong.code == 1 and "most requests failed (20 of 20: 424 Failed Dependency ×20)" in wrong.err, str(wrong)
    assert "the scoring script rejected the request body" in wrong.err


AZMLINFSRV_SCRIPT = '''
import json
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    print("init under azmlinfsrv", flush=True)


@rawhttp
def run(request: AMLRequest):
    data = request.get_json()
    return AMLResponse({"sum": sum(data["values"]), "asked_by": request.headers.get("X-Caller")}, 200,
                       {"X-Scored-By": "raw"}, json_str=True)
'''
SCHEMA_SCRIPT = '''
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    pass


@input_schema("values", StandardPythonParameterType([1, 2]))
@output_schema(StandardPythonParameterType({"total": 3}))
def run(values):
    return {"total": sum(values)}
'''


def test_engine_azmlinfsrv_serves_rawhttp_and_schema_scripts_behind_the_key(cli: Cli, project: Path):
    manifest = make_service(project, script=AZMLINFSRV_SCRIPT, conda="dependencies: [python=3.11, pip]\n",
                            engine="azmlinfsrv")
    (project / "schema").mkdir()
    (project / "schema" / "score.py").write_text(SCHEMA_SCRIPT)

    def add_green(m: dict) -> None:       # a second deployment: inference-schema decorators, reached by header
        blue = m["endpoints"][0]["deployments"][0]
        m["endpoints"][0]["deployments"].append(
            {**blue, "name": "green", "code_configuration": {"code": "schema", "scoring_script": "score.py"}})
        m["endpoints"][0]["traffic"] = {"blue": 100}

    edit_yaml(project / manifest, add_green)
    cli.ok("apply", manifest, "-y")
    out = cli.outputs(manifest)
    status, _, body = post(out["scoring_uri"], {"values": [4, 5]}, key=out["primary_key"],
                           headers={"azureml-model-deployment": "green"})
    assert (status, json.loads(body)) == (200, {"total": 9})       # parsed and passed by inference-schema
    status, headers, body = post(out["scoring_uri"], {"values": [1, 2, 3]}, key=out["primary_key"],
                                 headers={"X-Caller": "test"})
    assert status == 200, body
    assert json.loads(body) == {"sum": 6, "asked_by": "test"}
    assert {k.lower(): v for k, v in headers.items()}.get("x-scored-by") == "raw"
    assert post(out["scoring_uri"], {"values": [1]}, key="wrong")[0] == 401
    assert "init under azmlinfsrv" in cli.ok("logs", manifest).out
    assert cli("plan", manifest, "--detailed-exitcode").code == 0

    # init() failing under azmlinfsrv (which logs it and exits 3) fails the apply with the script's own exception
    script = project / "pretty" / "src" / "score.py"
    script.write_text(script.read_text().replace('print("init under azmlinfsrv", flush=True)',
                                                 'raise ValueError("model file is corrupt")'))
    failed = cli("apply", manifest, "-y")
    assert failed.code == 1 and "ValueError: model file is corrupt" in failed.err, str(failed)
