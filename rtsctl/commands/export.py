"""`rtsctl export MANIFEST --out FILE [--endpoint E]...`: the workspace as a manifest, files beside it."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from rtsctl.support.errors import RtsctlError


def write_new(path: Path, text: str) -> None:
    """Write `text` to `path`, which must not exist (never through a symlink): 0600, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    try:
        os.link(tmp, path)  # fails if anything (a file, a symlink) is already there: nothing is overwritten
    except FileExistsError:
        raise RtsctlError(f"{path} exists: export writes a new manifest; choose another --out") from None
    finally:
        os.unlink(tmp)


def run(args: argparse.Namespace) -> int:
    import yaml

    from rtsctl.engine import open_session
    from rtsctl.observe.export import manifest_for, unowned

    out = Path(args.out)
    if out.exists() or out.is_symlink():
        raise RtsctlError(f"{out} exists: export writes a new manifest; choose another --out")
    with open_session(args.manifest, args.variables) as session:
        owner = session.manifest.name
        found = session.backend.export(out.parent.resolve(), owner, args.endpoint)
        missing = [e for e in args.endpoint if not any(f.kind == "endpoint" and f.name == e for f in found)]
        if missing:
            raise RtsctlError(f"no endpoint {missing[0]!r} that {owner!r} or nobody owns in workspace "
                              f"{session.backend.settings.workspace}")
        doc = manifest_for(session.manifest, found, out.resolve())
    if not doc.get("endpoints"):
        raise RtsctlError(f"nothing to export: workspace {session.backend.settings.workspace} holds no endpoint "
                          f"(with a deployment) that {owner!r} or nobody owns")
    header = (f"# Exported by rtsctl from {session.manifest.display} (name: {owner}).\n"
              f"# `rtsctl plan {out}` compares it with the world; what nobody owned yet needs `rtsctl import`.\n")
    write_new(out, header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    counts = {}
    for f in found:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    print(f"Wrote {out}: " + ", ".join(f"{n} {k}(s)" for k, n in counts.items()))
    take = unowned(found, owner)
    if take:
        print("\nNobody owns these yet; to take them into this manifest, run:\n"
              f"  rtsctl import {out} {' '.join(take)}")
    else:
        print(f"\nEverything in it is owned by {owner!r}: rtsctl plan {out} should say No changes.")
    if args.endpoint:
        print(f"note: it holds only the named endpoints; under the name {owner!r}, a plan of it would destroy what "
              f"else {owner!r} owns: merge it into {session.manifest.display} rather than apply it alone",
              file=sys.stderr)
    return 0
