"""Render a plan like Terraform (+ ~ -/+ -, changed fields old -> new, secrets masked) or as JSON."""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape

from rtsctl.plan.diff import Change, matches
from rtsctl.rollout import successor
from rtsctl.rollout import steps as rollout_steps
from rtsctl.plan.actions import Action, ActionKind, Plan

SYMBOLS = {ActionKind.CREATE: ("+", "green", "will be created"),
           ActionKind.UPDATE: ("~", "yellow", "will be updated in place"),
           ActionKind.REPLACE: ("-/+", "red", "must be replaced"),
           ActionKind.DELETE: ("-", "red", "will be destroyed"),
           ActionKind.CLAIM: ("&", "cyan", "will be claimed by this manifest (nothing else changes)"),
           ActionKind.NOT_OWNED: ("!", "red", "exists, not owned by this manifest: apply refuses"),
           ActionKind.NOOP: (" ", "dim", "is unchanged")}
MASK = "(sensitive value)"
#: why an action is planned (rtsctl.plan.trust): the world moved, or the manifest did
ORIGINS = {"drift": " [magenta](drift: changed outside rtsctl)[/magenta]",
           "edit": " [dim](edit: the manifest asks for it)[/dim]",
           "drift+edit": " [magenta](drift and edit: changed outside rtsctl and in the manifest)[/magenta]"}


def mask(value: str | None, show: bool = False) -> str | None:
    """Keys shown as their first 4 characters only, unless the user asked to see secrets."""
    if value is None or show:
        return value
    return value[:4] + "*" * 12 if len(value) > 8 else "*" * 8


def _value(value: Any, sensitive: bool = False) -> str:
    """A value as JSON, escaped so that user text is never read as rich markup."""
    if sensitive:
        return MASK
    if value is None:
        return "(none)"
    return escape(json.dumps(value, sort_keys=True))


def _flatten(spec: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in spec.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += _flatten(value, path + ".")
        else:
            out.append((path, value))
    return out


def render_text(plan: Plan) -> str:
    """Plan as markup for rich (also readable with markup stripped)."""
    lines: list[str] = [f"[yellow]Warning:[/yellow] {escape(w)}" for w in plan.warnings]
    if lines:
        lines.append("")
    shown = [a for a in plan.actions if a.changes_world or a.reasons]
    if not plan.has_changes:
        lines.append("[green]Nothing to destroy.[/green] No resource of this manifest that rtsctl created exists."
                     if plan.destroy else "[green]No changes.[/green] The world matches the manifest.")
        lines += _kept(plan)
        return "\n".join(lines)
    lines.append("rtsctl will perform the following actions:\n")
    for action in shown:
        if action.kind is ActionKind.NOOP:
            continue
        symbol, color, verb, tail = successor.style(action, *SYMBOLS[action.kind])
        if action.retest:
            verb = "failed its smoke test: apply sends it again"
        lines.append(f"  [bold]# {action.address}[/bold] {verb}{ORIGINS.get(action.origin, '')}")
        lines.append(f"[{color}]{symbol:>3}[/{color}] {action.address}{tail}")
        lines += _details(action)
        lines.append("")
    lines += _kept(plan)
    counts = plan.counts()
    extra = "".join(f", {counts[k.value]} {words}" for k, words in ((ActionKind.CLAIM, "to claim"),
                                                                    (ActionKind.NOT_OWNED, "not owned"))
                    if counts[k.value])
    lines.append(f"[bold]Plan:[/bold] {counts['create']} to add, {counts['update']} to change, "
                 f"{counts['replace']} to replace, {counts['delete']} to destroy{extra}"
                 + (f", {counts['retest']} to smoke-test again." if counts["retest"] else "."))
    return "\n".join(lines)


def _kept(plan: Plan) -> list[str]:
    return [f"  [dim]{a.address}: {escape('; '.join(a.reasons + a.notes))}[/dim]" for a in plan.actions
            if a.kind is ActionKind.NOOP and (a.reasons or a.notes)]


def _details(action: Action) -> list[str]:
    out: list[str] = []
    if action.kind is ActionKind.CREATE and action.resource is not None:
        for path, value in _flatten(action.resource.spec):
            out.append(f"      [green]+[/green] {escape(path)} = {_value(value, matches(path, action.sensitive))}")
    changes = action.changes
    traffic = rollout_steps.action_lines(action)
    if traffic is not None:  # traffic as planned steps: the whole map per line, not one weight per line
        out += [f"      [yellow]~[/yellow] {escape(line)}" for line in traffic]
        changes = [c for c in changes if not c.path.startswith("weights")]
    for change in changes:
        out.append(_change_line(change))
    for reason in action.reasons:
        out.append(f"      [yellow]![/yellow] {escape(reason)}")
    for note in action.notes:
        out.append(f"      [dim]i {escape(note)}[/dim]")
    return out


def _change_line(change: Change) -> str:
    note = "  [red]# forces replacement[/red]" if change.forces_replacement else ""
    path = escape(change.path)
    if change.detail:  # what changed inside a digest (rtsctl.plan.contents), not the two digests
        head = {"code.digest": "code", "digest": "packages", "environment.digest": "environment packages"}.get(
            change.path, path)
        return "\n".join([f"      [yellow]~[/yellow] {head}:{note}"]
                         + [f"          {escape(line)}" for line in change.detail])
    if change.old is None:
        return f"      [green]+[/green] {path} = {_value(change.new, change.sensitive)}{note}"
    if change.new is None:
        return f"      [red]-[/red] {path} = {_value(change.old, change.sensitive)}{note}"
    return (f"      [yellow]~[/yellow] {path}: {_value(change.old, change.sensitive)} -> "
            f"{_value(change.new, change.sensitive)}{note}")


def plan_json(plan: Plan) -> dict[str, Any]:
    def change(c: Change) -> dict[str, Any]:
        return {"path": c.path, "old": MASK if c.sensitive else c.old, "new": MASK if c.sensitive else c.new,
                "forces_replacement": c.forces_replacement, **({"detail": list(c.detail)} if c.detail else {})}

    return {
        "format_version": "1",
        "destroy": plan.destroy,
        "changes": plan.has_changes,
        "summary": plan.counts(),
        "warnings": plan.warnings,
        "actions": [{"address": a.address, "action": a.kind.value, "changes": [change(c) for c in a.changes],
                     "reasons": a.reasons, **({"notes": a.notes} if a.notes else {}),
                     **({"origin": a.origin} if a.origin else {}),
                     **({"smoke_failed": a.smoke_failed} if a.smoke_failed else {}),
                     **successor.json_fields(a), **rollout_steps.json_fields(a)} for a in plan.actions],
    }
