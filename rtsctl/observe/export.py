"""`rtsctl export`: what exists in a manifest's workspace, written back as a manifest (aztfexport, Pulumi import).

The backend finds the resources and copies the files they need (`Backend.export`, shaped as desired specs);
this module turns them into manifest blocks, so a plan of the written manifest compares exactly what the world
holds: "No changes" for what the manifest already owns, `exists, not owned: rtsctl import ...` for the rest.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconcilers.base import Found

from rtsctl.desired.build import DEPLOYMENT_FIELDS, plain
from rtsctl.manifest import Manifest

#: what a manifest says of an endpoint that the world does not hold: kept from the manifest when it declares it
MANIFEST_ONLY = ("smoke_test", "rollout", "prevent_destroy")


def user_tags(tags: dict[str, Any] | None) -> dict[str, str]:
    """A resource's own tags without rtsctl's bookkeeping (ownership, digests, applied records)."""
    return {str(k): str(v) for k, v in (tags or {}).items() if not str(k).startswith("rtsctl.") and k != "managed-by"}


def manifest_for(source: Manifest, found: Sequence[Found], out: Path) -> dict[str, Any]:
    """The manifest text (as data) for `found`, with `source`'s identity, provider and scope; file paths
    relative to `out`'s folder."""
    data = source.data
    declared = {(kind, entry.get("name")): entry for kind in ("computes", "endpoints")
                for entry in data.get(kind) or []}
    rel = lambda path: os.path.relpath(path, out.parent)  # noqa: E731
    doc: dict[str, Any] = {"name": source.name}
    if "provider" in data:
        doc["provider"] = plain(data["provider"])
    doc["resource_group"] = data["resource_group"]
    doc["workspace"] = plain(data["workspace"])
    if "load_testing" in data:  # like the workspace, part of the scope the manifest keeps (bench's cloud engine)
        doc["load_testing"] = plain(data["load_testing"])
    by_kind: dict[str, list[Found]] = {}
    for item in found:
        by_kind.setdefault(item.kind, []).append(item)
    models = [{"name": m.name, "path": rel(m.files["path"]), "type": m.spec.get("type", "custom_model"),
               **({"description": m.spec["description"]} if m.spec.get("description") else {})}
              for m in by_kind.get("model", [])]
    envs = [{"name": e.name, **({"image": e.spec["image"]} if e.spec.get("image") else {}),
             **({"conda_file": rel(e.files["conda_file"])} if "conda_file" in e.files else {}),
             **({"description": e.spec["description"]} if e.spec.get("description") else {})}
            for e in by_kind.get("environment", [])]
    computes = [plain(declared[("computes", c.name)]) if ("computes", c.name) in declared else _compute(c)
                for c in by_kind.get("compute", [])]
    traffic = {t.name: t.spec.get("weights") or {} for t in by_kind.get("traffic", [])}
    endpoints = []
    for ep in by_kind.get("endpoint", []):
        deployments = [_deployment(d, rel) for d in by_kind.get("deployment", []) if d.spec["endpoint"] == ep.name]
        if not deployments:
            continue  # a manifest's endpoint has at least one deployment: one without any is left to `az ml`
        block: dict[str, Any] = {"name": ep.name, "auth_mode": ep.spec.get("auth_mode") or "key"}
        if ep.spec.get("compute"):
            block["compute"] = ep.spec["compute"]
        for key in ("description", "tags"):
            if ep.spec.get(key):
                block[key] = ep.spec[key]
        block["deployments"] = deployments
        weights = {k: v for k, v in traffic.get(ep.name, {}).items() if v}
        block["traffic"] = weights or {deployments[0]["name"]: 0}
        mine = declared.get(("endpoints", ep.name)) or {}
        block.update({k: plain(mine[k]) for k in MANIFEST_ONLY if k in mine})
        endpoints.append(block)
    for key, value in (("models", models), ("environments", envs), ("computes", computes), ("endpoints", endpoints)):
        if value:
            doc[key] = value
    return doc


def _compute(found: Found) -> dict[str, Any]:
    spec = found.spec
    if spec.get("type") != "kubernetes":
        return {"name": found.name, "type": spec.get("type", "local"),
                **({"max_instances": spec["max_instances"]} if "max_instances" in spec else {})}
    # a cluster this manifest does not declare is adopted as it is, never sized or deleted by it
    return {"name": found.name, "type": "kubernetes", "namespace": spec.get("namespace") or "azureml",
            "cluster": {"name": spec["cluster"], "resource_group": spec["cluster_resource_group"], "existing": True}}


def _deployment(found: Found, rel) -> dict[str, Any]:
    spec = found.spec
    block: dict[str, Any] = {"name": found.name.split("/", 1)[1], "model": spec["model"]["name"]}
    if spec.get("environment"):
        block["environment"] = spec["environment"]["name"]
    block["code_configuration"] = {"code": rel(found.files["code"]), "scoring_script": spec["scoring_script"]}
    block["instance_count"] = spec.get("instance_count", 1)
    block.update({k: spec[k] for k in DEPLOYMENT_FIELDS if k in spec and spec[k] not in (None, {}, [])})
    return block


def unowned(found: Sequence[Found], owner: str) -> list[str]:
    """Addresses `rtsctl import` must take before the exported manifest owns them (traffic goes with its
    endpoint)."""
    return [f"{f.kind}.{f.name}" for f in found if f.owner != owner and f.kind != "traffic"]
