"""`${VAR}` and `${VAR:-default}` from the environment; `$${` writes a literal `${`; a default may read
variables itself (`${RTSCTL_ENDPOINT:-rts-score-${RTSCTL_UNIQUE_SUFFIX}}`).

RTSCTL_UNIQUE_SUFFIX, unless set, is derived (see `unique_suffix`) for names that must be unique across
all of Azure, like Bicep's `uniqueString(subscription().subscriptionId, resourceGroup().name)`.

Where values come from, highest first: `--var KEY=VALUE`, `--var-file FILE` (merged into `env` by
rtsctl/manifest/variables.py), the process environment, then the manifest's own `:-default`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rtsctl.support.errors import ManifestError

from rtsctl.manifest import limits
from rtsctl.manifest.marks import MarkedDict, MarkedList, field_path

UNIQUE_SUFFIX = "RTSCTL_UNIQUE_SUFFIX"


def unique_suffix(data: Any, env: Mapping[str, str]) -> str | None:
    """8 hex characters, the same for every run against one subscription and resource group, different for
    another: online endpoint names are unique per Azure region across all customers, so a shipped manifest
    cannot name one that every user would collide on. None while the inputs are unknown (unset variables)."""
    import copy
    import hashlib

    if not isinstance(data, dict) or not isinstance(data.get("provider"), dict):
        return None
    parts = []
    for value in (data["provider"].get("subscription_id"), data.get("resource_group")):
        if not isinstance(value, str):
            return None
        seen: list[ManifestError] = []
        resolved = _substitute(copy.copy(value), {k: v for k, v in env.items() if k != UNIQUE_SUFFIX}, "", [], None,
                               seen)
        if seen or not resolved:
            return None
        parts.append(resolved.strip().lower())
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]


def interpolate(node: Any, env: Mapping[str, str], file: str, path: list[str | int] | None = None,
                line: int | None = None, unset: list[ManifestError] | None = None) -> Any:
    """Substitute variables in every string below `node`, in place for marked containers.

    With `unset` given (validate), a missing variable is recorded there and replaced by an empty
    string instead of stopping the load: validate runs without the provider's variables.
    """
    path = path or []
    if isinstance(node, MarkedDict):
        for key in list(node):
            node[key] = interpolate(node[key], env, file, path + [key], node.key_lines.get(key, line), unset)
        return node
    if isinstance(node, MarkedList):
        for i, item in enumerate(node):
            node[i] = interpolate(item, env, file, path + [i], node.item_lines[i] if i < len(node.item_lines) else line,
                                  unset)
        return node
    if isinstance(node, str) and "$" in node:
        return _substitute(node, env, file, path, line, unset)
    return node


def _substitute(text: str, env: Mapping[str, str], file: str, path: list[str | int], line: int | None,
                unset: list[ManifestError] | None) -> str:
    def lookup(name: str, default: str | None, level: int) -> str:
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                error = ManifestError(f"variable {name} is not set (set it in the environment, pass --var {name}=..., "
                                      f"or write ${{{name}:-default}})", file, line, field_path(path))
                if unset is None:
                    raise error
                unset.append(error)
                return ""
            return expand(default, level + 1)  # a default may itself read variables: ${A:-x-${B}}
        return value

    def expand(part: str, level: int) -> str:
        if level > _MAX_NESTING:
            raise ManifestError(f"variables nested deeper than {_MAX_NESTING} levels", file, line, field_path(path))
        out, i = [], 0
        while i < len(part):
            if part.startswith("$${", i):
                out.append("${")
                i += 3
                continue
            match = _OPEN.match(part, i)
            if match is None:
                out.append(part[i])
                i += 1
                continue
            name, end = match.group(1), _closing(part, match.end())
            if end < 0:  # no closing brace: written as is, like any other text
                out.append(part[i:])
                break
            body = part[match.end():end]
            if body and not body.startswith(":-"):
                out.append(part[i:end + 1])  # `${NAME junk}` is not a reference
            else:
                out.append(lookup(name, body[2:] if body else None, level))
            i = end + 1
        return "".join(out)

    result = expand(text, 0)
    if len(result) > limits.SCALAR_CHARS:
        raise ManifestError(f"is {len(result)} characters after substituting variables; the limit is "
                            f"{limits.SCALAR_CHARS}", file, line, field_path(path))
    return result


_OPEN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
_MAX_NESTING = 4


def _closing(text: str, start: int) -> int:
    """Index of the `}` closing a reference whose name ends at `start`; nested `${` open their own."""
    level = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            level += 1
            i += 2
            continue
        if text[i] == "}":
            level -= 1
            if level == 0:
                return i
        i += 1
    return -1
