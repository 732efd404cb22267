"""The contract between the engine and a backend (controller-runtime style).

A reconciler owns one kind: it observes, creates, updates and deletes it, and declares
as data which fields force a replacement (Terraform's RequiresReplace) and which are
secret. Methods are synchronous and idempotent; the engine runs them on threads,
independent nodes concurrently, and retries `TransientError` with backoff.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rtsctl.plan.diff import Change
from rtsctl.plan.normalize import Normalizer
from rtsctl.desired.resources import Observed, Resource


@dataclass
class BackendSettings:
    """What a backend is built from: the manifest's provider block and scope."""

    provider: dict[str, Any]
    resource_group: str
    workspace: str
    manifest_path: Path
    tags: dict[str, str] = field(default_factory=dict)
    #: the manifest's identity (`name:`): every resource the backend creates carries it
    owner: str = ""


@dataclass
class Found:
    """One resource `Backend.export` found in the workspace, shaped as the engine's desired spec would be.

    `files` are the local copies it needs (a model's "path", a deployment's "code", an environment's
    "conda_file"), already written under the export's folder."""

    kind: str
    name: str
    spec: dict[str, Any]
    owner: str | None
    files: dict[str, Path] = field(default_factory=dict)


class Reconciler(ABC):
    kind: ClassVar[str]
    #: spec fields (top-level names or dotted paths) whose change forces delete + create.
    immutable: ClassVar[frozenset[str]] = frozenset()
    #: spec/output fields masked in plans and output unless --show-secrets.
    sensitive: ClassVar[frozenset[str]] = frozenset()
    #: how the service rewrites a field it stores (`rtsctl.plan.normalize`): both sides of the diff pass through
    #: it, so a value the service only re-spelled never plans a change (or, if immutable, a replacement).
    normalize: ClassVar[Mapping[str, Normalizer]] = {}
    #: a parent several manifests may declare (resource group, workspace): one that does not own it only
    #: references it (never changes or deletes it), and its owner's destroy keeps it while it `holds` others'.
    shared: ClassVar[bool] = False

    def notify(self, line: str) -> None:
        """A progress line while an operation waits (the engine routes it to its report during an apply)."""

    @abstractmethod
    def observe(self, res: Resource) -> Observed | None:
        """Read the resource; None when it does not exist."""

    @abstractmethod
    def create(self, res: Resource) -> None:
        """Create it so that a following observe() matches `res.spec`."""

    def update(self, res: Resource, observed: Observed) -> None:
        """Converge an existing resource in place (also heals `observed.problems`)."""
        self.create(res)

    @abstractmethod
    def delete(self, observed: Observed) -> None:
        """Delete it; deleting something already gone is not an error."""

    def adopt(self, res: Resource, observed: Observed) -> Observed:
        """`observed` as it will read once claimed: what rtsctl records about a resource it made (content digest
        tags) filled in where the content was fetched and found equal to `res`'s, so `rtsctl import` can show
        what would still differ. Nothing is written."""
        return observed

    def claim(self, res: Resource, observed: Observed) -> None:
        """Mark an existing resource as owned by this manifest (`settings.owner`) and by rtsctl, changing
        nothing else (`rtsctl import`, and the claim of a resource made by rtsctl before owners existed);
        `observed` comes from `adopt`, whose verified digests are recorded with it."""
        self.update(res, observed)

    def holds(self, observed: Observed, owner: str) -> list[str]:
        """For a `shared` parent: what inside it belongs to another manifest or to nobody ("endpoint.x
        (manifest b)"), so its owner's destroy keeps it. Nothing for other kinds."""
        return []

    def guard(self, res: Resource, observed: Observed, changes: Sequence[Change]) -> str | None:
        """A reason to refuse these planned changes at plan time (e.g. they would take live endpoints down),
        or None. Like a Terraform plan modifier: the plan fails, naming the resource and the reason."""
        return None

    def discover(self, desired: Sequence[Resource]) -> list[Observed]:
        """Resources of this kind that rtsctl owns in the manifest's scope but the manifest
        no longer declares (e.g. a deployment removed from an endpoint): planned as deletes."""
        return []


class NotCounted(Exception):
    """The service keeps no count of live answers for this endpoint at all, by design (Azure Monitor has no request
    metrics for Kubernetes online endpoints). A gate then judges the deployment's health (and its bench run), and
    says so; unlike a count that could not be READ, this never fails a gate by itself."""


