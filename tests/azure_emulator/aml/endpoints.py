"""Online endpoints (keys, tokens, traffic rules) and their deployments (references, immutables, containers)."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import TYPE_CHECKING

from aiohttp import web

from ..errors import aml_error, json_response
from ..errors import bad_request as bad
from ..kinds import Kind, fill_defaults, props, register, same, state_of
from .common import NS
from .compute import compute_key

if TYPE_CHECKING:
    from ..store import Record


def _keys(record: "Record") -> dict:
    return record.private.setdefault("keys", {"primaryKey": secrets.token_urlsafe(24),
                                              "secondaryKey": secrets.token_urlsafe(24)})


def list_keys(ctx, path, record, body, base_url):
    # spec OnlineEndpoints_ListKeys; refusing it on a token-auth endpoint: guess (no listKeys recorded)
    if str(props(record.body).get("authMode", "")).lower() != "key":
        raise bad("BadArgument", f"Endpoint '{path.name}' does not use key authentication.")
    return json_response(dict(_keys(record)))


def get_token(ctx, path, record, body, base_url):
    if str(props(record.body).get("authMode", "")).lower() != "amltoken":
        raise bad("BadArgument", f"Endpoint '{path.name}' does not use AML token authentication.")
    # R01 #16: expiryTimeUtc = now + 24 h, refreshAfterTimeUtc = now + 12 h
    token, expiry = secrets.token_urlsafe(32), int(time.time()) + 86400
    tokens = record.private.setdefault("tokens", {})
    tokens[token] = expiry
    ctx.store.save()
    return json_response({"accessToken": token, "tokenType": "Bearer", "expiryTimeUtc": expiry,
                          "refreshAfterTimeUtc": expiry - 43200})


# R01 #1, #11: Location (the resource URL) + x-ms-async-operation-timeout PT30M beside Azure-AsyncOperation
def mfe_put_headers(location: str) -> dict[str, str]:
    return {"Location": location, "x-ms-async-operation-timeout": "PT30M"}


def in_flight(ctx, endpoint_path) -> list:
    """Operations still running on the endpoint or any of its deployments."""
    return ctx.ops.pending_under(endpoint_path.key)


def busy_conflict(what: str, endpoint: str, state: str):
    """`Cannot {what} in endpoint {endpoint} because it is in {state} provisioning state.` -- the deployment-create
    wording is azure-sdk-for-net#36961's; the other verbs, 409 and the UserError wrapping: guess (shape: R02)."""
    return aml_error(409, "Conflict", f"Cannot {what} in endpoint {endpoint} because it is in {state} "
                                      f"provisioning state.")


