"""Reading what exists back, for `rtsctl export` and for `rtsctl import`'s check of what it takes.

A resource made outside rtsctl carries none of rtsctl's digest tags; before `import` writes them, the content
is fetched and digested exactly as the manifest's files are (`fetch_code`, `fetch_model`, `environment_digest`),
so a tag never vouches for content nobody compared. The same readers write an export's files.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rtsctl.support.errors import RtsctlError
from rtsctl.desired.digest import conda_part, digest_path, digest_text
from rtsctl.observe.export import user_tags
from rtsctl.plan.normalize import identifier
from rtsctl.rollout.successor import LABEL, live_to_manifest

from ..base import Found
from .common import drop_none, owner_of
from .compute import COMPUTE_OWNER_TAG, _parse_aks_id
from .deployment import SETTINGS, asset_name, live_names
from .endpoint import last_segment
from .reads import list_deployments

#: every manifest field of request_settings and of a probe (schemas/manifest.schema.json): what export reads
ALL_SETTINGS = {"request_settings": {"request_timeout_ms": 0, "max_concurrent_requests_per_instance": 0,
                                     "max_queue_wait_ms": 0},
                **{probe: {"initial_delay": 0, "period": 0, "timeout": 0, "success_threshold": 0,
                           "failure_threshold": 0} for probe in ("liveness_probe", "readiness_probe")}}


def asset_version(ref: Any) -> tuple[str, str] | None:
    """(name, version) of '/subscriptions/.../models/NAME/versions/3' or 'azureml:NAME:3'."""
    if not isinstance(ref, str):
        return None
    if "/versions/" in ref:
        return asset_name(ref), ref.rstrip("/").rsplit("/", 1)[-1]
    parts = ref.split(":")
    return (parts[1], parts[2]) if ref.startswith("azureml:") and len(parts) == 3 else None


def _single(folder: Path) -> Path:
    """The one entry a download folder holds (`models.download` puts the registered file or folder in a folder
    named after the model), else the folder itself."""
    entries = list(folder.iterdir()) if folder.is_dir() else []
    return entries[0] if len(entries) == 1 else folder


def fetch_code(ml: Any, ref: str, dest: Path) -> Path:
    """A deployment's code asset, downloaded into `dest`. azure-ai-ml has no public code download: this uses the
    artifact helpers its own `models.download` is built on, with the workspace's default datastore credentials,
    on the container the asset's blob URL names (code snapshots need not sit in the datastore's own container)."""
    from urllib.parse import urlsplit

    from azure.ai.ml._artifacts._artifact_utilities import get_datastore_info, get_storage_client

    name, version = asset_version(ref) or (None, None)
    code = ml._code.get(name=name, version=version)
    url = urlsplit(str(code.path))
    container, _, prefix = url.path.lstrip("/").partition("/")
    info = {**get_datastore_info(ml.datastores, ml.datastores.get_default().name), "container_name": container}
    with tempfile.TemporaryDirectory() as tmp:  # blobs land under tmp by their names below the asset's prefix
        get_storage_client(**info).download(starts_with=prefix, destination=str(Path(tmp) / "code"))
        if not (Path(tmp) / "code").is_dir():
            raise RtsctlError(f"code asset {name}:{version}: nothing could be downloaded from {code.path}")
        _move(Path(tmp) / "code", dest)
    return dest


def fetch_model(ml: Any, name: str, version: str, dest: Path) -> Path:
    """A model version's files (`models.download`), into `dest`: the file, or the folder, it was registered from."""
    with tempfile.TemporaryDirectory() as tmp:
        ml.models.download(name=name, version=version, download_path=tmp)
        source = _single(_single(Path(tmp)))  # <tmp>/<model name>/<registered file or folder>
        target = dest / source.name
        _move(source, target)
    return target


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    shutil.move(str(source), str(target))


def conda_text(env: Any) -> str | None:
    import yaml

    return yaml.safe_dump(env.conda_file, sort_keys=False) if env.conda_file else None


def environment_digest(env: Any) -> str:
    """The digest `rtsctl.desired.build` computes for an environment declared with this image and conda file."""
    text = conda_text(env)
    return digest_text(env.image or "", *([conda_part(text)] if text is not None else []))


