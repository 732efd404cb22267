"""An apply as the CLI runs it: progress shown while it waits, what succeeded recorded, failures explained."""

from __future__ import annotations

from typing import Any

from rtsctl.apply.run import ApplyFailed, ApplyResult
from rtsctl.engine import Session, apply, record_applied
from rtsctl.apply.forensics import explain
from rtsctl.plan.actions import Plan
from rtsctl.apply.progress import Progress


def run_apply(session: Session, plan: Plan, console: Any) -> ApplyResult:
    """`engine.apply` with a live line (terminal) or heartbeat (pipes) per running operation; what succeeded is
    recorded as applied (drift vs edit) even when something failed; a failed deployment's code, log tail and
    what-to-do are printed before the error."""

    def report(line: str) -> None:
        console.print(line)

    with Progress(console):
        try:
            result = apply(session, plan, report)
        except ApplyFailed as exc:
            record_applied(session, plan, exc.result)
            explain(session.backend, exc.result.errors, report)
            raise
    record_applied(session, plan, result)
    return result
