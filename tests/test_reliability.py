"""RELIABILITY.md's fast part runs in CI: the bad-input rows and the secrets scan must hold 100 %."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.test_corpus import CASES

REPO = Path(__file__).resolve().parents[1]


def test_fast_reliability_rows_all_hold(tmp_path):
    out = tmp_path / "RELIABILITY.md"
    # the generator end to end, on a slice: every corpus case is its own test in test_corpus.py, and the mutation
    # strategies run in test_manifest_properties.py; the committed RELIABILITY.md holds the full counts
    proc = subprocess.run([sys.executable, "-m", "benchmarks.reliability", "--fast", "--examples", "8",
                           "--corpus-every", "8", "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    text = out.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (bad inputs|secrets) \| .* \| (\d+) \| (\d+) \| \S+ \|$", text, re.M)
    assert len(rows) == 3, text
    for area, tried, held in rows:
        assert int(tried) > 0 and tried == held, f"{area}: {held}/{tried}\n{text}"
    assert int(rows[0][1]) >= 2 * (len(CASES) // 8)   # every 8th corpus case, each through plan and validate
    assert "--corpus-every 8" in text
    assert proc.returncode == 0, proc.stderr


def test_committed_report_covers_every_area():
    text = (REPO / "RELIABILITY.md").read_text(encoding="utf-8")
    for area in ("bad inputs", "secrets", "azure faults", "crash points", "other users", "full disk", "load",
                 "slow clients", "malformed HTTP", "environments", "memory limits", "big answers", "orphans",
                 "front restarts"):
        assert re.search(rf"^\| {area} \| .* \| \d+ \| \d+ \| \S+ \|$", text, re.M), area
    assert "python -m benchmarks.reliability" in text
