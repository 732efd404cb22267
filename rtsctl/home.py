"""RTSCTL_HOME (default ~/.rtsctl): where rtsctl keeps what it writes on this machine, and how it writes it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def home() -> Path:
    return Path(os.environ.get("RTSCTL_HOME") or Path.home() / ".rtsctl").expanduser()


def write_json(path: Path, data: dict[str, Any], mode: int = 0o600) -> None:
    """Write atomically (temp file + rename), so a reader never sees half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
