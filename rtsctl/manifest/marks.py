"""Containers that remember the source line of each key or item."""

from __future__ import annotations

from typing import Any


class MarkedDict(dict):
    """A dict that knows its own line and the line of each key."""

    line: int | None = None
    key_lines: dict[str, int]

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.key_lines = {}


class MarkedList(list):
    """A list that knows its own line and the line of each item."""

    line: int | None = None
    item_lines: list[int]

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.item_lines = []


def line_of(root: Any, path: list[str | int]) -> int | None:
    """The line of the value at `path` below `root`, or of its nearest marked ancestor."""
    node, best = root, getattr(root, "line", None)
    for step in path:
        if isinstance(node, MarkedDict) and step in node:
            best = node.key_lines.get(step, best)
            node = node[step]
        elif isinstance(node, MarkedList) and isinstance(step, int) and 0 <= step < len(node):
            best = node.item_lines[step] if step < len(node.item_lines) else best
            node = node[step]
        else:
            break
        best = getattr(node, "line", None) if isinstance(node, (MarkedDict, MarkedList)) and best is None else best
    return best


def field_path(path: list[str | int]) -> str:
    """`['endpoints', 0, 'traffic']` -> `endpoints[0].traffic`; odd keys quoted (`environment_variables['A B']`).

    Keys come from the user's file: a newline or a NUL in one must not break the one-line error.
    """
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif step and step.isprintable() and not any(c in step for c in " .[]'\""):
            out += f".{step}" if out else step
        else:
            out += f"[{str(step)!r}]"
    return out
