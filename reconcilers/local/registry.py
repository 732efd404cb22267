"""Model and environment registries (the environment reconciler lives in environment.py): versions are immutable and chosen by content.

Registering the same bytes again finds the existing version; new bytes get the next
integer version, as Azure ML numbers asset versions.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rtsctl.desired.digest import current
from rtsctl.desired.resources import Observed, Resource

from ..base import Reconciler
from .state import Layout, private_copy, private_dir, read_json, write_json


def _versions(folder: Path) -> list[tuple[int, dict]]:
    out = []
    for entry in folder.glob("*"):
        stem = entry.name.split(".", 1)[0]
        record = read_json(entry / "version.json" if entry.is_dir() else entry)
        if stem.isdigit() and record is not None:
            out.append((int(stem), record))
    return sorted(out, key=lambda v: v[0])


def find_version(folder: Path, digest: str) -> tuple[int, dict] | None:
    return next(((n, r) for n, r in _versions(folder) if r["spec"].get("digest") == digest), None)


class _RegistryReconciler(Reconciler):
    def __init__(self, layout: Layout):
        self.layout = layout

    def folder(self, res: Resource) -> Path:
        raise NotImplementedError

    def observe(self, res: Resource) -> Observed | None:
        folder = self.folder(res)
        versions = _versions(folder)
        if not versions:
            return None
        aliases = res.inputs.get("digest_aliases") or []
        number, record = next((found for digest in [res.spec["digest"], *aliases]
                               if (found := find_version(folder, digest))), versions[-1])
        spec = {**record["spec"], "digest": current(record["spec"].get("digest"), res.spec["digest"], aliases)}
        return Observed(res.address, spec, owned=record.get("managed_by") == "rtsctl",
                        outputs={"version": str(number)}, handle=folder, owner=record.get("owner"))

    def create(self, res: Resource) -> None:
        folder = self.folder(res)
        if find_version(folder, res.spec["digest"]):
            return
        number = (_versions(folder)[-1][0] + 1) if _versions(folder) else 1
        self.store(res, folder, number, self.layout.mark({"spec": res.spec}))

    def claim(self, res: Resource, observed: Observed) -> None:
        """Every version of the name becomes this manifest's (destroy removes the name with all of them)."""
        for number, record in _versions(self.folder(res)):
            write_json(self.record_file(self.folder(res), number), self.layout.mark(record))

    def store(self, res: Resource, folder: Path, number: int, record: dict) -> None:
        raise NotImplementedError

    def record_file(self, folder: Path, number: int) -> Path:
        raise NotImplementedError

    def delete(self, observed: Observed) -> None:
        shutil.rmtree(observed.handle, ignore_errors=True)


class ModelReconciler(_RegistryReconciler):
    kind = "model"

    def folder(self, res: Resource) -> Path:
        return self.layout.model(res.name)

    def store(self, res: Resource, folder: Path, number: int, record: dict) -> None:
        source: Path = res.inputs["path"]
        target = folder / str(number)
        staging = folder / f".{number}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            private_dir(staging)
            # As on Azure ML, AZUREML_MODEL_DIR holds the registered file or folder by its own name; 0600 whatever
            # the source's mode, so no other user of this machine reads the model.
            private_copy(source, staging / source.name, f"model {res.name}")
            write_json(staging / "version.json", record, what=f"record of model {res.name}")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)   # a full disk leaves no half-copied model behind
            raise
        staging.rename(target)

    def record_file(self, folder: Path, number: int) -> Path:
        return folder / str(number) / "version.json"


def model_dir(layout: Layout, name: str, digest: str) -> Path | None:
    """The folder of the model version holding `digest` (what AZUREML_MODEL_DIR points at)."""
    found = find_version(layout.model(name), digest)
    return layout.model(name) / str(found[0]) if found else None
