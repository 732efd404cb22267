"""The last apply's step timings, per manifest and scope, for `rtsctl graph`.

The world is the state, so this is no state file: only how long each step took the last time an apply changed
something, kept under RTSCTL_HOME/applies/ in a file named by the manifest's absolute path and its scope (resource
group and workspace). Losing it loses nothing but the timings on the graph.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rtsctl.desired.digest import digest_text
from rtsctl.support.home import home, write_json
from rtsctl.manifest import Manifest


def _record_path(manifest: Manifest) -> Path:
    workspace = manifest.data.get("workspace") or {}
    key = digest_text(str(manifest.path), str(manifest.data.get("resource_group")), str(workspace.get("name")))
    return home() / "applies" / f"{key.split(':', 1)[1][:24]}.json"


def record_apply(manifest: Manifest, timing: dict[str, Any]) -> None:
    """Keep `timing` (the apply's step timings) as this manifest's last apply; best effort."""
    path = _record_path(manifest)
    doc = {"manifest": str(manifest.path), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **timing}
    try:
        write_json(path, doc)
    except OSError:
        pass  # timings are a convenience; an apply that worked is not failed by them


def last_apply(manifest: Manifest) -> dict[str, Any] | None:
    """The last recorded apply of this manifest in its scope, or None."""
    try:
        doc = json.loads(_record_path(manifest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("steps"), dict):
        return None
    doc["steps"] = {str(a): float(t) for a, t in doc["steps"].items() if isinstance(t, (int, float))}
    return doc
