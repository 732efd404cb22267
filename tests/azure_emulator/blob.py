"""The Blob subset the SDKs use for uploads, served for any `{account}.blob.core.windows.net` Host.

Container create/get/list, blob HEAD/GET (with ranges)/PUT/DELETE, `comp=metadata`,
`comp=block` + `comp=blocklist`. Signatures (SAS or SharedKey) are not checked (a deviation: real Storage
answers 403 AuthenticationFailed). Bytes are kept so the data plane can run uploaded code; with a state dir they
are persisted too. Status codes, error codes (BlobNotFound, ContainerNotFound, ...) and headers follow the Blob
service REST reference (learn.microsoft.com rest/api/storageservices: Put Blob, Get Blob Properties, Put Block
List, Set Blob Metadata); the call sequence azure-ai-ml makes is R01 #6/#9, R02 #4, R04 code_2022.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from urllib.parse import unquote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from aiohttp import web

API_VERSION = "2025-01-05"


@dataclass
class Blob:
    data: bytes
    metadata: dict[str, str]
    content_type: str = "application/octet-stream"
    modified: float = field(default_factory=time.time)

    @property
    def etag(self) -> str:
        return '"0x' + hashlib.md5(self.data + repr(self.modified).encode()).hexdigest()[:16].upper() + '"'

    @property
    def md5(self) -> str:
        return base64.b64encode(hashlib.md5(self.data).digest()).decode()


class BlobStore:
    """(account, container, name) -> Blob; container names are case-sensitive like Azure's blob names."""

    def __init__(self, state_dir: Path | None = None):
        self._lock = threading.RLock()
        self.blobs: dict[tuple[str, str, str], Blob] = {}
        self.containers: set[tuple[str, str]] = set()
        self.blocks: dict[tuple[str, str, str], dict[str, bytes]] = {}
        self._dir = state_dir / "blobs" if state_dir else None
        if self._dir and (self._dir / "index.json").exists():
            for row in json.loads((self._dir / "index.json").read_text()):
                data = (self._dir / row["sha"]).read_bytes()
                k = (row["account"], row["container"], row["name"])
                self.blobs[k] = Blob(data, row["metadata"], row["content_type"], row["modified"])
                self.containers.add(k[:2])

    def put(self, account: str, container: str, name: str, blob: Blob) -> None:
        with self._lock:
            self.blobs[(account.lower(), container, name)] = blob
            self.containers.add((account.lower(), container))
            self._save(blob)

    def get(self, account: str, container: str, name: str) -> Blob | None:
        with self._lock:
            return self.blobs.get((account.lower(), container, name))

    def list(self, account: str, container: str, prefix: str = "") -> list[tuple[str, Blob]]:
        with self._lock:
            return sorted((n, b) for (a, c, n), b in self.blobs.items()
                          if a == account.lower() and c == container and n.startswith(prefix))

    def delete(self, account: str, container: str, name: str) -> bool:
        with self._lock:
            found = self.blobs.pop((account.lower(), container, name), None) is not None
            self._save(None)
            return found

    def _save(self, blob: Blob | None) -> None:
        if not self._dir:
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for (a, c, n), b in self.blobs.items():
            sha = hashlib.sha256(b.data).hexdigest()
            if not (self._dir / sha).exists():
                (self._dir / sha).write_bytes(b.data)
            rows.append({"account": a, "container": c, "name": n, "sha": sha, "metadata": b.metadata,
                         "content_type": b.content_type, "modified": b.modified})
        (self._dir / "index.json").write_text(json.dumps(rows))

    def download_prefix(self, account: str, container: str, prefix: str, dest: Path) -> int:
        """Write every blob under `prefix` into `dest`, keeping the relative layout; return the count."""
        prefix = prefix.strip("/")
        count = 0
        for name, blob in self.list(account, container, prefix):
            if prefix and name != prefix and not name.startswith(prefix + "/"):
                continue
            rel = Path(name).name if name == prefix else name[len(prefix):].lstrip("/")
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob.data)
            count += 1
        return count


def storage_error(status: int, code: str, message: str, head: bool = False) -> web.Response:
    headers = {"x-ms-error-code": code, "x-ms-version": API_VERSION, "x-ms-request-id": str(uuid.uuid4())}
    if head:
        return web.Response(status=status, headers=headers)
    body = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>'
    return web.Response(status=status, body=body.encode(), content_type="application/xml", headers=headers)


def _http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def _base_headers(blob: Blob | None = None) -> dict[str, str]:
    headers = {"x-ms-version": API_VERSION, "x-ms-request-id": str(uuid.uuid4()), "Date": _http_date(time.time())}
    if blob is not None:
        headers.update({"ETag": blob.etag, "Last-Modified": _http_date(blob.modified)})
    return headers


def _metadata(request: web.Request) -> dict[str, str]:
    return {k[len("x-ms-meta-"):]: v for k, v in request.headers.items() if k.lower().startswith("x-ms-meta-")}


