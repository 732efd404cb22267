"""What changed inside a code folder or a conda file, for the plan, instead of two sha256 digests.

A deployment's spec carries its code folder's digest and an environment's spec its definition's digest: enough to
know *that* something changed, not *what*. So every plan keeps, content-addressed by that digest, a small snapshot
of what it saw under RTSCTL_HOME/contents/ (per file: a digest, and its text when it is small UTF-8 text; for an
environment: its conda file's packages). When the live digest differs from the manifest's, the plan looks up the
live one's snapshot and shows the files that differ with their line counts, or the packages added, removed or
changed. A live version this machine never planned (made elsewhere) is said to be unknown, digests shown.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rtsctl.desired.digest import _files
from rtsctl.support.home import StorageError, home, write_json

TEXT_BYTES = 256 * 1024         # a file kept as text for line counts (scoring scripts are far smaller)
SNAPSHOT_BYTES = 4 * 1024 * 1024  # all the text of one snapshot
KEEP = 200                      # snapshots kept; the oldest go first
SHOWN = 20                      # files or packages listed per change; the rest are counted


def _folder() -> Path:
    return home() / "contents"


def _path(digest: str) -> Path:
    return _folder() / f"{digest.split(':', 1)[-1][:32]}.json"


def _read(digest: str) -> dict[str, Any] | None:
    path = _path(digest)
    try:
        if path.stat().st_size > 2 * SNAPSHOT_BYTES:
            return None
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("digest") == digest else None


def _store(digest: str, doc: dict[str, Any]) -> None:
    if _path(digest).exists():
        return
    _folder().mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds the text of scoring scripts
    write_json(_path(digest), {**doc, "digest": digest})
    snapshots = sorted(_folder().glob("*.json"), key=lambda p: p.stat().st_mtime)
    for old in snapshots[:-KEEP]:
        old.unlink(missing_ok=True)


def snapshot_code(digest: str, folder: Path) -> None:
    """Keep what `folder` (whose digest is `digest`) holds, once per digest."""
    if _path(digest).exists() or not folder.exists():
        return
    files: dict[str, Any] = {}
    budget = SNAPSHOT_BYTES
    for file in _files(folder):
        rel = file.name if file == folder else file.relative_to(folder).as_posix()
        data = file.read_bytes() if file.stat().st_size <= TEXT_BYTES else None
        if data is None:
            with open(file, "rb") as handle:
                files[rel] = {"sha": hashlib.file_digest(handle, "sha256").hexdigest()}
            continue
        entry: dict[str, Any] = {"sha": hashlib.sha256(data).hexdigest()}
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and len(data) <= budget:
            entry["text"] = text
            budget -= len(data)
        files[rel] = entry
    _store(digest, {"kind": "code", "files": files})


def snapshot_environment(digest: str, conda_file: Path | None, image: str | None) -> None:
    if _path(digest).exists():
        return
    packages = packages_of(conda_file.read_text()) if conda_file is not None and conda_file.exists() else {}
    _store(digest, {"kind": "environment", "packages": packages, "image": image})


def packages_of(conda_text: str) -> dict[str, str]:
    """A conda file's packages: "conda NAME" / "pip NAME" -> the version spec as written (may be "")."""
    import yaml

    try:
        doc = yaml.safe_load(conda_text)
    except yaml.YAMLError:
        return {}
    out: dict[str, str] = {}

    def add(kind: str, spec: Any) -> None:
        found = re.match(r"\s*([A-Za-z0-9_.\-]+(?:\[[^\]]*\])?)\s*(.*)", str(spec))
        if found and not str(spec).lstrip().startswith("-"):
            out[f"{kind} {found.group(1).lower().replace('_', '-')}"] = found.group(2).strip()

    for dep in (doc or {}).get("dependencies") or [] if isinstance(doc, dict) else []:
        if isinstance(dep, dict):
            for spec in dep.get("pip") or []:
                add("pip", spec)
        else:
            add("conda", dep)
    return out


def code_lines(old_digest: str, new_digest: str) -> list[str]:
    """The files that differ between two snapshots of a code folder, with line counts; [] when one is unknown."""
    old, new = _read(old_digest), _read(new_digest)
    if old is None or new is None:
        return []
    before, after = old.get("files") or {}, new.get("files") or {}
    out = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a is not None and b is not None and a.get("sha") == b.get("sha"):
            continue
        if a is None:
            out.append(f"+ {name}" + _count(None, b))
        elif b is None:
            out.append(f"- {name}" + _count(a, None))
        else:
            out.append(f"~ {name}" + _count(a, b))
    return _bounded(out, "files")


def _count(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    """`(+x -y lines)` from the texts kept, else `(binary or large)`."""
    texts = [None if e is None else e.get("text") for e in (a, b)]
    if (a is not None and texts[0] is None) or (b is not None and texts[1] is None):
        return " (binary or large: content changed)"
    old_lines = (texts[0] or "").splitlines()
    new_lines = (texts[1] or "").splitlines()
    added = removed = 0
    for line in difflib.unified_diff(old_lines, new_lines, lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return f" (+{added} -{removed} lines)"


def environment_lines(old_digest: str, new_digest: str) -> list[str]:
    """The packages added, removed or changed between two snapshots of an environment; [] when one is unknown."""
    old, new = _read(old_digest), _read(new_digest)
    if old is None or new is None:
        return []
    before, after = old.get("packages") or {}, new.get("packages") or {}
    out = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        if a is None:
            out.append(f"+ {name}{b}")
        elif b is None:
            out.append(f"- {name}{a}")
        else:
            out.append(f"~ {name}: {a or '(any)'} -> {b or '(any)'}")
    if not out and old.get("image") != new.get("image"):
        out.append("~ image")
    return _bounded(out, "packages") or ["(no package changed: other lines of the conda file or the build context)"]


def _bounded(lines: list[str], what: str) -> list[str]:
    return lines if len(lines) <= SHOWN else lines[:SHOWN] + [f"... and {len(lines) - SHOWN} more {what}"]


def snapshot_all(resources: Iterable[Any]) -> None:
    """Keep what every deployment's code and every environment in `resources` holds now (once per digest)."""
    for res in resources:
        try:
            if res.kind == "deployment" and res.inputs.get("code_path") is not None:
                snapshot_code(res.spec["code"]["digest"], Path(res.inputs["code_path"]))
            elif res.kind == "environment":
                conda = res.inputs.get("conda_file")
                snapshot_environment(res.spec["digest"], Path(conda) if conda else None, res.spec.get("image"))
        except (OSError, StorageError):
            continue  # a snapshot is a convenience (a full disk must not stop a plan): it falls back to the digests


#: digested fields whose change is shown as what changed inside: (kind, change path) -> describer
DESCRIBED = {("deployment", "code.digest"): code_lines, ("environment", "digest"): environment_lines,
             ("deployment", "environment.digest"): environment_lines}


def explain(actions: Iterable[Any]) -> None:
    """Give each digest change of `actions` the lines saying what changed inside (rtsctl.plan.diff.Change.detail)."""
    from dataclasses import replace

    for action in actions:
        kind = action.address.split(".", 1)[0]
        for i, change in enumerate(action.changes):
            describe = DESCRIBED.get((kind, change.path))
            if describe is not None and isinstance(change.old, str) and isinstance(change.new, str):
                action.changes[i] = replace(change, detail=tuple(describe(change.old, change.new)))
