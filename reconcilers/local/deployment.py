"""Local deployment: `instance_count` scoring processes running a snapshot of the user's code.

The code folder is copied at deploy time (as Azure ML uploads it), so editing the
source changes nothing until the next apply. A changed spec rolls out like Azure's
rolling update: the new instances start and turn healthy before traffic moves to them
and the old ones stop. A dead instance is drift: observe reports it, update restarts it.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rtsctl.digest import digest_path
from rtsctl.errors import ResourceError
from rtsctl.resources import Observed, Resource

from ..base import Reconciler
from . import host, procs
from .registry import model_dir
from .routes import edit_routes
from .state import Layout, read_json, write_json

RECORD = "deployment.json"
# Fields whose change needs new processes; anything else (instance_count, settings) is applied in place.
PROCESS_FIELDS = ("model", "code", "scoring_script", "environment_variables", "environment")


def instance_alive(instance: dict[str, Any]) -> bool:
    return procs.is_alive(instance.get("pid"), instance.get("started")) and procs.http_ok(
        f"http://127.0.0.1:{instance['port']}/", timeout=1.0)


class DeploymentReconciler(Reconciler):
    kind = "deployment"
    immutable = frozenset({"instance_type", "endpoint"})

    def __init__(self, layout: Layout):
        self.layout = layout

    def folder(self, name: str) -> Path:
        endpoint, deployment = name.split("/", 1)
        return self.layout.deployment(endpoint, deployment)

    def observe(self, res: Resource) -> Observed | None:
        return self._observe(res.address, self.folder(res.name))

    def _observe(self, address: str, folder: Path) -> Observed | None:
        record = read_json(folder / RECORD)
        if record is None:
            return None
        problems = [f"instance {i} (pid {inst['pid']}, port {inst['port']}) is not running"
                    for i, inst in enumerate(record["instances"]) if not instance_alive(inst)]
        return Observed(address, record["spec"], owned=True, problems=problems, handle=folder)

    def create(self, res: Resource) -> None:
        """Create, roll out a changed spec, or heal dead instances: one convergence for all three."""
        folder = self.folder(res.name)
        record = read_json(folder / RECORD)
        spec = res.spec
        same_processes = record is not None and all(record["spec"].get(k) == spec.get(k) for k in PROCESS_FIELDS)
        keep = [i for i in record["instances"] if instance_alive(i)] if same_processes else []
        keep, surplus = keep[:spec["instance_count"]], keep[spec["instance_count"]:]
        launch = self._launch_args(res, folder)
        started = [self._spawn(launch, folder, len(keep) + n) for n in range(spec["instance_count"] - len(keep))]
        for n, (proc, instance) in enumerate(started):
            try:
                host.wait_healthy(instance["port"], timeout=30.0, proc=proc)
            except RuntimeError as exc:
                for _, other in started:
                    procs.stop(other["pid"], other["started"])
                log = folder / "logs" / f"instance-{len(keep) + n}.log"
                raise ResourceError(res.address, f"{exc}: {procs.last_error(log)} (log: {log})") from None
        instances = keep + [inst for _, inst in started]
        old = record["instances"] if record else []
        write_json(folder / RECORD, {"spec": spec, "instances": instances, "code_dir": str(launch["code_dir"])})
        endpoint, name = res.name.split("/", 1)

        def route(routes: dict[str, Any]) -> None:
            routes["deployments"][name] = {"instances": instances, "request_settings": spec.get("request_settings", {})}

        edit_routes(self.layout.endpoint(endpoint), route)
        current = {(i["pid"], i["port"]) for i in instances}
        for instance in old + surplus:
            if (instance["pid"], instance["port"]) not in current:
                procs.stop(instance["pid"], instance.get("started"))
        self._prune_code(folder, launch["code_dir"])

    def _launch_args(self, res: Resource, folder: Path) -> dict[str, Any]:
        spec = res.spec
        models = model_dir(self.layout, spec["model"]["name"], spec["model"]["digest"])
        if models is None:
            raise ResourceError(res.address, f"model {spec['model']['name']} with digest "
                                f"{spec['model']['digest'][:19]}… is not registered")
        code_dir = folder / f"code-{spec['code']['digest'].split(':')[1][:12]}"
        if not code_dir.is_dir():
            staging = folder / f".{code_dir.name}.staging"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(res.inputs["code_path"], staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            if digest_path(staging) != spec["code"]["digest"]:
                shutil.rmtree(staging, ignore_errors=True)
                raise ResourceError(res.address, "the code folder changed while it was being deployed; apply again")
            staging.rename(code_dir)
        return {"code_dir": code_dir, "model_dir": models, "script": spec["scoring_script"],
                "env": spec.get("environment_variables", {})}

    def _spawn(self, launch: dict[str, Any], folder: Path, index: int):
        port = procs.free_port()
        proc = host.spawn(launch["code_dir"], launch["script"], launch["model_dir"], port,
                          folder / "logs" / f"instance-{index}.log", env=launch["env"])
        return proc, {"pid": proc.pid, "started": procs.start_time(proc.pid), "port": port}

    @staticmethod
    def _prune_code(folder: Path, current: Path) -> None:
        for old in folder.glob("code-*"):
            if old != current:
                shutil.rmtree(old, ignore_errors=True)

    def delete(self, observed: Observed) -> None:
        folder: Path = observed.handle
        record = read_json(folder / RECORD) or {"instances": []}
        endpoint_dir = folder.parent.parent

        def unroute(routes: dict[str, Any]) -> None:
            routes["deployments"].pop(folder.name, None)
            routes["traffic"].pop(folder.name, None)

        if endpoint_dir.is_dir():
            edit_routes(endpoint_dir, unroute)
        for instance in record["instances"]:
            procs.stop(instance["pid"], instance.get("started"))
        shutil.rmtree(folder, ignore_errors=True)

    def discover(self, desired: Sequence[Resource]) -> list[Observed]:
        declared = {r.name for r in desired if r.kind == self.kind}
        found: list[Observed] = []
        for endpoint in (r.name for r in desired if r.kind == "endpoint"):
            root = self.layout.endpoint(endpoint) / "deployments"
            for folder in sorted(root.glob("*")) if root.is_dir() else []:
                name = f"{endpoint}/{folder.name}"
                if name not in declared and (observed := self._observe(f"deployment.{name}", folder)):
                    found.append(observed)
        return found

