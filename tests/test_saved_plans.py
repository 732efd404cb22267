"""Saved plans (issue 13): a reviewed plan is exactly what runs, or nothing runs; the plan file is the user's own."""

from __future__ import annotations

import json
import os
import stat

from helpers import edit_yaml


def _edits(project):
    """One edit per kind of file a plan uploads or serves: (file as the refusal names it, edit, undo)."""
    score, model, conda = project / "seed/src/score.py", project / "seed/model/model.pkl", project / "seed/conda.yaml"
    originals = {p: p.read_bytes() for p in (score, model, conda)}
    return [
        ("seed/src/score.py", lambda: score.write_text(originals[score].decode() + "\n# unreviewed\n"), score),
        ("seed/model/model.pkl", lambda: model.write_bytes(originals[model] + b"\0"), model),
        ("seed/conda.yaml", lambda: conda.write_text(originals[conda].decode() + "\n# unreviewed\n"), conda),
    ], originals


def test_a_saved_plan_pins_every_file_and_is_the_users_own(cli, project):
    # a pre-existing 0644 file and a symlink to someone's file: plan --out replaces both, 0600
    (project / "old.plan").write_text("previous\n")
    os.chmod(project / "old.plan", 0o644)
    (project / "precious.txt").write_text("not a plan\n")
    os.symlink(project / "precious.txt", project / "link.plan")
    cli.ok("plan", "dev.yaml", "--out", "old.plan")
    cli.ok("plan", "dev.yaml", "--out", "link.plan")
    assert stat.S_IMODE(os.stat(project / "old.plan").st_mode) == 0o600
    assert not os.path.islink(project / "link.plan") and stat.S_IMODE(os.stat(project / "link.plan").st_mode) == 0o600
    assert (project / "precious.txt").read_text() == "not a plan\n"

    doc = json.loads((project / "old.plan").read_text())
    pinned = {os.path.relpath(os.path.join(root, name), project) if name != os.path.basename(root) else
              os.path.relpath(root, project) for root, names in doc["files"].items() for name in names}
    assert {"seed/src/score.py", "seed/model/model.pkl", "seed/conda.yaml"} <= pinned   # creates pin files too

    # any pinned file edited after the review: refused, the file named, nothing changed
    edits, originals = _edits(project)
    for shown, edit, path in edits:
        edit()
        refused = cli("apply", "old.plan")
        assert refused.code == 1, str(refused)
        assert f"saved plan old.plan is stale: {shown} changed since it was planned; nothing was changed" \
            in refused.err
        path.write_bytes(originals[path])
    # a file added to the code folder is named too
    (project / "seed/src/helper.py").write_text("X = 1\n")
    added = cli("apply", "old.plan")
    assert added.code == 1 and "seed/src/helper.py is new since it was planned" in added.err
    (project / "seed/src/helper.py").unlink()
    assert not (cli.home / "local").exists() or not list((cli.home / "local").rglob("endpoints/*"))

    # a plan file others may write, or owned by someone else, is refused
    os.chmod(project / "old.plan", 0o664)
    writable = cli("apply", "old.plan")
    assert writable.code == 1 and "mode 0664 lets others change it" in writable.err
    os.chmod(project / "old.plan", 0o600)
    os.chown(project / "link.plan", 65534, 65534)
    foreign = cli("apply", "link.plan")
    assert foreign.code == 1 and "it is owned by uid 65534, not by you" in foreign.err

    # damaged: a clear refusal, exit 1, never a traceback
    damaged = {**doc, "actions": "xx"}
    (project / "damaged.plan").write_text(json.dumps(damaged))
    os.chmod(project / "damaged.plan", 0o600)
    for text in (json.dumps(damaged), '{"format": "rtsctl-plan/3", "actions": [', json.dumps({**doc, "files": 3})):
        (project / "damaged.plan").write_text(text)
        result = cli("apply", "damaged.plan")
        assert result.code == 1 and "Error: damaged saved plan: damaged.plan:" in result.err, str(result)
        assert "Traceback" not in result.err

    # the reviewed bytes again: applied exactly, without a prompt
    applied = cli.ok("apply", "old.plan", stdin="")
    assert "Plan: 8 to add" in applied.out and "Smoke test passed" in applied.out

    # an update plan pins the same way: the model replaced after review is not deployed
    edit_yaml(project / "dev.yaml", lambda d: d["endpoints"][0]["deployments"][0].update(instance_count=1))
    cli.ok("plan", "dev.yaml", "--out", "scale.plan")
    (project / "seed/model/model.pkl").write_bytes(originals[project / "seed/model/model.pkl"] + b"v2")
    refused = cli("apply", "scale.plan")
    assert refused.code == 1 and "seed/model/model.pkl changed since it was planned" in refused.err
    assert "instance_count: 2 -> 1" in cli("plan", "dev.yaml").out                      # nothing was changed
