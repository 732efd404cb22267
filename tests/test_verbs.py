"""The verbs users reach for in `az ml`: invoke, keys regenerate, graph. Run as a user runs them (CLI subprocess,
real manifests, the local backend on 127.0.0.1; keys regenerate also through the real azure-ai-ml SDK against the
emulator)."""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

from tests.azure_emulator import Emulator
from tests.conftest import Cli
from tests.helpers import edit_yaml

pytest_plugins = ["tests.azure_emulator.fixtures"]


class Poller(threading.Thread):
    """A client calling the endpoint with one key, over and over, counting the statuses it gets."""

    def __init__(self, uri: str, key: str, context: ssl.SSLContext | None = None):
        super().__init__(daemon=True)
        self.uri, self.key, self.context = uri, key, context
        self.statuses: Counter = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.statuses[status_with(self.uri, self.key, self.context)] += 1
            # 50 calls a second: a rotation takes a CLI call (~0.3 s or more), so an outage of the other key would
            # still be seen many times over, for a quarter of the front's and instances' CPU at 200 a second
            time.sleep(0.02)

    def finish(self) -> Counter:
        self.stop.set()
        self.join(10)
        return self.statuses


def status_with(uri: str, key: str, context: ssl.SSLContext | None = None) -> int:
    request = urllib.request.Request(uri, data=b'{"name": "rotation"}', method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def until(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_graph_invoke_and_keys_regenerate_on_one_local_endpoint(cli, project):
    """The local verbs on one endpoint, applied once (each part was a test that applied dev.yaml afresh):
    keys regenerate before apply and on a bad endpoint is one line; graph marks the critical path of the last
    apply; invoke prints the response and exits by status; keys regenerate rotates one key while the other keeps
    working."""
    # one instance: none of these verbs depends on the count, and each instance started costs CPU
    edit_yaml(project / "dev.yaml", lambda d: d["endpoints"][0]["deployments"][0].update(instance_count=1))
    result = cli("keys", "regenerate", "dev.yaml", "--key", "primary")
    assert result.code == 1 and "endpoint rts-score does not exist yet: run rtsctl apply dev.yaml" in result.err
    other = cli("keys", "regenerate", "dev.yaml", "--key", "primary", "--endpoint", "nope")
    assert other.code == 1 and "no endpoint 'nope' in dev.yaml (declared: rts-score)" in other.err

    # graph marks the critical path of the last apply
    before = cli.ok("graph", "dev.yaml").out
    assert before.startswith("flowchart LR") and "no apply recorded for this manifest yet" in before
    assert "classDef critical" not in before
    assert "n0 --> n1" in before                                          # resource group -> workspace

    timing = json.loads(cli.ok("apply", "dev.yaml", "-y", "-o", "json").out)["timing"]
    path = timing["critical_path_steps"]
    assert path[-1] == "traffic.rts-score"
    mermaid = cli.ok("graph", "dev.yaml", "--format", "mermaid").out
    ids = dict(re.findall(r'  (n\d+)\["([^"<]+)<br/>', mermaid))
    by_address = {address: node for node, address in ids.items()}
    assert set(by_address) == set(timing["steps"])                      # every step, with its time
    marked = re.search(r"  class (\S+) critical", mermaid).group(1).split(",")
    assert [ids[n] for n in marked] == path
    shown = float(re.search(r"critical path ([\d.]+)s", mermaid).group(1))
    assert abs(shown - timing["critical_path"]) <= 0.11
    deployment = timing["steps"]["deployment.rts-score/blue"]
    assert f'["deployment.rts-score/blue<br/>{deployment:.1f}s"]' in mermaid
    assert "linkStyle" in mermaid

    dot = cli.ok("graph", "dev.yaml", "--format", "dot").out
    assert dot.startswith("digraph rtsctl {") and dot.rstrip().endswith("}")
    red_nodes = re.findall(r'^  "([^"]+)" \[label=.*color=red', dot, re.MULTILINE)
    assert red_nodes == path
    red_edges = re.findall(r'^  "([^"]+)" -> "([^"]+)" \[color=red', dot, re.MULTILINE)
    assert red_edges == list(zip(path, path[1:]))

    # a second, no-op apply keeps the last timings; graph needs no backend and no credentials
    cli.ok("apply", "dev.yaml", "-y")
    assert cli.ok("graph", "dev.yaml").out == mermaid
    azure = cli("graph", "azure.yaml", "--format", "dot")                # nor the provider's variables
    assert azure.code == 0 and '"aks_cluster.' in azure.out and '-> "k8s_extension.' in azure.out, str(azure)
    if "AZURE_SUBSCRIPTION_ID" not in cli.env:
        assert "note: azure.yaml:" in azure.err and "AZURE_SUBSCRIPTION_ID is not set" in azure.err

    # invoke prints the response and exits by status
    (project / "request.json").write_text('{"name": "Daniel"}')
    result = cli.ok("invoke", "dev.yaml", "--request", "request.json")
    assert json.loads(result.out) == {"GoAway": "Daniel's not here."}
    assert "HTTP 200 from endpoint rts-score, deployment blue" in result.err  # who answered, unasked
    routed = cli.ok("invoke", "dev.yaml", "--request", "request.json", "--deployment", "blue")
    assert "HTTP 200 from endpoint rts-score, deployment blue" in routed.err

    (project / "broken.json").write_text("not json at all")  # the script raises: its 500 reaches the client as 424
    failed = cli("invoke", "dev.yaml", "--request-file", "broken.json")
    assert failed.code == 1 and "Error: HTTP 424 from endpoint rts-score" in failed.err
    assert "unexpected error occurred in scoring script" in failed.out   # the body is still shown
    (project / "latin1.json").write_bytes(b'{"name": "\xe9"}')  # not UTF-8: the host's 400 reaches the client as 424
    bad = cli("invoke", "dev.yaml", "--request", "latin1.json")
    assert bad.code == 1 and "HTTP 424" in bad.err and "cannot be decoded as UTF-8" in bad.out

    unknown = cli("invoke", "dev.yaml", "--request", "request.json", "--deployment", "green")
    assert unknown.code == 1 and "endpoint rts-score has no deployment 'green' (it has: blue)" in unknown.err
    missing = cli("invoke", "dev.yaml", "--request", "nope.json")
    assert missing.code == 1 and "--request nope.json: not found" in missing.err
    folder = cli("invoke", "dev.yaml", "--request", "seed")
    assert folder.code == 1 and "--request seed: not a regular file" in folder.err

    # keys regenerate rotates one key while the other keeps working
    before = cli.outputs()
    uri = before["scoring_uri"]
    poller = Poller(uri, before["secondary_key"])       # a client on the OTHER slot, throughout the rotations
    poller.start()
    primaries = [before["primary_key"]]
    for _ in range(2):  # twice: a third key shows each rotation makes a new one (not a swap back), as 3 did
        result = cli.ok("keys", "regenerate", "dev.yaml", "--key", "primary")
        assert "endpoint rts-score: primary key regenerated:" in result.out and "*" * 12 in result.out
        after = cli.outputs()
        primaries.append(after["primary_key"])
    statuses = poller.finish()
    assert statuses[200] >= 20 and set(statuses) == {200}, statuses    # not one 401 on the secondary key
    assert len(set(primaries)) == 3                                     # each rotation made a new key
    assert after["secondary_key"] == before["secondary_key"] and after["scoring_uri"] == uri
    assert until(lambda: status_with(uri, primaries[0]) == 401)         # the rotated-out key is refused
    assert status_with(uri, primaries[-1]) == 200                       # the new one works

    # the other half of the dance: clients back on the primary, rotate the secondary
    poller = Poller(uri, after["primary_key"])
    poller.start()
    shown = cli.ok("keys", "regenerate", "dev.yaml", "--key", "secondary", "--show-secrets").out
    statuses = poller.finish()
    assert set(statuses) == {200}, statuses
    new_secondary = cli.outputs()["secondary_key"]
    assert new_secondary != before["secondary_key"] and new_secondary in shown
    assert until(lambda: status_with(uri, before["secondary_key"]) == 401)
    assert status_with(uri, new_secondary) == 200


def test_keys_regenerate_azure_through_the_sdk(azure_emulator_factory, tmp_path, project, monkeypatch):
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    emu: Emulator = azure_emulator_factory(lro_mode="async")
    cli = Cli(tmp_path / "home", project, {**emu.env(), "RTSCTL_ENDPOINT": "rts-bluegreen"})
    manifest = "examples/azure-blue-green.yaml"
    cli.ok("apply", manifest, "-y")
    before = cli.outputs(manifest)
    context = ssl.create_default_context(cafile=emu.ca_path)
    assert status_with(before["scoring_uri"], before["primary_key"], context) == 200
    poller = Poller(before["scoring_uri"], before["primary_key"], context)
    poller.start()
    cli.ok("keys", "regenerate", manifest, "--key", "secondary")
    statuses = poller.finish()
    assert statuses[200] >= 1 and set(statuses) == {200}, statuses
    after = cli.outputs(manifest)
    assert after["secondary_key"] != before["secondary_key"] and after["primary_key"] == before["primary_key"]
    assert status_with(before["scoring_uri"], before["secondary_key"], context) == 401
    assert status_with(before["scoring_uri"], after["secondary_key"], context) == 200
    posts = [path for method, path, status in emu.request_log if method == "POST" and "regenerateKeys" in path]
    assert len(posts) == 1                                               # through the service's own route
    # invoke reaches the same data plane with the (new) keys the SDK reports, and routes by deployment
    (project / "request.json").write_text('{"name": "Daniel"}')
    invoked = cli.ok("invoke", manifest, "--request", "request.json", "--deployment", "green")
    assert json.loads(invoked.out) == {"GoAway": "Daniel's not here."}
    assert "HTTP 200 from endpoint rts-bluegreen, deployment green" in invoked.err

    token = "examples/azure-managed-endpoint.yaml"                      # auth_mode aml_token: no keys to rotate
    cli.ok("apply", token, "-y", "--var", "RTSCTL_ENDPOINT=rts-managed")
    refused = cli("keys", "regenerate", token, "--key", "primary", "--var", "RTSCTL_ENDPOINT=rts-managed")
    assert refused.code == 1 and refused.err.strip() == ("Error: endpoint.rts-managed: Endpoint 'rts-managed' does "
                                                         "not use keys for authentication.")
