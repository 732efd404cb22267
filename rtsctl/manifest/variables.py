"""`--var KEY=VALUE` and `--var-file FILE`: values for a manifest's `${KEY}` from the command line.

Precedence, highest first (Terraform's order: the flag you typed beats the file you named beats the environment):
  1. `--var KEY=VALUE` (the last one given for a KEY wins)
  2. `--var-file FILE` (files in the order given; a later file wins)
  3. the environment
  4. the manifest's own `${KEY:-default}`
A var file is either a YAML mapping (`KEY: value`, scalars only) or `KEY=VALUE` lines (`#` comments, blank lines,
an optional `export ` prefix: a `.env` file pastes in).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from rtsctl.support.errors import RtsctlError

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_FILE_BYTES = 1 << 20
MAX_VALUE_CHARS = 64 * 1024


def _check(key: str, value: str, where: str) -> tuple[str, str]:
    if not NAME.match(key):
        raise RtsctlError(f"{where}: {key!r} is not a variable name (letters, digits, _; not starting with a digit)")
    if "\0" in value:
        raise RtsctlError(f"{where}: {key}: the value contains a NUL byte")
    if len(value) > MAX_VALUE_CHARS:
        raise RtsctlError(f"{where}: {key}: the value is longer than {MAX_VALUE_CHARS} characters")
    return key, value


def parse_var(text: str) -> tuple[str, str]:
    """'KEY=VALUE' -> (KEY, VALUE); the value may itself contain '='."""
    key, sep, value = text.partition("=")
    if not sep:
        raise RtsctlError(f"--var {text!r}: expected KEY=VALUE")
    return _check(key.strip(), value, "--var")


def read_var_file(path: str) -> dict[str, str]:
    """A YAML mapping or KEY=VALUE lines; errors name file:line. Read like a manifest: bounded, checked first."""
    from rtsctl.manifest.files import read_text_file

    text = read_text_file(path, "--var-file", MAX_FILE_BYTES)
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if lines and all("=" in line and not re.match(r"[^=]*:\s", line) for _, line in lines):
        return _dotenv(path, lines)
    return _yaml(path, text)


def _dotenv(path: str, lines: list[tuple[int, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, line in lines:
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out.update([_check(key.strip(), value, f"{path}:{n}")])
    return out


def _yaml(path: str, text: str) -> dict[str, str]:
    """The manifest's own bounded YAML loader (depth, aliases, expansion), so a var file cannot hang or crash us."""
    import yaml

    from rtsctl.manifest.parse import parse_yaml_text

    data = parse_yaml_text(text, path)  # syntax errors, depth and size first, with file:line
    for token in yaml.scan(text):  # a var file is flat values: no aliases at all
        if isinstance(token, yaml.AliasToken):
            raise RtsctlError(f"{path}:{token.start_mark.line + 1}: YAML aliases are not allowed in a var file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RtsctlError(f"{path}:1: a var file is a mapping of KEY: value (or KEY=VALUE lines)")
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, (dict, list)) or value is None:
            raise RtsctlError(f"{path}: {key}: a variable's value must be a string, number or boolean")
        text_value = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out.update([_check(str(key), text_value, path)])
    return out


def collect(var_files: Sequence[str] | None, assignments: Sequence[str] | None) -> dict[str, str]:
    """The command line's variables, precedence applied (files in order, then --var in order)."""
    out: dict[str, str] = {}
    for path in var_files or ():
        out.update(read_var_file(path))
    for text in assignments or ():
        out.update([parse_var(text)])
    return out


def environment(variables: Mapping[str, str] | None) -> Mapping[str, str]:
    """What `${KEY}` reads: the command line's variables over the process environment."""
    return {**os.environ, **variables} if variables else os.environ
