"""Carry out a plan: walk the DAG, independent nodes in parallel, each call retried.

Creates and updates run in dependency order; deletes run dependents first. A failed node
stops only what depends on it; everything independent still converges, and the error
names every resource that failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from reconcilers.base import Reconciler

from rtsctl.apply import progress
from rtsctl.support.errors import ResourceError, RtsctlError
from rtsctl.support.home import StorageError, storage_error
from rtsctl.apply.interrupt import finish_or_abandon
from rtsctl.plan.actions import Action, ActionKind, Plan
from rtsctl.support.retry import call_with_retry
from rtsctl.rollout.successor import roll
from rtsctl.rollout.gates import RolloutContext, run_traffic

VERBS = {
    ActionKind.CREATE: ("Creating", "Creation complete"),
    ActionKind.UPDATE: ("Modifying", "Modifications complete"),
    ActionKind.REPLACE: ("Replacing", "Replacement complete"),
    ActionKind.DELETE: ("Destroying", "Destruction complete"),
    ActionKind.CLAIM: ("Claiming", "Claim complete"),
}


@dataclass
class ApplyResult:
    timings: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)
    #: the exception of each failed address (its code and reason, for rtsctl.apply.forensics)
    errors: dict[str, RtsctlError] = field(default_factory=dict)


class ApplyFailed(RtsctlError):
    """An apply that failed for some resources; `result` says what did succeed (and was recorded)."""

    def __init__(self, message: str, result: ApplyResult):
        super().__init__(message)
        self.result = result


Reporter = Callable[[str], None]
#: the backend's `step(address)`: held around one step's act (Backend.step: its reads kept until it writes)
Stepper = Callable[[str], AbstractContextManager[None]]


def _no_step(address: str) -> AbstractContextManager[None]:
    return nullcontext()


def apply_plan(plan: Plan, reconcilers: dict[str, Reconciler], report: Reporter, max_workers: int = 8,
               rollout: RolloutContext | None = None, step: Stepper = _no_step) -> ApplyResult:
    """`rollout`: traffic changes go through its steps and gates (rtsctl.rollout.gates); None writes them at once.
    `step`: held around each action's act, on its own thread (Backend.step)."""
    result = ApplyResult()
    started = time.monotonic()
    for reconciler in reconcilers.values():
        reconciler.notify = report  # type: ignore[method-assign]  # waits are shown as they happen
    pending = {a.address: a for a in plan.pending}
    deletes = {a for a, act in pending.items() if act.kind is ActionKind.DELETE}
    forward = {a: act for a, act in pending.items() if a not in deletes}
    dependents = plan.graph.dependents()

    def forward_waits(address: str) -> set[str]:
        """The nearest pending resources upstream, looking through unchanged ones: a compute re-attached while
        its cluster is being repaired waits for the cluster even when the extension between them is unchanged."""
        found: set[str] = set()
        stack, seen = list(plan.graph.deps.get(address, ())), set()
        while stack:
            dep = stack.pop()
            if dep in seen:
                continue
            seen.add(dep)
            if dep in forward:
                found.add(dep)
            else:
                stack.extend(plan.graph.deps.get(dep, ()))
        return found

    orphans = {a for a in deletes if a not in plan.graph.nodes}  # owned, undeclared: hang on declared ones

    def delete_waits(address: str) -> set[str]:
        """A node is deleted after everything that depends on it; orphans go before anything declared."""
        if address in orphans:
            return set()
        return {d for d in dependents[address] if d in deletes} | orphans

    _run(forward, forward_waits, reconcilers, report, result, max_workers, rollout, step)
    _run({a: pending[a] for a in deletes}, delete_waits, reconcilers, report, result, max_workers, rollout, step)
    result.wall = time.monotonic() - started
    if result.failed:
        lines = "\n".join(f"  {reason}" for reason in result.failed.values())
        raise ApplyFailed(f"apply failed for {len(result.failed)} resource(s):\n{lines}"
                          if len(result.failed) > 1 else next(iter(result.failed.values())), result)
    return result


