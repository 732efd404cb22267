"""The generic ARM front: GET/HEAD/PUT/PATCH/DELETE/list/POST-action on any resource id, plus LRO status URLs.

Behaviour per type comes from `kinds.REGISTRY`; this module only knows ARM's conventions, from the ARM RPC
contract (Azure/azure-resource-manager-rpc v1.0/resource-api-reference.md and async-api-reference.md) unless
noted: resource groups and parents must exist (404 ResourceGroupNotFound / ParentResourceNotFound; wording: guess),
PUT answers 201 on create and 200 on update (a kind may say otherwise: recordings show 201 for Azure ML updates),
DELETE of a missing resource answers 204, long-running operations answer with `Azure-AsyncOperation` (and
`Location` on DELETE) in async mode, errors are `{"error": {"code", "message"}}` (ResourceNotFound text: R05
workspace_create_2024 #1). A write on a resource being deleted -> 409 (guess). Any api-version is accepted and
logged in `ctx.api_versions` (guess: the real front answers 400 InvalidApiVersionParameter for unknown ones).
Sync mode (the default) is a deliberate test-speed deviation: real Azure ML PUTs are always long-running (R01).
"""

from __future__ import annotations

import json
import re

from aiohttp import web

from .context import Context
from .errors import ArmError, error_response, json_response, not_found
from .ids import ArmPath, key
from .kinds import PS, deep_merge, kind_for, props, state_of
from .lro import INITIAL_RETRY_AFTER

OPS_NAMESPACE = "microsoft.emulator"


