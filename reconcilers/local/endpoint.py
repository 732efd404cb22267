"""Local online endpoint: a front process on 127.0.0.1 checking bearer keys and routing by traffic.

Its port is chosen once and kept across re-applies and restarts, so a scoring URI a
user copied stays valid. Keys are generated with `secrets` and stored mode 0600.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from rtsctl.errors import ResourceError
from rtsctl.resources import Observed, Resource

from ..base import Reconciler
from . import procs
from .routes import RECORD, edit_routes, read_routes, reload_front
from .state import Layout, new_key, read_json, write_json, write_secret

KEY_FILES = ("primary", "secondary")


def front_alive(record: dict) -> bool:
    return procs.is_alive(record.get("pid"), record.get("started")) and procs.http_ok(
        f"http://127.0.0.1:{record['port']}/", timeout=1.0)


class EndpointReconciler(Reconciler):
    kind = "endpoint"
    immutable = frozenset({"compute"})
    sensitive = frozenset({"primary_key", "secondary_key"})

    def __init__(self, layout: Layout):
        self.layout = layout

    def observe(self, res: Resource) -> Observed | None:
        return self._observe(res.address, self.layout.endpoint(res.name))

    def _observe(self, address: str, folder: Path) -> Observed | None:
        record = read_json(folder / RECORD)
        if record is None:
            return None
        problems = [] if front_alive(record) else [
            f"endpoint process (pid {record.get('pid')}, port {record['port']}) is not running"]
        keys = {f"{name}_key": _read_key(folder, name) for name in KEY_FILES}
        return Observed(address, record["spec"], owned=True, problems=problems,
                        outputs={"scoring_uri": f"http://127.0.0.1:{record['port']}/score", **keys}, handle=folder)

    def create(self, res: Resource) -> None:
        folder = self.layout.endpoint(res.name)
        record = read_json(folder / RECORD) or {}
        for name in KEY_FILES:
            if _read_key(folder, name) is None:
                write_secret(folder / "keys" / name, new_key())
        edit_routes(folder, lambda routes: routes.update(auth_mode=res.spec.get("auth_mode", "key")))
        record["spec"] = res.spec
        record.setdefault("port", procs.free_port())
        if record.get("pid") and front_alive(record):
            write_json(folder / RECORD, record)
            reload_front(folder)
            return
        procs.stop(record.get("pid"), record.get("started"))
        if not procs.port_is_free(record["port"]):
            raise ResourceError(res.address, f"port {record['port']} of the scoring URI is taken by another process")
        proc = procs.spawn(procs.python_module("reconcilers.local.front", "--dir", str(folder),
                                               "--port", str(record["port"])),
                           folder / "logs" / "endpoint.log", env=procs.child_env())
        record.update(pid=proc.pid, started=procs.start_time(proc.pid))
        write_json(folder / RECORD, record)
        url = f"http://127.0.0.1:{record['port']}/"
        if not procs.wait_until(lambda: proc.poll() is not None or procs.http_ok(url, 0.5), 15.0) or proc.poll():
            raise ResourceError(res.address, f"endpoint process did not start; see {folder / 'logs' / 'endpoint.log'}")

    def delete(self, observed: Observed) -> None:
        folder: Path = observed.handle
        routes = read_routes(folder)
        for deployment in routes.get("deployments", {}).values():
            for instance in deployment.get("instances", []):
                procs.stop(instance.get("pid"), instance.get("started"))
        record = read_json(folder / RECORD) or {}
        procs.stop(record.get("pid"), record.get("started"))
        shutil.rmtree(folder, ignore_errors=True)

    def regenerate_key(self, res: Resource, which: str) -> None:
        """Replace one key (`primary` or `secondary`); the other is never touched, so clients on it see no 401.
        The new file replaces the old atomically, then the front reloads its keys (SIGHUP)."""
        folder = self.layout.endpoint(res.name)
        if read_json(folder / RECORD) is None:
            raise ResourceError(res.address, "does not exist yet: run rtsctl apply first")
        if res.spec.get("auth_mode", "key") != "key":
            raise ResourceError(res.address, f"uses {res.spec['auth_mode']} authentication, which has no keys")
        staged = folder / "keys" / f".{which}.new"
        write_secret(staged, new_key())
        staged.replace(folder / "keys" / which)
        reload_front(folder)

    def discover(self, desired: Sequence[Resource]) -> list[Observed]:
        root = self.layout.endpoints()
        if not root.is_dir():
            return []
        declared = {r.name for r in desired if r.kind == self.kind}
        found = [self._observe(f"endpoint.{p.name}", p) for p in sorted(root.iterdir())
                 if p.is_dir() and p.name not in declared]
        return [o for o in found if o is not None]


def _read_key(folder: Path, name: str) -> str | None:
    try:
        return (folder / "keys" / name).read_text().strip()
    except FileNotFoundError:
        return None

