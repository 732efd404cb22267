"""A conda file's `pip:` entries, read as what they must be: PEP 508 requirements naming a PyPI package.

Where rtsctl builds an environment itself (the local backend), each entry reaches uv, and uv reads
far more than package names from a requirements line: options (`--requirement=/etc/passwd`,
`--extra-index-url http://host/${HOME}/`, `--find-links`, `--no-index`, `--editable=/p`), paths and
`file:///` URLs (a local `setup.py` runs at build time, and later edits to it never change the
environment's digest), and a carriage return splits one entry into two lines. So an entry is parsed
with the `packaging` library (the parser pip itself vendors) and kept only if it is a requirement
with no URL (`Requirement.url` is None), on one printable line, with no `$` (uv expands variables in
requirement files); it is then handed to uv in canonical form (name normalized per PEP 503, so
`foo.whl` cannot be mistaken for a wheel file). Everything else is refused at `validate`, with the
conda file's line, before any resource exists. A private index is not supported: a package comes
from PyPI, as the plan says.

Azure builds its own image from the same file (pip inside conda), so for the azure provider these
entries are only noted by `validate`, never refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_ENTRY_CHARS = 300


@dataclass(frozen=True)
class PipEntry:
    """One `pip:` entry: where it is, what was written, and its canonical requirement or why it is refused."""

    line: int | None
    text: str
    requirement: str | None
    problem: str | None


def pip_requirement(entry: Any) -> tuple[str | None, str | None]:
    """(canonical requirement, None) or (None, why it is refused)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    if not isinstance(entry, str):
        return None, "is not a string"
    text = entry.strip()
    if len(text) > MAX_ENTRY_CHARS:
        return None, f"is longer than {MAX_ENTRY_CHARS} characters"
    if not text.isprintable():
        return None, "contains a control character (a line break would make it two entries)"
    if text.startswith("-"):
        return None, ("is a pip option; only package requirements are allowed (a private index, a "
                      "requirements file or an editable install is not supported)")
    if "$" in text:
        return None, "contains `$`; variables are not expanded in conda files"
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        if "/" in text or "\\" in text or text.startswith("."):
            return None, "is a path or URL; only PyPI package requirements are allowed"
        return None, f"is not a PEP 508 requirement (name[extras] version; marker): {str(exc).splitlines()[0]}"
    if req.url is not None:
        return None, "names a URL (`name @ url`); only PyPI package requirements are allowed"
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    marker = f"; {req.marker}" if req.marker is not None else ""
    return f"{canonicalize_name(req.name)}{extras}{req.specifier}{marker}", None


def pip_entries(data: Any) -> list[PipEntry]:
    """Every `pip:` entry of a parsed conda file (marked containers give lines; plain ones give None)."""
    deps = data.get("dependencies") if isinstance(data, dict) else None
    found: list[PipEntry] = []
    if not isinstance(deps, list):
        return found
    for dep in deps:
        if not (isinstance(dep, dict) and "pip" in dep and isinstance(dep["pip"], list)):
            continue
        items = dep["pip"]
        lines = getattr(items, "item_lines", [])
        for i, item in enumerate(items):
            requirement, problem = pip_requirement(item)
            found.append(PipEntry(lines[i] if i < len(lines) else None, str(item)[:80], requirement, problem))
    return found
