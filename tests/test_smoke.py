"""Smoke tests per deployment (issue 16, item 1): each deployment that takes traffic gets the smoke request
addressed to it alone, a deployment's own smoke_test overrides its endpoint's, a failure names the deployment and
stays in the plan until it passes."""

from __future__ import annotations

import json
import shutil

from tests.helpers import edit_yaml, post

HOLIDAY = {"GoAway": "Daniel's on holiday."}


def _blue_green(project) -> None:
    """blue 90 / green 10, green answering differently and declaring its own smoke test."""
    shutil.copytree(project / "seed" / "src", project / "seed" / "green")
    score = project / "seed" / "green" / "score.py"
    score.write_text(score.read_text().replace("not here", "on holiday"))

    def change(d: dict) -> None:
        endpoint = d["endpoints"][0]
        blue = endpoint["deployments"][0]
        blue["instance_count"] = 1
        green = {**blue, "name": "green", "code_configuration": {"code": "seed/green", "scoring_script": "score.py"},
                 "smoke_test": {"request": {"name": "Daniel"}, "expected_response": HOLIDAY}}
        endpoint["deployments"].append(green)
        endpoint["traffic"] = {"blue": 90, "green": 10}

    edit_yaml(project / "dev.yaml", change)


def _routed(out: dict) -> str:
    """Which deployment the split sent one request without a deployment header to."""
    status, headers, _ = post(out["scoring_uri"], {"name": "Daniel"}, out["primary_key"])
    assert status == 200
    return headers["azureml-model-deployment"]


def test_every_deployment_is_smoke_tested_directly_and_failures_stay_in_the_plan(cli, project):
    _blue_green(project)
    applied = cli.ok("apply", "dev.yaml", "-y")
    assert "Smoke test passed: rts-score/blue, rts-score/green" in applied.out, str(applied)
    out = cli.outputs()

    # The front splits by smooth weighted round robin: exactly one request in any 10 goes to green. Find green's
    # turn, then stop one request short of the next: under the old behaviour (the smoke request went through the
    # split and compared against the endpoint's blue answer) the very next apply would fail, every time.
    for _ in range(10):
        if _routed(out) == "green":
            break
    else:
        raise AssertionError("green got no request in 10")
    assert [_routed(out) for _ in range(9)] == ["blue"] * 9
    # one apply shows it: its first smoke request, if routed, would take green's turn (and, compared against
    # blue's answer, fail); two more applies repeated the same check
    again = cli.ok("apply", "dev.yaml", "-y")
    assert "No changes." in again.out and "Smoke test passed: rts-score/blue, rts-score/green" in again.out
    assert _routed(out) == "green"  # the smoke requests were addressed, never routed by the split

    # A run() output change goes live, fails green's smoke test, and stays in the plan until it passes.
    score = project / "seed" / "green" / "score.py"
    score.write_text(score.read_text().replace("on holiday", "away"))
    failed = cli("apply", "dev.yaml", "-y")
    assert failed.code == 1 and "Apply complete!" in failed.out, str(failed)
    assert "smoke test of deployment rts-score/green: expected" in failed.err, str(failed)
    assert "Daniel's away." in failed.err and "rts-score/blue" not in failed.err and "Traceback" not in failed.err
    plan = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert plan.code == 2 and "No changes" not in plan.out, str(plan)
    assert "# deployment.rts-score/green failed its smoke test" in plan.out, plan.out
    assert "1 to smoke-test again" in plan.out and "0 to change" in plan.out
    action = next(a for a in json.loads(cli.ok("plan", "dev.yaml", "-o", "json").out)["actions"]
                  if a["address"] == "deployment.rts-score/green")
    assert action["action"] == "update" and "Daniel's away." in action["smoke_failed"]
    assert cli("apply", "dev.yaml", "-y").code == 1  # nothing fixed: still failing, still shown
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 2

    edit_yaml(project / "dev.yaml", lambda d: d["endpoints"][0]["deployments"][1]["smoke_test"].update(
        expected_response={"GoAway": "Daniel's away."}))
    fixed = cli.ok("apply", "dev.yaml", "-y")
    assert "tested again after apply" in fixed.out and "Smoke test passed: rts-score/blue, rts-score/green" in fixed.out
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0


    # `smoke_test.deployment` narrows the test to the one it names
    edit_yaml(project / "dev.yaml", lambda d: d["endpoints"][0]["smoke_test"].update(deployment="blue"))
    assert "Smoke test passed: rts-score/blue\n" in cli.ok("apply", "dev.yaml", "-y").out
