"""Compare desired and observed specs on the fields the manifest declares.

The observed spec is first projected onto the desired one's keys, so server defaults
and read-only fields never show as changes (the noise users hate in what-if and
`terraform plan`). deepdiff then lists what really differs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rtsctl.plan.normalize import Normalizer
from rtsctl.plan.normalize import apply as apply_normalizers

_MISSING = object()
_PATH_STEP = re.compile(r"\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]")


@dataclass(frozen=True)
class Change:
    path: str  # dotted, e.g. "request_settings.request_timeout_ms"
    old: Any
    new: Any
    forces_replacement: bool = False
    sensitive: bool = False
    #: what changed inside a digested value (files of a code folder, packages of an environment: rtsctl.plan.contents)
    detail: tuple[str, ...] = field(default=(), compare=False)


def project(observed: Any, desired: Any) -> Any:
    """`observed` cut down to the shape of `desired` (dict keys only; lists compared whole)."""
    if isinstance(desired, dict):
        if not isinstance(observed, dict):
            return observed
        return {k: project(observed[k], v) for k, v in desired.items() if k in observed}
    return observed


def diff_specs(desired: dict[str, Any], observed: dict[str, Any], immutable: frozenset[str] = frozenset(),
               sensitive: frozenset[str] = frozenset(),
               normalize: Mapping[str, Normalizer] | None = None) -> list[Change]:
    """The declared fields that differ, after both sides went through the reconciler's normalizers."""
    desired = apply_normalizers(desired, normalize or {})
    current = project(apply_normalizers(observed, normalize or {}), desired)
    if current == desired:  # the common case: converged, and no need to import deepdiff (numpy, pydantic)
        return []
    from deepdiff import DeepDiff

    report = DeepDiff(current, desired, ignore_order=False, verbose_level=2, ignore_numeric_type_changes=True)
    changes: dict[str, Change] = {}
    for kind, entries in report.items():
        for raw_path, detail in entries.items():
            path = _dotted(raw_path)
            if kind in ("dictionary_item_added", "iterable_item_added"):
                old, new = _MISSING, detail
            elif kind in ("dictionary_item_removed", "iterable_item_removed"):
                old, new = detail, _MISSING
            else:
                old, new = detail.get("old_value"), detail.get("new_value")
            changes[path] = Change(path, None if old is _MISSING else old, None if new is _MISSING else new,
                                   forces_replacement=matches(path, immutable), sensitive=matches(path, sensitive))
    return [changes[p] for p in sorted(changes)]


def _dotted(raw: str) -> str:
    return ".".join(m.group(1) if m.group(1) is not None else m.group(2) for m in _PATH_STEP.finditer(raw))


def matches(path: str, fields: frozenset[str]) -> bool:
    """`path` is one of `fields` or lies below one (dotted)."""
    return any(path == f or path.startswith(f + ".") for f in fields)
