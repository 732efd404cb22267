"""Local deployment: `instance_count` scoring instances, run and supervised by the endpoint's front.

This reconciler only records intent: it snapshots the code folder (as Azure ML uploads
it, so editing the source changes nothing until the next apply), writes the launch
spec into the endpoint's routes.json and asks the front to converge, then waits for
the front's status to show the instances ready. A changed launch spec is a new
generation: the front starts it beside the old one and moves traffic when all its
instances are ready (Azure's rolling update); if it fails, the previous entry is put
back. Other deployments of the endpoint (e.g. a successor created beside it) are
independent entries. Crash loops and unready instances are drift.

The manifest name maps to a live name (rtsctl.rollout.successor): a successor created beside `blue` lives in
`deployments/blue-2f3a/`, its record saying `manifest_name: blue`; `live_names` resolves it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rtsctl.desired.build import with_current_environment
from rtsctl.desired.digest import digest_path
from rtsctl.support.errors import ResourceError, RtsctlError
from rtsctl.desired.resources import Observed, Resource
from rtsctl.rollout.successor import choose
from serving.limits import DEFAULT_MEMORY, parse_memory
from serving.logfile import tail
from serving.runtime import isolated_path

from ..base import Reconciler
from .envs import python_for
from .logs import crash_summary
from .registry import model_dir
from .routes import edit_routes, read_routes, read_status
from .state import Layout, out_of_space, private_copy, read_json, write_json

RECORD = "deployment.json"
READY_TIMEOUT_S = 180.0
FULL_DISK_WAIT_S = 3.0          # a full disk that long while waiting: the front's status cannot tell, so say why
LOG_LINES = 8


class DeploymentReconciler(Reconciler):
    kind = "deployment"
    immutable = frozenset({"instance_type", "endpoint"})

    def __init__(self, layout: Layout):
        self.layout = layout

    def live(self, res: Resource) -> tuple[str, str]:
        """(endpoint, live name) of a declared deployment: the successor named in its inputs, else the live
        deployment claiming its manifest name, else the manifest name itself (not created yet)."""
        endpoint, name = res.name.split("/", 1)
        if res.inputs.get("live_name"):
            return endpoint, res.inputs["live_name"]
        return endpoint, live_names(self.layout.endpoint(endpoint))[0].get(name, name)

    def observe(self, res: Resource) -> Observed | None:
        endpoint, name = self.live(res)
        return with_current_environment(self._observe(res.address, self.layout.deployment(endpoint, name)), res)

    def _observe(self, address: str, folder: Path) -> Observed | None:
        record = read_json(folder / RECORD)
        if record is None:
            return None
        endpoint_dir = folder.parent.parent
        return Observed(address, record["spec"], owned=True, handle=folder, outputs={"name": folder.name},
                        owner=record.get("owner"),
                        problems=health_problems(endpoint_dir, folder.name, record),
                        notes=memory_notes(endpoint_dir, folder.name, record))

    def create(self, res: Resource) -> None:
        """Create, roll out a changed spec, scale, or heal: one convergence for all four."""
        endpoint, name = self.live(res)
        folder = self.layout.deployment(endpoint, name)
        endpoint_dir = self.layout.endpoint(endpoint)
        claim = res.inputs.get("manifest_name") or res.name.split("/", 1)[1]
        spec = res.spec
        launch = self._launch(res, folder)
        generation = hashlib.sha256(json.dumps(launch, sort_keys=True).encode()).hexdigest()[:16]
        entry = {"generation": generation, "instance_count": spec["instance_count"], "launch": launch,
                 **{k: spec[k] for k in ("request_settings", "liveness_probe", "readiness_probe") if k in spec}}
        previous_record = read_json(folder / RECORD)
        previous_entry = read_routes(endpoint_dir)["deployments"].get(name)
        write_json(folder / RECORD, self.layout.mark({"spec": spec, "generation": generation,
                                                      "code_dir": launch["code_dir"], "manifest_name": claim}))
        revision = edit_routes(endpoint_dir, lambda routes: routes["deployments"].__setitem__(name, entry))
        try:
            self._wait_ready(res, endpoint_dir, name, generation, spec["instance_count"], revision)
        except ResourceError:
            self._restore(endpoint_dir, folder, name, previous_entry, previous_record)
            raise
        self._prune_code(folder, Path(launch["code_dir"]))

    def _launch(self, res: Resource, folder: Path) -> dict[str, Any]:
        spec = res.spec
        models = model_dir(self.layout, spec["model"]["name"], spec["model"]["digest"])
        if models is None:
            raise ResourceError(res.address, f"model {spec['model']['name']} with digest "
                                f"{spec['model']['digest'][:19]}… is not registered")
        code_dir = folder / f"code-{spec['code']['digest'].split(':')[1][:12]}"
        if not code_dir.is_dir():
            staging = folder / f".{code_dir.name}.staging"
            shutil.rmtree(staging, ignore_errors=True)
            private_copy(res.inputs["code_path"], staging, f"code of {res.address}", skip=("__pycache__", "*.pyc"))
            if digest_path(staging) != spec["code"]["digest"]:
                shutil.rmtree(staging, ignore_errors=True)
                raise ResourceError(res.address, "the code folder changed while it was being deployed; apply again")
            staging.rename(code_dir)
        engine = spec.get("engine", "native")
        try:
            python = python_for(self.layout, spec.get("environment"), engine=engine)
        except RtsctlError as exc:
            raise ResourceError(res.address, str(exc)) from None
        return {"python": str(python),
                "pythonpath": str(isolated_path(self.layout.runtime())),
                "code_dir": str(code_dir), "script": spec["scoring_script"], "model_dir": str(models),
                "env": spec.get("environment_variables", {}), "engine": engine, "memory": memory_limit(spec)}

    def _wait_ready(self, res: Resource, endpoint_dir: Path, name: str, generation: str, count: int,
                    revision: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        full_since: float | None = None
        while True:
            status = read_status(endpoint_dir)
            if status is None:
                raise ResourceError(res.address, "the endpoint process is not running; apply the endpoint first")
            mine = status["deployments"].get(name) or {}
            if status.get("revision", 0) >= revision and mine.get("target") == generation:
                if mine.get("failed"):
                    failed = mine["failed"]
                    lines = tail(Path(failed["log"]), LOG_LINES)
                    cause = crash_summary(Path(failed["log"])) or next(
                        (line for line in reversed(lines) if not line.startswith("---")), failed["reason"])
                    what = failed["reason"]
                    if failed.get("state") == "crash-loop":  # it had served, and now dies at every restart
                        what = f"is crash-looping ({failed.get('restarts', 0)} restarts; last: {what})"
                    detail = "" if cause.strip() in what else f": {cause.strip()}"
                    raise ResourceError(res.address, f"instance {failed['index']} {what}{detail} "
                                        f"(log: {failed['log']})")
                if mine.get("generation") == generation and mine.get("ready", 0) >= count and \
                        sum(1 for i in mine["instances"] if i["generation"] == generation) == count:
                    return
            full = out_of_space(endpoint_dir)
            full_since = (full_since or time.monotonic()) if full else None
            if full_since and time.monotonic() - full_since > FULL_DISK_WAIT_S:   # the front retries each second
                raise ResourceError(res.address, f"{full}: the endpoint process cannot report whether the instances "
                                                 "are ready")
            if time.monotonic() > deadline:
                raise ResourceError(res.address, f"instances not ready after {READY_TIMEOUT_S:.0f}s; see "
                                    f"{self.layout.logs(endpoint_dir.name, name)}")
            time.sleep(0.05)

    @staticmethod
    def _restore(endpoint_dir: Path, folder: Path, name: str, entry: dict | None, record: dict | None) -> None:
        def put_back(routes: dict[str, Any]) -> None:
            if entry is None:
                routes["deployments"].pop(name, None)
            else:
                routes["deployments"][name] = entry

        edit_routes(endpoint_dir, put_back)
        if record is None:
            (folder / RECORD).unlink(missing_ok=True)
        else:
            write_json(folder / RECORD, record)

    @staticmethod
    def _prune_code(folder: Path, current: Path) -> None:
        for old in folder.glob("code-*"):
            if old != current:
                shutil.rmtree(old, ignore_errors=True)

    def claim(self, res: Resource, observed: Observed) -> None:
        folder: Path = observed.handle
        write_json(folder / RECORD, self.layout.mark(read_json(folder / RECORD) or {}))

    def delete(self, observed: Observed) -> None:
        folder: Path = observed.handle
        endpoint_dir = folder.parent.parent

        def unroute(routes: dict[str, Any]) -> None:
            routes["deployments"].pop(folder.name, None)
            routes["traffic"].pop(folder.name, None)

        if endpoint_dir.is_dir():
            revision = edit_routes(endpoint_dir, unroute)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _still_running(endpoint_dir, folder.name, revision):
                time.sleep(0.05)
        (folder / RECORD).unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)

    def discover(self, desired: Sequence[Resource]) -> list[Observed]:
        """Deployments no declared one resolves to: undeclared, or a leftover of an interrupted rollout."""
        declared = {r.name for r in desired if r.kind == self.kind}
        found: list[Observed] = []
        for endpoint in (r.name for r in desired if r.kind == "endpoint"):
            chosen = live_names(self.layout.endpoint(endpoint))[0]
            serving = {live for claim, live in chosen.items() if f"{endpoint}/{claim}" in declared}
            root = self.layout.endpoint(endpoint) / "deployments"
            for folder in sorted(root.glob("*")) if root.is_dir() else []:
                name = f"{endpoint}/{folder.name}"
                if folder.name not in serving and (observed := self._observe(f"deployment.{name}", folder)):
                    found.append(observed)
        return found


def live_names(endpoint_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(manifest name -> live name serving it, live name -> manifest name it claims) of an endpoint's
    deployments, from their records and the endpoint's traffic (see rtsctl.rollout.successor.choose)."""
    root = endpoint_dir / "deployments"
    traffic = read_routes(endpoint_dir).get("traffic", {}) if endpoint_dir.is_dir() else {}
    claims: dict[str, str] = {}
    for folder in sorted(root.glob("*")) if root.is_dir() else []:
        record = read_json(folder / RECORD)
        if record is not None:
            claims[folder.name] = record.get("manifest_name") or folder.name
    return choose((live, claim, traffic.get(live, 0)) for live, claim in claims.items()), claims


