"""Azure ML (Microsoft.MachineLearningServices) behaviour: defaults the SDK needs, service rules, actions.

Rules enforced (the service does this, not the SDK), each with its source in the module that enforces it:
* asset versions (models, environments, codes) are immutable: a PUT that changes their content is refused
  (the SDK itself matches the service's "(UserError) Asset paths cannot be updated." -- azure-ai-ml
  _artifacts/_constants.py ASSET_PATH_ERROR, recording 04's sdk_source_note; status 409: guess);
* a Kubernetes compute attach needs the AKS cluster and its Microsoft.AzureML.Kubernetes extension
  (MicrosoftDocs azureml-docs how-to-attach-kubernetes-anywhere.md: deploy the extension, then attach);
  resourceId / namespace cannot change in place and a compute used by an endpoint cannot be detached (guess);
* endpoint `compute` (managed vs Kubernetes) is immutable (guess: the spec marks it as set at creation); traffic
  names only existing deployments and sums to 0 or 100, mirror traffic <= 50 % (MicrosoftDocs azureml-docs
  how-to-safely-rollout-online-endpoints.md);
* no write to an endpoint while a write to it or its deployments runs (azure-sdk-for-net#36961);
* a deployment's model / environment / code ids must exist (guess); instanceType and endpointComputeType are
  immutable (guess: `az ml online-deployment update` cannot change them); a deployment with traffic (or mirror
  traffic) cannot be deleted (guess: the rollout guide sets traffic to 0 before deleting);
* the AzureML extension's inference TLS settings (kube.py, Azure CLI AzureMLKubernetes.py).
"""

from . import assets, compute, endpoints  # noqa: F401  (each module registers its kinds)
from .workspace import materialise_workspace

__all__ = ["materialise_workspace"]
