"""Which endpoint a verb acts on: the one --endpoint names, or the manifest's only one."""

from __future__ import annotations

import argparse
from typing import Any

from rtsctl.support.errors import RtsctlError


def pick_endpoint(session, args: argparse.Namespace) -> str:
    names = session.endpoints()
    if args.endpoint:
        if args.endpoint not in names:
            raise RtsctlError(f"no endpoint {args.endpoint!r} in {session.manifest.display} "
                              f"(declared: {', '.join(names)})")
        return args.endpoint
    if len(names) != 1:
        raise RtsctlError(f"{session.manifest.display} declares {len(names)} endpoints "
                          f"({', '.join(names) or 'none'}): pick one with --endpoint")
    return names[0]


def endpoint_output(session, args: argparse.Namespace) -> dict[str, Any]:
    """The picked endpoint's outputs, once it can be called (a scoring URI)."""
    from rtsctl.engine import endpoint_outputs, require_scoring_uri

    return require_scoring_uri(endpoint_outputs(session, pick_endpoint(session, args))[0])
