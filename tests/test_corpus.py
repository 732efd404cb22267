"""The bad-input corpus (tests/corpus/cases, one broken manifest per case).

Every case, through `plan` and `validate`: exit 1, one line `file:line: field: what`, the expected
fragment (and line), no traceback, nothing touched (RTSCTL_HOME never created, no process
started), within 5 s. Cases run in-process (the CLI's own `main`) so 150+ of them take seconds;
a sample also runs as real subprocesses, in parallel.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from rtsctl.cli import main
from tests.inprocess import one_parser  # noqa: F401 (a fixture)

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "corpus"
CASES = sorted(p.stem for p in (CORPUS / "cases").glob("*.yaml"))
TIME_LIMIT = 5.0
pytestmark = pytest.mark.usefixtures("one_parser")


@dataclass
class Case:
    name: str
    fragment: str
    line: int | None
    setup: list[str]
    env: dict[str, str]


def load_case(name: str) -> Case:
    sidecar = CORPUS / "cases" / f"{name}.expect"
    if sidecar.exists():
        fragment, line = sidecar.read_text(encoding="utf-8").splitlines()[:2]
        return Case(name, fragment, int(line) if line != "None" else None, [], {})
    head = [row for row in (CORPUS / "cases" / f"{name}.yaml").read_text(encoding="utf-8").splitlines()
            if row.startswith("# ")]
    fields: dict[str, str] = {}
    for row in head:
        key, _, value = row[2:].partition(": ")
        fields.setdefault(key, value)
    env = {}
    if "env" in fields:  # KEY=<count>x<char>
        key, _, spec = fields["env"].partition("=")
        count, _, char = spec.partition("x")
        env[key] = char * int(count)
    return Case(name, fields["expect"], int(fields["line"]) if "line" in fields else None,
                fields["setup"].split() if "setup" in fields else [], env)


def build_project(root: Path, case: Case) -> Path:
    project = root / "project"
    if not project.exists():
        shutil.copytree(REPO / "manifests" / "seed", project / "seed")
        shutil.copytree(CORPUS / "files", project / "files")
    shutil.copyfile(CORPUS / "cases" / f"{case.name}.yaml", project / f"{case.name}.yaml")
    if case.setup:
        kind, target = case.setup
        path = project / target
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "big":
            with open(path, "wb") as f:
                f.truncate(2 << 20)
        elif kind == "loop":
            path.symlink_to(path.name)
        elif kind == "fifodir":
            path.mkdir()
            os.mkfifo(path / "weights.bin")
        elif kind == "zerodir":
            path.mkdir()
            (path / "weights.bin").symlink_to("/dev/zero")
        elif kind == "pad":  # the manifest itself, past the 1 MiB limit
            with open(path, "a", encoding="utf-8") as f:
                f.write(("# " + "x" * 1022 + "\n") * 2048)
        elif kind == "dirloop":
            shutil.copytree(project / "seed" / "src", path)
            (path / "self").symlink_to(".")
    return project


def children() -> set[int]:
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in (task / "children").read_text().split())
    return pids


def run_in_process(args: list[str], cwd: Path, env: dict[str, str], monkeypatch) -> tuple[int, str, str, float]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue(), time.monotonic() - start


def check_error_lines(case: Case, err: str, single: bool) -> None:
    lines = err.strip("\n").split("\n")
    assert "Traceback" not in err, err
    if single:
        assert len(lines) == 1, err
    where = re.compile(rf"Error: {re.escape(case.name)}\.yaml:(\d+): ")
    for line in lines:
        assert where.match(line), f"not `file:line: `: {line!r}"
    hits = [line for line in lines if case.fragment in line]
    assert hits, f"expected {case.fragment!r} in:\n{err}"
    if case.line is not None:
        assert int(where.match(hits[0]).group(1)) == case.line, f"expected line {case.line}: {hits[0]}"


def test_corpus_is_large_enough():
    assert len(CASES) >= 100


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory) -> Path:
    """One project (seed/ and files/ copied once) for every case without a setup step: each adds only its own
    <case>.yaml, which no other case names, and nothing writes there (a copy per case was ~7 % of this module)."""
    return tmp_path_factory.mktemp("corpus")


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_line_and_touches_nothing(name, tmp_path, monkeypatch, shared_root):
    case = load_case(name)
    project = build_project(tmp_path if case.setup else shared_root, case)
    home = tmp_path / "home"
    env = {"RTSCTL_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200", **case.env}
    monkeypatch.delenv("RTSCTL_DEBUG", raising=False)
    before = children()

    code, out, err, took = run_in_process(["plan", f"{name}.yaml"], project, env, monkeypatch)
    assert code == 1 and out == "", (code, out, err)
    check_error_lines(case, err, single=True)
    assert took < TIME_LIMIT, f"plan took {took:.1f}s"

    code, out, err, took = run_in_process(["validate", f"{name}.yaml"], project, env, monkeypatch)
    if "is not set" in case.fragment:  # validate runs without the provider's variables: a note, exit 0
        assert code == 0 and err.startswith(f"note: {name}.yaml:"), err
    else:
        assert code == 1 and out == "", (code, out, err)
        check_error_lines(case, err, single=False)
    assert took < TIME_LIMIT, f"validate took {took:.1f}s"

    assert not home.exists(), "RTSCTL_HOME was created"
    assert children() == before, "a process was started"


SAMPLE = ["endpoint-name-trailing-newline", "deployment-name-underscore-blue_1", "instance-count-100000",
          "billion-laughs", "alias-bomb-in-smoke-request", "conda-file-dev-zero", "deep-nesting-block-500",
          "env-var-name-with-equals", "file-nul-byte", "conda-file-fifo"]


def test_sample_as_real_subprocesses(tmp_path):
    """The same contract through the installed entry point: separate processes, run in parallel."""
    def one(name: str) -> tuple[str, int, str, str, float, bool]:
        case = load_case(name)
        root = tmp_path / name
        project = build_project(root, case)
        home = root / "home"
        env = {**os.environ, "RTSCTL_HOME": str(home), "NO_COLOR": "1", **case.env}
        env.pop("RTSCTL_DEBUG", None)
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "rtsctl", "plan", f"{name}.yaml"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=60)
        return name, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start, home.exists()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, SAMPLE))
    for name, code, out, err, took, touched in results:
        assert code == 1 and out == "", (name, code, out, err)
        check_error_lines(load_case(name), err, single=True)
        assert took < TIME_LIMIT, f"{name}: {took:.1f}s"
        assert not touched, name
