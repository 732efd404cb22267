"""YAML text -> containers that remember their file:line (rtsctl.manifest.marks), within bounds.

The loader is bounded before anything is built: file size, nesting depth, alias uses, and the number of nodes
after alias expansion (a "billion laughs" document is refused while it is composed, in milliseconds, not after it
has eaten the memory). Recursive aliases and numbers too long to parse are refused too, each with file:line.
Manifests, conda files and --var-files all come through here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rtsctl.support.errors import ManifestError

from rtsctl.manifest import files, limits
from rtsctl.manifest.marks import MarkedDict, MarkedList


class _MarkedLoader(yaml.SafeLoader):
    """SafeLoader that builds MarkedDict/MarkedList with 1-based line numbers, within limits."""

    def __init__(self, text: str, name: str):
        super().__init__(text)
        self.name = name
        self._depth = 0
        self._aliases = 0
        self._nodes = 0                      # nodes so far, aliases counted as what they expand to
        self._weight: dict[int, int] = {}    # id(node) -> nodes below it, expanded
        self._open_anchors: set[str] = set()

    def _fail(self, message: str, mark: Any) -> None:
        raise ManifestError(message, self.name, mark.line + 1 if mark else None)

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > limits.YAML_ALIASES:
                self._fail(f"more than {limits.YAML_ALIASES} YAML aliases (*name); write the values out", event.start_mark)
            if event.anchor in self._open_anchors:
                self._fail(f"recursive YAML alias *{event.anchor} (it refers to a value that contains it)",
                           event.start_mark)
            node = super().compose_node(parent, index)
            self._count(self._weight.get(id(node), 1), event.start_mark)
            return node
        self._depth += 1
        if self._depth > limits.YAML_DEPTH:
            self._fail(f"nested deeper than {limits.YAML_DEPTH} levels", event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor:
            self._open_anchors.add(anchor)
        before = self._nodes
        # a scalar weighs 1 + its size in KiB, so aliasing one long string 200 times is counted as what it expands to
        self._count(1 + len(getattr(event, "value", "") or "") // 1024, event.start_mark)
        node = super().compose_node(parent, index)
        self._weight[id(node)] = self._nodes - before
        if anchor:
            self._open_anchors.discard(anchor)
        self._depth -= 1
        return node

    def _count(self, nodes: int, mark: Any) -> None:
        self._nodes += nodes
        if self._nodes > limits.YAML_NODES:
            self._fail(f"the document expands to more than {limits.YAML_NODES} values (a manifest needs a few hundred; "
                       "YAML aliases count as what they repeat: an alias bomb?)", mark)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:  # type: ignore[override]
        """A scalar PyYAML cannot build (`2024-13-45`, `!!float abc`) is a YAML error at its line, not a crash."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError, AttributeError) as exc:  # `!!timestamp 1`: AttributeError
            raise yaml.constructor.ConstructorError(None, None, f"invalid value {getattr(node, 'value', '')!r:.60}: "
                                                    f"{exc}", node.start_mark) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:  # type: ignore[override]
        if len(node.value) > limits.INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"a number written with {len(node.value)} characters (limit {limits.INT_DIGITS})",
                node.start_mark)
        return super().construct_yaml_int(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> MarkedDict:  # type: ignore[override]
        self.flatten_mapping(node)
        result = MarkedDict()
        result.line = node.start_mark.line + 1
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            if key in result:
                raise ManifestError(f"duplicate key {key!r}", self.name, key_node.start_mark.line + 1, key)
            result[key] = self.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> MarkedList:  # type: ignore[override]
        result = MarkedList(self.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        result.item_lines = [child.start_mark.line + 1 for child in node.value]
        return result


_MarkedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _MarkedLoader.construct_mapping)
_MarkedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _MarkedLoader.construct_sequence)
_MarkedLoader.add_constructor("tag:yaml.org,2002:int", _MarkedLoader.construct_yaml_int)


def parse_yaml_text(text: str, file: str) -> Any:
    """YAML text -> marked containers (or a scalar), within the loader's limits; errors name file:line."""
    loader = None
    try:
        loader = _MarkedLoader(text, file)  # the reader refuses control characters here, before any parsing
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if problem.startswith("but ") and exc.context:
            problem = f"{exc.context}, {problem}"
        raise ManifestError(f"YAML syntax error: {problem}", file, mark.line + 1 if mark else 1) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise ManifestError(f"YAML cannot contain the character {char!r}", file, line) from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"YAML error: {str(exc).splitlines()[0]}", file, 1) from None
    except RecursionError:  # the depth limit should make this unreachable; never a traceback
        raise ManifestError(f"nested too deeply (limit {limits.YAML_DEPTH})", file, 1) from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml_file(path: Path, file: str, max_bytes: int = limits.MANIFEST_BYTES) -> Any:
    try:
        text = files.read_text(path, max_bytes)
    except files.FileProblem as exc:
        message = str(exc).removesuffix(f" ({path})")
        if message.startswith("not found"):
            raise ManifestError("file not found", file) from None
        raise ManifestError(message, file, 1) from None
    return parse_yaml_text(text, file)
