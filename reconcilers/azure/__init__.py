"""The Azure backend: one reconciler per kind, through the real SDKs.

azure-ai-ml (workspace, model, environment, compute attach, online endpoints and deployments),
azure-mgmt-resource (resource groups), azure-mgmt-containerservice (AKS), the Kubernetes-configuration
extensions SDK (the AzureML extension on AKS), azure-mgmt-loadtesting (Azure Load Testing resources) and
azure-identity (credentials).

The engine imports this package only when a manifest says `provider.kind: azure` (importing
azure.ai.ml costs ~2 s), through `reconcilers.load_backend`.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from typing import Any

from reconcilers.base import Backend, BackendSettings, Reconciler

from .aks_cluster import AksClusterReconciler
from .clients import Clients
from .compute import ComputeReconciler
from .deployment import DeploymentReconciler
from .endpoint import EndpointReconciler
from .environment import EnvironmentReconciler
from .k8s_extension import K8sExtensionReconciler
from .load_testing import LoadTestingReconciler
from .model import ModelReconciler
from .resource_group import ResourceGroupReconciler
from .traffic import TrafficReconciler
from .workspace import WorkspaceReconciler

RECONCILERS: tuple[type, ...] = (
    ResourceGroupReconciler,
    WorkspaceReconciler,
    LoadTestingReconciler,
    ModelReconciler,
    EnvironmentReconciler,
    AksClusterReconciler,
    K8sExtensionReconciler,
    ComputeReconciler,
    EndpointReconciler,
    DeploymentReconciler,
    TrafficReconciler,
)


class AzureBackend(Backend):
    name = "azure"

    def __init__(self, settings: BackendSettings):
        super().__init__(settings)
        self.clients = Clients(settings.provider, settings.resource_group, settings.workspace)
        self._reconcilers: dict[str, Reconciler] = {
            cls.kind: cls(self.clients, settings) for cls in RECONCILERS  # type: ignore[call-arg]
        }

    def reconcilers(self) -> dict[str, Reconciler]:
        return dict(self._reconcilers)

    @property
    def poll_interval(self) -> float:  # type: ignore[override]
        return self.clients.poll_interval  # ARM read limits: 5 s on public Azure

    def close(self) -> None:
        self.clients.close()

    def snapshot(self):
        self.clients.prefetch_token()
        return self.clients.reads.snapshot()

    def step(self, address: str):
        return self.clients.reads.step()

    def fresh(self):
        return self.clients.reads.fresh()

    def smoke_context(self) -> dict[str, Any]:
        # the scoring URI is HTTPS; a private CA (Azure Stack, the emulator) comes in through the same
        # variable the SDKs' requests transport honours
        return {"verify": os.environ.get("REQUESTS_CA_BUNDLE") or True}


    def _blob_lock(self):
        """The lease lock `provider.lock` names, or None when the manifest names none."""
        from .lock import BlobLock

        block = self.settings.provider.get("lock")
        return BlobLock(self.clients, block["account"], block["container"]) if block else None

    @contextmanager
    def lock(self, operation: str = "a change", timeout: float = 0.0):
        """This machine's file lock, then (with `provider.lock`) the blob lease that excludes other machines."""
        from rtsctl.support.home import home
        from rtsctl.apply.lock import exclusive

        scope = f"{self.clients.subscription_id}/{self.settings.resource_group}/{self.settings.workspace}".lower()
        local = home() / "locks" / f"azure-{hashlib.sha256(scope.encode()).hexdigest()[:20]}.lock"
        with exclusive(local, f"workspace {self.settings.workspace} (on this machine)", operation, timeout):
            blob_lock = self._blob_lock()
            if blob_lock is None:
                yield
                return
            with blob_lock.held(operation, timeout):
                yield

    def force_unlock(self, lock_id: str) -> str:
        blob_lock = self._blob_lock()
        if blob_lock is None:
            return super().force_unlock(lock_id)
        return blob_lock.force_unlock(lock_id)

    def watch_traffic(self, endpoint: str, deployment: str):
        from .metrics import MonitorAnswers, kubernetes_not_counted

        kubernetes_not_counted(self._reconcilers["endpoint"], endpoint)  # type: ignore[arg-type]
        return MonitorAnswers(self.clients, endpoint, deployment)

    def preflight(self, resources, observed):
        from .metrics import blind_gate_warnings
        from .preflight import quota_warnings

        notes = [] if self.settings.provider.get("lock") else [
            "provider.lock is not set: this machine takes a local lock, but other machines (CI runners, "
            "laptops) applying this workspace at the same time are not excluded; name a storage account "
            "container in provider.lock: {account: NAME, container: NAME} to lock across machines"]
        return notes + blind_gate_warnings(resources) + quota_warnings(self.clients.ml, self.clients.location,
                                                                       resources, observed)

    def export(self, dest, owner, endpoints=()):
        from .export import export

        return export(self, dest, owner, endpoints)

    def load_service(self, resource: str):
        from .load_runs import AzureLoadTesting

        return AzureLoadTesting(self.clients, resource)

    def logs(self, endpoint: str, deployment: str, *, instance: int | None = None, tail: int | None = None,
             follow: bool = False):
        from .logs import deployment_logs

        return deployment_logs(self.clients, endpoint, deployment, instance, tail, follow)


def create_backend(settings: BackendSettings) -> AzureBackend:
    return AzureBackend(settings)


__all__ = ["AzureBackend", "create_backend", "RECONCILERS"]
