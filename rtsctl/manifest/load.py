"""Read a manifest file into marked containers, then interpolate and validate it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rtsctl.errors import ManifestError

from .interpolate import interpolate
from .marks import MarkedDict, MarkedList
from .validate import validate


class _MarkedLoader(yaml.SafeLoader):
    """SafeLoader that builds MarkedDict/MarkedList with 1-based line numbers."""

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


@dataclass
class Manifest:
    path: Path
    data: dict[str, Any]
    display: str = ""

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve_path(self, relative: str) -> Path:
        """Paths in a manifest are relative to the manifest file."""
        return (self.base_dir / os.path.expanduser(relative)).resolve()


def parse_yaml(path: Path, file: str) -> MarkedDict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError("file not found", file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read: {exc}", file) from None
    loader = _MarkedLoader(text)
    loader.name = file
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise ManifestError(f"YAML syntax error: {problem}", file, mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    if data is None:
        raise ManifestError("the manifest is empty", file, 1)
    if not isinstance(data, MarkedDict):
        raise ManifestError("the manifest must be a mapping at the top level", file, 1)
    return data


def load_manifest(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Manifest:
    """Load, interpolate and validate; every failure is a ManifestError naming file:line."""
    display = str(path)
    manifest_path = Path(path).expanduser().absolute()
    data = parse_yaml(manifest_path, display)
    interpolate(data, os.environ if env is None else env, display)
    manifest = Manifest(manifest_path, data, display)
    validate(manifest, display)
    return manifest
