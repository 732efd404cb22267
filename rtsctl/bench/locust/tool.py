"""Which Python runs Locust: RTSCTL_LOCUST_PYTHON if set (checked), else a tool environment rtsctl provisions once.

Locust is not one of rtsctl's dependencies: it brings gevent, greenlet, zmq and Flask, which a user who never runs
`--engine locust` should not install, and whose versions must not constrain rtsctl's own. So rtsctl runs Locust in
an environment of its own: built with uv the first time it is needed (a few seconds with a warm uv cache; the
message says so), in rtsctl's environment cache (the one local deployments use: `$RTSCTL_ENV_CACHE`, default
`$RTSCTL_HOME/envs/`, private, keyed by content, built under a lock, reused after), pinned to LOCUST_VERSION.

RTSCTL_LOCUST_PYTHON names an interpreter that already has Locust (a team's own pin, an offline machine). It is run
with the endpoint key in its environment, so rtsctl refuses one that another user could have replaced: the file,
what it links to and its folder must belong to this user or root and not be writable by group or others.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from rtsctl.support.errors import RtsctlError

LOCUST_VERSION = "2.47.0"
REQUIREMENT = f"locust=={LOCUST_VERSION}"
SETTING = "RTSCTL_LOCUST_PYTHON"


def locust_python(say=None) -> Path:
    """The interpreter to run `python -m locust` with."""
    given = os.environ.get(SETTING)
    if given:
        return checked(Path(given))
    return provisioned(say)


def checked(path: Path) -> Path:
    """`path` if only this user (or root) could have put it there; RtsctlError naming the setting otherwise."""
    path = Path(os.path.abspath(path.expanduser()))
    try:
        target = Path(os.path.realpath(path))
        infos = [(path, os.lstat(path)), (target, os.stat(target)), (path.parent, os.stat(path.parent))]
    except OSError as exc:
        raise RtsctlError(f"{SETTING}={path}: {exc.strerror}") from None
    for where, info in infos:
        if info.st_uid not in (0, os.geteuid()):
            raise RtsctlError(f"{SETTING}={path}: {where} belongs to another user (uid {info.st_uid}); rtsctl runs "
                              "it with the endpoint key, so it must be yours (or root's)")
        if not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o022:
            raise RtsctlError(f"{SETTING}={path}: {where} may be written by other users "
                              f"(mode {stat.S_IMODE(info.st_mode):04o}); rtsctl runs it with the endpoint key")
    if not stat.S_ISREG(os.stat(target).st_mode) or not os.access(target, os.X_OK):
        raise RtsctlError(f"{SETTING}={path}: not an executable file")
    return path


def provisioned(say=None) -> Path:
    """rtsctl's Locust environment, built with uv on first use (reconcilers.local.envs: the same cache, lock and
    scrubbed uv as local deployments' environments)."""
    from reconcilers.local import envs

    spec = envs.EnvSpec((REQUIREMENT,))
    found = envs.built(spec)
    tell = say or (lambda line: print(f"rtsctl bench: {line}", file=sys.stderr, flush=True))
    if found is None:
        tell(f"first use of --engine locust: installing Locust {LOCUST_VERSION} with uv into rtsctl's cache "
             f"({envs.cache_root()}); later runs reuse it ({SETTING} names a Python of your own instead)")
    try:
        env = envs.ensure(spec, lambda line: tell(f"locust environment: {line}") if found is None else None)
    except envs.EnvBuildError as exc:
        raise RtsctlError(f"cannot install Locust {LOCUST_VERSION}: {exc} (or set {SETTING} to a Python that has "
                          "it)") from None
    return env / "bin" / "python"
