"""The generic ARM resource store: bodies keyed by case-insensitive id, plus server-private data.

Thread-safe (the aiohttp loop writes, the test thread reads); optionally persisted as JSON
in `state_dir` so a hand-run emulator survives restarts.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .ids import ArmPath, key


@dataclass
class Record:
    id: str                     # casing of the first writer
    body: dict
    private: dict = field(default_factory=dict)   # server-side secrets/state never returned by GET
    created: float = field(default_factory=time.time)


class Store:
    def __init__(self, state_dir: Path | None = None):
        self._lock = threading.RLock()
        self._records: dict[str, Record] = {}
        self._file = state_dir / "resources.json" if state_dir else None
        if self._file and self._file.exists():
            for raw in json.loads(self._file.read_text()):
                rec = Record(raw["id"], raw["body"], raw.get("private", {}), raw.get("created", time.time()))
                self._records[key(rec.id)] = rec
                state = (rec.body.get("properties") or {}).get("provisioningState")
                if state in ("Creating", "Updating", "Deleting"):   # operations do not survive a restart
                    rec.body["properties"]["provisioningState"] = "Succeeded"

    # -- reads -------------------------------------------------------------------------------------
    def get(self, path: str) -> Record | None:
        with self._lock:
            return self._records.get(key(path))

    def body(self, path: str) -> dict | None:
        rec = self.get(path)
        return copy.deepcopy(rec.body) if rec else None

    def exists(self, path: str) -> bool:
        return self.get(path) is not None

    def children(self, collection_path: str) -> list[Record]:
        """Direct children of a collection path (`.../onlineEndpoints`), oldest first."""
        prefix = key(collection_path) + "/"
        depth = prefix.count("/")
        with self._lock:
            found = [r for k, r in self._records.items() if k.startswith(prefix) and k.count("/") == depth]
        return sorted(found, key=lambda r: r.created)

    def descendants(self, path: str) -> list[Record]:
        prefix = key(path) + "/"
        with self._lock:
            return [r for k, r in self._records.items() if k.startswith(prefix)]

    def ids(self) -> list[str]:
        with self._lock:
            return [r.id for r in sorted(self._records.values(), key=lambda r: r.created)]

    def find(self, predicate) -> list[Record]:
        with self._lock:
            return [r for r in self._records.values() if predicate(r)]

    # -- writes ------------------------------------------------------------------------------------
    def put(self, path: str, body: dict, private: dict | None = None) -> Record:
        with self._lock:
            rec = self._records.get(key(path))
            if rec is None:
                rec = Record(ArmPath.parse(path).path, body, private or {})
                self._records[key(path)] = rec
            else:
                rec.body = body
                if private is not None:
                    rec.private = private
            self.save()
            return rec

    def delete(self, path: str) -> list[str]:
        """Remove a resource and everything under it (ARM cascades); return the removed ids."""
        prefix = key(path)
        with self._lock:
            gone = [k for k in self._records if k == prefix or k.startswith(prefix + "/")]
            removed = [self._records.pop(k).id for k in gone]
            self.save()
            return removed

    def save(self) -> None:
        if not self._file:
            return
        with self._lock:
            data = [{"id": r.id, "body": r.body, "private": r.private, "created": r.created}
                    for r in self._records.values()]
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self._file)
