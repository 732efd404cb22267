"""Resource kinds: what the service does beyond storing JSON (defaults, rules, actions, cascades).

`Kind` is the generic behaviour; aml.py, kube.py and templates.py subclass it for the
types rtsctl touches and register them in `REGISTRY` by lowercase ARM type.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any, Callable

from .errors import ArmError, conflict
from .ids import ArmPath
from .lro import iso

if TYPE_CHECKING:
    from .context import Context
    from .store import Record

PS = "provisioningState"


def props(body: dict) -> dict:
    value = body.get("properties")
    if not isinstance(value, dict):
        value = body["properties"] = {}
    return value


def state_of(body: dict | None) -> str | None:
    return (body or {}).get("properties", {}).get(PS) if body else None


def deep_merge(base: dict, patch: dict) -> dict:
    """JSON merge patch (RFC 7396): dicts merge, None deletes, everything else replaces."""
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def fill_defaults(target: dict, defaults: dict) -> dict:
    """Add `defaults` where `target` has nothing (recursively); never overwrite what the client sent."""
    for k, v in defaults.items():
        if target.get(k) is None:
            target[k] = copy.deepcopy(v)
        elif isinstance(v, dict) and isinstance(target[k], dict):
            fill_defaults(target[k], v)
    return target


def same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    return a == b


class Kind:
    """Generic ARM resource: tracked envelope, long-running PUT/DELETE, no extra rules."""

    type_key = ""
    lro_put = True              # PUT/PATCH go through an operation (async mode) or answer Succeeded at once
    lro_delete = True           # DELETE answers 202 + status URLs in async mode
    sync_delete_status = 204    # what a finished DELETE answers (AKS accepts only 202/204; resource groups 200/202)
    implicit_parent = False     # the service creates the parent (asset containers) on demand
    update_status = 200         # what a PUT on an existing resource answers (ARM RPC: 200; some services 201)
    creating_state = "Creating" # provisioningState a create PUT answers with
    defer_update = False        # an update shows the old body (state Updating) until its operation ends
    actions: dict[str, Callable] = {}       # POST {id}/{action} -> handler(ctx, path, record, body, base_url)
    actions_on_missing: frozenset[str] = frozenset()   # lowercase actions allowed before the resource exists

    def envelope(self, ctx: "Context", path: ArmPath, body: dict, existing: "Record | None") -> dict:
        out = copy.deepcopy(body)
        out["id"] = existing.id if existing else path.path
        out["name"] = path.name
        out["type"] = path.arm_type()
        props(out)
        now = iso(time.time())
        created = (existing.body.get("systemData") or {}).get("createdAt") if existing else None
        # systemData: ARM common-types v5 (types.json systemData); createdByType Application for a service principal
        out["systemData"] = {"createdAt": created or now, "createdBy": ctx.settings.client_id,
                             "createdByType": "Application", "lastModifiedAt": now,
                             "lastModifiedBy": ctx.settings.client_id, "lastModifiedByType": "Application"}
        # ARM: a tracked resource's location cannot change (InvalidResourceLocation; wording as ARM prints it)
        if existing is not None and "location" in existing.body:
            old, new = existing.body["location"], out.setdefault("location", existing.body["location"])
            if not same(old.replace(" ", ""), str(new).replace(" ", "")):
                raise ArmError(400, "InvalidResourceLocation",
                               f"The resource '{path.name}' already exists in location '{old}'. A resource with the "
                               f"same name cannot be created in location '{new}'. Please select a new resource name.")
        return out

    def prepare(self, ctx: "Context", path: ArmPath, body: dict, existing: "Record | None") -> tuple[dict, dict | None]:
        """Validate a PUT (raise ArmError) and return the body to store plus private data (None = keep)."""
        return self.envelope(ctx, path, body, existing), None

    async def provision(self, ctx: "Context", path: ArmPath, record: "Record") -> dict | None:
        """Do the real work of a PUT; return an ARM error dict to make its operation fail."""
        return None

    def on_ready(self, ctx: "Context", path: ArmPath, record: "Record") -> None:
        """The PUT's provisioning succeeded."""

    def check_delete(self, ctx: "Context", path: ArmPath, record: "Record") -> None:
        """Raise ArmError to refuse a DELETE."""

    def check_write(self, ctx: "Context", path: ArmPath, existing: "Record | None", method: str) -> None:
        """Raise ArmError to refuse any write (PUT/PATCH/DELETE), e.g. while another operation runs."""

    def on_failed(self, ctx: "Context", path: ArmPath, record: "Record", error: dict) -> None:
        """The PUT's operation ended Failed (the resource stays, in state Failed)."""

    def put_headers(self, path: ArmPath, location: str, created: bool, lro: bool) -> dict[str, str]:
        """Extra headers on a PUT answer (`location`: the resource URL with the request's api-version)."""
        return {}

    def delete_response(self, headers: dict[str, str]):
        from aiohttp import web

        return web.Response(status=202, headers=headers)

    def on_deleted(self, ctx: "Context", removed_ids: list[str]) -> None:
        """After the resource (and its descendants) left the store."""

    def view(self, ctx: "Context", record: "Record") -> dict:
        return copy.deepcopy(record.body)

    def filter(self, ctx: "Context", records: list["Record"], query) -> list["Record"]:
        return records

    def list_missing_parent(self, ctx: "Context", parent: ArmPath, query) -> list["Record"]:
        """Listing under a parent that does not exist (implicit parents only): raise, or the records to show."""
        return []


class ResourceGroupKind(Kind):
    """Resource groups: a synchronous PUT needing `location`, which cannot change; DELETE is long-running
    (azure-rest-api-specs resources/resource-manager/Microsoft.Resources/stable/*/resources.json ResourceGroups_*;
    error codes LocationRequired / InvalidResourceGroupLocation: ARM's public error codes, wording: guess)."""

    type_key = "microsoft.resources/resourcegroups"
    lro_put = False   # a synchronous PUT (an LRO here makes the SDK report `Creating`); DELETE is long-running
    sync_delete_status = 200    # spec ResourceGroups_Delete: 200 / 202

    def prepare(self, ctx, path, body, existing):
        location = body.get("location")
        if not location:
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
        if existing and not same(existing.body.get("location"), location):
            raise conflict("InvalidResourceGroupLocation",
                           f"Invalid resource group location '{location}'. The Resource group already exists in "
                           f"location '{existing.body.get('location')}'.")
        out = self.envelope(ctx, path, body, existing)
        out["type"] = "Microsoft.Resources/resourceGroups"
        out.pop("systemData", None)
        props(out)[PS] = "Succeeded"
        return out, None


REGISTRY: dict[str, Kind] = {}


def register(*kinds: Kind) -> None:
    for kind in kinds:
        REGISTRY[kind.type_key] = kind


def kind_for(path: ArmPath) -> Kind:
    return REGISTRY.get(path.type_key(), GENERIC)


GENERIC = Kind()
register(ResourceGroupKind())
