"""What the last apply applied: spec digests (whole and per field) per resource address, per backend scope.

The world stays the state; this record only lets a plan tell *why* something differs. If the manifest's
spec for a resource still has the digest recorded when it was last applied, any change the plan finds was
made by the world (drift); otherwise the manifest moved (an edit). Digests only: a spec may hold
environment variables, and nothing secret belongs in RTSCTL_HOME. Kept under RTSCTL_HOME/applied/, one
file per scope (provider kind, subscription, resource group, workspace), so every manifest that drives the
same scope from this machine shares it. Losing it loses nothing but the labels (changes then read as edits).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .digest import digest_text
from .home import home, write_json

MAX_BYTES = 4 * 1024 * 1024  # a record is ~100 bytes a resource; anything bigger is not ours


def spec_digest(spec: Mapping[str, Any]) -> str:
    return digest_text(json.dumps(spec, sort_keys=True, default=str))


def field_digest(value: Any) -> str:
    return digest_text(json.dumps(value, sort_keys=True, default=str))


def entry_for(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept per resource: the whole spec's digest and each top-level field's, so a plan can tell,
    field by field, whether the manifest moved (its digest changed) or the world did."""
    return {"spec": spec_digest(spec), "fields": {str(k): field_digest(v) for k, v in spec.items()}}


def record_path(provider: Mapping[str, Any], resource_group: str, workspace: str) -> Path:
    scope = digest_text(str(provider.get("kind", "local")), str(provider.get("subscription_id", "")),
                        resource_group, workspace)
    return home() / "applied" / f"{scope.split(':', 1)[1][:24]}.json"


def read_record(path: Path) -> dict[str, dict[str, Any]]:
    """address -> {"spec": digest, "fields": {field: digest}}; empty when absent, unreadable or not ours."""
    try:
        if path.stat().st_size > MAX_BYTES:
            return {}
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    resources = doc.get("resources") if isinstance(doc, dict) else None
    if not isinstance(resources, dict):
        return {}
    return {str(k): v for k, v in resources.items()
            if isinstance(v, dict) and isinstance(v.get("spec"), str) and isinstance(v.get("fields"), dict)}


def update_record(path: Path, applied: Mapping[str, Mapping[str, Any]], deleted: Iterable[str]) -> None:
    """Record the specs just applied (address -> spec) and forget the deleted addresses; atomic."""
    record = read_record(path)
    record.update({address: entry_for(spec) for address, spec in applied.items()})
    for address in deleted:
        record.pop(address, None)
    write_json(path, {"format": 1, "resources": record})
