"""ARM resource ids: parsing, case-insensitive keys, parents and resource types.

ARM paths are case-insensitive (azure-mgmt-resource sends `resourcegroups`, azure-ai-ml
`resourceGroups`; ARM RPC: resource ids compare case-insensitively; R01 shows the service's own lower-cased
`azureml.onlineendpointid`), so the store keys everything by `key(path)` and keeps the casing of the
first writer for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote


CANONICAL = {"subscriptions": "subscriptions", "resourcegroups": "resourceGroups", "providers": "providers"}


def segments(path: str) -> list[str]:
    segs = [unquote(s) for s in path.split("?")[0].split("/") if s]
    # The legacy form `/resourcegroups/{rg}/deployments/...` (the ARM deployment operations list) is
    # the same resource as `/resourcegroups/{rg}/providers/Microsoft.Resources/deployments/...`.
    if len(segs) >= 5 and segs[2].lower() == "resourcegroups" and segs[4].lower() == "deployments":
        segs[4:4] = ["providers", "Microsoft.Resources"]
    for i in range(0, len(segs), 2):   # ARM's canonical casing for the structural segments (names untouched)
        segs[i] = CANONICAL.get(segs[i].lower(), segs[i])
    return segs


def key(path: str) -> str:
    """The case-insensitive store key of an ARM path or id."""
    return "/" + "/".join(segments(path)).lower()


def join(segs: list[str]) -> str:
    return "/" + "/".join(segs)


@dataclass(frozen=True)
class ArmPath:
    """A parsed ARM path: a resource (even segment count) or a collection (odd)."""

    segs: tuple[str, ...]

    @classmethod
    def parse(cls, path: str) -> "ArmPath":
        return cls(tuple(segments(path)))

    @property
    def path(self) -> str:
        return join(list(self.segs))

    @property
    def key(self) -> str:
        return key(self.path)

    @property
    def is_collection(self) -> bool:
        return len(self.segs) % 2 == 1

    @property
    def name(self) -> str:
        return self.segs[-1]

    @property
    def subscription(self) -> str | None:
        return self.segs[1] if len(self.segs) > 1 and self.segs[0].lower() == "subscriptions" else None

    @property
    def resource_group(self) -> str | None:
        if len(self.segs) > 3 and self.segs[2].lower() == "resourcegroups":
            return self.segs[3]
        return None

    @property
    def rg_path(self) -> str | None:
        return join(list(self.segs[:4])) if self.resource_group else None

    @property
    def type_segment(self) -> str:
        """The collection segment naming this resource's type (`onlineEndpoints`, `versions`, ...)."""
        return self.segs[-1] if self.is_collection else self.segs[-2]

    def arm_type(self) -> str:
        """Full ARM type with casing from the path: `Microsoft.MachineLearningServices/workspaces/onlineEndpoints`."""
        segs = list(self.segs if not self.is_collection else self.segs + ("x",))
        if len(segs) == 4 and segs[2].lower() == "resourcegroups":
            return "Microsoft.Resources/resourceGroups"
        ns_at = max((i for i, s in enumerate(segs) if s.lower() == "providers"), default=None)
        if ns_at is None:
            return segs[-2]
        rest = segs[ns_at + 1:]
        types = [rest[0]] + [rest[i] for i in range(1, len(rest), 2)]
        return "/".join(types)

    def type_key(self) -> str:
        """Lowercase ARM type, the kind registry key: `microsoft.machinelearningservices/workspaces/models/versions`."""
        return self.arm_type().lower()

    def parent(self) -> "ArmPath | None":
        """The resource this one lives in (skipping a `providers/{ns}` pair), or None at the resource group."""
        segs = list(self.segs[:-2] if not self.is_collection else self.segs[:-1])
        if len(segs) >= 2 and segs[-2].lower() == "providers":
            segs = segs[:-2]
        if len(segs) < 4:
            return None
        return ArmPath(tuple(segs))

    def child(self, *more: str) -> "ArmPath":
        return ArmPath(self.segs + tuple(more))

    def workspace(self) -> "ArmPath | None":
        """The AML workspace this path is inside (or is), if any."""
        low = [s.lower() for s in self.segs]
        for i, s in enumerate(low):
            if s == "workspaces" and i >= 1 and low[i - 1] == "microsoft.machinelearningservices" and i + 1 < len(low):
                return ArmPath(self.segs[: i + 2])
        return None
