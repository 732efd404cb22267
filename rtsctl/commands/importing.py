"""`rtsctl import MANIFEST ADDRESS...`: take ownership of existing resources the manifest declares.

Like `terraform import`, nothing but ownership changes: each resource is marked with the manifest's identity
(a tag on Azure, its record locally), after the user saw what a following `apply` would change. A resource
another manifest owns is taken only with `--from THAT_NAME` (a deliberate hand-over, never by accident).
"""

from __future__ import annotations

import argparse

from rtsctl.support.errors import RtsctlError


def run(args: argparse.Namespace) -> int:
    from rtsctl.cli import _confirm, _console
    from rtsctl.engine import make_plan, open_session, record_applied
    from rtsctl.observe.ownership import MINE, OTHER, owner_words, whose
    from rtsctl.plan.actions import ActionKind, Plan
    from rtsctl.plan.decide import decide
    from rtsctl.plan.render import render_text

    out = _console()
    with open_session(args.manifest, args.variables) as session, session.backend.lock(f"import {args.manifest}", args.lock_timeout):
        owner, graph = session.manifest.name, session.graph
        addresses = list(dict.fromkeys(args.addresses))
        unknown = [a for a in addresses if a not in graph.nodes]
        if unknown:
            raise RtsctlError(f"{unknown[0]}: {session.manifest.display} declares no such resource (it declares: "
                              f"{', '.join(sorted(graph.nodes))}); import takes only what the manifest declares")
        addresses += [f"traffic.{a.split('.', 1)[1]}" for a in addresses
                      if a.startswith("endpoint.") and f"traffic.{a.split('.', 1)[1]}" in graph.nodes]
        plan = make_plan(session)
        actions = {a.address: a for a in plan.actions}
        taking = []
        for address in [a for a in graph.order if a in set(addresses)]:
            action = actions[address]
            observed = action.observed
            if observed is None:
                raise RtsctlError(f"{address} does not exist: nothing to import (apply creates it)")
            status = whose(observed, owner)
            if status == MINE:
                if address in args.addresses:
                    out.print(f"{address}: already owned by {owner!r}")
                continue
            if status == OTHER and observed.owner != args.take_from:
                raise RtsctlError(f"{address} is owned by {owner_words(observed)}: import takes what nobody owns; "
                                  f"to take it from that manifest, add --from {observed.owner}")
            taking.append(action)
        if not taking:
            out.print("Nothing to import.")
            return 0
        adopted = {a.address: session.reconcilers[a.resource.kind].adopt(a.resource, a.observed) for a in taking}
        after = [decide(a.resource, adopted[a.address], session.reconcilers[a.resource.kind]) for a in taking]
        out.print(f"rtsctl import will make {owner!r} the owner of: " + ", ".join(a.address for a in taking))
        preview = Plan(after, graph, owner=owner, manifest=session.manifest.display)
        if preview.has_changes:
            out.print(f"\nOnce imported, `rtsctl apply {session.manifest.display}` would then do this:\n")
            out.print(render_text(preview))
        else:
            out.print("Once imported, they match the manifest: a plan will say No changes.")
        _confirm(args, "Do you want to take ownership of these resources?")
        for action in taking:
            reconciler = session.reconcilers[action.resource.kind]
            reconciler.claim(action.resource, adopted[action.address])
            out.print(f"{action.address}: now owned by {owner!r}")
        # what already matches is recorded as applied (drift is told from edits from now on); the rest is not
        matching = Plan([a for a in after if a.kind is ActionKind.NOOP], graph)
        from rtsctl.apply.run import ApplyResult

        record_applied(session, matching, ApplyResult())
    out.print(f"\n[green bold]Import complete![/green bold] {len(taking)} resource(s) now owned by {owner!r}. "
              f"Next: rtsctl plan {session.manifest.display}")
    return 0
