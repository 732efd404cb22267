"""A copy of this package alone, for the PYTHONPATH of scoring hosts in users' environments.

A host runs in the deployment's own environment; putting rtsctl's install location on
its path would also expose rtsctl's dependencies and hide a package missing from the
user's conda file. So hosts get a folder holding only `serving/` (stdlib-only code),
copied once per content digest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def isolated_path(root: Path) -> Path:
    """`root/serving-<digest>`, holding `serving/`; created atomically on first use."""
    files = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    target = root / f"serving-{digest.hexdigest()[:16]}"
    if (target / "serving").is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))   # 0700
    try:
        for path in files:
            dest = staging / "serving" / path.relative_to(PACKAGE)
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(path, dest)   # content only, 0600: not the install's mode
            os.chmod(dest, 0o600)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)   # a full disk leaves no half copy
        raise
    try:
        os.rename(staging, target)
    except OSError:  # another apply made it first
        shutil.rmtree(staging, ignore_errors=True)
    return target