def _still_running(endpoint_dir: Path, name: str, revision: int) -> bool:
    status = read_status(endpoint_dir)
    return status is not None and (status.get("revision", 0) < revision or name in status["deployments"])


def memory_limit(spec: dict[str, Any]) -> int:
    """Bytes each instance may use: `resources.limits.memory` (the az ml name), else serving.limits' default
    (2Gi, the limit of Azure ML's defaultinstancetype)."""
    declared = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
    return parse_memory(declared) or DEFAULT_MEMORY


def memory_notes(endpoint_dir: Path, name: str, record: dict[str, Any]) -> list[str]:
    """What the plan says about instance memory: the limit and how it is enforced, and OOM kills so far."""
    status = read_status(endpoint_dir)
    mine = (status or {}).get("deployments", {}).get(name) or {}
    current = [i for i in mine.get("instances", []) if i.get("generation") == record.get("generation")]
    limits = sorted({i["memory_limit"] for i in current if i.get("memory_limit")})
    notes = [f"each instance has a memory limit of {', '.join(limits)}; over it, it is OOMKilled and restarted"
             ] if limits else []
    kills = sum(i.get("oom_kills", 0) for i in current)
    if kills:
        notes.append(f"{kills} OOMKilled instance restart(s) so far (rtsctl logs shows them)")
    return notes


def health_problems(endpoint_dir: Path, name: str, record: dict[str, Any]) -> list[str]:
    """Health drift of a deployment as the front reports it: not loaded, not ready, crash-looping."""
    status = read_status(endpoint_dir)
    if status is None:
        return ["its instances are not running (the endpoint process is down)"]
    mine = status["deployments"].get(name)
    if mine is None or mine.get("generation") != record.get("generation"):
        return ["its instances are not running the recorded version"]
    problems = []
    for instance in mine["instances"]:
        if instance["generation"] != mine["generation"]:
            continue
        state = instance["state"]
        if state == "crash-loop":
            lines = " | ".join(line.strip() for line in tail(Path(instance["log"]), LOG_LINES)[-3:])
            problems.append(f"instance {instance['index']} is crash-looping ({instance['restarts']} restarts, "
                            f"last: {instance['last_exit']}); last log lines: {lines}")
        elif state not in ("ready", "draining", "stopped"):
            problems.append(f"instance {instance['index']} (pid {instance['pid']}) is {state}"
                            + (f" (last: {instance['last_exit']})" if instance.get("last_exit") else ""))
    return problems

