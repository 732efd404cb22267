"""The local backend: the whole stack on 127.0.0.1, no Azure, no Docker.

A workspace is a folder under RTSCTL_HOME; an endpoint is a front process checking
bearer keys and routing by traffic weight to deployments, each `instance_count`
scoring processes that load the user's script as Azure ML does.
"""

from __future__ import annotations

from ..base import Backend, BackendSettings, Reconciler
from .compute import ComputeReconciler
from .deployment import DeploymentReconciler
from .endpoint import BIND, EndpointReconciler
from .environment import EnvironmentReconciler
from .registry import ModelReconciler
from rtsctl.apply.lock import exclusive

from .state import Layout
from .traffic import TrafficReconciler
from .workspace import ResourceGroupReconciler, WorkspaceReconciler

KINDS = (ResourceGroupReconciler, WorkspaceReconciler, ModelReconciler, EnvironmentReconciler, ComputeReconciler,
         EndpointReconciler, DeploymentReconciler, TrafficReconciler)


class LocalBackend(Backend):
    name = "local"

    def __init__(self, settings: BackendSettings):
        super().__init__(settings)
        self.layout = Layout(settings.resource_group, settings.workspace, settings.owner)
        from .envs import cache_root

        cache_root()   # a loose environment cache is refused before anything runs, as a loose home is

    def reconcilers(self) -> dict[str, Reconciler]:
        made = {cls.kind: cls(self.layout) for cls in KINDS}
        made["endpoint"] = EndpointReconciler(self.layout, bind=self.settings.provider.get("bind", BIND))
        return made

    def snapshot(self):
        from . import procs

        return procs.one_scan()  # one /proc scan for the whole plan

    def logs(self, endpoint: str, deployment: str, *, instance: int | None = None, tail: int | None = None,
             follow: bool = False):
        from .logs import deployment_logs

        return deployment_logs(self.layout.logs(endpoint, deployment), deployment, instance, tail, follow)

    def watch_traffic(self, endpoint: str, deployment: str):
        from .answers import FrontAnswers

        return FrontAnswers(self.layout.endpoint(endpoint), deployment)

    def preflight(self, resources, observed):
        """Deployments about to start instances: the memory limit each gets and how this machine enforces it
        (a running one says so in its own notes, with its OOM kills)."""
        from serving.limits import human, mechanism

        from .deployment import memory_limit

        new = [r for r in resources if r.kind == "deployment" and observed.get(r.address) is None]
        how = mechanism() if new else ""
        return [f"{r.address}: each instance will have a memory limit of {human(memory_limit(r.spec))} ({how} on this "
                f"machine); over it, it is OOMKilled and restarted" for r in new]

    def export(self, dest, owner, endpoints=()):
        from .export import export

        return export(self.layout, dest, owner, endpoints)

    def lock(self, operation: str = "a change", timeout: float = 0.0):
        return exclusive(self.layout.group.parent / f".{self.settings.resource_group}.lock",
                         f"resource group {self.settings.resource_group}", operation, timeout)


def create_backend(settings: BackendSettings) -> LocalBackend:
    return LocalBackend(settings)
