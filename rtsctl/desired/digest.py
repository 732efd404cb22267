"""Content digests of local files and folders: the identity of a model or code version.

Same bytes give the same digest wherever the files live, so moving a folder changes
nothing, while editing one byte makes a new model version or redeploys the code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

_SKIP_DIRS = {"__pycache__", ".git", ".ipynb_checkpoints"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


def digest_path(path: Path) -> str:
    """`sha256:<hex>` over relative names and contents (a file digests as its own name + bytes)."""
    h = hashlib.sha256()
    for rel, digest in file_digests(path).items():
        h.update(rel.encode() + b"\0")
        h.update(bytes.fromhex(digest))
    return "sha256:" + h.hexdigest()


def file_digests(path: Path) -> dict[str, str]:
    """Each file under `path` (or `path` itself) by relative name -> hex sha256 of its bytes, in name order.

    What a saved plan pins, file by file, so a refusal can name the one file that changed. Memoized per
    process on the file's identity (inode, size, mtime, ctime): a plan and the digests it records read a
    gigabyte model once, not twice."""
    out: dict[str, str] = {}
    for file in _files(path):
        rel = file.name if file == path else file.relative_to(path).as_posix()
        out[rel] = _file_sha256(file)
    return out


_memo: dict[tuple[str, int, int, int, int], str] = {}


def _file_sha256(file: Path) -> str:
    st = file.stat()
    key = (str(file), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _memo:
        with open(file, "rb") as f:  # in chunks: a model file may be gigabytes
            _memo[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _memo[key]


def digest_text(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() + b"\0")
    return "sha256:" + h.hexdigest()


def conda_part(text: str) -> str:
    """A conda file as its digest reads it: the parsed YAML, canonically. The bytes are not kept by Azure (the
    SDK sends its own YAML dump of the parsed file: azure-ai-ml entities/_assets/environment.py
    `_translated_conda_file`), so only the content can be compared with what an export reads back."""
    import json

    import yaml

    try:
        return json.dumps(yaml.safe_load(text), sort_keys=True, default=str)
    except yaml.YAMLError:
        return text  # validate reports it; the digest of bad YAML is its bytes


def current(found: str | None, wanted: str, aliases: Sequence[str] = ()) -> str | None:
    """`wanted` when `found` is one of its `aliases` (the same content as an earlier rtsctl digested it: a conda
    file's bytes, before `conda_part`), else `found`: an upgrade never re-registers or re-deploys what is unchanged."""
    return wanted if found is not None and found in aliases else found


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(
        p for p in path.rglob("*")
        if p.is_file() and p.suffix not in _SKIP_SUFFIXES and not (_SKIP_DIRS & set(p.relative_to(path).parts))
    )
