"""Request bodies: one fixed payload, a file of payloads (cycled), or a template with `{i}` (varied per request).

Everything is validated and pre-encoded before the run, so the engine only picks bytes: `static` when every request
is the same, else `next()` (a list cycled, or a template's parts joined around the request number).
"""

from __future__ import annotations

import json
from itertools import count
from pathlib import Path

from rtsctl.bench.wire import encode_request
from rtsctl.support.errors import RtsctlError

DEFAULT_BODY = '{"name": "rtsctl"}'
TEMPLATE_TOKEN = "{i}"
PAYLOAD_FILE_BYTES = 64 << 20  # a JSON Lines file of request bodies, held in memory and cycled


def check_json(text: str, where: str) -> None:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise RtsctlError(f"{where}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None


def load_payload_file(path: str, is_json: bool) -> list[str]:
    """A JSON document, or JSON Lines (one payload per line, cycled). Non-JSON content types: the file as is."""
    from rtsctl.manifest.files import read_text_file  # regular, bounded, UTF-8, checked before reading (/dev/zero)

    text = read_text_file(path, "payload file", PAYLOAD_FILE_BYTES)
    if not text.strip():
        raise RtsctlError(f"payload file {path}: empty")
    if not is_json:
        return [text]
    try:
        json.loads(text)
        return [text.strip()]
    except json.JSONDecodeError as whole:
        lines = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
        if Path(path).suffix.lower() not in (".jsonl", ".ndjson") and (len(lines) < 2 or not _all_json(lines)):
            raise RtsctlError(f"payload file {path}: not valid JSON: {whole.msg} "
                              f"(line {whole.lineno}, column {whole.colno})") from None
    for n, line in lines:                     # JSON Lines: every line must parse
        check_json(line, f"payload file {path}: line {n}")
    return [line for _, line in lines]


def _all_json(lines: list[tuple[int, str]]) -> bool:
    try:
        for _, line in lines:
            json.loads(line)
        return True
    except json.JSONDecodeError:
        return False


class RequestSource:
    """`static` (bytes or None) and `next()` -> bytes of the next request."""

    def __init__(self, head: bytes, method: str, bodies: list[str] | None = None, template: str | None = None,
                 start: int = 0, step: int = 1):
        self.head, self.method = head, method
        self.static: bytes | None = None
        if template is not None:
            pre, _, post = template.partition(TEMPLATE_TOKEN)
            rest = post.split(TEMPLATE_TOKEN)
            self._parts = (pre.encode(), [r.encode() for r in rest])
            self._counter = count(start, step)
            self.next = self._from_template
        else:
            reqs = [encode_request(head, b.encode("utf-8"), method) for b in (bodies or [""])]
            if len(reqs) == 1:
                self.static = reqs[0]
                self.next = lambda: reqs[0]
            else:
                self._reqs, self._i = reqs, start % len(reqs)
                self.next = self._from_list

    def _from_list(self) -> bytes:
        i = self._i
        self._i = (i + 1) % len(self._reqs)
        return self._reqs[i]

    def _from_template(self) -> bytes:
        n = str(next(self._counter)).encode()
        pre, rest = self._parts
        body = pre + n + n.join(rest)
        return self.head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


def check_template(template: str, is_json: bool) -> None:
    if TEMPLATE_TOKEN not in template:
        raise RtsctlError(f"--template must contain {TEMPLATE_TOKEN} (the request number), e.g. "
                          '\'{"name": "user-{i}"}\'')
    if is_json:
        check_json(template.replace(TEMPLATE_TOKEN, "0"), "--template (with {i}=0)")