class TrafficWatch(ABC):
    """Counts the answers one deployment gives to live traffic, from when the watch began: what a rollout gate
    that "watches the live traffic's errors" judges. Counts come from the service's own record (the local
    front's tallies; Azure Monitor's RequestsPerMinute), never from traffic rtsctl sends itself."""

    #: seconds after the fact before the service's counts are complete (Azure Monitor ingests late)
    lag_s: float = 0.0

    @abstractmethod
    def answers(self) -> dict[int, int]:
        """Answers since the watch began, by HTTP status as clients saw it. Raises RtsctlError when the
        service cannot be read (no permission, API down): a gate must not pass on counts it could not read."""


class Backend(ABC):
    """A set of reconcilers plus whatever clients they share."""

    name: ClassVar[str]
    #: seconds between reads when rtsctl watches a resource itself (a rollout gate's health watch)
    poll_interval: float = 0.2

    def __init__(self, settings: BackendSettings):
        self.settings = settings

    @abstractmethod
    def reconcilers(self) -> dict[str, Reconciler]:
        """Reconcilers by kind; a manifest needing a kind missing here is rejected at plan time."""

    def close(self) -> None:
        """Release clients and connections."""

    @contextmanager
    def lock(self, operation: str = "a change", timeout: float = 0.0) -> Iterator[None]:
        """Held while a plan is made and applied (`operation`, e.g. "apply m.yaml", says why), so two rtsctl runs
        never change one scope at once: refused at once naming the holder, or after waiting `timeout` seconds
        (rtsctl.apply.lock.LockHeld)."""
        yield

    def force_unlock(self, lock_id: str) -> str:
        """Break the lock `lock_id` that a crashed or stuck run left; returns what was broken."""
        from rtsctl.support.errors import RtsctlError

        raise RtsctlError(f"the {self.name} backend keeps no lock that outlives its holder: nothing to unlock")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Held while a plan observes the world: a backend may read each remote resource once for every reconciler
        that asks, since the plan is one picture of one moment. Outside it (and `step`) every read is fresh."""
        yield

    @contextmanager
    def step(self, address: str) -> Iterator[None]:
        """Held while one apply step acts on `address`, on the thread that runs it: a backend may read each remote
        resource once within it (the step's own writes make it read again), and never shares those reads with
        steps running beside it."""
        yield

    @contextmanager
    def fresh(self) -> Iterator[None]:
        """Held while the engine polls or watches a resource inside a step (a rollout gate's health watch): every
        read within sees the service as it is now."""
        yield

    def smoke_context(self) -> dict[str, Any]:
        """Extra settings for the engine's smoke test HTTP call (e.g. {"verify": ca_path})."""
        return {}

    def watch_traffic(self, endpoint: str, deployment: str) -> TrafficWatch | None:
        """Start counting `deployment`'s answers to live traffic (by its live name); None when the backend
        keeps no such record. Raises NotCounted when the service keeps none for this endpoint by design."""
        return None

    def preflight(self, resources: Sequence[Resource], observed: Mapping[str, Observed | None]) -> list[str]:
        """Warnings a plan can give before anything changes: capacity, quota, an instance type the region
        lacks. `observed` is what exists now (by address), so a check counts only what the plan adds.
        Best effort: a check that cannot be made (no permission, API down) says nothing."""
        return []

    def export(self, dest: Path, owner: str, endpoints: Sequence[str] = ()) -> list[Found]:
        """What exists in the workspace that `owner` owns or nobody owns (only `endpoints`, and what they use,
        when named), never another manifest's: endpoints, their deployments and traffic, the models,
        environments and computes they use (all of `owner`'s and nobody's when no endpoint is named), each
        deployment's code, model files and conda file copied under `dest`."""
        from rtsctl.support.errors import RtsctlError

        raise RtsctlError(f"the {self.name} backend cannot export")

    def load_service(self, resource: str) -> Any:
        """The managed load testing service `resource` names (rtsctl.bench.cloud.LoadService), for
        `bench --engine azure-load-testing`."""
        from rtsctl.support.errors import RtsctlError

        raise RtsctlError(f"the {self.name} backend has no load testing service: use `--engine native` (the default) "
                          "or `--engine locust` here")

    def logs(self, endpoint: str, deployment: str, *, instance: int | None = None, tail: int | None = None,
             follow: bool = False) -> dict[str, Iterator[str]]:
        """A deployment's log lines by source ("<deployment>/<instance>" or the deployment), oldest first:
        the last `tail` (all when None), then with `follow` every new line as it comes, until the caller
        stops iterating. Sources are lazy, so following several means one reader per source."""
        from rtsctl.support.errors import RtsctlError

        raise RtsctlError(f"the {self.name} backend cannot show logs")
