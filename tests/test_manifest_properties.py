"""Property: any mutation of a valid manifest is either valid, or refused with `file:line:` lines, never a crash.

Hypothesis mutates the shipped dev manifest and the corpus base two ways: structurally (replace a
value with a hostile one, delete a key, add an unknown key) and as text (insert, delete or replace
characters). `validate` must exit 0, or exit 1 with every stderr line `Error: file:line: ...`;
when it fails, `plan` must fail too, with exactly one such line; nothing may be created under
RTSCTL_HOME. Runs in-process, so a few hundred examples take seconds.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtsctl.cli import main
from tests.inprocess import one_parser  # noqa: F401 (a fixture)
from tests.corpus.generate import BASE

REPO = Path(__file__).resolve().parents[1]
DEV = (REPO / "manifests" / "dev.yaml").read_text(encoding="utf-8")
SEEDS = [BASE, DEV, (REPO / "manifests" / "azure.yaml").read_text(encoding="utf-8")]
#: the seeds parsed once: parsing them again for every structural example was ~a sixth of this module's CPU
PARSED = [yaml.safe_load(seed) for seed in SEEDS]

HOSTILE = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(min_value=-5, max_value=5), max_size=3),
    st.sampled_from(["rts-score\n", "/dev/zero", "..", "../../etc/passwd", "${RTS_PROPERTY_UNSET}", "ab",
                     "a" * 300, "\0", "blue_1", "seed", "-", "A=B", "2024-01-01", "*x", "&y", "{", "'"]),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, prefix + (i,))
    return out


@st.composite
def structural(draw) -> str:
    data = copy.deepcopy(draw(st.sampled_from(PARSED)))
    path = draw(st.sampled_from(_paths(data)[1:]))
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    op = draw(st.sampled_from(["replace", "delete", "add"]))
    if op == "replace" or (op == "delete" and isinstance(parent, list)):
        parent[path[-1]] = draw(HOSTILE)
    elif op == "delete":
        del parent[path[-1]]
    else:
        target = parent[path[-1]]
        if isinstance(target, dict):
            target[draw(st.text(min_size=1, max_size=12))] = draw(HOSTILE)
        elif isinstance(target, list):
            target.append(copy.deepcopy(draw(HOSTILE)))
        else:
            parent[path[-1]] = draw(HOSTILE)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


TOKENS = ["2024-13-45", "!!float x", "!!int 9z", "!!timestamp 1", ".nan", "-.inf", "&a", "*a", "<<: *a", "!!binary x",
          "!!set", "? ", "---\n", "...\n", "${X}", "$${", "0x1F", "0o17", "1_000", "9" * 40, "~", "\ufeff", "\t"]


@st.composite
def textual(draw) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(st.one_of(
            st.text(alphabet=st.sampled_from(list(":-[]{}&*!|>'\"#%@`,?\n\t \\$0aZ\x00\x07é")), max_size=6),
            st.sampled_from(TOKENS)))
        if op == "insert":
            text = text[:at] + chunk + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + len(chunk) + 1:]
        else:
            text = text[:at] + chunk + text[at + len(chunk):]
    return text


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("props")
    shutil.copytree(REPO / "manifests" / "seed", root / "seed")
    return root


def _run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def _check(project: Path, text: str, monkeypatch_env) -> None:
    (project / "m.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    home = project / "home"
    code, out, err = _run(["validate", str(project / "m.yaml")])
    assert "Traceback" not in err and "re-run with --debug" not in err, err
    prefix = re.compile(rf"(Error|note): {re.escape(str(project / 'm.yaml'))}:\d+: ")
    for line in err.strip("\n").split("\n") if err.strip() else []:
        assert prefix.match(line), f"not `file:line:` -> {line!r}\n--- manifest\n{text}"
    if code == 0:
        assert "valid" in out
    else:
        assert code == 1 and any(line.startswith("Error: ") for line in err.splitlines()), (code, out, err)
        code, out, err = _run(["plan", str(project / "m.yaml")])
        assert code == 1 and out == "", (code, out, err)
        assert "\n" not in err.strip() and prefix.match(err), f"{err!r}\n--- manifest\n{text}"
    assert not home.exists()


pytestmark = pytest.mark.usefixtures("one_parser")
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SETTINGS
@given(text=structural())
def test_structural_mutations_are_valid_or_one_clear_line(project, text, monkeypatch):
    monkeypatch.setenv("RTSCTL_HOME", str(project / "home"))
    monkeypatch.delenv("RTSCTL_DEBUG", raising=False)
    monkeypatch.delenv("RTS_PROPERTY_UNSET", raising=False)
    _check(project, text, monkeypatch)


@SETTINGS
@given(text=textual())
def test_text_mutations_are_valid_or_one_clear_line(project, text, monkeypatch):
    monkeypatch.setenv("RTSCTL_HOME", str(project / "home"))
    monkeypatch.delenv("RTSCTL_DEBUG", raising=False)
    _check(project, text, monkeypatch)
