"""Saved plans: review a plan once (in a pull request, say), later apply exactly it or nothing.

Nothing about the world is stored: the observed world is the state. Applying a saved plan
plans again and compares; if the manifest or the world moved in between, the plan is
stale and nothing is changed (Terraform's "Saved plan is stale", without a state file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import RtsctlError
from .manifest import Manifest
from .plan import Plan
from .render import plan_json

FORMAT = "rtsctl-plan/1"


def _content(plan: Plan, manifest: Manifest) -> dict[str, Any]:
    doc = plan_json(plan)
    return {"format": FORMAT, "manifest": str(manifest.path), "destroy": doc["destroy"], "actions": doc["actions"]}


def save_plan(plan: Plan, manifest: Manifest, path: str) -> None:
    if plan.destroy:
        raise RtsctlError("a destroy plan cannot be saved; run rtsctl destroy")
    Path(path).write_text(json.dumps(_content(plan, manifest), indent=2, default=str) + "\n", encoding="utf-8")


def check_saved_plan(plan: Plan, manifest: Manifest, path: str) -> None:
    """Raise unless `plan` (made now) is exactly the one saved in `path`."""
    try:
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RtsctlError(f"cannot read saved plan {path}: {exc}") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise RtsctlError(f"{path} is not a plan saved by rtsctl plan --out")
    if saved["manifest"] != str(manifest.path):
        raise RtsctlError(f"{path} was planned for {saved['manifest']}, not {manifest.path}")
    now = json.loads(json.dumps(_content(plan, manifest), default=str))
    if now["actions"] != saved["actions"]:
        raise RtsctlError(f"saved plan {path} is stale: {_first_difference(saved['actions'], now['actions'])}; "
                          "nothing was changed. Run rtsctl plan again and review it.")


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