def _run(actions: dict[str, Action], waits_for: Callable[[str], set[str]], reconcilers: dict[str, Reconciler],
         report: Reporter, result: ApplyResult, max_workers: int, rollout: RolloutContext | None = None,
         step: Stepper = _no_step) -> None:
    waiting = {a: waits_for(a) for a in actions}
    running: dict[Future, str] = {}
    done: set[str] = set()
    # not a `with`: its exit joins the workers, and after a Ctrl-C nothing may wait on calls that cannot be
    # cancelled (a second Ctrl-C that lands before the handler below ends in cli.main, which exits 130 past them)
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="apply")
    try:
        _drive(pool, actions, waiting, running, done, reconcilers, report, result, rollout, step)
    except KeyboardInterrupt:
        # Wherever the Ctrl-C lands (in the wait or between two submissions), operations already sent cannot
        # be recalled: let them finish so nothing is left half-made; the world is the state, so the next
        # apply converges from wherever this stopped.
        finish_or_abandon(pool, running, report)  # a second Ctrl-C exits 130 at once
        raise
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _drive(pool: ThreadPoolExecutor, actions: dict[str, Action], waiting: dict[str, set[str]],
           running: dict[Future, str], done: set[str], reconcilers: dict[str, Reconciler], report: Reporter,
           result: ApplyResult, rollout: RolloutContext | None, step: Stepper) -> None:
    """Start each action once what it waits for is done, until nothing waits or runs."""
    while waiting or running:
        for address in [a for a, w in waiting.items() if w <= done]:
            del waiting[address]
            running[pool.submit(_perform, actions[address], reconcilers, report, rollout, step)] = address
        _skip_dependents_of_failures(waiting, result)
        if not running:
            if waiting:  # only possible with a cycle the graph missed
                raise RtsctlError(f"cannot order: {', '.join(sorted(waiting))}")
            break
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            address = running.pop(future)
            progress.finish(address)
            try:
                result.timings[address] = future.result()
                done.add(address)
            except RtsctlError as exc:
                result.failed[address] = str(exc)
                result.errors[address] = exc
                report(f"[red]{address}: failed[/red]")


def _skip_dependents_of_failures(waiting: dict[str, set[str]], result: ApplyResult) -> None:
    """Everything downstream of a failure is not attempted, however deep: repeated until nothing changes,
    so a chain (extension -> compute -> endpoint -> deployment -> traffic) is settled in one pass and
    never mistaken for an ordering cycle. Each names the failure it waited on; that failure's own error
    stays first in `result.failed` (insertion order), so the cause is reported before its consequences."""
    changed = True
    while changed:
        changed = False
        for address in [a for a, w in waiting.items() if w & result.failed.keys()]:
            blocked = sorted(waiting.pop(address) & result.failed.keys())
            result.failed[address] = f"{address}: not attempted: {', '.join(blocked)} failed"
            changed = True


def _perform(action: Action, reconcilers: dict[str, Reconciler], report: Reporter,
             rollout: RolloutContext | None = None, step: Stepper = _no_step) -> float:
    reconciler = reconcilers[action.address.split(".", 1)[0]]  # addresses are kind.name
    doing, finished = VERBS[action.kind]
    report(f"{action.address}: {doing}...")
    progress.start(action.address, doing)
    started = time.monotonic()
    if action.retest:  # nothing of it changed: the smoke test after apply judges it again
        report(f"{action.address}: failed its last smoke test; tested again after apply")
        return 0.0
    try:
        with step(action.address):
            _act(action, reconciler, reconcilers, report, rollout)
    except StorageError as exc:
        raise ResourceError(action.address, str(exc)) from None
    except OSError as exc:  # a full disk, a read-only or vanished folder: named, never a bare [Errno 28]
        raise ResourceError(action.address, str(storage_error(exc, "file"))) from None
    elapsed = time.monotonic() - started
    report(f"{action.address}: {finished} after {elapsed:.1f}s")
    return elapsed


def _act(action: Action, reconciler: Reconciler, reconcilers: dict[str, Reconciler], report: Reporter,
         rollout: RolloutContext | None) -> None:
    res = action.resource
    if rollout is not None and res is not None and res.kind == "traffic" and action.kind is not ActionKind.DELETE:
        old = action.observed.spec.get("weights") or {} if action.observed else {}
        run_traffic(rollout, res.name, old, res.spec["weights"])
    elif action.kind is ActionKind.CREATE:
        call_with_retry(reconciler.create, res)
    elif action.kind is ActionKind.UPDATE:
        call_with_retry(reconciler.update, res, action.observed)
    elif action.kind is ActionKind.REPLACE and action.successor is not None:
        roll(action, reconcilers, report, call_with_retry, rollout)  # create before destroy: it keeps serving
    elif action.kind is ActionKind.REPLACE:
        call_with_retry(reconciler.delete, action.observed)
        call_with_retry(reconciler.create, res)
    elif action.kind is ActionKind.DELETE:
        call_with_retry(reconciler.delete, action.observed)
    elif action.kind is ActionKind.CLAIM:
        call_with_retry(reconciler.claim, res, reconciler.adopt(res, action.observed))
    else:  # not-owned: apply refuses such a plan before it starts (cli), so this is a bug, not a user error
        raise RtsctlError(f"{action.address}: {action.kind.value} cannot be applied")
