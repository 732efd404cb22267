"""Saved plans: review a plan once (in a pull request, say), later apply exactly it or nothing.

`rtsctl apply PLANFILE` needs nothing else (Terraform's `apply tfplan`): the file names the manifest it was made
from, the digest of that manifest's bytes and of its content after `${VAR}` interpolation, and the --var/--var-file
values it was planned with. Nothing about the world is stored: the observed world is the state. Applying plans
again and compares; if the manifest, a variable or the world moved in between, the plan is stale and nothing is
changed (Terraform's "Saved plan is stale", without a state file). The file is written mode 0600: variables may be
secrets.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RtsctlError
from .manifest import Manifest
from .plan import Plan
from .render import plan_json

FORMAT = "rtsctl-plan/2"
MAX_BYTES = 16 << 20


@dataclass
class SavedPlan:
    path: str
    manifest: str
    manifest_digest: str
    content_digest: str
    variables: dict[str, str]
    actions: list[dict[str, Any]]


def _file_digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _content_digest(manifest: Manifest) -> str:
    from .desired import plain

    text = json.dumps(plain(manifest.data), sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _actions(plan: Plan) -> list[dict[str, Any]]:
    actions = json.loads(json.dumps(plan_json(plan)["actions"], default=str))
    for action in actions:
        action.pop("notes", None)     # what is said about the world as it is, not what will be done
    return actions


def save_plan(plan: Plan, manifest: Manifest, path: str, variables: Mapping[str, str] | None = None) -> None:
    if plan.destroy:
        raise RtsctlError("a destroy plan cannot be saved; run rtsctl destroy")
    doc = {"format": FORMAT, "manifest": str(manifest.path), "manifest_digest": _file_digest(manifest.path),
           "content_digest": _content_digest(manifest), "variables": dict(variables or {}),
           "actions": _actions(plan)}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(doc, indent=2) + "\n")
    except OSError as exc:
        raise RtsctlError(f"cannot write the plan to {path}: {exc.strerror}") from None


def is_saved_plan(path: str) -> bool:
    """True when `path` is a file written by `plan --out` (so `apply PATH` applies it), not a manifest."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a fifo or a device would block or never end
            return False
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and b'"rtsctl-plan/' in head


def read_saved_plan(path: str) -> SavedPlan:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise RtsctlError(f"{path}: larger than {MAX_BYTES} bytes; not a saved plan")
        doc = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise RtsctlError(f"cannot read saved plan {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise RtsctlError(f"{path} is not a plan saved by this rtsctl's plan --out"
                          + (f" (format {found}, expected {FORMAT}): plan again" if found else ""))
    try:
        return SavedPlan(path, str(doc["manifest"]), str(doc["manifest_digest"]), str(doc["content_digest"]),
                         {str(k): str(v) for k, v in dict(doc["variables"]).items()}, list(doc["actions"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise RtsctlError(f"{path}: a damaged saved plan ({exc})") from None


def check_manifest_present(saved: SavedPlan) -> None:
    """Before anything is observed: the manifest the plan was made from must still be there."""
    if not Path(saved.manifest).is_file():
        raise RtsctlError(f"saved plan {saved.path} was made from {saved.manifest}, which is gone; nothing was changed")


def check_saved_plan(plan: Plan, manifest: Manifest, saved: SavedPlan) -> None:
    """Raise unless `plan` (made now) is exactly the one saved, from the same manifest read the same way."""
    if str(manifest.path) != saved.manifest:
        raise RtsctlError(f"{saved.path} was planned for {saved.manifest}, not {manifest.path}")
    now = _actions(plan)
    why = None
    if now != saved.actions:
        why = _first_difference(saved.actions, now)
    elif _file_digest(manifest.path) != saved.manifest_digest:
        why = f"{manifest.display} changed since it was planned"
    elif _content_digest(manifest) != saved.content_digest:
        why = "the manifest reads differently now (an environment variable it uses changed)"
    if why:
        raise RtsctlError(f"saved plan {saved.path} is stale: {why}; nothing was changed. "
                          "Run rtsctl plan again and review it.")


def _first_difference(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    old = {a["address"]: a for a in before}
    new = {a["address"]: a for a in after}
    for address in list(new) + [a for a in old if a not in new]:
        was, now = old.get(address), new.get(address)
        if was == now:
            continue
        if was is None or now is None:
            return f"{address} is {'now' if was is None else 'no longer'} part of the plan"
        if was["action"] != now["action"]:
            return f"{address} was planned as {was['action']}, now {now['action']}"
        return f"the changes planned for {address} differ now"
    return "the order of actions changed"
