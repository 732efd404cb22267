"""Read a manifest file into marked containers (rtsctl.manifest.parse, bounded), then interpolate and validate it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from rtsctl.support.errors import ManifestError

from rtsctl.manifest.interpolate import UNIQUE_SUFFIX, interpolate, unique_suffix
from rtsctl.manifest.marks import MarkedDict
from rtsctl.manifest.model import Manifest
from rtsctl.manifest.parse import read_yaml_file
from rtsctl.manifest.validate import check


def parse_yaml(path: Path, file: str) -> MarkedDict:
    data = read_yaml_file(path, file)
    if data is None:
        raise ManifestError("the manifest is empty", file, 1)
    if not isinstance(data, MarkedDict):
        raise ManifestError("the manifest must be a mapping at the top level", file, 1)
    return data


def _read(path: str | os.PathLike[str], env: Mapping[str, str] | None,
          unset: list[ManifestError] | None) -> Manifest:
    display = str(path)
    manifest_path = Path(path).expanduser().absolute()
    data = parse_yaml(manifest_path, display)
    env = os.environ if env is None else env
    if UNIQUE_SUFFIX not in env and (suffix := unique_suffix(data, env)):
        env = {**env, UNIQUE_SUFFIX: suffix}
    interpolate(data, env, display, unset=unset)
    if unset is not None and UNIQUE_SUFFIX not in env:
        _derived_later(unset)
    return Manifest(manifest_path, data, display)


def _derived_later(unset: list[ManifestError]) -> None:
    """RTSCTL_UNIQUE_SUFFIX is rtsctl's to derive, never the user's to set: while what it is derived from is unset
    (validate without a subscription), say that, rather than ask for the suffix."""
    waiting = sorted({e.reason.split()[1] for e in unset if e.reason.startswith("variable ")} - {UNIQUE_SUFFIX})
    for i, error in enumerate(unset):
        if error.reason.startswith(f"variable {UNIQUE_SUFFIX} "):
            unset[i] = ManifestError(f"uses {UNIQUE_SUFFIX}, which rtsctl derives from provider.subscription_id and "
                                     f"resource_group" + (f" once {', '.join(waiting)} is set" if waiting else ""),
                                     error.file, error.line, error.field)


def load_manifest(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Manifest:
    """Load, interpolate and validate; the first failure (in file order) is a ManifestError naming file:line."""
    manifest = _read(path, env, None)
    errors = check(manifest, manifest.display)
    if errors:
        raise errors[0]
    return manifest


def check_manifest(path: str | os.PathLike[str], env: Mapping[str, str] | None = None
                   ) -> tuple[Manifest | None, list[ManifestError], list[ManifestError]]:
    """Every error at once, for `validate`: (manifest or None, errors, unset variables).

    Unset variables are reported apart and are not errors: validate needs no provider variables.
    Values that depend on an unset variable are not judged.
    """
    unset: list[ManifestError] = []
    try:
        manifest = _read(path, env, unset)
    except ManifestError as exc:  # the file cannot be read or parsed: nothing more to check
        return None, [exc], unset
    skip = [e.field for e in unset if e.field]
    errors = [e for e in check(manifest, manifest.display)
              if not (e.field and any(e.field == s or e.field.startswith((s + ".", s + "[")) for s in skip))]
    return manifest, errors, unset
