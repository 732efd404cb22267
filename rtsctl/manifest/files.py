"""Files a manifest names, checked before they are read: regular, readable, bounded, UTF-8 where text.

A path in a manifest may be `/dev/zero`, a FIFO that never answers, a folder, a symlink loop or a
binary blob. Each is refused with a reason before any byte is read: files are opened non-blocking
and checked with fstat on the open descriptor, so nothing can swap the file between check and read.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from rtsctl.support.errors import RtsctlError

from rtsctl.manifest import limits


class FileProblem(ValueError):
    """Why a named file cannot be used; the caller adds file:line: field."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileProblem(f"not found ({path})") from None
    except PermissionError:
        raise FileProblem(f"not readable: permission denied ({path})") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileProblem(f"symlink loop ({path})") from None
        raise FileProblem(f"cannot open: {exc.strerror} ({path})") from None


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The whole of a regular file of at most `max_bytes`, or FileProblem."""
    fd = _open(path)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileProblem(f"{_kind(info.st_mode)}, not a regular file ({path})")
        if info.st_size > max_bytes:
            raise FileProblem(f"{info.st_size} bytes, larger than the {max_bytes}-byte limit ({path})")
        os.set_blocking(fd, True)
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # the file grew while we read it
                raise FileProblem(f"larger than the {max_bytes}-byte limit ({path})")
        return b"".join(chunks)
    except OSError as exc:
        raise FileProblem(f"cannot read: {exc.strerror} ({path})") from None
    finally:
        os.close(fd)


def decode_text(data: bytes, path: Path) -> str:
    """UTF-8 without NUL bytes, else FileProblem naming the line of the first bad byte."""
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise FileProblem(f"contains a NUL byte at line {line}: not a text file ({path})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FileProblem(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}) ({path})") from None


def read_text(path: Path, max_bytes: int = limits.TEXT_FILE_BYTES) -> str:
    return decode_text(read_bytes(path, max_bytes), path)


def regular_file(path: Path, max_bytes: int) -> int:
    """The size of a regular file of at most `max_bytes` (opened, never read), or FileProblem."""
    fd = _open(path)
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(info.st_mode):
        raise FileProblem(f"{_kind(info.st_mode)}, not a regular file ({path})")
    if info.st_size > max_bytes:
        raise FileProblem(f"{info.st_size} bytes, larger than the {max_bytes}-byte limit ({path})")
    return info.st_size


def folder(path: Path, max_files: int = limits.FOLDER_FILES, max_bytes: int = limits.FOLDER_BYTES) -> int:
    """Count the files under a folder, refusing what a copy or a hash would choke on.

    Symlinks to folders (possible loops), symlinks to anything but a regular file, dangling
    symlinks and special files (FIFOs, devices, sockets) are refused: `shutil.copytree` would
    block on a FIFO or copy /dev/zero forever.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileProblem(f"not found ({path})") from None
    except OSError as exc:
        raise FileProblem(f"cannot read: {exc.strerror} ({path})") from None
    if not stat.S_ISDIR(info.st_mode):
        raise FileProblem(f"{_kind(info.st_mode) if not stat.S_ISREG(info.st_mode) else 'a file'}, not a folder ({path})")
    count, total = 0, 0

    def failed(exc: OSError) -> None:
        raise FileProblem(f"cannot read: {exc.strerror} ({exc.filename})")

    for root, dirs, files in os.walk(path, onerror=failed, followlinks=False):
        for name in dirs:
            if os.path.islink(os.path.join(root, name)):
                raise FileProblem(f"contains a symlink to a folder: {os.path.join(root, name)}")
        for name in files:
            entry = os.path.join(root, name)
            try:
                target = os.stat(entry)
            except OSError:
                raise FileProblem(f"contains a dangling or looping symlink: {entry}") from None
            if not stat.S_ISREG(target.st_mode):
                raise FileProblem(f"contains {_kind(target.st_mode)}: {entry}")
            count, total = count + 1, total + target.st_size
            if count > max_files:
                raise FileProblem(f"more than {max_files} files ({path})")
            if total > max_bytes:
                raise FileProblem(f"more than {max_bytes} bytes ({path})")
    return count


def file_or_folder(path: Path) -> None:
    """A model path: one bounded regular file, or a folder that `folder` accepts."""
    try:
        is_folder = stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        is_folder = False  # regular_file says why
    if is_folder:
        folder(path)
    else:
        regular_file(path, limits.FILE_BYTES)


def read_text_file(path: str | os.PathLike[str], what: str, max_bytes: int = limits.TEXT_FILE_BYTES) -> str:
    """A user-named text file (a var file, a request body): RtsctlError `what PATH: reason` if unusable."""
    try:
        return read_text(Path(path), max_bytes)
    except FileProblem as exc:
        raise RtsctlError(f"{what} {path}: {str(exc).removesuffix(f' ({path})')}") from None