def regenerate_keys(ctx, path, record, body, base_url):
    # spec example OnlineEndpoint/regenerateKeys.json (R05 spec_examples): 200/202 with an empty body
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
    update_status = 201         # R01 #14: a PUT on an existing endpoint (traffic update) answers 201
    defer_update = True         # R01 #14-15: the PUT answer and GETs show the OLD traffic until the LRO ends

    def put_headers(self, path, location, created, lro):
        return mfe_put_headers(location) if lro else {}

    def check_write(self, ctx, path, existing, method):
        # rule: no write to an endpoint while a write to it or one of its deployments runs (issue 7 item 8,
        # azure-sdk-for-net#36961)
        if existing is None:
            return
        running = in_flight(ctx, path)
        if running:
            own = any(o.target.lower() == existing.id.lower() for o in running)
            verb = "delete the endpoint" if method == "DELETE" else "write"
            raise busy_conflict(verb if own else f"{verb} while a deployment operation runs",
                                existing.body["name"], "Updating")

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
            # R01: identity.principalId is the same before and after an update
            if isinstance(existing.body.get("identity"), dict) and isinstance(out.get("identity"), dict):
                for k in ("principalId", "tenantId"):
                    out["identity"].setdefault(k, existing.body["identity"].get(k))
        else:
            # R01 #1, R03 #1, R05 endpoint_2026: null until the create operation succeeds (filled in on_ready)
            p["scoringUri"] = p["swaggerUri"] = None
        self.check_traffic(ctx, path, p.get("traffic") or {}, "traffic")
        self.check_traffic(ctx, path, p.get("mirrorTraffic") or {}, "mirrorTraffic")
        self.check_mirror(path, p, bool(compute))
        # keys as azure-ai-ml sends them: lower-cased (operations/_online_endpoint_operations.py
        # `_strip_zeroes_from_traffic`, on every create_or_update); that the service itself folds a key another
        # client sends in capitals is a guess
        for field in ("traffic", "mirrorTraffic"):
            if isinstance(p.get(field), dict):
                p[field] = {str(k).lower(): v for k, v in p[field].items()}
        fill_defaults(out, {"identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid4()),
                                         "tenantId": ctx.settings.tenant_id}, "tags": {}})
        if not compute:
            out["kind"] = "Managed"         # R01 #1 body_top (Kubernetes endpoints: not recorded, no kind set)
            p["compute"] = None             # R01 #1: "compute": null on a managed endpoint
        # R01 #1: the service adds its own id (lower-cased) under properties.properties
        inner = p.get("properties") if isinstance(p.get("properties"), dict) else {}
        inner.setdefault("azureml.onlineendpointid", path.path.lower())
        p["properties"] = inner
        # R01 #1 defaults: authMode as sent, traffic/mirrorTraffic {}, publicNetworkAccess Enabled, description null
        fill_defaults(p, {"authMode": "Key", "traffic": {}, "mirrorTraffic": {}, "publicNetworkAccess": "Enabled",
                          "description": None})
        p.setdefault("scoringUri", None)
        p.setdefault("swaggerUri", None)
        private = dict(existing.private) if existing else {}
        private.setdefault("keys", {"primaryKey": secrets.token_urlsafe(24),
                                    "secondaryKey": secrets.token_urlsafe(24)})
        return out, private

    def on_ready(self, ctx, path, record):
        # R01 #3 fills https://{name}.{region}.inference.ml.azure.com/score; here the emulator's data plane
        # (by design: the scoring route must reach 127.0.0.1)
        p = props(record.body)
        if not p.get("scoringUri"):
            p["scoringUri"] = f"{ctx.url}/endpoints/{path.name}/score"
            p["swaggerUri"] = f"{ctx.url}/endpoints/{path.name}/swagger.json"

    @staticmethod
    def check_mirror(path, p: dict, kubernetes: bool) -> None:
        """azure-ai-docs machine-learning/how-to-safely-rollout-online-endpoints.md, "Test the deployment with
        mirrored traffic": "Mirroring isn't currently supported for Kubernetes online endpoints" (also
        concept-endpoints-online.md, managed vs Kubernetes table: mirrored traffic Unsupported) and "You can
        configure a deployment to receive only live traffic or mirrored traffic, not both". Codes/wording: guess."""
        mirror = {str(k).lower(): v for k, v in (p.get("mirrorTraffic") or {}).items() if v}
        if kubernetes and mirror:
            raise bad("BadArgument", f"Endpoint '{path.name}': mirror traffic is not supported for Kubernetes online "
                                     "endpoints.")
        live = {str(k).lower() for k, v in (p.get("traffic") or {}).items() if v}
        both = sorted(live & set(mirror))
        if both:
            raise bad("BadArgument", f"Endpoint '{path.name}': deployment(s) {', '.join(both)} cannot receive both "
                                     "live traffic and mirrored traffic.")

    @staticmethod
    def check_traffic(ctx, path, traffic: dict, field: str) -> None:
        # how-to-safely-rollout-online-endpoints.md: traffic goes to existing deployments and totals 100 (or
        # nothing); mirror traffic at most 50 %. Codes/wording: guess.
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

# R01 #13, R03 #5: the probes the service fills in once the deployment is provisioned
PROBE = {"failureThreshold": 30, "successThreshold": 1, "timeout": "PT2S", "period": "PT10S", "initialDelay": "PT10S"}


