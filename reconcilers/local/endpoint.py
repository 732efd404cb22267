"""Local online endpoint: a front process (serving.front) checking bearer keys, routing, supervising.

Its port is chosen once and kept across re-applies and restarts, so a scoring URI a
user copied stays valid. Keys are generated with `secrets` and stored mode 0600. The
record (spec, port) is written before the front is spawned, and the front is found
again by the endpoint folder in its argv, so a SIGKILL of rtsctl at any point leaves
nothing a re-apply or destroy cannot find.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from rtsctl.support.errors import ResourceError
from rtsctl.desired.resources import Observed, Resource
from serving.keeper import RECORD as FRONT_RECORD

from ..base import Reconciler
from . import procs
from .routes import RECORD, edit_routes, front_pid, read_status, reload_front
from .state import Layout, new_key, out_of_space, private_dir, read_json, write_json, write_secret

KEY_FILES = ("primary", "secondary")
BIND = "127.0.0.1"


def _uri_host(bind: str) -> str:
    """Where a client on this machine reaches an endpoint bound to `bind`."""
    if bind in ("0.0.0.0", "::"):
        return "127.0.0.1" if bind == "0.0.0.0" else "[::1]"
    return f"[{bind}]" if ":" in bind else bind


def front_alive(folder: Path, record: dict) -> bool:
    """True when our own front (this user's process, found by its endpoint folder) holds the listening socket
    of the endpoint's port and answers there. A process of someone else on that port is never trusted: it
    would get the bearer key from `invoke`, `bench` and the smoke test."""
    pid = front_pid(folder)
    return pid is not None and procs.listens_on(pid, record["port"]) and procs.http_ok(
        f"http://{_uri_host(record.get('host', BIND))}:{record['port']}/", timeout=1.0)


class EndpointReconciler(Reconciler):
    kind = "endpoint"
    immutable = frozenset({"compute"})
    sensitive = frozenset({"primary_key", "secondary_key"})

    def __init__(self, layout: Layout, bind: str = BIND):
        self.layout, self.bind = layout, bind

    def observe(self, res: Resource) -> Observed | None:
        return self._observe(res.address, self.layout.endpoint(res.name))

    def _observe(self, address: str, folder: Path) -> Observed | None:
        record = read_json(folder / RECORD)
        if record is None or "spec" not in record:
            return None
        alive = front_alive(folder, record)
        problems = [] if alive else [f"endpoint process (port {record['port']}) is not running"]
        notes, dying = front_history(folder)
        problems += dying
        if record.get("host", BIND) != self.bind:
            problems.append(f"listens on {record.get('host', BIND)}; provider.bind asks for {self.bind}")
        keys = {f"{name}_key": _read_key(folder, name) for name in KEY_FILES}
        full = out_of_space(folder)
        if full:
            problems.append(full)
        if record["spec"].get("auth_mode", "key") == "key":
            problems += [f"key {name} is missing or empty" for name in KEY_FILES if keys[f"{name}_key"] is None]
        # no scoring URI while no front of ours serves it: nothing sends a key to whatever holds the port
        uri = f"http://{_uri_host(record.get('host', BIND))}:{record['port']}/score" if alive else None
        return Observed(address, record["spec"], owned=True, problems=problems, owner=record.get("owner"),
                        notes=notes,
                        outputs={"scoring_uri": uri, "provisioning_state": "Succeeded" if alive else
                                 f"not serving (no front of yours answers on port {record['port']}; run rtsctl apply)",
                                 **keys}, handle=folder)

    def create(self, res: Resource) -> None:
        folder = self.layout.endpoint(res.name)
        private_dir(folder)
        record = read_json(folder / RECORD) or {}
        for name in KEY_FILES:
            if _read_key(folder, name) is None:
                write_secret(folder / "keys" / name, new_key())
        record.update(self.layout.mark({"spec": res.spec}))
        record.setdefault("port", procs.free_port())
        moved = record.get("host", self.bind) != self.bind
        record["host"] = self.bind
        write_json(folder / RECORD, record)          # intent first: the port is ours from here on
        edit_routes(folder, lambda routes: routes.update(auth_mode=res.spec.get("auth_mode", "key")))
        if not moved and front_alive(folder, record):
            reload_front(folder)
            return
        procs.stop_owned(folder)                       # a hung or half-started front from a killed run
        if not procs.port_is_free(record["port"]):
            raise ResourceError(res.address, f"port {record['port']} of the scoring URI is taken by another process")
        logs = self.layout.logs(res.name)
        proc = procs.spawn(procs.python_module("serving.front", "--dir", str(folder), "--port", str(record["port"]),
                                               "--host", record["host"], "--logs", str(logs)),
                           logs / "front.start.log", env=procs.child_env())
        ready = procs.wait_until(lambda: proc.poll() is not None or (
            procs.http_ok(f"http://{_uri_host(record['host'])}:{record['port']}/", 0.5)
            and read_status(folder) is not None), 15.0)
        if not ready or proc.poll() is not None:
            full = out_of_space(folder)
            dying = front_history(folder)[1]
            raise ResourceError(res.address, f"endpoint process did not start{f' ({full})' if full else ''}; "
                                f"see {logs / 'front.log'}" + (f"; {dying[0]}" if dying else ""))

    def delete(self, observed: Observed) -> None:
        folder: Path = observed.handle
        procs.stop_owned(folder)
        (folder / RECORD).unlink(missing_ok=True)     # gone for observe() even if the rest is interrupted
        shutil.rmtree(folder, ignore_errors=True)

    def claim(self, res: Resource, observed: Observed) -> None:
        folder = self.layout.endpoint(res.name)
        write_json(folder / RECORD, self.layout.mark(read_json(folder / RECORD) or {}))

    def regenerate_key(self, res: Resource, which: str) -> None:
        """Replace one key (`primary` or `secondary`); the other is never touched, so clients on it see no 401.
        The new file replaces the old atomically, then the front reloads its keys (SIGHUP)."""
        folder = self.layout.endpoint(res.name)
        if read_json(folder / RECORD) is None:
            raise ResourceError(res.address, "does not exist yet: run rtsctl apply first")
        if res.spec.get("auth_mode", "key") != "key":
            raise ResourceError(res.address, f"uses {res.spec['auth_mode']} authentication, which has no keys")
        write_secret(folder / "keys" / which, new_key())
        reload_front(folder)

    def discover(self, desired: Sequence[Resource]) -> list[Observed]:
        root = self.layout.endpoints()
        if not root.is_dir():
            return []
        declared = {r.name for r in desired if r.kind == self.kind}
        found = [self._observe(f"endpoint.{p.name}", p) for p in sorted(root.iterdir())
                 if p.is_dir() and p.name not in declared]
        return [o for o in found if o is not None]


def front_history(folder: Path) -> tuple[list[str], list[str]]:
    """What the front's keeper (serving.keeper) recorded: (notes on restarts, problems when it keeps dying)."""
    record = read_json(folder / FRONT_RECORD) or {}
    restarts = record.get("restarts")
    if not isinstance(restarts, int) or restarts <= 0:
        return [], []
    when = record.get("last_exit_at")
    at = time.strftime(" at %Y-%m-%d %H:%M:%S", time.localtime(when)) if isinstance(when, (int, float)) else ""
    said = f"the front restarted {restarts} time(s) on its own since it was started; last: {record.get('last_exit')}{at}"
    if record.get("crash_loop"):
        return [], [f"{said}: it keeps dying (crash loop, restarted with backoff); its log is "
                    f"{folder.parents[1] / 'logs' / folder.name / 'front.log'}"]
    return [said], []


def _read_key(folder: Path, name: str) -> str | None:
    try:
        return (folder / "keys" / name).read_text().strip() or None   # an empty file (an older rtsctl, a full
    except FileNotFoundError:                                          # disk) is no key: apply writes a new one
        return None
