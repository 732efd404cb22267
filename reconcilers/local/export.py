"""`rtsctl export` on the local backend: the workspace's records read back, with the files they need copied.

A deployment's code is its snapshot (what runs, not the source folder it was taken from), a model's files are
the registered version's, an environment's conda file is the text its version recorded: so the exported
manifest's digests are the ones the records hold, and a plan of it compares equal.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rtsctl.rollout.successor import live_to_manifest

from ..base import Found
from .deployment import RECORD as DEPLOYMENT_RECORD
from .deployment import live_names
from .registry import _versions, find_version
from .routes import RECORD as ENDPOINT_RECORD
from .routes import read_routes
from .state import Layout, read_json


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)
    return target


def export(layout: Layout, dest: Path, owner: str, endpoints: Sequence[str] = ()) -> list[Found]:
    def takeable(record: dict[str, Any] | None) -> bool:
        return record is not None and record.get("owner") in (owner, None)

    found: list[Found] = []
    used: dict[str, dict[str, str]] = {"model": {}, "environment": {}, "compute": {}}
    root = layout.endpoints()
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        record = read_json(folder / ENDPOINT_RECORD)
        if not takeable(record) or "spec" not in record or (endpoints and folder.name not in endpoints):
            continue
        found.append(Found("endpoint", folder.name, record["spec"], record.get("owner")))
        if record["spec"].get("compute"):
            used["compute"][record["spec"]["compute"]] = ""
        chosen, claims = live_names(folder)
        for name, live in sorted(chosen.items()):
            dep = read_json(folder / "deployments" / live / DEPLOYMENT_RECORD)
            if not takeable(dep):
                continue
            spec = dep["spec"]
            code = _copy(Path(dep["code_dir"]), dest / "code" / folder.name / name)
            found.append(Found("deployment", f"{folder.name}/{name}", spec, dep.get("owner"), {"code": code}))
            used["model"][spec["model"]["name"]] = spec["model"]["digest"]
            if spec.get("environment"):
                used["environment"][spec["environment"]["name"]] = spec["environment"]["digest"]
        weights = live_to_manifest(read_routes(folder).get("traffic", {}), chosen, claims)
        found.append(Found("traffic", folder.name, {"weights": weights}, record.get("owner")))
    found += _models(layout, dest, used["model"], takeable, everything=not endpoints)
    found += _environments(layout, dest, used["environment"], takeable, everything=not endpoints)
    for path in sorted(layout.workspace.glob("computes/*.json")):
        record = read_json(path)
        if takeable(record) and (not endpoints or path.stem in used["compute"]):
            found.append(Found("compute", path.stem, record["spec"], record.get("owner")))
    return found


def _chosen_version(folder: Path, digest: str | None) -> tuple[int, dict[str, Any]] | None:
    """The version a deployment uses (by digest), else the newest."""
    versions = _versions(folder)
    return (find_version(folder, digest) if digest else None) or (versions[-1] if versions else None)


def _chosen(layout: Layout, kind: str, used: dict[str, str], takeable, everything: bool):
    """(name, version number, record) of each model or environment (`kind`) to export: the version a deployment
    uses, else the newest; every one in the workspace when `everything`, else only those `used`."""
    folder = layout.model if kind == "models" else layout.environment
    names = sorted({p.name for p in layout.workspace.glob(f"{kind}/*")} if everything else used)
    for name in names:
        chosen = _chosen_version(folder(name), used.get(name))
        if chosen is not None and takeable(chosen[1]):
            yield name, chosen[0], chosen[1]


def _models(layout: Layout, dest: Path, used: dict[str, str], takeable, everything: bool) -> list[Found]:
    out = []
    for name, version, record in _chosen(layout, "models", used, takeable, everything):
        entries = [p for p in (layout.model(name) / str(version)).iterdir() if p.name != "version.json"]
        if len(entries) != 1:
            continue  # not a version rtsctl stored (one file or folder beside its record)
        path = _copy(entries[0], dest / "models" / name / entries[0].name)
        out.append(Found("model", name, record["spec"], record.get("owner"), {"path": path}))
    return out


def _environments(layout: Layout, dest: Path, used: dict[str, str], takeable, everything: bool) -> list[Found]:
    out = []
    for name, _, record in _chosen(layout, "environments", used, takeable, everything):
        files = {}
        if record.get("conda_file") is not None:
            target = dest / "environments" / name / "conda.yaml"
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            target.write_text(record["conda_file"], encoding="utf-8")
            files["conda_file"] = target
        out.append(Found("environment", name, record["spec"], record.get("owner"), files))
    return out
