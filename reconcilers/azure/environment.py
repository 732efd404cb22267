"""environment.<name>: an Azure ML environment (image + conda file, or a Docker build context).

The v2 successor of the seed's "container image": the service builds the image on first use. Versions
are content-addressed like models (the digest covers the image name, conda file or build context).
"""

from __future__ import annotations

from typing import Any

from rtsctl.desired.resources import Resource

from .assets import AssetReconciler


class EnvironmentReconciler(AssetReconciler):
    kind = "environment"

    @property
    def operations(self) -> Any:
        return self.ml.environments

    def build(self, res: Resource, version: str, tags: dict[str, str]) -> Any:
        from azure.ai.ml.entities import BuildContext, Environment

        build = None
        if res.inputs.get("build_path"):
            build = BuildContext(path=str(res.inputs["build_path"]), dockerfile_path=res.inputs.get("dockerfile_path") or "Dockerfile")
        return Environment(
            name=res.name,
            version=version,
            image=None if build else res.spec.get("image"),
            conda_file=None if build or not res.inputs.get("conda_file") else str(res.inputs["conda_file"]),
            build=build,
            description=res.spec.get("description"),
            tags=tags,
        )

    def content_digest(self, asset: Any) -> str:
        from .export import environment_digest

        return environment_digest(asset)

    def observed_spec(self, asset: Any) -> dict[str, Any]:
        return {"image": asset.image} if asset.image else {}
