"""`rtsctl keys regenerate MANIFEST --key primary|secondary`: rotate one key, the other untouched.

Zero-downtime rotation is the two-slot dance Azure documents: move clients to the secondary key, regenerate the
primary, move them back, regenerate the secondary. That only works if regenerating one slot never disturbs the
other; each backend's endpoint reconciler guarantees it (`regenerate_key`).
"""

from __future__ import annotations

import argparse

from rtsctl.support.errors import RtsctlError


def run(args: argparse.Namespace) -> int:
    from rtsctl.engine import endpoint_outputs, open_session
    from rtsctl.plan.render import mask

    from rtsctl.commands.target import pick_endpoint

    with open_session(args.manifest, args.variables) as session:
        name = pick_endpoint(session, args)
        reconciler = session.reconcilers["endpoint"]
        regenerate = getattr(reconciler, "regenerate_key", None)
        if regenerate is None:
            raise RtsctlError(f"the {session.backend.name} backend cannot regenerate endpoint keys")
        before = endpoint_outputs(session, name)[0]
        regenerate(session.graph.nodes[f"endpoint.{name}"], args.key)
        after = endpoint_outputs(session, name)[0]
    new = after[f"{args.key}_key"]
    if not new or new == before[f"{args.key}_key"]:
        raise RtsctlError(f"endpoint {name}: the {args.key} key did not change")
    other = "secondary" if args.key == "primary" else "primary"
    print(f"endpoint {name}: {args.key} key regenerated: {mask(new, args.show_secrets)}")
    print(f"The {other} key is unchanged and kept working throughout.")
    return 0
