"""`${VAR}` and `${VAR:-default}` from the environment; `$${` writes a literal `${`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rtsctl.errors import ManifestError

from .marks import MarkedDict, MarkedList, field_path

_PATTERN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def interpolate(node: Any, env: Mapping[str, str], file: str, path: list[str | int] | None = None,
                line: int | None = None) -> Any:
    """Substitute variables in every string below `node`, in place for marked containers."""
    path = path or []
    if isinstance(node, MarkedDict):
        for key in list(node):
            node[key] = interpolate(node[key], env, file, path + [key], node.key_lines.get(key, line))
        return node
    if isinstance(node, MarkedList):
        for i, item in enumerate(node):
            node[i] = interpolate(item, env, file, path + [i], node.item_lines[i] if i < len(node.item_lines) else line)
        return node
    if isinstance(node, str) and "$" in node:
        return _substitute(node, env, file, path, line)
    return node


def _substitute(text: str, env: Mapping[str, str], file: str, path: list[str | int], line: int | None) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise ManifestError(f"environment variable {name} is not set (write ${{{name}:-default}} to give a default)",
                                    file, line, field_path(path))
            return default
        return value

    return _PATTERN.sub(replace, text)
