"""Saved plans: review a plan once (in a pull request, say), later apply exactly it or nothing.

`rtsctl apply PLANFILE` needs nothing else (Terraform's `apply tfplan`): the file names the manifest it was made
from and pins every input the plan read -- the manifest's bytes, its content after `${VAR}` interpolation, the
--var/--var-file values, and the digest of every local file the plan would upload or serve (code folders, model
files, conda files, build contexts, TLS files), for resources being created as for updates. Nothing about the
world is stored: the observed world is the state. Applying first recomputes the inputs and refuses, naming the
file, when one moved; then it plans again and compares; if the world moved, the plan is stale and nothing is
changed (Terraform's "Saved plan is stale", without a state file).

The file is written 0600 (variables may be secrets) through a temporary file renamed into place, so a file
that was there keeps neither its mode nor its inode, and a symlink at that path is replaced, its target
untouched. `apply` reads only a plan file this user owns and nobody else may write: whoever can write the plan
chooses what runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtsctl.desired.digest import file_digests
from rtsctl.support.errors import RtsctlError
from rtsctl.support.home import write_atomic
from rtsctl.manifest import Manifest
from rtsctl.plan.actions import Plan
from rtsctl.plan.render import plan_json
from rtsctl.desired.resources import Resource

FORMAT = "rtsctl-plan/3"
MAX_BYTES = 16 << 20


class DamagedPlan(RtsctlError):
    """A file that claims to be a saved plan but is not one this rtsctl could have written."""

    def __init__(self, path: str, why: str):
        super().__init__(f"damaged saved plan: {path}: {why}; plan again")


@dataclass
class SavedPlan:
    path: str
    manifest: str
    manifest_digest: str
    content_digest: str
    variables: dict[str, str]
    #: local path the plan reads (a folder or a file) -> {name inside it: hex sha256}
    files: dict[str, dict[str, str]]
    #: address -> digest of the resource's desired spec (what a create sends, what an update compares)
    specs: dict[str, str]
    actions: list[dict[str, Any]]


def _file_digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _json_digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _content_digest(manifest: Manifest) -> str:
    from rtsctl.desired.build import plain

    return _json_digest(plain(manifest.data))


def _actions(plan: Plan) -> list[dict[str, Any]]:
    return [_portable(a) for a in json.loads(json.dumps(plan_json(plan)["actions"], default=str))]


def _portable(action: dict[str, Any]) -> dict[str, Any]:
    """An action as any machine plans it: without what only this machine knows (a deployment's last smoke failure,
    the files or packages behind a digest change, notes on the world as it is), so a plan saved on a laptop applies
    from a CI runner."""
    failed = action.pop("smoke_failed", None)
    if failed is not None:
        action["reasons"] = [r for r in action["reasons"] if r != failed]
        if action["action"] == "update" and not action["changes"] and not action["reasons"]:
            action["action"] = "no-op"  # only tested again: the world is not changed
    for change in action["changes"]:
        change.pop("detail", None)
    action.pop("notes", None)  # what is said about the world as it is (a front restart), not what will be done
    return action


def local_inputs(resources: Iterable[Resource]) -> list[Path]:
    """Every local file or folder the resources read at apply time (uploaded, or served by a local process)."""
    found: set[Path] = set()
    for res in resources:
        found.update(v for v in res.inputs.values() if isinstance(v, Path))
    return sorted(found)


def _pin_files(paths: Iterable[Path]) -> dict[str, dict[str, str]]:
    return {str(path): file_digests(path) if path.exists() else {} for path in paths}


def _spec_digests(resources: Iterable[Resource]) -> dict[str, str]:
    return {res.address: _json_digest(res.spec) for res in resources}


def save_plan(plan: Plan, manifest: Manifest, resources: Iterable[Resource], path: str,
              variables: Mapping[str, str] | None = None) -> None:
    """Write the plan with everything it read, 0600, atomically, never through a symlink at `path`."""
    if plan.destroy:
        raise RtsctlError("a destroy plan cannot be saved; run rtsctl destroy")
    resources = list(resources)
    doc = {"format": FORMAT, "manifest": str(manifest.path), "manifest_digest": _file_digest(manifest.path),
           "content_digest": _content_digest(manifest), "variables": dict(variables or {}),
           "files": _pin_files(local_inputs(resources)), "specs": _spec_digests(resources),
           "actions": _actions(plan)}
    target = Path(path)
    if target.is_dir() and not target.is_symlink():
        raise RtsctlError(f"cannot write the plan to {path}: it is a directory")
    write_atomic(target, json.dumps(doc, indent=2) + "\n", "plan")  # 0600 via temp + rename: a symlink's target
    # is untouched, and a full disk leaves no half plan


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


def _read_trusted(path: str) -> bytes:
    """The plan's bytes, from a regular file this user owns that nobody else may write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise RtsctlError(f"cannot read saved plan {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise RtsctlError(f"saved plan {path} is not a regular file")
        if st.st_uid != os.geteuid():
            raise RtsctlError(f"refusing saved plan {path}: it is owned by uid {st.st_uid}, not by you "
                              f"(uid {os.geteuid()}); whoever can write a plan chooses what apply does")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise RtsctlError(f"refusing saved plan {path}: mode {stat.S_IMODE(st.st_mode):04o} lets others "
                              "change it; plan again (plan --out writes 0600) or chmod go-w it")
        raw = handle.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise DamagedPlan(path, f"larger than {MAX_BYTES} bytes")
    return raw


