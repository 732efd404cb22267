"""The loaded manifest: its data (marked containers), where it lives, and its identity."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Manifest:
    path: Path
    data: dict[str, Any]
    display: str = ""
    notes: list[str] = field(default_factory=list)   # what `validate` says without refusing (file:line: ...)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        """The manifest's identity: `name:`, else the file's stem (validated as a name either way)."""
        declared = self.data.get("name") if isinstance(self.data, dict) else None
        return str(declared) if declared else self.path.stem

    def resolve_path(self, relative: str) -> Path:
        """Paths in a manifest are relative to the manifest file."""
        return (self.base_dir / os.path.expanduser(relative)).resolve()
