"""A conda file's `pip:` entries are PyPI requirements and nothing else (issue 14): options, paths, URLs,
variables and control characters are refused by `validate` and `apply` with the conda file's line, before
anything exists, and no listener on 127.0.0.1 ever sees a request. uv runs scrubbed, with a wall-clock timeout.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import Cli


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 that records every connection it is offered."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    seen: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1.0)
                try:
                    seen.append(conn.recv(4096) or b"<connected>")
                except OSError:
                    seen.append(b"<connected>")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join(2)
    server.close()


def entries(port: int) -> list[str]:
    url = f"http://127.0.0.1:{port}"
    return [f'"--extra-index-url {url}/${{HOME}}/simple/"', f"--index-url={url}/simple/", f"--find-links={url}/",
            f"six @ {url}/six-1.17.0-py3-none-any.whl", f"{url}/six-1.17.0.tar.gz", "--requirement=/etc/passwd",
            '"six\\r-r /etc/passwd"', "--no-index", "--editable=/tmp", "file:///tmp", "/tmp",
            f"'six; os_name == \"${{HOME}}\"'"]


def test_pip_entries_that_are_not_requirements_are_refused_before_anything_and_reach_no_listener(
        cli: Cli, project: Path, listener):
    port, seen = listener
    conda = project / "seed" / "conda.yaml"
    for n, entry in enumerate(entries(port)):
        conda.write_text(f"name: env\ndependencies:\n  - pip\n  - pip:\n      - six\n      - {entry}\n")
        for verb in ("validate", "apply") if n < 4 else ("validate",):   # apply: the ones naming the listener
            args = [verb, "dev.yaml"] + (["-y"] if verb == "apply" else [])
            result = cli(*args, env={"RTSCTL_ENV_CACHE": str(cli.home / "envs")})
            assert result.code == 1, (entry, str(result))
            assert "dev.yaml:" in result.err and "conda file 'seed/conda.yaml': line 6: pip entry" in result.err, \
                (entry, result.err)
            assert "root:" not in result.err and "Traceback" not in result.err, result.err
            assert not cli.home.exists(), f"{verb} touched RTSCTL_HOME for {entry}"
    assert seen == [], seen

    # the azure provider hands the file to Azure's image build as it is: validate notes, never refuses
    conda.write_text(f"name: env\ndependencies:\n  - pip\n  - pip:\n      - {entries(port)[0]}\n")
    result = cli("validate", "azure.yaml")
    assert result.code == 0, str(result)
    assert "note: azure.yaml:" in result.err and "the local backend would refuse it" in result.err, result.err
    assert seen == []

    # resources.limits.memory is enforced locally only: refused in an azure manifest rather than silently dropped
    text = (project / "azure.yaml").read_text()
    (project / "azure.yaml").write_text(text.replace("instance_count:", "resources: {limits: {memory: 1Gi}}\n"
                                                     "        instance_count:", 1))
    result = cli("validate", "azure.yaml")
    assert result.code == 1 and "resources: the azure provider does not send resources" in result.err, str(result)


def test_the_build_timeout_is_wall_clock_and_ends_what_the_build_started(tmp_path: Path, monkeypatch):
    """A build that prints nothing (a silent setup.py) is stopped at RTSCTL_ENV_BUILD_TIMEOUT, with its children."""
    from reconcilers.local import envs

    monkeypatch.setenv("RTSCTL_ENV_BUILD_TIMEOUT", "1")
    marker = tmp_path / "child.pid"
    silent = (f"import subprocess, time; p = subprocess.Popen(['sleep', '60']); "
              f"open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    start = time.monotonic()
    with pytest.raises(envs.EnvBuildError, match="longer than 1s"):
        envs._run([sys.executable, "-c", silent], lambda line: None)
    assert time.monotonic() - start < 5
    child = int(marker.read_text())
    deadline = time.monotonic() + 2
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{child}/stat").exists() else "Z"
        if state == "Z":
            break
        time.sleep(0.02)
    stat = Path(f"/proc/{child}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", "the build's child outlived it"


def test_uv_sees_a_scrubbed_environment(monkeypatch):
    from reconcilers.local import envs

    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple/")
    monkeypatch.setenv("UV_EXTRA_INDEX_URL", "http://127.0.0.1:9/simple/")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")
    monkeypatch.setenv("SECRET_TOKEN", "s3cret")
    env = envs.uv_environment()
    assert env["UV_NO_CONFIG"] == "1" and env["UV_CACHE_DIR"]
    assert not {k for k in env if k.startswith("PIP_") or k in ("HOME", "SECRET_TOKEN", "UV_INDEX_URL",
                                                                "UV_EXTRA_INDEX_URL", "XDG_CONFIG_HOME")}
    assert set(env) <= set(envs._UV_PASSED) | {"UV_CACHE_DIR", "UV_NO_CONFIG", "UV_PYTHON_DOWNLOADS",
                                                "UV_NO_PROGRESS", "NO_COLOR"}
    assert os.environ["SECRET_TOKEN"] == "s3cret"
