"""`rtsctl invoke MANIFEST --request FILE`: one request to the endpoint, as `az ml online-endpoint invoke`.

The response body goes to stdout as the service sent it (pipe it to jq); the status line to stderr. Exit 0 on
2xx, 1 otherwise, so a script can branch on it. The key is read from the deployed endpoint, never typed.
"""

from __future__ import annotations

import argparse
import stat
import sys
import urllib.error
from pathlib import Path

from rtsctl.support.errors import RtsctlError

MAX_REQUEST_BYTES = 100 << 20


def read_request(path: str) -> bytes:
    """The request file: a regular file of bounded size (not a fifo, a device or a folder)."""
    try:
        info = Path(path).stat()
        if not stat.S_ISREG(info.st_mode):
            raise RtsctlError(f"--request {path}: not a regular file")
        with open(path, "rb") as handle:
            body = handle.read(MAX_REQUEST_BYTES + 1)
        if len(body) > MAX_REQUEST_BYTES:
            raise RtsctlError(f"--request {path}: more than the {MAX_REQUEST_BYTES} bytes allowed")
        return body
    except FileNotFoundError:
        raise RtsctlError(f"--request {path}: not found") from None
    except OSError as exc:
        raise RtsctlError(f"--request {path}: cannot read: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    from rtsctl.engine import open_session
    from rtsctl.apply.smoke import exchange

    from rtsctl.commands.target import endpoint_output

    body = read_request(args.request)
    with open_session(args.manifest, args.variables) as session:
        out = endpoint_output(session, args)
        if args.deployment and args.deployment not in out["deployments"]:
            raise RtsctlError(f"endpoint {out['endpoint']} has no deployment {args.deployment!r} "
                              f"(it has: {', '.join(out['deployments'])})")
        from rtsctl.rollout.successor import live_deployments

        names = live_deployments(session, out["endpoint"])
        live = names.get(args.deployment) if args.deployment else None
    try:
        status, raw, headers = exchange(out["scoring_uri"], out["primary_key"], body, live, out["verify"],
                           args.timeout, args.content_type)
    except (urllib.error.URLError, OSError) as exc:
        raise RtsctlError(f"endpoint {out['endpoint']}: cannot reach {out['scoring_uri']}: "
                          f"{getattr(exc, 'reason', exc)}") from None
    sys.stdout.buffer.write(raw + (b"" if raw.endswith(b"\n") else b"\n"))
    sys.stdout.flush()
    where = f"endpoint {out['endpoint']}" + _answered_by(headers.get("azureml-model-deployment"), names)
    if 200 <= status < 300:
        print(f"HTTP {status} from {where}", file=sys.stderr)
        return 0
    print(f"Error: HTTP {status} from {where}", file=sys.stderr)
    return 1


def _answered_by(live: str | None, names: dict[str, str]) -> str:
    """Which deployment answered, from the `azureml-model-deployment` header the service sets (Azure and the local
    front alike), by its manifest name, with the live name when a rollout gave it another."""
    if not live:
        return ""
    name = next((n for n, l in names.items() if l == live), live)
    return f", deployment {name}" + (f" (live as {live})" if name != live else "")
