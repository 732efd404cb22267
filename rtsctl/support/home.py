"""RTSCTL_HOME (default ~/.rtsctl): where rtsctl keeps what it writes on this machine, and how it writes it.

Every file rtsctl keeps goes through this module, so three promises hold in one place:

- Private: folders are 0700 and files 0600 (keys, models, records, locks). A home or cache owned by another
  user, or that group or others may write, is refused before anything runs, the way ssh refuses a loose
  ~/.ssh: whoever can write there can plant the serving code or a key that then runs or is used as you.
- Crash-consistent: a file is written to a temp file in its own folder, fsync'd, then renamed over the old
  one, so a reader (or the next apply after a crash or a full disk) sees the old content or the new, never
  half of it, and a failed write leaves no temp file behind.
- Named failures: an OSError becomes a StorageError naming the path and what rtsctl was writing, never a
  bare `[Errno 28]`.

Shared helpers: home(), private_root(), private_dir(), write_atomic(), write_json(), open_lock(),
private_copy(), storage_error().
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from rtsctl.support.errors import RtsctlError

_checked: set[str] = set()


class StorageError(RtsctlError):
    """rtsctl could not read or write one of its own files: names the path, the resource and the reason."""


def home() -> Path:
    """RTSCTL_HOME made absolute (a relative one would mean another folder to each child process that starts
    elsewhere), created 0700 if missing and refused if someone else owns it or may write it."""
    return private_root(os.environ.get("RTSCTL_HOME") or Path.home() / ".rtsctl", "RTSCTL_HOME")


def private_root(path: str | Path, setting: str) -> Path:
    """`path` (absolute) as a folder only this user can use: created 0700 when missing; an existing one that
    this user owns is tightened to 0700; refused (StorageError naming `setting`) when another user owns it,
    or it is group/other-writable and not ours to fix, or one of its parents lets another user replace it.
    Checked once per process and path."""
    root = Path(os.path.abspath(Path(path).expanduser()))
    key = str(root)
    if key in _checked:
        return root
    _check_parents(root, setting)
    if not os.path.lexists(root):
        private_dir(root)
    try:
        info = os.lstat(root)
    except OSError as exc:
        raise storage_error(exc, f"{setting} folder", root) from None
    if stat.S_ISLNK(info.st_mode) and info.st_uid in (0, os.geteuid()):
        # a home moved to a bigger disk and linked back: the folder it points at must pass the same checks
        private_root(os.path.realpath(root), setting)
        _checked.add(key)
        return root
    if not stat.S_ISDIR(info.st_mode):
        raise StorageError(f"{setting} {root} is not a folder (or a link of another user's); point {setting} "
                           "at a folder of your own")
    if info.st_uid != os.geteuid():
        raise StorageError(f"{setting} {root} belongs to another user (uid {info.st_uid}): whoever owns it can "
                           f"plant code or keys that would run as you. Set {setting} to a folder of your own "
                           f"(default ~/.rtsctl)")
    if info.st_mode & 0o022:
        raise StorageError(f"{setting} {root} may be written by other users (mode {stat.S_IMODE(info.st_mode):04o}): "
                           f"they could plant code or keys that would run as you. If nobody else put anything "
                           f"there, run `chmod 700 {root}`; otherwise remove it and let rtsctl create it")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(root, 0o700)   # a folder of ours made readable by an older rtsctl: nobody else may enter it now
    _checked.add(key)
    return root


def _check_parents(root: Path, setting: str) -> None:
    """Like OpenSSH's safe_path: every existing parent is owned by root or us and not writable by others,
    except a sticky folder such as /tmp (others cannot rename what is ours in it)."""
    for parent in root.parents:
        try:
            info = os.stat(parent)
        except FileNotFoundError:
            continue
        except OSError:
            return
        mine_or_root = info.st_uid in (0, os.geteuid())
        loose = info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX
        if not mine_or_root or loose:
            raise StorageError(f"{setting} {root} is inside {parent}, which another user "
                               f"{'owns' if not mine_or_root else 'may write'}: they could replace it. Set "
                               f"{setting} to a folder of your own (default ~/.rtsctl)")


def private_dir(path: Path) -> Path:
    """Create `path` and its missing parents 0700 (Path.mkdir gives parents the umask's mode); an existing
    one is left as it is (it lies under a checked 0700 root)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue
        except OSError as exc:
            raise storage_error(exc, "folder", folder) from None
        os.chmod(folder, 0o700)
    return path


def write_atomic(path: Path, data: bytes | str, what: str = "file", mode: int = 0o600, durable: bool = True) -> None:
    """Write `data` as the whole content of `path`: temp file in the same folder, fsync, rename. A reader sees
    the old or the new content, never a half (a zero-byte key after a full disk cannot exist); any failure
    removes the temp file and raises StorageError naming `what` and the path. The rename replaces a symlink
    at `path` rather than writing through it. `durable=False` skips the fsync, for a report its writer
    rewrites anyway (the front's status.json: an fsync would stall its event loop)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    private_dir(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise storage_error(exc, what, path) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def write_json(path: Path, data: dict[str, Any], mode: int = 0o600, what: str = "record") -> None:
    """A JSON record, written atomically (write_atomic)."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True), what, mode)


def open_lock(path: Path) -> int:
    """The fd of lock file `path`, 0600 in a 0700 folder (another user can neither open it to flock nor
    reach it), never followed through a symlink."""
    folder = private_dir(path.parent)
    try:
        if stat.S_IMODE(os.stat(folder).st_mode) & 0o077 and os.stat(folder).st_uid == os.geteuid():
            os.chmod(folder, 0o700)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise storage_error(exc, "lock", path) from None


def private_copy(source: Path, target: Path, what: str = "file", skip: tuple[str, ...] = ("__pycache__",)) -> None:
    """Copy a file or a folder tree to `target`: content only (files 0600, folders 0700), not the source's
    modes, which may let other users read it (a model.pkl of mode 0644 stays readable by the owner only)."""
    try:
        if source.is_dir():
            shutil.copytree(source, target, copy_function=shutil.copyfile, ignore=shutil.ignore_patterns(*skip))
            for folder, _, files in os.walk(target):
                os.chmod(folder, 0o700)
                for name in files:
                    os.chmod(os.path.join(folder, name), 0o600)
        else:
            private_dir(target.parent)
            shutil.copyfile(source, target)
            os.chmod(target, 0o600)
    except shutil.Error as exc:
        raise StorageError(f"cannot copy {what} {source} to {target}: {exc}") from None
    except OSError as exc:
        raise storage_error(exc, what, Path(exc.filename) if exc.filename else target) from None


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def out_of_space(path: Path) -> str | None:
    """Why nothing can be written under `path` now (no free block or inode on its file system), else None:
    for `plan` to say so, as what it reads there (a front's status) may have stopped being updated."""
    try:
        fs = os.statvfs(path)
    except OSError:
        return None
    if fs.f_bavail == 0 or (fs.f_files and fs.f_favail == 0):
        return (f"the file system holding {path} is full ({'no free space' if fs.f_bavail == 0 else 'no free inodes'})"
                ": what runs there cannot record its state; free some space")
    return None


def storage_error(exc: OSError, what: str, path: Path | str | None = None) -> StorageError:
    """One line naming the path, the resource and the reason, with what to do for a full disk."""
    where = path if path is not None else (exc.filename2 or exc.filename)   # a copy's target is filename2
    reason = exc.strerror or str(exc)
    hint = "; free some space and run the command again (nothing half-written was kept)" \
        if exc.errno in NO_SPACE else ""
    return StorageError(f"cannot write {what} {where}: {reason} [errno {exc.errno}]{hint}")