async def read_json(request: web.Request) -> dict:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ArmError(400, "InvalidRequestContent", f"The request content was invalid and could not be deserialized: {exc}")
    if not isinstance(value, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return value


class ArmApi:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    # -- entry -------------------------------------------------------------------------------------
    async def handle(self, request: web.Request, base_url: str) -> web.Response:
        path = ArmPath.parse(request.path)
        self.ctx.api_versions.append((request.method, request.path, request.query.get("api-version")))
        if len(self.ctx.api_versions) > 200_000:
            del self.ctx.api_versions[:100_000]
        low = [s.lower() for s in path.segs]
        try:
            if len(low) > 3 and low[-3:] == ["providers", "microsoft.insights", "metrics"] and request.method == "GET":
                from .monitor import list_metrics  # Azure Monitor's metrics API on any resource (monitor.py)

                return list_metrics(self.ctx, ArmPath(path.segs[:-3]), request.query)
            if len(low) >= 6 and low[2] == "providers" and low[3] == OPS_NAMESPACE:
                return self.operation(path, base_url, request.method)
            if len(low) == 2 and request.method == "GET":
                return json_response({"id": path.path, "subscriptionId": path.segs[1], "displayName": "Emulated",
                                      "state": "Enabled", "tenantId": self.ctx.settings.tenant_id})
            if (len(low) == 7 and low[2] == "providers" and low[3] == "microsoft.machinelearningservices"
                    and low[4] == "locations" and low[6] in ("usages", "vmsizes") and request.method == "GET"):
                from .aml import quota  # spec Usages_List / VirtualMachineSizes_List (see aml/quota.py)

                if low[6] == "usages":
                    return quota.usages(self.ctx, path.segs[1], path.segs[5])
                return quota.vm_sizes(self.ctx, path.segs[5])
            if len(low) in (4, 5) and low[2] == "providers":
                return self.provider(path)
            if request.method == "POST":
                return await self.action(request, path, base_url)
            if path.is_collection:
                if request.method != "GET":
                    raise ArmError(405, "MethodNotAllowed", f"{request.method} is not allowed on a collection.")
                return self.list(path, request.query)
            if request.method == "GET":
                return self.get(path)
            if request.method == "HEAD":
                return web.Response(status=204 if self.ctx.store.exists(path.path) else 404)
            if request.method in ("PUT", "PATCH"):
                return await self.put(request, path, base_url, patch=request.method == "PATCH")
            if request.method == "DELETE":
                return self.delete(path, base_url)
            raise ArmError(405, "MethodNotAllowed", f"{request.method} is not supported.")
        except ArmError as err:
            if request.method == "HEAD":
                return web.Response(status=err.status)
            return err.response()

    # -- reads -------------------------------------------------------------------------------------
    def get(self, path: ArmPath) -> web.Response:
        self.ctx.ops.settle(path.key)
        rec = self.ctx.store.get(path.path)
        if rec is None:
            if path.rg_path and len(path.segs) > 4 and not self.ctx.store.exists(path.rg_path):
                raise not_found(path.rg_path)
            raise not_found(path.path)
        return json_response(kind_for(path).view(self.ctx, rec))

    def list(self, path: ArmPath, query) -> web.Response:
        if path.segs[-1].lower() == "resources" and len(path.segs) in (3, 5):
            return self.generic_resources(path, query)
        item_kind = kind_for(path.child("x"))
        if path.rg_path and len(path.segs) > 4 and not self.ctx.store.exists(path.rg_path):
            raise not_found(path.rg_path)
        parent = path.parent()
        if parent is not None:
            if not self.ctx.store.exists(parent.path):
                if item_kind.implicit_parent:
                    found = item_kind.list_missing_parent(self.ctx, parent, query)
                    return json_response({"value": [item_kind.view(self.ctx, r) for r in found]})
                raise not_found(parent.path)
        for rec in self.ctx.store.children(path.path):
            self.ctx.ops.settle(key(rec.id))
        records = item_kind.filter(self.ctx, self.ctx.store.children(path.path), query)
        # spec *Versions_List: $orderBy (createdtime desc, what the SDK sends for "latest") and $top
        order = (query.get("$orderBy") or query.get("$orderby") or "").lower()
        if "desc" in order:
            records = list(reversed(records))
        top = query.get("$top")
        if top and top.isdigit():
            records = records[: int(top)]
        return json_response({"value": [item_kind.view(self.ctx, r) for r in records]})

    def generic_resources(self, path: ArmPath, query) -> web.Response:
        """`GET .../resources` (subscription or resource group): top-level resources, with ARM's basic $filter
        (spec Resources_ListByResourceGroup: tagName/tagValue/resourceType eq; other filters ignored: guess)."""
        scope = ArmPath(path.segs[:-1])
        if scope.rg_path and not self.ctx.store.exists(scope.rg_path):
            raise not_found(scope.rg_path)
        wanted = dict(re.findall(r"(tagName|tagValue|resourceType)\s+eq\s+'([^']*)'", query.get("$filter", ""), re.I))
        wanted = {k.lower(): v for k, v in wanted.items()}
        out = []
        for rec in self.ctx.store.descendants(scope.path):
            p = ArmPath.parse(rec.id)
            if len(p.segs) != 8 or p.segs[4] != "providers":
                continue
            body = rec.body
            tags = body.get("tags") or {}
            if "resourcetype" in wanted and p.arm_type().lower() != wanted["resourcetype"].lower():
                continue
            if "tagname" in wanted and wanted["tagname"] not in tags:
                continue
            if "tagvalue" in wanted and tags.get(wanted.get("tagname")) != wanted["tagvalue"]:
                continue
            out.append({k: body[k] for k in ("id", "name", "type", "location", "tags", "kind", "sku", "identity")
                        if k in body})
        return json_response({"value": out})

    def provider(self, path: ArmPath) -> web.Response:
        """`GET /subscriptions/{s}/providers/{ns}` and `POST .../register`: everything is registered (guess: a
        new subscription may lack e.g. Microsoft.AlertsManagement -- not emulated)."""
        return json_response({"id": ArmPath(path.segs[:4]).path, "namespace": path.segs[3],
                              "registrationState": "Registered", "registrationPolicy": "RegistrationRequired",
                              "resourceTypes": []})

    def check_scope(self, path: ArmPath, allow_implicit: bool = False) -> None:
        """The resource group and the parent resource must exist (ARM answers 404 otherwise)."""
        store = self.ctx.store
        if path.rg_path and len(path.segs) > 4 and not store.exists(path.rg_path):
            raise not_found(path.rg_path)
        parent = path.parent()
        if parent is not None and len(parent.segs) > 4 and not store.exists(parent.path):
            if allow_implicit:
                return
            raise ArmError(404, "ParentResourceNotFound",
                           f"Can not perform requested operation on nested resource. Parent resource "
                           f"'{'/'.join(parent.segs[-2:])}' not found.")

    # -- writes ------------------------------------------------------------------------------------
    def use_lro(self, lro_kind: bool, path: ArmPath) -> bool:
        return lro_kind and (self.ctx.settings.lro_mode == "async" or self.ctx.ops.has_armed_failure(path.path))

    async def put(self, request: web.Request, path: ArmPath, base_url: str, patch: bool) -> web.Response:
        body = await read_json(request)
        store, kind = self.ctx.store, kind_for(path)
        self.ctx.ops.settle(path.key)
        existing = store.get(path.path)
        self.check_scope(path, allow_implicit=kind.implicit_parent)
        if kind.implicit_parent:
            self.ensure_implicit_parent(path)
        if patch:
            if existing is None:
                raise not_found(path.path)
            body = deep_merge(existing.body, body)
        if existing is not None and state_of(existing.body) == "Deleting":
            raise ArmError(409, "Conflict", f"The resource '{path.name}' is being deleted.")
        kind.check_write(self.ctx, path, existing, "PUT")
        new_body, private = kind.prepare(self.ctx, path, body, existing)
        created = existing is None
        status = 201 if created else kind.update_status
        props(new_body)[PS] = kind.creating_state if created else "Updating"
        deferred = not created and kind.defer_update and self.use_lro(kind.lro_put, path)
        if deferred:
            # the service shows the OLD body (state Updating) until the operation ends (R01 #14-15)
            old = dict(existing.body)
            props(old)[PS] = "Updating"
            rec = store.put(path.path, old, existing.private)
            rec.private = {**rec.private, **(private or {}), "pending": new_body}
        else:
            rec = store.put(path.path, new_body, private)
        # Provisioning that can fail for real (the deployment's container must start): its error ends the
        # operation `Failed` -- through status polling even in sync mode, as the service reports it.
        failure = await kind.provision(self.ctx, path, rec)
        location = f"{base_url}{path.path}?api-version={request.query.get('api-version', '')}"
        if failure is None and not self.use_lro(kind.lro_put, path):
            props(rec.body)[PS] = "Succeeded"
            kind.on_ready(self.ctx, path, rec)
            store.save()
            return json_response(kind.view(self.ctx, rec), status=status,
                                 headers=kind.put_headers(path, location, created, lro=False))

        def succeeded() -> None:
            current = store.get(path.path)
            if current is not None:
                pending = current.private.pop("pending", None)
                if pending is not None:
                    current.body = pending
                props(current.body)[PS] = "Succeeded"
                kind.on_ready(self.ctx, path, current)
                store.save()

        def failed(error: dict) -> None:
            current = store.get(path.path)
            if current is not None:
                current.private.pop("pending", None)
                props(current.body)[PS] = "Failed"
                kind.on_failed(self.ctx, path, current, error)
                store.save()

        op = self.ctx.ops.start("PUT", path.path, path.type_segment, succeeded, failed, failure=failure,
                                kind="create" if created else "update")
        op_url = self.op_url(base_url, path, op.id, "operationStatuses")
        headers = {"Azure-AsyncOperation": op_url, **kind.put_headers(path, location, created, lro=True)}
        return json_response(kind.view(self.ctx, rec), status=status, headers=headers)

    def ensure_implicit_parent(self, path: ArmPath) -> None:
        parent = path.parent()
        if parent is None or self.ctx.store.exists(parent.path):
            return
        parent_kind = kind_for(parent)
        body, private = parent_kind.prepare(self.ctx, parent, {"properties": {}}, None)
        props(body)[PS] = "Succeeded"
        self.ctx.store.put(parent.path, body, private)

    def delete(self, path: ArmPath, base_url: str) -> web.Response:
        store, kind = self.ctx.store, kind_for(path)
        self.ctx.ops.settle(path.key)
        rec = store.get(path.path)
        if rec is None:
            return web.Response(status=204)
        kind.check_write(self.ctx, path, rec, "DELETE")
        kind.check_delete(self.ctx, path, rec)
        if not self.use_lro(kind.lro_delete, path):
            self.remove(path)
            return web.Response(status=kind.sync_delete_status)
        previous = state_of(rec.body)
        props(rec.body)[PS] = "Deleting"
        store.save()

        def failed(error: dict) -> None:
            current = store.get(path.path)
            if current is not None:
                props(current.body)[PS] = previous or "Succeeded"
                store.save()

        op = self.ctx.ops.start("DELETE", path.path, path.type_segment, lambda: self.remove(path), failed,
                                kind="delete")
        headers = {"Azure-AsyncOperation": self.op_url(base_url, path, op.id, "operationStatuses"),
                   "Location": self.op_url(base_url, path, op.id, "operationResults")}
        if self.ctx.settings.retry_after is not None:
            headers["Retry-After"] = INITIAL_RETRY_AFTER
        return kind.delete_response(headers)

    def remove(self, path: ArmPath) -> None:
        removed = self.ctx.store.delete(path.path)
        kind_for(path).on_deleted(self.ctx, removed)
        if self.ctx.dataplane is not None:
            self.ctx.dataplane.forget(removed)

    # -- actions -----------------------------------------------------------------------------------
    async def action(self, request: web.Request, path: ArmPath, base_url: str) -> web.Response:
        if len(path.segs) < 5:
            raise ArmError(404, "NotFound", f"No action route for {path.path}.")
        target = ArmPath(path.segs[:-1])
        name = path.segs[-1]
        body = await read_json(request)
        kind = kind_for(target)
        handler = {k.lower(): v for k, v in kind.actions.items()}.get(name.lower())
        if handler is None:
            raise ArmError(404, "NotFound", f"The emulator has no action '{name}' on '{target.arm_type()}'.")
        self.ctx.ops.settle(target.key)
        rec = self.ctx.store.get(target.path)
        if rec is None:
            self.check_scope(target, allow_implicit=kind.implicit_parent)
            if name.lower() not in kind.actions_on_missing:
                raise not_found(target.path)
        return handler(self.ctx, target, rec, body, base_url)

    # -- operation status URLs ---------------------------------------------------------------------
    @staticmethod
    def op_url(base_url: str, path: ArmPath, op_id: str, leaf: str) -> str:
        sub = path.subscription or "none"
        return f"{base_url}/subscriptions/{sub}/providers/Microsoft.Emulator/locations/global/{leaf}/{op_id}" \
               f"?api-version=2020-01-01"

    def operation(self, path: ArmPath, base_url: str, method: str) -> web.Response:
        op = self.ctx.ops.get(path.segs[-1])
        if op is None or method != "GET":
            return error_response(404, "OperationNotFound", f"Operation '{path.segs[-1]}' was not found.")
        self.ctx.ops.poll(op)
        url = f"{base_url}{path.path}?api-version=2020-01-01"
        retry = {"Retry-After": self.ctx.settings.retry_after} if self.ctx.settings.retry_after is not None else {}
        if path.segs[-2].lower() == "operationstatuses":
            return json_response(op.status_body(url), headers={} if op.done else retry)
        if not op.done:
            return web.Response(status=202, headers={"Location": url, **retry})
        if op.error:
            return error_response(400, op.error["code"], op.error["message"])
        if op.method == "DELETE":
            return web.Response(status=204)
        rec = self.ctx.store.get(op.target)
        target = ArmPath.parse(op.target)
        return json_response(kind_for(target).view(self.ctx, rec)) if rec else web.Response(status=204)
