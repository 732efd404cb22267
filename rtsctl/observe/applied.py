"""What the last apply applied: spec digests (whole and per field) per resource address, per backend scope.

The world stays the state; this record only lets a plan tell *why* something differs. If the manifest's
spec for a resource still has the digest recorded when it was last applied, any change the plan finds was
made by the world (drift); otherwise the manifest moved (an edit). Digests only: a spec may hold
environment variables, and nothing secret belongs in RTSCTL_HOME. Kept under RTSCTL_HOME/applied/, one
file per scope (provider kind, subscription, resource group, workspace), so every manifest that drives the
same scope from this machine shares it. Losing it loses nothing but the labels (changes then read as edits).

A backend whose resources can carry it (Azure: a tag) also keeps the record on each resource, in `compact`
form (`Observed.applied`): then another machine -- a CI runner after a laptop's apply -- labels changes the
same way, and the resource's own record wins over this machine's, being the newer one whenever they differ.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rtsctl.desired.digest import digest_text
from rtsctl.support.home import home, write_json

MAX_BYTES = 4 * 1024 * 1024  # a record is ~100 bytes a resource; anything bigger is not ours


def spec_digest(spec: Mapping[str, Any]) -> str:
    return digest_text(json.dumps(spec, sort_keys=True, default=str))


def field_digest(value: Any) -> str:
    return digest_text(json.dumps(value, sort_keys=True, default=str))


def entry_for(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept per resource: the whole spec's digest and each top-level field's, so a plan can tell,
    field by field, whether the manifest moved (its digest changed) or the world did."""
    return {"spec": spec_digest(spec), "fields": {str(k): field_digest(v) for k, v in spec.items()}}


#: `compact` format: "1.<spec hex>.<field name hex><field value hex>..." within a cloud tag's 256 characters
_COMPACT_SPEC, _COMPACT_NAME, _COMPACT_VALUE, _COMPACT_MAX = 12, 3, 6, 256


def _hex(digest: str) -> str:
    return digest.split(":", 1)[-1]


def _name_mark(name: Any) -> str:
    return _hex(digest_text(str(name)))[:_COMPACT_NAME]


def compact(spec: Mapping[str, Any]) -> str:
    """What `entry_for(spec)` says, short enough for a resource tag, so the resource itself can carry what was
    last applied to it and every machine reads the same record. Prefixes of the digests: a collision costs a
    mislabelled change (drift for edit), never a wrong plan."""
    head = f"1.{_hex(spec_digest(spec))[:_COMPACT_SPEC]}"
    fields = [_name_mark(name) + _hex(field_digest(value))[:_COMPACT_VALUE]
              for name, value in sorted(spec.items(), key=lambda item: str(item[0]))]
    full = ".".join([head, *fields])
    return full if len(full) <= _COMPACT_MAX else head  # too many fields: the whole spec's digest alone


def expand(text: str, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """A `compact` record read back as an entry like `entry_for`'s, against the desired `spec`: a digest that
    matches stands as the spec's own, one that does not as a different one. None when not ours."""
    parts = str(text).split(".")
    if len(parts) < 2 or parts[0] != "1" or len(parts[1]) != _COMPACT_SPEC:
        return None
    whole = spec_digest(spec)
    stored = {p[:_COMPACT_NAME]: p[_COMPACT_NAME:] for p in parts[2:] if len(p) == _COMPACT_NAME + _COMPACT_VALUE}
    fields = {}
    for name, value in spec.items():
        mark = stored.get(_name_mark(name))
        if mark is not None:
            digest = field_digest(value)
            fields[str(name)] = digest if _hex(digest).startswith(mark) else f"other:{mark}"
    return {"spec": whole if _hex(whole).startswith(parts[1]) else f"other:{parts[1]}", "fields": fields}


def record_path(provider: Mapping[str, Any], resource_group: str, workspace: str) -> Path:
    scope = digest_text(str(provider.get("kind", "local")), str(provider.get("subscription_id", "")),
                        resource_group, workspace)
    return home() / "applied" / f"{scope.split(':', 1)[1][:24]}.json"


def carried(observed: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The records resources carry themselves (`Observed.applied`), as entries, by address."""
    out = {}
    for address, seen in observed.items():
        text, res = getattr(seen, "applied", None), desired.get(address)
        if text and res is not None and (entry := expand(text, res.spec)) is not None:
            out[address] = entry
    return out


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
