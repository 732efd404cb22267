"""The desired world as the engine sees it: typed resources with addresses and edges.

A `Resource` is what one reconciler manages. `spec` holds the fields that are diffed
against the observed world (only what the manifest declared, plus content digests);
`inputs` holds what a reconciler needs to act but that is never diffed (absolute paths
of local files, smoke tests), and `warnings` the plan shows whenever the resource is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Source:
    """Where a resource was declared, so errors can name file:line."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass
class Resource:
    kind: str
    name: str
    spec: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    source: Source | None = None

    @property
    def address(self) -> str:
        return f"{self.kind}.{self.name}"


@dataclass
class Observed:
    """One resource as it exists now, as a reconciler reads it.

    `spec` is shaped like the desired spec; the diff only looks at keys the manifest
    declared, so server defaults and read-only fields may be present freely.
    `owned` is False for things rtsctl did not create (adopted clusters, pre-existing
    resource groups): destroy leaves them alone.
    `problems` is health drift (a dead instance): it makes the plan heal with an update.
    `outputs` are what users and later steps read (scoring URI, keys); keys are secrets.
    `notes` are what the plan says about the resource without changing it (a front that restarted).
    `applied` is what the resource itself says rtsctl last applied to it (rtsctl.observe.applied.compact), when the
    backend keeps that on the resource: it lets every machine tell drift from edit alike.
    `owner` is the identity (`name:`) of the manifest that owns it (rtsctl.observe.ownership), None when none does.
    """

    address: str
    spec: dict[str, Any]
    owned: bool = True
    problems: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    handle: Any = None
    applied: str | None = None
    owner: str | None = None
    notes: list[str] = field(default_factory=list)