def get_logs(ctx, path, record, body, base_url):
    # spec OnlineDeployments_GetLogs: {"content": ...}; `tail` counts lines
    tail = body.get("tail")
    content = ctx.dataplane.logs(record.id) if ctx.dataplane else ""
    if isinstance(tail, int) and tail >= 0:
        content = "\n".join(content.splitlines()[-tail:]) if tail else ""
    return json_response({"content": content})


class DeploymentKind(Kind):
    type_key = NS + "/onlineendpoints/deployments"
    actions = {"getLogs": get_logs}
    creating_state = "Updating"     # R01 #11: a deployment create answers provisioningState Updating
    update_status = 201             # guess: same front end as endpoints (R01 #14); no deployment update recorded

    def put_headers(self, path, location, created, lro):
        return mfe_put_headers(location) if lro else {}

    def check_write(self, ctx, path, existing, method):
        # azure-sdk-for-net#36961: a deployment write is refused while its endpoint is not in a terminal state
        endpoint = ctx.store.get(path.parent().path)
        if endpoint is None:
            return
        state = state_of(endpoint.body)
        if state in ("Creating", "Updating", "Deleting") or ctx.ops.pending_for(path.parent().key):
            verb = "delete" if method == "DELETE" else "create" if existing is None else "update"
            raise busy_conflict(f"{verb} a deployment", endpoint.body["name"],
                                state if state != "Succeeded" else "Updating")
        if existing is not None and ctx.ops.pending_for(path.key):      # guess: one write per deployment
            raise busy_conflict(f"{'delete' if method == 'DELETE' else 'update'} deployment {path.name}",
                                endpoint.body["name"], "Updating")

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
        # R01 #11 body_top: sku {Default, Standard, capacity}; kind Managed on a managed endpoint
        fill_defaults(out, {"sku": {"name": "Default", "tier": "Standard", "capacity": 1}, "tags": {}})
        if not on_k8s:
            out["kind"] = "Managed"
            from . import quota

            short = quota.out_of_quota(ctx, path, p.get("instanceType"), int(out["sku"].get("capacity") or 1))
            if short:  # how-to-troubleshoot-online-endpoints.md: reported "as part of the deployment operation status"
                ctx.ops.fail_next(path.path, "OutOfQuota", short)
        private = dict(existing.private) if existing else {}
        settings = p.get("requestSettings") if isinstance(p.get("requestSettings"), dict) else {}
        # R01 #11: the create answer shows requestTimeout PT0S until provisioned (PT5S after, R01 #13)
        private["default_timeout"] = not settings.get("requestTimeout")
        p["requestSettings"] = fill_defaults(settings, {"maxQueueWait": "PT0S", "requestTimeout": "PT0S",
                                                        "maxConcurrentRequestsPerInstance": 1})
        # R01 #11 initial body: probes/modelMountPath null, privateNetworkConnection false,
        # egressPublicNetworkAccess Enabled, scaleSettings Default, appInsightsEnabled false, environmentVariables {}
        for field in ("livenessProbe", "readinessProbe", "modelMountPath", "description"):
            p.setdefault(field, None)
        fill_defaults(p, {
            "instanceType": "defaultinstancetype" if on_k8s else "Standard_DS3_v2",   # guess (not recorded)
            "scaleSettings": {"scaleType": "Default"}, "privateNetworkConnection": False,
            "appInsightsEnabled": False, "egressPublicNetworkAccess": "Enabled", "environmentVariables": {},
            "properties": {},
        })
        if on_k8s:   # guess: spec example OnlineDeployment/KubernetesOnlineDeployment is all placeholders
            fill_defaults(p, {"containerResourceRequirements": {
                "containerResourceRequests": {"cpu": "0.1", "memory": "0.5Gi"}, "containerResourceLimits": {}}})
        return out, private

    def on_ready(self, ctx, path, record):
        # R01 #13, R03 #5: once provisioned the service shows requestTimeout PT5S and both probes filled in
        p = props(record.body)
        if record.private.pop("default_timeout", False):
            p["requestSettings"]["requestTimeout"] = "PT5S"
        for field in ("livenessProbe", "readinessProbe"):
            if p.get(field) is None:
                p[field] = dict(PROBE)
            else:
                fill_defaults(p[field], PROBE)

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
