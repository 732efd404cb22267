"""Named normalizers: how a service rewrites a value it stores, so the diff compares like with like.

A reconciler declares them as data, per spec field, beside `immutable` (`normalize = {"location":
location}`); the diff passes both the desired and the observed value through the field's normalizer
before comparing. Without them a value the service merely spelled differently (a lower-cased extension
type, "West Europe" for "westeurope") would plan a change on every run -- or, on an immutable field,
a replacement of everything built on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Normalizer = Callable[[Any], Any]


def casefold(value: Any) -> Any:
    """Case-insensitive strings (ARM resource types and ids, enum values the service re-cases)."""
    return value.casefold() if isinstance(value, str) else value


def location(value: Any) -> Any:
    """ARM locations: 'West Europe' and 'westeurope' are one region (ARM answers the short form)."""
    return value.replace(" ", "").casefold() if isinstance(value, str) else value


def identifier(value: Any) -> Any:
    """Case- and separator-insensitive enum values: 'aml_token', 'AMLToken', 'amltoken'."""
    return value.replace("_", "").casefold() if isinstance(value, str) else value


def traffic_weights(value: Any) -> Any:
    """A traffic map as the service keeps it: deployment names lower-cased, integer shares, zero
    entries dropped (azure-ai-ml lower-cases the keys; the service omits deployments at 0)."""
    if not isinstance(value, Mapping):
        return value
    return {str(k).casefold(): int(v) for k, v in value.items() if int(v or 0)}


def setting_strings(value: Any) -> Any:
    """Extension configuration settings: the service stores every value as a string, and booleans come
    back as written ('True', 'true'); compare as lower-cased strings."""
    if not isinstance(value, Mapping):
        return value
    return {str(k): _setting(v) for k, v in value.items()}


def _setting(v: Any) -> str:
    text = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return text.casefold() if text.casefold() in ("true", "false") else text


def apply(spec: dict[str, Any], rules: Mapping[str, Normalizer]) -> dict[str, Any]:
    """`spec` with each field named in `rules` (a top-level key or a dotted path) normalized; a copy."""
    if not rules:
        return spec
    out = _copy(spec)
    for path, fn in rules.items():
        parts = path.split(".")
        node: Any = out
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and parts[-1] in node:
            node[parts[-1]] = fn(node[parts[-1]])
    return out


def _copy(value: Any) -> Any:
    return {k: _copy(v) for k, v in value.items()} if isinstance(value, dict) else value