def _string_map(doc: dict[str, Any], key: str) -> dict[str, str]:
    value = doc[key]
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise TypeError(f'"{key}" must map strings to strings')
    return dict(value)


def _parse(path: str, doc: dict[str, Any]) -> SavedPlan:
    for key in ("manifest", "manifest_digest", "content_digest"):
        if not isinstance(doc[key], str) or not doc[key]:
            raise TypeError(f'"{key}" must be a non-empty string')
    files = doc["files"]
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        raise TypeError('"files" must map paths to {name: digest}')
    actions = doc["actions"]
    if not isinstance(actions, list) or not all(
            isinstance(a, dict) and isinstance(a.get("address"), str) and isinstance(a.get("action"), str)
            for a in actions):
        raise TypeError('"actions" must be a list of {"address", "action", ...} objects')
    return SavedPlan(path, doc["manifest"], doc["manifest_digest"], doc["content_digest"],
                     _string_map(doc, "variables"), {k: _string_map(files, k) for k in files},
                     _string_map(doc, "specs"), actions)


def read_saved_plan(path: str) -> SavedPlan:
    raw = _read_trusted(path)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DamagedPlan(path, f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("format"), str):
        raise DamagedPlan(path, "no format field")
    if doc["format"] != FORMAT:
        raise RtsctlError(f"{path} is not a plan saved by this rtsctl's plan --out (format {doc['format']}, "
                          f"expected {FORMAT}): plan again")
    try:
        return _parse(path, doc)
    except KeyError as exc:
        raise DamagedPlan(path, f"{exc} is missing") from None
    except (TypeError, ValueError) as exc:
        raise DamagedPlan(path, str(exc)) from None


def _shown(path: str) -> str:
    """A path as the user would type it: relative to the working directory when under it."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    except ValueError:
        return path


def _moved_file(saved: SavedPlan) -> str | None:
    for root, pinned in saved.files.items():
        now = _pin_files([Path(root)])[root]
        for name in sorted(set(pinned) | set(now)):
            if pinned.get(name) == now.get(name):
                continue
            shown = _shown(root if name == Path(root).name and set(pinned) <= {name} else os.path.join(root, name))
            if name not in now:
                return f"{shown} is gone since it was planned"
            if name not in pinned:
                return f"{shown} is new since it was planned"
            return f"{shown} changed since it was planned"
    return None


def _refuse(saved: SavedPlan, why: str) -> None:
    raise RtsctlError(f"saved plan {saved.path} is stale: {why}; nothing was changed. "
                      "Run rtsctl plan again and review it.")


def check_inputs(saved: SavedPlan) -> None:
    """Before anything is observed: the manifest and every file the plan read are still the bytes planned."""
    if not Path(saved.manifest).is_file():
        raise RtsctlError(f"saved plan {saved.path} was made from {saved.manifest}, which is gone; nothing was changed")
    if _file_digest(Path(saved.manifest)) != saved.manifest_digest:
        _refuse(saved, f"{_shown(saved.manifest)} changed since it was planned")
    moved = _moved_file(saved)
    if moved:
        _refuse(saved, moved)


def check_saved_plan(plan: Plan, manifest: Manifest, resources: Iterable[Resource], saved: SavedPlan) -> None:
    """Raise unless `plan` (made now) is exactly the one saved, from the same inputs read the same way."""
    if str(manifest.path) != saved.manifest:
        raise RtsctlError(f"{saved.path} was planned for {saved.manifest}, not {manifest.path}")
    resources = list(resources)
    now = _actions(plan)
    why = None
    if _file_digest(manifest.path) != saved.manifest_digest:
        why = f"{manifest.display} changed since it was planned"
    elif _content_digest(manifest) != saved.content_digest:
        why = "the manifest reads differently now (an environment variable it uses changed)"
    elif (moved := _moved_file(saved)) or set(map(str, local_inputs(resources))) != set(saved.files):
        why = moved or "the files the manifest reads are not the ones planned"
    elif (specs := _spec_digests(resources)) != saved.specs:
        changed = sorted(a for a in set(specs) | set(saved.specs) if specs.get(a) != saved.specs.get(a))
        why = f"what {changed[0]} would send changed since it was planned"
    elif now != saved.actions:
        why = _first_difference(saved.actions, now)
    if why:
        _refuse(saved, why)


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
