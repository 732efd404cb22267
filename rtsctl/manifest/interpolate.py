"""`${VAR}` and `${VAR:-default}` from the environment; `$${` writes a literal `${`.

Where values come from, highest first: `--var KEY=VALUE`, `--var-file FILE` (merged into `env` by
rtsctl/variables.py), the process environment, then the manifest's own `:-default`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rtsctl.errors import ManifestError

from . import limits
from .marks import MarkedDict, MarkedList, field_path

_PATTERN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


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
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                error = ManifestError(f"variable {name} is not set (set it in the environment, pass --var {name}=..., "
                                      f"or write ${{{name}:-default}})", file, line, field_path(path))
                if unset is None:
                    raise error
                unset.append(error)
                return ""
            return default
        return value

    result = _PATTERN.sub(replace, text)
    if len(result) > limits.SCALAR_CHARS:
        raise ManifestError(f"is {len(result)} characters after substituting variables; the limit is "
                            f"{limits.SCALAR_CHARS}", file, line, field_path(path))
    return result
