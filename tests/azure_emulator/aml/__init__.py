"""Azure ML (Microsoft.MachineLearningServices) behaviour: defaults the SDK needs, service rules, actions.

Rules enforced (the service does this, not the SDK):
* asset versions (models, environments, codes) are immutable: a PUT that changes their content -> 409;
* a Kubernetes compute attach needs the AKS cluster and its Microsoft.AzureML.Kubernetes extension;
  resourceId / namespace cannot change in place; a compute used by an endpoint cannot be detached;
* endpoint `compute` (managed vs Kubernetes) is immutable; traffic names only existing deployments and
  sums to 0 or 100;
* a deployment's model / environment / code ids must exist; instanceType and endpointComputeType are
  immutable; a deployment with traffic (or mirror traffic) cannot be deleted.
"""

from . import assets, compute, endpoints  # noqa: F401  (each module registers its kinds)
from .workspace import materialise_workspace

__all__ = ["materialise_workspace"]
