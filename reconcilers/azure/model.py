"""model.<name>: a registered model (azure-ai-ml `models`), one immutable version per content digest.

The local file or folder is uploaded to the workspace's default datastore by the SDK; an unchanged
model is never uploaded again (its digest tag matches), a changed one becomes the next integer version.
"""

from __future__ import annotations

from typing import Any

from rtsctl.plan.normalize import casefold
from rtsctl.desired.resources import Resource

from .assets import AssetReconciler


class ModelReconciler(AssetReconciler):
    kind = "model"
    normalize = {"type": casefold}

    @property
    def operations(self) -> Any:
        return self.ml.models

    def build(self, res: Resource, version: str, tags: dict[str, str]) -> Any:
        from azure.ai.ml.entities import Model

        return Model(
            name=res.name,
            version=version,
            path=str(res.inputs["path"]),
            type=res.spec.get("type") or "custom_model",
            description=res.spec.get("description"),
            tags=tags,
        )

    def content_digest(self, asset: Any) -> str:
        from .export import model_digest

        return model_digest(self.ml, asset.name, str(asset.version))

    def observed_spec(self, asset: Any) -> dict[str, Any]:
        return {"type": asset.type}
