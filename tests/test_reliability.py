"""RELIABILITY.md's fast part runs in CI: the bad-input rows and the secrets scan must hold 100 %."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.prefork import Prefork
from tests.test_corpus import CASES

REPO = Path(__file__).resolve().parents[1]


def test_fast_reliability_rows_all_hold(tmp_path, monkeypatch, capsys):
    """The generator end to end, on a slice: every corpus case is its own test in test_corpus.py, and the mutation
    strategies run in test_manifest_properties.py; the committed RELIABILITY.md holds the full counts. It runs in
    this worker, and its CLI calls (`Project.run`) go through the worker's pre-forked CLI, as the `cli` fixture's do:
    the same rtsctl in a real child process with the call's folder and environment, minus an interpreter start-up."""
    from benchmarks import reliability

    real = reliability.Project.run

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        if not Prefork.serves(self.env):
            return real(self, *args, timeout=timeout)
        result = Prefork.instance().run(list(args), self.dir, self.env, None, timeout)
        return subprocess.CompletedProcess(["rtsctl", *args], result.code, result.out, result.err)

    monkeypatch.setattr(reliability.Project, "run", run)
    out = tmp_path / "RELIABILITY.md"
    code = reliability.main(["--fast", "--examples", "8", "--corpus-every", "8", "--out", str(out)])
    text = out.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (bad inputs|secrets) \| .* \| (\d+) \| (\d+) \| \S+ \|$", text, re.M)
    assert len(rows) == 3, text
    for area, tried, held in rows:
        assert int(tried) > 0 and tried == held, f"{area}: {held}/{tried}\n{text}"
    assert int(rows[0][1]) >= 2 * (len(CASES) // 8)   # every 8th corpus case, each through plan and validate
    assert "--corpus-every 8" in text
    assert code == 0, capsys.readouterr().err


def test_committed_report_covers_every_area():
    text = (REPO / "RELIABILITY.md").read_text(encoding="utf-8")
    for area in ("bad inputs", "secrets", "azure faults", "crash points", "other users", "full disk", "load",
                 "slow clients", "malformed HTTP", "environments", "memory limits", "big answers", "orphans",
                 "front restarts"):
        assert re.search(rf"^\| {area} \| .* \| \d+ \| \d+ \| \S+ \|$", text, re.M), area
    assert "python -m benchmarks.reliability" in text
