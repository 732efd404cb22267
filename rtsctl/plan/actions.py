"""What a plan is made of: one action per resource (built by rtsctl.plan.decide, carried out by rtsctl.apply.run).

create     +   absent, will be created
update     ~   exists, declared fields differ or it is unhealthy (healed in place)
replace   -/+  an immutable field differs (declared by the reconciler as data)
delete     -   owned by this manifest, no longer declared (or `destroy`)
claim      &   exists, made by rtsctl before owners: this manifest takes it, nothing else changes
not-owned  !   declared, exists, owned by another manifest or by nobody: apply refuses (`rtsctl import`)
noop           converged (or a shared parent another manifest owns: referenced, kept)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from rtsctl.plan.diff import Change
from rtsctl.desired.graph import Graph
from rtsctl.desired.resources import Observed, Resource


class ActionKind(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    CLAIM = "claim"
    NOT_OWNED = "not-owned"
    NOOP = "no-op"


@dataclass
class Action:
    kind: ActionKind
    address: str
    resource: Resource | None
    observed: Observed | None
    changes: list[Change] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    #: the reconciler's sensitive fields: masked wherever this action's values are shown
    sensitive: frozenset[str] = frozenset()
    #: a replacement carried out create-before-destroy (rtsctl.rollout.successor.Successor), else None
    successor: Any = None
    #: "drift" (the world moved) or "edit" (the manifest moved), set by rtsctl.plan.trust.label_origins
    origin: str | None = None
    #: the deployment failed its last smoke test (rtsctl.apply.smoke.SmokeRecord): apply tests it again, changing nothing
    #: itself when nothing else changed
    smoke_failed: str | None = None

    @property
    def retest(self) -> bool:
        return self.kind is ActionKind.UPDATE and self.smoke_failed is not None and not self.changes \
            and len(self.reasons) == 1

    @property
    def changes_world(self) -> bool:
        return self.kind is not ActionKind.NOOP

    @property
    def notes(self) -> list[str]:
        """What the reconciler says about the resource as it is (Observed.notes): shown, never part of the
        plan's identity (a saved plan stays valid when a count in a note moves)."""
        return list(self.observed.notes) if self.observed is not None else []


@dataclass
class Plan:
    actions: list[Action]
    graph: Graph
    destroy: bool = False
    #: the manifest's identity and how to name it in a command line (for `rtsctl import` hints)
    owner: str = ""
    manifest: str = ""
    #: what preflight checks found before anything changes (capacity, quota, instance types): shown, not fatal
    warnings: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[Action]:
        return [a for a in self.actions if a.changes_world]

    @property
    def has_changes(self) -> bool:
        return bool(self.pending)

    @property
    def not_owned(self) -> list[Action]:
        """Declared resources this manifest does not own: apply refuses while there are any."""
        return [a for a in self.actions if a.kind is ActionKind.NOT_OWNED]

    def counts(self) -> dict[str, int]:
        """Per action kind; a deployment only smoke-tested again counts as `retest`, not as a change."""
        out = {k.value: 0 for k in ActionKind}
        out["retest"] = 0
        for action in self.actions:
            out["retest" if action.retest else action.kind.value] += 1
        return out
