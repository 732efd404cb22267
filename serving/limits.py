"""Per-instance memory limits, as Azure's instance types impose them on a scoring container.

On Azure an instance's memory is bounded by its instance type (a Kubernetes deployment's
`resources.limits.memory`; the Azure ML extension's `defaultinstancetype` has `limits: memory: 2Gi`,
learn.microsoft.com how-to-manage-kubernetes-instance-types); over it, the kernel's OOM killer ends the
container and Kubernetes restarts it, reporting `OOMKilled`. Locally the same happens with, in order:

* a cgroup v2 child with the `memory` controller (memory.max, memory.swap.max = 0; memory.events counts
  OOM kills), where rtsctl's own cgroup is writable and enables `memory` for its subtree (a delegated one);
* a cgroup v1 child in the `memory` hierarchy (memory.limit_in_bytes and memsw; memory.oom_control's
  `oom_kill` counts OOM kills): the case of machines whose v2 tree has no controllers;
* otherwise (or with RTSCTL_MEMORY_CGROUPS=0 in the environment of the apply that starts the front) RLIMIT_AS
  on the host process: an allocation past it raises MemoryError, and the host exits with OOM_EXIT, which the
  front reports as OOMKilled too. RLIMIT_AS counts address space, not memory in use: a library that maps much
  more than it touches needs a higher limit there than under a cgroup.

A cgroup also holds everything the instance started, so `kill_all` ends it all (serving.reaper does
the same without cgroups). Cgroups are children of the front's own cgroup, named after the endpoint
folder, so a restarted front finds and clears what a killed one left.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import signal
import time
from pathlib import Path

DEFAULT_MEMORY = 2 * 1024 ** 3        # defaultinstancetype's limits.memory (2Gi)
OOM_EXIT = 137                         # the host's exit code after a MemoryError (128 + SIGKILL, as Kubernetes)
_UNITS = {"": 1, "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "T": 1000 ** 4,
          "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(|k|M|G|T|Ki|Mi|Gi|Ti)$")


def parse_memory(value: object) -> int | None:
    """A Kubernetes memory quantity ("512Mi", "2Gi", "1.5G", 1073741824) in bytes; None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    size = int(float(match.group(1)) * _UNITS[match.group(2)])
    return size if size > 0 else None


def human(size: int) -> str:
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        if size >= _UNITS[unit]:
            return f"{size / _UNITS[unit]:.4g}{unit}"
    return f"{size}B"


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path."""
    found: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                found[controller] = parts[2]
    return found


def _mounts() -> dict[str, Path]:
    """"v2" -> the cgroup2 mount, "memory" -> the v1 memory hierarchy's mount."""
    found: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, kind = left.split(), right.split()
        if not kind or len(fields) < 5:
            continue
        if kind[0] == "cgroup2":
            found.setdefault("v2", Path(fields[4]))
        elif kind[0] == "cgroup" and len(kind) >= 3 and "memory" in kind[2].split(","):
            found.setdefault("memory", Path(fields[4]))
    return found


def _base() -> tuple[str, Path] | None:
    """("cgroup v2" | "cgroup v1", the folder new cgroups go in), or None when neither can be used here."""
    if os.environ.get("RTSCTL_MEMORY_CGROUPS", "1") == "0":   # the user's choice: leave the cgroup tree alone
        return None
    own, mounts = _own_cgroups(), _mounts()
    if "v2" in mounts and "" in own:
        base = mounts["v2"] / own[""].lstrip("/")
        try:   # children get the memory controller only if it is enabled for this cgroup's subtree
            controllers = (base / "cgroup.subtree_control").read_text().split()
        except OSError:
            controllers = []
        if "memory" in controllers and os.access(base, os.W_OK):
            return "cgroup v2", base
    if "memory" in mounts and "memory" in own:
        base = mounts["memory"] / own["memory"].lstrip("/")
        if (base / "memory.limit_in_bytes").exists() and os.access(base, os.W_OK):
            return "cgroup v1", base
    return None


def mechanism() -> str:
    """How instances of this machine get their memory limit: "cgroup v2", "cgroup v1" or "RLIMIT_AS"."""
    found = _base()
    return found[0] if found else "RLIMIT_AS"


def _prefix(owner: str) -> str:
    return f"rtsctl-{hashlib.sha256(owner.encode()).hexdigest()[:10]}-"


def sweep(owner: str) -> None:
    """Empty and remove every cgroup of the endpoint `owner`: what a killed front left (none of its instances
    runs any more when a front starts)."""
    found = _base()
    if found is None:
        return
    try:
        stale = [p for p in found[1].iterdir() if p.name.startswith(_prefix(owner)) and p.is_dir()]
    except OSError:
        return
    for path in stale:
        Cage.kill_all(path)
        try:
            path.rmdir()
        except OSError:
            pass


class Cage:
    """One instance's memory limit: its cgroup when one could be made, else RLIMIT_AS set at exec."""

    def __init__(self, owner: str, name: str, limit: int):
        self.limit = limit
        self.kind, self.path = "RLIMIT_AS", None
        found = _base()
        if found is not None:
            path = found[1] / f"{_prefix(owner)}{name}"
            try:
                self.kill_all(path)
                path.mkdir(exist_ok=True)
                self._configure(found[0], path)
                self.kind, self.path = found[0], path
            except OSError:
                self.kind, self.path = "RLIMIT_AS", None
                try:
                    path.rmdir()
                except OSError:
                    pass
        self.ooms = self._oom_count()

    def _configure(self, kind: str, path: Path) -> None:
        if kind == "cgroup v2":
            (path / "memory.max").write_text(str(self.limit))
            if (path / "memory.swap.max").exists():
                (path / "memory.swap.max").write_text("0")
            if (path / "memory.oom.group").exists():
                (path / "memory.oom.group").write_text("1")   # the instance dies whole, as a container does
            return
        if (path / "memory.memsw.limit_in_bytes").exists():   # memsw >= limit at every step
            (path / "memory.memsw.limit_in_bytes").write_text("-1")
        (path / "memory.limit_in_bytes").write_text(str(self.limit))
        if (path / "memory.memsw.limit_in_bytes").exists():
            (path / "memory.memsw.limit_in_bytes").write_text(str(self.limit))

    def describe(self) -> str:
        return f"{human(self.limit)} ({self.kind})"

    def preexec(self) -> None:
        """In the child between fork and exec: join the cgroup, or cap the address space."""
        if self.path is not None:
            with open(self.path / "cgroup.procs", "w") as handle:
                handle.write(str(os.getpid()))
        else:
            resource.setrlimit(resource.RLIMIT_AS, (self.limit, self.limit))

    def _oom_count(self) -> int:
        if self.path is None:
            return 0
        events = self.path / ("memory.events" if self.kind == "cgroup v2" else "memory.oom_control")
        try:
            for line in events.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def oom_killed(self, exit_code: int | None) -> bool:
        """Did the last death come from the memory limit? (A new OOM kill in the cgroup, or OOM_EXIT.)"""
        count = self._oom_count()
        new, self.ooms = count > self.ooms, count
        return new or exit_code == OOM_EXIT

    @staticmethod
    def kill_all(path: Path | None, timeout: float = 2.0) -> None:
        """SIGKILL everything in the cgroup (what left the process group included) until it is empty."""
        if path is None or not path.is_dir():
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                return
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def close(self) -> None:
        """End what is left in the cgroup and remove it."""
        self.kill_all(self.path)
        if self.path is not None:
            try:
                self.path.rmdir()
            except OSError:
                pass