def model_digest(ml: Any, name: str, version: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        return digest_path(fetch_model(ml, name, version, Path(tmp)))


def code_digest(ml: Any, ref: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        return digest_path(fetch_code(ml, ref, Path(tmp) / "code"))


def export(backend: Any, dest: Path, owner: str, endpoints: Sequence[str] = ()) -> list[Found]:
    """What M's identity or nobody owns, as found specs with their files; one picture of one moment, as a plan
    is: each resource read once (the deployment list serves both the names and the exact request settings)."""
    with backend.snapshot():
        return _export(backend, dest, owner, endpoints)


def _export(backend: Any, dest: Path, owner: str, endpoints: Sequence[str]) -> list[Found]:
    ml = backend.clients.ml
    deployments_rec = backend.reconcilers()["deployment"]

    def takeable(tags: dict[str, Any] | None) -> bool:
        return owner_of(tags) in (owner, None)

    found: list[Found] = []
    used: dict[str, dict[str, str]] = {"model": {}, "environment": {}}
    computes: set[str] = set()
    for ep in sorted(ml.online_endpoints.list(), key=lambda e: e.name):
        if not takeable(ep.tags) or (endpoints and ep.name not in endpoints):
            continue
        compute = last_segment(getattr(ep, "compute", None))
        spec = drop_none({"auth_mode": identifier((ep.auth_mode or "key").lower()), "compute": compute,
                          "description": ep.description, "tags": user_tags(ep.tags) or None})
        found.append(Found("endpoint", ep.name, spec, owner_of(ep.tags)))
        computes |= {compute} if compute else set()
        chosen, deployments = live_names(deployments_rec, f"endpoint.{ep.name}", ep.name)
        raw = {d.name: json for d, json in list_deployments(deployments_rec, f"endpoint.{ep.name}", ep.name)}
        by_live = {d.name: d for d in deployments}
        for name, live in sorted(chosen.items()):
            d = by_live.get(live)
            if d is None or not takeable(d.tags):
                continue
            # the service's JSON too, as a plan reads it: the SDK entity truncates durations to whole seconds
            observed = deployments_rec._to_observed(f"deployment.{ep.name}/{name}", d, ALL_SETTINGS, raw.get(live))
            dspec = {k: v for k, v in observed.spec.items() if k != "engine"}  # Azure serves with azmlinfsrv only
            for key in SETTINGS:
                if isinstance(dspec.get(key), dict):
                    dspec[key] = drop_none(dspec[key])
            code = fetch_code(ml, d.code_configuration.code, dest / "code" / ep.name / name)
            found.append(Found("deployment", f"{ep.name}/{name}", dspec, owner_of(d.tags), {"code": code}))
            for kind, ref in (("model", d.model), ("environment", d.environment)):
                if (pair := asset_version(ref)) is not None:
                    used[kind][pair[0]] = pair[1]
        claims = {d.name.casefold(): (d.tags or {}).get(LABEL) or d.name for d in deployments}
        weights = live_to_manifest({k.casefold(): int(v) for k, v in (ep.traffic or {}).items()},
                                   {k: v.casefold() for k, v in chosen.items()}, claims)
        found.append(Found("traffic", ep.name, {"weights": weights}, owner_of(ep.tags)))
    found += _models(ml, dest, used["model"], takeable, everything=not endpoints)
    found += _environments(ml, dest, used["environment"], takeable, everything=not endpoints)
    ws_tags = dict(ml.workspaces.get(backend.settings.workspace).tags or {})
    for compute in ml.compute.list():
        who = ws_tags.get(COMPUTE_OWNER_TAG + compute.name)
        if str(compute.type).lower() != "kubernetes" or who not in (owner, None) or (
                endpoints and compute.name not in computes):
            continue
        rg, cluster = _parse_aks_id(getattr(compute, "resource_id", None))
        found.append(Found("compute", compute.name, {"type": "kubernetes", "namespace": compute.namespace,
                                                     "cluster": cluster, "cluster_resource_group": rg}, who))
    return found


def _chosen(operations: Any, name: str, version: str | None) -> Any:
    """The version a deployment uses, else the newest active one (None when all are archived: destroyed)."""
    if version:
        return operations.get(name=name, version=version)
    versions = list(operations.list(name=name))
    numeric = lambda a: (str(a.version).isdigit(), int(a.version) if str(a.version).isdigit() else 0)  # noqa: E731
    return max(versions, key=numeric) if versions else None


def _models(ml: Any, dest: Path, used: dict[str, str], takeable, everything: bool) -> list[Found]:
    out = []
    names = sorted({c.name for c in ml.models.list()} | set(used) if everything else used)
    for name in names:
        asset = _chosen(ml.models, name, used.get(name))
        if asset is None or not takeable(asset.tags):
            continue
        path = fetch_model(ml, name, str(asset.version), dest / "models" / name)
        spec = drop_none({"type": asset.type, "digest": digest_path(path), "description": asset.description})
        out.append(Found("model", name, spec, owner_of(asset.tags), {"path": path}))
    return out


def _environments(ml: Any, dest: Path, used: dict[str, str], takeable, everything: bool) -> list[Found]:
    out = []
    names = sorted({c.name for c in ml.environments.list()} | set(used) if everything else used)
    for name in names:
        env = _chosen(ml.environments, name, used.get(name))
        if env is None or not takeable(env.tags) or getattr(env, "build", None) is not None:
            continue  # a Docker build context is not read back: such an environment stays out of the export
        files = {}
        text = conda_text(env)
        if text is not None:
            files["conda_file"] = dest / "environments" / name / "conda.yaml"
            files["conda_file"].parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            files["conda_file"].write_text(text, encoding="utf-8")
        spec = drop_none({"image": env.image, "digest": environment_digest(env), "description": env.description})
        out.append(Found("environment", name, spec, owner_of(env.tags), files))
    return out
