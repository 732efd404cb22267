"""Replace without an outage, local backend: a client scoring through the front all along sees only 2xx."""

from __future__ import annotations

import json
import re

from helpers import edit_yaml
from poller import Poller

from rtsctl.rollout.successor import choose, live_to_manifest, manifest_to_live, successor_name
from tests.test_local_e2e import endpoint_dir, first_deployment

BODY = {"name": "Daniel"}


def deployments_on_disk(cli) -> list[str]:
    return sorted(p.name for p in (endpoint_dir(cli) / "deployments").iterdir())


def test_successors_replace_without_an_outage_and_an_endpoint_replacement_is_refused(cli, project):
    """One apply of dev.yaml, then, each from where the last ended:
    - a successor failing its smoke test is removed and the old one keeps serving (still to do in the plan);
    - fixed, the instance_type change (then a code change) keeps serving and converges;
    - an endpoint replacement is an outage, refused without --allow-outage.
    The client scores every 0.02 s (not 0.005): 50 answers a second, a window where nothing answers (an in-place
    restart, a swap of instances) lasts longer than that."""
    cli.ok("apply", "dev.yaml", "-y")
    out = cli.outputs()

    # a successor failing its smoke test is removed and the old one keeps serving
    edit_yaml(project / "dev.yaml", lambda d: first_deployment(d).update(instance_type="local-large"))
    score = project / "seed" / "src" / "score.py"
    original = score.read_text()
    score.write_text(original.replace("not here", "away"))  # the smoke test expects "not here"
    with Poller(out["scoring_uri"], out["primary_key"], BODY, pause=0.02) as poller:
        failed = cli("apply", "dev.yaml", "-y")
    assert failed.code == 1, str(failed)
    assert re.search(r"successor blue-[0-9a-f]{4}: smoke test of deployment rts-score/blue-[0-9a-f]{4}", failed.err), failed.err
    assert poller.failures == {} and set(poller.deployments) == {"blue"}, (poller.statuses, poller.deployments)
    assert deployments_on_disk(cli) == ["blue"]
    assert "create before destroy" in cli("plan", "dev.yaml").out  # still to do

    # instance_type and code changes keep serving and converge; an immutable field: one create-before-destroy step
    score.write_text(original)
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

    with Poller(out["scoring_uri"], out["primary_key"], BODY, pause=0.02) as poller:
        applied = cli.ok("apply", "dev.yaml", "-y")
    assert f"smoke test sent to {successor} alone" in applied.out, applied.out
    assert poller.failures == {} and poller.total >= 10, poller.statuses
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
    score.write_text(original + "\n# a new revision\n")
    with Poller(out["scoring_uri"], out["primary_key"], BODY, pause=0.02) as poller:
        cli.ok("apply", "dev.yaml", "-y")
    assert poller.failures == {} and poller.total >= 10, poller.statuses
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0

    # an endpoint replacement is an outage, refused without --allow-outage
    def other_compute(d: dict) -> None:
        d["computes"].append({"name": "local-cpu2", "type": "local", "max_instances": 4})
        d["endpoints"][0]["compute"] = "local-cpu2"

    edit_yaml(project / "dev.yaml", other_compute)
    planned = cli("plan", "dev.yaml")
    assert re.search(r"^-/\+ endpoint\.rts-score outage: its scoring URI changes", planned.out, re.M), planned.out
    actions = json.loads(cli.ok("plan", "dev.yaml", "-o", "json").out)["actions"]
    assert [a["address"] for a in actions if a["outage"]] == ["endpoint.rts-score"]
    refused = cli("apply", "dev.yaml", "-y")
    assert refused.code == 1, str(refused)
    assert "refused: replacing endpoint.rts-score is an outage" in refused.err and "--allow-outage" in refused.err
    assert "Traceback" not in refused.err
    assert cli.outputs()["scoring_uri"] == out["scoring_uri"]  # nothing was touched
    cli.ok("apply", "dev.yaml", "-y", "--allow-outage")
    assert cli("plan", "dev.yaml", "--detailed-exitcode").code == 0


def test_successor_names_fit_azure_and_avoid_names_in_use():
    spec = {"instance_type": "local-large"}
    first = successor_name("blue", spec, [])
    assert re.fullmatch(r"blue-[0-9a-f]{4}", first)
    assert successor_name("blue", spec, ["BLUE", first.upper()]) != first  # names compare case-insensitively
    long = successor_name("d" * 32, spec, [])
    assert len(long) == 32 and re.fullmatch(r"[a-z][a-z0-9-]{2,31}", long)
    assert successor_name("a" * 26 + "-x", spec, []).count("--") == 0
    assert len(successor_name("d" * 32, spec, [], limit=30)) == 30  # a Kubernetes endpoint of 32 characters


def test_the_claimant_with_most_traffic_serves_the_manifest_name():
    # an interrupted rollout: blue (100 %) and its successor (0 %) both claim "blue"; green is unlabelled
    claims = [("blue", "blue", 100), ("blue-1a2b", "blue", 0), ("green", "green", 0)]
    chosen = choose(claims)
    assert chosen == {"blue": "blue", "green": "green"}
    assert choose([("blue", "blue", 0), ("blue-1a2b", "blue", 100)]) == {"blue": "blue-1a2b"}
    live = {"blue": 0, "blue-1a2b": 100, "green": 0}
    labels = {"blue": "blue", "blue-1a2b": "blue", "green": "green"}
    assert live_to_manifest(live, {"blue": "blue-1a2b", "green": "green"}, labels) == {"blue": 100, "green": 0}
    assert manifest_to_live({"blue": 90, "green": 10}, {"blue": "blue-1a2b"}) == {"blue-1a2b": 90, "green": 10}