class BlobApi:
    def __init__(self, store: BlobStore):
        self.store = store

    async def handle(self, request: web.Request, account: str) -> web.Response:
        parts = unquote(request.path).lstrip("/").split("/", 1)
        container = parts[0]
        name = parts[1] if len(parts) > 1 else ""
        q = request.query
        head = request.method == "HEAD"
        if not container:
            return storage_error(400, "InvalidUri", "Account-level operations are not emulated.", head)
        if not name:
            return await self.container_op(request, account, container, head)
        comp = q.get("comp", "")
        if request.method == "PUT":
            data = await request.read()
            if comp == "metadata":
                blob = self.store.get(account, container, name)
                if blob is None:
                    return storage_error(404, "BlobNotFound", "The specified blob does not exist.")
                blob.metadata = _metadata(request)
                blob.modified = time.time()
                self.store.put(account, container, name, blob)
                return web.Response(status=200, headers=_base_headers(blob))
            if comp == "block":
                self.store.blocks.setdefault((account.lower(), container, name), {})[q["blockid"]] = data
                return web.Response(status=201, headers=_base_headers())
            if comp == "blocklist":
                staged = self.store.blocks.pop((account.lower(), container, name), {})
                ids = [el.text or "" for el in ElementTree.fromstring(data)]
                missing = [i for i in ids if i not in staged]
                if missing:
                    return storage_error(400, "InvalidBlockList", f"Blocks not staged: {missing[:3]}")
                data = b"".join(staged[i] for i in ids)
            blob = Blob(data, _metadata(request),
                        request.headers.get("x-ms-blob-content-type") or request.headers.get("Content-Type")
                        or "application/octet-stream")
            self.store.put(account, container, name, blob)
            headers = _base_headers(blob)
            headers.update({"Content-MD5": blob.md5, "x-ms-request-server-encrypted": "true"})
            return web.Response(status=201, headers=headers)
        blob = self.store.get(account, container, name)
        if request.method == "DELETE":
            if not self.store.delete(account, container, name):
                return storage_error(404, "BlobNotFound", "The specified blob does not exist.")
            return web.Response(status=202, headers=_base_headers())
        if request.method not in ("GET", "HEAD"):
            return storage_error(405, "UnsupportedHttpVerb", f"{request.method} is not supported.")
        if blob is None:
            return storage_error(404, "BlobNotFound", "The specified blob does not exist.", head)
        headers = _base_headers(blob)
        headers.update({"x-ms-blob-type": "BlockBlob", "Content-Type": blob.content_type, "Accept-Ranges": "bytes",
                        "x-ms-lease-status": "unlocked", "x-ms-lease-state": "available",
                        "x-ms-creation-time": _http_date(blob.modified), "x-ms-server-encrypted": "true"})
        headers.update({f"x-ms-meta-{k}": v for k, v in blob.metadata.items()})
        data, status = blob.data, 200
        rng = request.headers.get("x-ms-range") or request.headers.get("Range")
        if rng and rng.startswith("bytes=") and data:
            start_s, _, end_s = rng[6:].partition("-")
            start = int(start_s or 0)
            end = min(int(end_s) if end_s else len(data) - 1, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start:end + 1], 206
        if head:
            headers["Content-Length"] = str(len(data))
            return web.Response(status=200, headers=headers)
        headers.pop("Content-Type")
        return web.Response(status=status, body=data, content_type=blob.content_type, headers=headers)

    async def container_op(self, request: web.Request, account: str, container: str, head: bool) -> web.Response:
        q = request.query
        key = (account.lower(), container)
        if request.method == "PUT":
            if key in self.store.containers:
                return storage_error(409, "ContainerAlreadyExists", "The specified container already exists.")
            self.store.containers.add(key)
            return web.Response(status=201, headers=_base_headers())
        if request.method == "DELETE":
            for name, _ in self.store.list(account, container):
                self.store.delete(account, container, name)
            self.store.containers.discard(key)
            return web.Response(status=202, headers=_base_headers())
        if q.get("comp") == "list":
            return self.list_blobs(account, container, q)
        if key not in self.store.containers:
            return storage_error(404, "ContainerNotFound", "The specified container does not exist.", head)
        return web.Response(status=200, headers={**_base_headers(), "x-ms-lease-status": "unlocked",
                                                  "x-ms-lease-state": "available"})

    def list_blobs(self, account: str, container: str, q) -> web.Response:
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        with_meta = "metadata" in q.get("include", "")
        items, prefixes = [], set()
        for name, blob in self.store.list(account, container, prefix):
            if delimiter and delimiter in name[len(prefix):]:
                prefixes.add(prefix + name[len(prefix):].split(delimiter)[0] + delimiter)
                continue
            meta = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in blob.metadata.items()) if with_meta else ""
            items.append(
                f"<Blob><Name>{escape(name)}</Name><Properties><Creation-Time>{_http_date(blob.modified)}"
                f"</Creation-Time><Last-Modified>{_http_date(blob.modified)}</Last-Modified><Etag>{blob.etag}</Etag>"
                f"<Content-Length>{len(blob.data)}</Content-Length><Content-Type>{escape(blob.content_type)}"
                f"</Content-Type><Content-MD5>{blob.md5}</Content-MD5><BlobType>BlockBlob</BlobType>"
                f"<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
                f"<ServerEncrypted>true</ServerEncrypted></Properties>"
                + (f"<Metadata>{meta}</Metadata>" if with_meta else "") + "</Blob>")
        items += [f"<BlobPrefix><Name>{escape(p)}</Name></BlobPrefix>" for p in sorted(prefixes)]
        body = (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults '
                f'ServiceEndpoint="https://{account}.blob.core.windows.net/" ContainerName="{escape(container)}">'
                f"<Prefix>{escape(prefix)}</Prefix>" + (f"<Delimiter>{escape(delimiter)}</Delimiter>" if delimiter else "")
                + f"<Blobs>{''.join(items)}</Blobs><NextMarker /></EnumerationResults>")
        return web.Response(status=200, body=body.encode(), content_type="application/xml", headers=_base_headers())
