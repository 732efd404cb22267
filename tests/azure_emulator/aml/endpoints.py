"""Online endpoints (keys, tokens, traffic rules) and their deployments (references, immutables, containers)."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import TYPE_CHECKING

from aiohttp import web

from ..errors import bad_request as bad
from ..errors import json_response
from ..kinds import Kind, fill_defaults, props, register, same
from .common import NS
from .compute import compute_key

if TYPE_CHECKING:
    from ..store import Record


def _keys(record: "Record") -> dict:
    return record.private.setdefault("keys", {"primaryKey": secrets.token_urlsafe(24),
                                              "secondaryKey": secrets.token_urlsafe(24)})


def list_keys(ctx, path, record, body, base_url):
    if str(props(record.body).get("authMode", "")).lower() != "key":
        raise bad("BadArgument", f"Endpoint '{path.name}' does not use key authentication.")
    return json_response(dict(_keys(record)))


def get_token(ctx, path, record, body, base_url):
    if str(props(record.body).get("authMode", "")).lower() != "amltoken":
        raise bad("BadArgument", f"Endpoint '{path.name}' does not use AML token authentication.")
    token, expiry = secrets.token_urlsafe(32), int(time.time()) + 3600
    tokens = record.private.setdefault("tokens", {})
    tokens[token] = expiry
    ctx.store.save()
    return json_response({"accessToken": token, "tokenType": "Bearer", "expiryTimeUtc": expiry,
                          "refreshAfterTimeUtc": expiry - 1800})


def regenerate_keys(ctx, path, record, body, base_url):
    which = "primaryKey" if str(body.get("keyType", "Primary")).lower() == "primary" else "secondaryKey"
    keys = _keys(record)
    # azure-ai-ml sends the slot's CURRENT key as keyValue (operations/_online_endpoint_operations.py,
    # _regenerate_online_keys) and its e2e test expects a NEW key in that slot, the other slot unchanged
    # (tests/online_services/e2etests/test_online_endpoint.py, test_online_endpoint_e2e). Another keyValue is taken
    # as the new value: RegenerateEndpointKeysRequest.keyValue, "The value the key is set to" (REST spec
    # Microsoft.MachineLearningServices stable/2023-04-01 mfe.json).
    given = body.get("keyValue")
    keys[which] = given if given and given != keys[which] else secrets.token_urlsafe(24)
    ctx.store.save()
    return web.Response(status=200)


class EndpointKind(Kind):
    type_key = NS + "/onlineendpoints"
    actions = {"listKeys": list_keys, "token": get_token, "regenerateKeys": regenerate_keys}

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        p = props(out)
        ws = path.workspace()
        compute = p.get("compute")
        if compute:
            ck = compute_key(ws, compute)
            rec = ctx.store.get(ck)
            if rec is None:
                raise bad("ComputeNotFound", f"Endpoint '{path.name}': compute '{compute}' does not exist in "
                                             f"workspace '{ws.name}'.")
            if str(props(rec.body).get("computeType", "")).lower() != "kubernetes":
                raise bad("BadArgument", f"Endpoint '{path.name}': compute '{compute}' is not a Kubernetes compute.")
        if existing is not None:
            old = props(existing.body)
            if compute_key(ws, old.get("compute")) != compute_key(ws, compute):
                raise bad("BadArgument",
                          f"Endpoint '{path.name}': compute cannot be changed (from {old.get('compute') or 'managed'!r} "
                          f"to {compute or 'managed'!r}); it is immutable. Delete and recreate the endpoint.")
            if not ctx.settings.endpoint_auth_mode_mutable and not same(old.get("authMode"), p.get("authMode")):
                raise bad("BadArgument", f"Endpoint '{path.name}': authMode is immutable.")
            for field in ("scoringUri", "swaggerUri"):
                p[field] = old.get(field)
        self.check_traffic(ctx, path, p.get("traffic") or {}, "traffic")
        self.check_traffic(ctx, path, p.get("mirrorTraffic") or {}, "mirrorTraffic")
        fill_defaults(out, {"identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid4()),
                                         "tenantId": ctx.settings.tenant_id}, "tags": {}})
        fill_defaults(p, {"authMode": "Key", "traffic": {}, "mirrorTraffic": {}, "publicNetworkAccess": "Enabled",
                          "description": None, "properties": {},
                          "scoringUri": f"{ctx.url}/endpoints/{path.name}/score",
                          "swaggerUri": f"{ctx.url}/endpoints/{path.name}/swagger.json"})
        private = dict(existing.private) if existing else {}
        private.setdefault("keys", {"primaryKey": secrets.token_urlsafe(24),
                                    "secondaryKey": secrets.token_urlsafe(24)})
        return out, private

    @staticmethod
    def check_traffic(ctx, path, traffic: dict, field: str) -> None:
        existing = {r.body["name"].lower(): r.body["name"] for r in ctx.store.children(path.path + "/deployments")}
        unknown = [name for name in traffic if name.lower() not in existing]
        if unknown:
            raise bad("BadArgument",
                      f"Endpoint '{path.name}': {field} names deployment(s) that do not exist: {', '.join(unknown)} "
                      f"(existing: {', '.join(sorted(existing.values())) or 'none'}).")
        bad_values = {k: v for k, v in traffic.items() if not isinstance(v, int) or not 0 <= v <= 100}
        if bad_values:
            raise bad("BadArgument", f"Endpoint '{path.name}': {field} values must be integers 0-100: {bad_values}.")
        total = sum(traffic.values())
        if field == "traffic" and total not in (0, 100):
            raise bad("BadArgument", f"Endpoint '{path.name}': traffic must sum to 0 or 100 over the endpoint's "
                                     f"deployments, got {total} ({traffic}).")
        if field == "mirrorTraffic" and any(v > 50 for v in traffic.values()):
            raise bad("BadArgument", f"Endpoint '{path.name}': mirror traffic cannot exceed 50%.")


# -- online deployments ---------------------------------------------------------------------------------

PROBE = {"failureThreshold": 30, "successThreshold": 1, "timeout": "PT2S", "period": "PT10S", "initialDelay": "PT10S"}


def get_logs(ctx, path, record, body, base_url):
    tail = body.get("tail")
    content = ctx.dataplane.logs(record.id) if ctx.dataplane else ""
    if isinstance(tail, int) and tail >= 0:
        content = "\n".join(content.splitlines()[-tail:]) if tail else ""
    return json_response({"content": content})


class DeploymentKind(Kind):
    type_key = NS + "/onlineendpoints/deployments"
    actions = {"getLogs": get_logs}

    async def provision(self, ctx, path, record):
        """Start the deployment's scoring container now, as the service does: a crash fails the operation."""
        if ctx.dataplane is None or not (props(record.body).get("codeConfiguration") or {}).get("codeId"):
            return None
        return await ctx.dataplane.provision(record)

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        p = props(out)
        endpoint = ctx.store.get(path.parent().path)
        on_k8s = bool(props(endpoint.body).get("compute"))
        ect = p.get("endpointComputeType") or ("Kubernetes" if on_k8s else "Managed")
        if on_k8s != (ect.lower() == "kubernetes"):
            raise bad("BadArgument", f"Deployment '{path.name}': endpointComputeType {ect!r} does not match endpoint "
                                     f"'{endpoint.body['name']}' ({'Kubernetes' if on_k8s else 'Managed'}).")
        p["endpointComputeType"] = ect
        self.check_refs(ctx, path, p)
        if existing is not None:
            old = props(existing.body)
            for field in ("instanceType", "endpointComputeType"):
                if old.get(field) and not same(old.get(field), p.get(field) or old.get(field)):
                    raise bad("BadArgument",
                              f"Deployment '{path.name}': {field} cannot be changed from {old.get(field)!r} to "
                              f"{p.get(field)!r}; it is immutable. Create a new deployment and shift traffic.")
        fill_defaults(out, {"sku": {"name": "Default", "tier": "Standard", "capacity": 1}, "tags": {}})
        fill_defaults(p, {
            "instanceType": "defaultinstancetype" if on_k8s else "Standard_DS3_v2",
            "scaleSettings": {"scaleType": "Default"},
            "requestSettings": {"requestTimeout": "PT5S", "maxConcurrentRequestsPerInstance": 1,
                                "maxQueueWait": "PT0.5S"},
            "livenessProbe": PROBE, "readinessProbe": PROBE,
            "appInsightsEnabled": False, "egressPublicNetworkAccess": "Enabled", "environmentVariables": {},
            "properties": {}, "description": None,
        })
        if on_k8s:
            fill_defaults(p, {"containerResourceRequirements": {
                "containerResourceRequests": {"cpu": "0.1", "memory": "0.5Gi"}, "containerResourceLimits": {}}})
        return out, None

    @staticmethod
    def check_refs(ctx, path, p) -> None:
        code = (p.get("codeConfiguration") or {}).get("codeId")
        for label, code_name, ref in (("model", "ModelNotFound", p.get("model")),
                                      ("environment", "EnvironmentNotFound", p.get("environmentId")),
                                      ("code", "CodeNotFound", code)):
            if ref and ref.startswith("/subscriptions/") and not ctx.store.exists(ref):
                raise bad(code_name, f"Deployment '{path.name}': {label} '{ref}' does not exist.")

    def check_delete(self, ctx, path, record):
        endpoint = ctx.store.get(path.parent().path)
        if endpoint is None:
            return
        p = props(endpoint.body)
        for field in ("traffic", "mirrorTraffic"):
            share = {k.lower(): v for k, v in (p.get(field) or {}).items()}.get(path.name.lower(), 0)
            if share:
                raise bad("BadArgument",
                          f"Deployment '{path.name}' has {share}% {field} on endpoint '{endpoint.body['name']}'; "
                          f"set its {field} to 0 before deleting it.")


register(EndpointKind(), DeploymentKind())
