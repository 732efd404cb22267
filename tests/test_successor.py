"""Replace without an outage, local backend: a client scoring through the front all along sees only 2xx."""

from __future__ import annotations

import json
import re

from helpers import edit_yaml
from poller import Poller

from tests.test_local_e2e import endpoint_dir, first_deployment

BODY = {"name": "Daniel"}


def deployments_on_disk(cli) -> list[str]:
    return sorted(p.name for p in (endpoint_dir(cli) / "deployments").iterdir())


def test_instance_type_and_code_changes_keep_serving_and_converge(cli, project):
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()

    # an immutable field: one create-before-destroy step in the plan
    edit_yaml(project / "dev.yaml", lambda d: first_deployment(d).update(instance_type="local-large"))
    planned = cli("plan", "dev.yaml", "--detailed-exitcode")
    assert planned.code == 2, str(planned)
    step = re.search(r"^\+/- deployment\.rts-score/blue \(create before destroy: blue → (blue-[0-9a-f]{4}), "
                     r"traffic 100 → 0 / 0 → 100\)", planned.out, re.M)
    assert step, planned.out
    successor = step[1]
    as_json = json.loads(cli.ok("plan", "dev.yaml", "-o", "json").out)
    (action,) = [a for a in as_json["actions"] if a["address"] == "deployment.rts-score/blue"]
    assert action["successor"] == {"old": "blue", "new": successor, "traffic": 100,
                                   "strategy": "create_before_destroy"} and action["outage"] is False

    with Poller(out["scoring_uri"], out["primary_key"], BODY) as poller:
        applied = cli.ok("apply", "dev.yaml", "-y")
    assert f"smoke test sent to {successor} alone" in applied.out, applied.out
    assert poller.failures == {} and poller.total > 20, poller.statuses
    assert set(poller.deployments) == {"blue", successor}, poller.deployments  # both served, in turn
    assert deployments_on_disk(cli) == [successor]  # the old one is gone
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0, cli("plan", "dev.yaml").out
    assert cli.outputs()["scoring_uri"] == out["scoring_uri"]

    # the manifest name keeps working for the verbs that name a deployment
    (project / "req.json").write_text(json.dumps(BODY))
    invoked = cli.ok("invoke", "dev.yaml", "--deployment", "blue", "--request", "req.json")
    assert json.loads(invoked.out) == {"GoAway": "Daniel's not here."}
    assert f"==> {successor}/0 <==" in cli.ok("logs", "dev.yaml", "--deployment", "blue", "--tail", "1").out

    # a code change (a rolling update of the same deployment locally) under the same client
    score = project / "seed" / "src" / "score.py"
    score.write_text(score.read_text() + "\n# a new revision\n")
    with Poller(out["scoring_uri"], out["primary_key"], BODY) as poller:
        cli.ok("apply", "dev.yaml", "-y")
    assert poller.failures == {} and poller.total > 20, poller.statuses
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0


def test_endpoint_replacement_is_an_outage_refused_without_allow_outage(cli, project):
    cli.ok("apply", "dev.yaml", "-y")
    uri = cli.outputs()["scoring_uri"]

    def other_compute(d: dict) -> None:
        d["computes"].append({"name": "local-cpu2", "type": "local", "max_instances": 4})
        d["endpoints"][0]["compute"] = "local-cpu2"

    edit_yaml(project / "dev.yaml", other_compute)
    planned = cli("plan", "dev.yaml")
    assert re.search(r"^-/\+ endpoint\.rts-score outage: its scoring URI changes", planned.out, re.M), planned.out
    refused = cli("apply", "dev.yaml", "-y")
    assert refused.code == 1, str(refused)
    assert "refused: replacing endpoint.rts-score is an outage" in refused.err and "--allow-outage" in refused.err
    assert "Traceback" not in refused.err
    assert cli.outputs()["scoring_uri"] == uri  # nothing was touched
    cli.ok("apply", "dev.yaml", "-y", "--allow-outage")
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0
