"""environment.<name> on the local backend: a registered version plus a real Python environment.

The version is chosen by content as for models; creating it materializes the conda file into an
isolated environment with uv (envs.py), shared through the cache by every version and workspace with
the same requirements. A registered version whose environment is missing from the cache (the cache
was cleared, RTSCTL_ENV_CACHE moved) is health drift: plan shows it, apply rebuilds it.
Deleting the environment deletes the version record only; the cache is shared and kept.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rtsctl.support.errors import ResourceError
from rtsctl.desired.resources import Observed, Resource

from . import envs
from .registry import _RegistryReconciler
from .state import write_json


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


class EnvironmentReconciler(_RegistryReconciler):
    kind = "environment"

    def folder(self, res: Resource) -> Path:
        return self.layout.environment(res.name)

    def _spec(self, res: Resource) -> envs.EnvSpec:
        conda: Path | None = res.inputs.get("conda_file")
        if conda is None:
            return envs.EnvSpec()
        try:
            return envs.parse_conda(conda.read_text(encoding="utf-8"), f"conda_file {_display(conda)}")
        except envs.EnvBuildError as exc:
            raise ResourceError(res.address, str(exc)) from None

    def observe(self, res: Resource) -> Observed | None:
        observed = super().observe(res)
        if observed is None or observed.spec.get("digest") != res.spec.get("digest"):
            return observed
        try:
            spec = self._spec(res)
        except ResourceError:
            return observed                   # create() reports it; observe only reads
        if envs.built(spec) is None:
            observed.problems.append(f"its local Python environment is not built ({envs.cache_root() / spec.key})")
        return observed

    def create(self, res: Resource) -> None:
        spec = self._spec(res)

        def progress(line: str) -> None:
            print(f"{res.address}: {line}", file=sys.stderr, flush=True)

        try:
            envs.ensure(spec, progress)
        except envs.EnvBuildError as exc:
            conda = res.inputs.get("conda_file")
            raise ResourceError(res.address, f"conda_file {_display(conda)}: {exc}" if conda else str(exc)) from None
        super().create(res)

    def store(self, res: Resource, folder: Path, number: int, record: dict) -> None:
        conda = res.inputs.get("conda_file")
        record["conda_file"] = conda.read_text(encoding="utf-8") if conda else None
        write_json(self.record_file(folder, number), record)

    def record_file(self, folder: Path, number: int) -> Path:
        return folder / f"{number}.json"
