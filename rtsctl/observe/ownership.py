"""Who owns what: a manifest's identity (`name:`) on every resource rtsctl creates, and what a plan may touch.

Like a Pulumi stack name, the identity is the same on every machine; the resource carries it (an Azure tag,
a local record), so ownership is read from the world, never from this machine. A plan changes, replaces or
deletes only what its own identity owns:

* mine      -- carries this manifest's identity: planned as usual.
* legacy    -- made by rtsctl before identities existed (`managed-by: rtsctl`, no owner): claimed by the first
               manifest that declares it (`claim` in its plan), never touched by one that does not.
* other     -- another manifest's: never deleted; declared here it is `exists, not owned` and apply refuses.
* nobody    -- made outside rtsctl (az ml, the studio): the same, until `rtsctl import` takes it.

A `shared` parent (resource group, workspace) declared by several manifests is only referenced by those that
do not own it, and its owner's destroy keeps it while it holds what another manifest or nobody owns.
"""

from __future__ import annotations

from rtsctl.desired.resources import Observed

MINE, LEGACY, OTHER, NOBODY = "mine", "legacy", "other", "nobody"
#: the tag (Azure) or record field (local) naming the manifest that owns a resource
OWNER_TAG = "rtsctl.owner"


def whose(observed: Observed, me: str) -> str:
    if observed.owner == me:
        return MINE
    if observed.owner:
        return OTHER
    return LEGACY if observed.owned else NOBODY


def owner_words(observed: Observed) -> str:
    """"manifest 'b'" or "nobody" (made outside rtsctl) or "rtsctl before owners": for plan lines."""
    if observed.owner:
        return f"manifest {observed.owner!r}"
    return "rtsctl before manifests had owners" if observed.owned else "nobody (made outside rtsctl)"


def import_hint(manifest: str, address: str) -> str:
    """The plan's line for a declared resource this manifest does not own, naming the command that takes it."""
    return f"exists, not owned: rtsctl import {manifest} {address}"


def held(kind: str, name: str, owner: str | None) -> str:
    """One entry of `Reconciler.holds`: what it is and whose."""
    return f"{kind}.{name} ({f'manifest {owner!r}' if owner else 'nobody'})"
