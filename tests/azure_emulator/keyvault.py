"""Key Vault: the vault resource (ARM) and the secrets data plane at `https://{vault}.vault.azure.net`.

Conventions a client needs:
  * host `{vault}.vault.azure.net` (reached through the emulator's CONNECT proxy, certificate `*.vault.azure.net`);
    a vault answers when the store holds `Microsoft.KeyVault/vaults/{vault}` or a workspace names it as its
    `keyVault` (Azure ML creates the workspace's vault with it); any other name answers 404 (real: no DNS name);
  * api-version: any is accepted and logged in `ctx.api_versions` (azure-keyvault-secrets 4.12 sends 2026-04-01);
  * challenge auth, as azure-keyvault-secrets' ChallengeAuthPolicy expects (its _shared/challenge_auth_policy.py):
    a request without a bearer token answers 401 `{"error": {"code": "Unauthorized", "message": "Request is
    missing a Bearer or PoP token."}}` with `WWW-Authenticate: Bearer authorization="https://login.windows.net/
    {tenant}", resource="https://vault.azure.net"` (both recorded: azure-sdk-for-js keyvault-secrets
    recordings/node/challenge_based_authentication_tests/recording_once_authenticated_new_requests_should_not_
    authenticate_again.js); the client then asks the emulator's token route for `https://vault.azure.net/.default`;
    a token for another audience, or not issued here, answers 401 with the same challenge (code Unauthorized,
    message wording: guess);
  * PUT /secrets/{name} {value, contentType?, tags?, attributes?} -> 200 SecretBundle, a new 32-hex version each
    time; GET /secrets/{name}[/{version}]; GET /secrets (ids and attributes, never values); DELETE /secrets/{name}
    -> 200 DeletedSecretBundle (soft delete, 90 days); GET/DELETE /deletedsecrets/{name} (recover not emulated).
    Bodies as recorded (same JS recording: `{"value", "id": "https://{vault}.vault.azure.net/secrets/{name}/
    {version}", "attributes": {"enabled", "created", "updated", "recoveryLevel", "recoverableDays"}}`;
    recoveryLevel "Recoverable+Purgeable" / 90 days: the soft-delete defaults of learn.microsoft.com/azure/key-vault/
    general/soft-delete-overview);
  * 404 SecretNotFound "A secret with (name/id) {name} was not found in this key vault. ..." (the service's text);
  * names 1-127 of [0-9a-zA-Z-] and values up to 25 KB (learn.microsoft.com/azure/key-vault/general/about-keys-
    secrets-certificates#object-identifiers, service-limits: "secret value 25 KB"), else 400 BadParameter (wording:
    guess).
Access policies: PUT {vault ARM id}/accessPolicies/{add|replace|remove} (Vaults_UpdateAccessPolicy) updates the
vault's `accessPolicies`; a service reading a secret with its managed identity (Load Testing) needs one for its
principal with secrets `get`; a vault with `enableRbacAuthorization` needs a role assignment (PUT {scope}/providers/
Microsoft.Authorization/roleAssignments/{guid}) of a secret-reading built-in role at the vault or above
(`may_read_secrets`). Every data-plane caller is checked the same way (`caller_refusal`, by the token's `oid`: this
emulator's service principal has oid = its client id): 403 AccessDenied / ForbiddenByRbac otherwise -- an RBAC vault
refuses even its creator until it holds Key Vault Secrets Officer. A vault only a workspace names (no vault resource
stored) is not checked. Not modelled: deny assignments, recovery of deleted secrets, certificates and keys.

`resolve(ctx, uri)` gives the in-process Load Testing engines a secret by its identifier (loadtesting.py).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlparse

from aiohttp import web

from .context import Context
from .errors import ArmError, json_response
from .ids import ArmPath
from .kinds import Kind, fill_defaults, props, register

HOST_SUFFIX = ".vault.azure.net"
AUDIENCE = "https://vault.azure.net"
NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_VALUE_BYTES = 25 * 1024
MAX_VERSIONS = 100            # per secret, the oldest go first (guess: Key Vault keeps every version)
MAX_ACCESS_POLICIES = 1024    # learn.microsoft.com/azure/key-vault/general/service-limits (code wording: guess)
MAX_SECRETS = 10_000          # per vault: an emulator bound on memory, not a Key Vault limit
RECOVERY_LEVEL = "Recoverable+Purgeable"
RECOVERABLE_DAYS = 90


class VaultKind(Kind):
    """Microsoft.KeyVault/vaults: `properties.vaultUri` is the data plane (spec keyvault resource-manager
    stable/2023-07-01 keyvault.json VaultProperties.vaultUri, "https://{name}.vault.azure.net/"), tenantId and sku
    are required there (defaults here: the emulated tenant, standard: guess)."""

    type_key = "microsoft.keyvault/vaults"

    def prepare(self, ctx, path, body, existing):
        out = self.envelope(ctx, path, body, existing)
        fill_defaults(props(out), {"tenantId": ctx.settings.tenant_id, "sku": {"family": "A", "name": "standard"},
                                   "accessPolicies": [], "enableSoftDelete": True,
                                   "softDeleteRetentionInDays": RECOVERABLE_DAYS})
        props(out)["vaultUri"] = f"https://{path.name.lower()}{HOST_SUFFIX}/"
        return out, None


PERMISSION_KINDS = ("keys", "secrets", "certificates", "storage")


def _same_holder(a: dict, b: dict) -> bool:
    return all(str(a.get(k) or "").lower() == str(b.get(k) or "").lower()
               for k in ("tenantId", "objectId", "applicationId"))


def update_policies(policies: list[dict], changes: list[dict], operation: str) -> list[dict]:
    """Vaults_UpdateAccessPolicy (spec keyvault.json, PUT {vault}/accessPolicies/{add|replace|remove}): a policy is
    addressed by tenant, object and application id; `add` merges the permissions into it, `replace` sets them,
    `remove` takes them away; a policy left with no permission goes; add/replace append a policy nothing matches."""
    out = [dict(p, permissions={k: list(v) for k, v in (p.get("permissions") or {}).items()}) for p in policies]
    for change in changes:
        wanted = change.get("permissions") or {}
        match = next((p for p in out if _same_holder(p, change)), None)
        if match is None:
            if operation != "remove":
                out.append({k: change[k] for k in ("tenantId", "objectId", "applicationId") if change.get(k)}
                           | {"permissions": {k: list(v) for k, v in wanted.items() if k in PERMISSION_KINDS}})
            continue
        have = match["permissions"]
        for kind in PERMISSION_KINDS:
            given = [str(x).lower() for x in wanted.get(kind) or []]
            current = [str(x).lower() for x in have.get(kind) or []]
            if operation == "add":
                have[kind] = current + [x for x in given if x not in current]
            elif operation == "replace":
                have[kind] = given
            else:
                have[kind] = [x for x in current if x not in given]
        match["permissions"] = {k: v for k, v in have.items() if v}
    return [p for p in out if any(p["permissions"].values())]


class AccessPolicyKind(Kind):
    """PUT {vault}/accessPolicies/{add|replace|remove}: a synchronous update of the vault's access policies (spec
    Vaults_UpdateAccessPolicy answers 200/201); the answer echoes the policies sent (guess on the body)."""

    type_key = "microsoft.keyvault/vaults/accesspolicies"
    lro_put = lro_delete = False

    def prepare(self, ctx, path, body, existing):
        operation = path.name.lower()
        if operation not in ("add", "replace", "remove"):
            raise ArmError(400, "InvalidOperationKind", f"operationKind must be add, replace or remove, not "
                                                        f"'{path.name}'.")
        changes = (body.get("properties") or {}).get("accessPolicies")
        if not isinstance(changes, list) or not all(isinstance(c, dict) and c.get("objectId") for c in changes):
            raise ArmError(400, "BadRequest", "properties.accessPolicies must be a list of policies with objectId.")
        vault = ctx.store.get(path.parent().path)
        updated = update_policies(props(vault.body).get("accessPolicies") or [], changes, operation)
        if len(updated) > MAX_ACCESS_POLICIES:
            raise ArmError(400, "AccessPolicyLimitExceeded", f"A vault holds at most {MAX_ACCESS_POLICIES} access "
                                                             f"policies.")
        props(vault.body)["accessPolicies"] = updated
        ctx.store.save()
        return {"id": path.path, "name": path.name, "type": "Microsoft.KeyVault/vaults/accessPolicies",
                "location": vault.body.get("location"), "properties": {"accessPolicies": changes}}, None

    def view(self, ctx, record):
        out = dict(record.body)
        out["properties"] = {k: v for k, v in (out.get("properties") or {}).items() if k != "provisioningState"}
        return out


register(VaultKind(), AccessPolicyKind())


# Built-in roles whose data actions read secret values (learn.microsoft.com/azure/key-vault/general/rbac-guide,
# "Azure built-in roles for Key Vault data plane operations"): Key Vault Administrator, Secrets Officer, Secrets User.
SECRET_READER_ROLES = {"00482a5a-887f-4fb3-b363-3b7fe8e74483", "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
                       "4633458b-17de-408a-b874-0445c86b69e6"}


def _has_secret_role(ctx: Context, vault_id: str, principal_id: str, roles: set[str]) -> bool:
    """A role assignment (Microsoft.Authorization/roleAssignments at the vault, its resource group or subscription:
    RBAC scopes inherit downwards) giving the principal a role that reads secrets."""
    vault_key = vault_id.lower()

    def grants(r) -> bool:
        path = ArmPath.parse(r.id)
        if path.type_key() != "microsoft.authorization/roleassignments":
            return False
        scope = "/".join(r.id.lower().split("/providers/microsoft.authorization/roleassignments/")[:1])
        p = r.body.get("properties") or {}
        return ((vault_key == scope or vault_key.startswith(scope + "/"))
                and str(p.get("principalId", "")).lower() == principal_id.lower()
                and str(p.get("roleDefinitionId", "")).rstrip("/").rsplit("/", 1)[-1].lower() in roles)

    return bool(ctx.store.find(grants))


SECRET_WRITER_ROLES = {"00482a5a-887f-4fb3-b363-3b7fe8e74483", "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"}  # Admin, Officer


def caller_refusal(ctx: Context, vault: str, principal_id: str, permission: str) -> tuple[str, str] | None:
    """(innererror code, message) when the principal may not use `permission` (get/list/set/delete/purge) on the
    vault's secrets through the data plane, else None. Key Vault checks the caller on every request: an RBAC vault
    wants a data role (Secrets User reads, Secrets Officer or Administrator also writes: rbac-guide) -- the vault's
    creator included, Owner/Contributor carry no data actions; an access-policy vault wants a policy of the caller
    with that permission (learn.microsoft.com/azure/key-vault/general/assign-access-policy). The 403 texts follow the
    service's ForbiddenByRbac / AccessDenied answers as users report them (wording: guess). A vault only a workspace
    names (no resource stored) is not checked."""
    found = _vault_record(ctx, vault)
    if found is None:
        return None
    location = found.body.get("location", "")
    if props(found.body).get("enableRbacAuthorization"):
        roles = SECRET_READER_ROLES if permission in ("get", "list") else SECRET_WRITER_ROLES
        if _has_secret_role(ctx, found.id, principal_id, roles):
            return None
        return "ForbiddenByRbac", (f"Caller is not authorized to perform action on resource.\r\nCaller: "
                                   f"oid={principal_id}\r\nAction: 'Microsoft.KeyVault/vaults/secrets/"
                                   f"{'readMetadata' if permission == 'list' else permission}/action'\r\nResource: "
                                   f"'{found.id.lower()}/secrets'\r\nAssignment: (not found)\r\nVault: {vault};"
                                   f"location={location}\r\n")
    for policy in props(found.body).get("accessPolicies") or []:
        granted = [str(x).lower() for x in (policy.get("permissions") or {}).get("secrets") or []]
        if str(policy.get("objectId", "")).lower() == principal_id.lower() and (permission in granted
                                                                                 or "all" in granted):
            return None
    return "AccessDenied", (f"The user, group or application 'oid={principal_id}' does not have secrets {permission} "
                            f"permission on key vault '{vault};location={location}'. For help resolving this issue, "
                            f"please see https://go.microsoft.com/fwlink/?linkid=2125287")


def _vault_record(ctx: Context, vault: str):
    found = ctx.store.find(lambda r: ArmPath.parse(r.id).type_key() == VaultKind.type_key
                           and r.body.get("name", "").lower() == vault.lower())
    return found[0] if found else None


def may_read_secrets(ctx: Context, vault: str, principal_id: str) -> str | None:
    """Why a service's managed identity (`principal_id`) may not read the vault's secrets, or None: the same rule as
    for any caller (`caller_refusal`), as the service reads the vault with that identity."""
    refused = caller_refusal(ctx, vault, principal_id, "get")
    if refused is None:
        return None
    if refused[0] == "ForbiddenByRbac":
        return (f"Key Vault '{vault}' uses Azure RBAC and the load testing resource's identity (object id "
                f"{principal_id}) has no role assignment reading secrets there (Key Vault Secrets User, Secrets "
                f"Officer or Administrator)")
    return (f"Key Vault '{vault}' has no access policy giving the load testing resource's identity (object id "
            f"{principal_id}) the secrets permission 'get'")


@dataclass
class Version:
    id: str
    value: str
    created: int
    content_type: str | None = None
    tags: dict | None = None
    enabled: bool = True


@dataclass
class Secret:
    versions: list[Version] = field(default_factory=list)
    deleted: int | None = None         # epoch seconds of a soft delete


class Vaults:
    """Secrets of every vault: {vault name (lower): {secret name (lower): Secret}}."""

    def __init__(self):
        self.secrets: dict[str, dict[str, Secret]] = {}

    def latest(self, vault: str, name: str, version: str | None = None) -> Version | None:
        secret = self.secrets.get(vault.lower(), {}).get(name.lower())
        if secret is None or secret.deleted is not None:
            return None
        if version:
            return next((v for v in secret.versions if v.id == version.lower()), None)
        return secret.versions[-1] if secret.versions else None


def vault_exists(ctx: Context, vault: str) -> bool:
    vault = vault.lower()
    return bool(ctx.store.find(
        lambda r: (ArmPath.parse(r.id).type_key() == "microsoft.keyvault/vaults" and r.body.get("name", "").lower()
                   == vault)
        or (ArmPath.parse(r.id).type_key() == "microsoft.machinelearningservices/workspaces"
            and str(props(r.body).get("keyVault") or "").rstrip("/").split("/")[-1].lower() == vault)))


def parse_secret_uri(uri: str) -> tuple[str, str, str | None] | None:
    """(vault, name, version or None) of `https://{vault}.vault.azure.net/secrets/{name}[/{version}]`."""
    parsed = urlparse(uri or "")
    host = (parsed.hostname or "").lower()
    segs = [s for s in parsed.path.split("/") if s]
    if parsed.scheme != "https" or not host.endswith(HOST_SUFFIX) or len(segs) not in (2, 3) or segs[0] != "secrets":
        return None
    return host[: -len(HOST_SUFFIX)], segs[1], (segs[2] if len(segs) == 3 else None)


def resolve(ctx: Context, uri: str) -> str:
    """The value a secret identifier names, for a service reading the vault with its identity; KeyError if none."""
    parsed = parse_secret_uri(uri)
    if parsed is None:
        raise KeyError(f"'{uri}' is not a Key Vault secret identifier (https://{{vault}}.vault.azure.net/secrets/"
                       f"{{name}}[/{{version}}])")
    vault, name, version = parsed
    if not vault_exists(ctx, vault):
        raise KeyError(f"Key Vault '{vault}' does not exist")
    found = ctx.keyvault.vaults.latest(vault, name, version)
    if found is None or not found.enabled:
        raise KeyError(f"secret '{name}'{f' version {version}' if version else ''} was not found in Key Vault "
                       f"'{vault}'")
    return found.value


def _error(status: int, code: str, message: str, tenant: str | None = None) -> web.Response:
    headers = {"x-ms-keyvault-region": "emulated", "x-ms-request-id": str(uuid.uuid4())}
    if tenant is not None:
        headers["WWW-Authenticate"] = f'Bearer authorization="https://login.windows.net/{tenant}", ' \
                                      f'resource="{AUDIENCE}"'
    return json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def _not_found(name: str) -> web.Response:
    return _error(404, "SecretNotFound",
                  f"A secret with (name/id) {name} was not found in this key vault. If you recently deleted this "
                  f"secret you may be able to recover it using the correct recovery command. For help resolving "
                  f"this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")


class KeyVaultApi:
    def __init__(self, ctx: Context, authority):
        self.ctx = ctx
        self.authority = authority
        self.vaults = Vaults()

    async def handle(self, request: web.Request, host: str) -> web.Response:
        vault = host[: -len(HOST_SUFFIX)]
        self.ctx.api_versions.append((request.method, f"//{host}{request.path}", request.query.get("api-version")))
        tenant = self.ctx.settings.tenant_id
        authorization = request.headers.get("Authorization")
        if not authorization or not authorization.lower().startswith("bearer "):
            await request.read()
            return _error(401, "Unauthorized", "Request is missing a Bearer or PoP token.", tenant)
        problem = self.authority.verify(authorization, audience=AUDIENCE)
        if problem is not None:
            return _error(401, "Unauthorized", f"AKV10000: Request is missing a valid token: {problem}", tenant)
        if not vault_exists(self.ctx, vault):
            return _error(404, "VaultNotFound", f"The vault '{vault}' does not exist (emulator: no "
                                                f"Microsoft.KeyVault/vaults/{vault} and no workspace names it).")
        segs = [s for s in request.path.split("/") if s]
        refused = self.refuse(vault, self.authority.claims(authorization), request.method, segs)
        if refused is not None:
            await request.read()
            return refused
        base = f"https://{host}"
        if segs[:1] == ["secrets"] and len(segs) == 1 and request.method == "GET":
            return self.list(vault, base)
        if segs[:1] == ["secrets"] and len(segs) in (2, 3):
            if request.method == "PUT" and len(segs) == 2:
                return await self.put(request, vault, segs[1], base)
            if request.method == "GET":
                found = self.vaults.latest(vault, segs[1], segs[2] if len(segs) == 3 else None)
                return json_response(self.bundle(base, segs[1], found)) if found else _not_found(segs[1])
            if request.method == "DELETE" and len(segs) == 2:
                return self.delete(vault, segs[1], base)
        if segs[:1] == ["deletedsecrets"] and len(segs) == 2:
            return self.deleted(request.method, vault, segs[1], base)
        return _error(400, "BadParameter", f"The emulator has no Key Vault route for {request.method} {request.path}.")

    def refuse(self, vault: str, claims: dict, method: str, segs: list[str]) -> web.Response | None:
        """403 unless the caller may do this to the vault's secrets: a role assignment on an RBAC vault, an access
        policy otherwise (`caller_refusal`)."""
        permission = {"GET": "list" if len(segs) == 1 else "get", "PUT": "set",
                      "DELETE": "purge" if segs[:1] == ["deletedsecrets"] else "delete"}.get(method, "get")
        reason = caller_refusal(self.ctx, vault, str(claims.get("oid") or ""), permission)
        if reason is None:
            return None
        code, message = reason
        return json_response({"error": {"code": "Forbidden", "message": message, "innererror": {"code": code}}},
                             status=403, headers={"x-ms-keyvault-region": "emulated"})

    @staticmethod
    def bundle(base: str, name: str, version: Version, with_value: bool = True) -> dict:
        out = {"id": f"{base}/secrets/{name}/{version.id}",
               "attributes": {"enabled": version.enabled, "created": version.created, "updated": version.created,
                              "recoveryLevel": RECOVERY_LEVEL, "recoverableDays": RECOVERABLE_DAYS}}
        if with_value:
            out = {"value": version.value, **out}
        if version.content_type is not None:
            out["contentType"] = version.content_type
        if version.tags:
            out["tags"] = version.tags
        return out

    async def put(self, request: web.Request, vault: str, name: str, base: str) -> web.Response:
        raw = await request.read()
        if len(raw) > MAX_VALUE_BYTES + 4096:
            return _error(400, "BadParameter", f"The secret value exceeds {MAX_VALUE_BYTES} bytes.")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _error(400, "BadParameter", "The request body is not valid JSON.")
        value = body.get("value") if isinstance(body, dict) else None
        if not NAME_RE.match(name):
            return _error(400, "BadParameter", f"Secret name '{name}' is invalid: 1-127 characters of 0-9, a-z, "
                                               f"A-Z and '-'.")
        if not isinstance(value, str) or len(value.encode()) > MAX_VALUE_BYTES:
            return _error(400, "BadParameter", f"The secret value must be a string of at most {MAX_VALUE_BYTES} "
                                               f"bytes.")
        secrets = self.vaults.secrets.setdefault(vault.lower(), {})
        secret = secrets.get(name.lower())
        if secret is not None and secret.deleted is not None:
            return _error(409, "Conflict", f"Secret {name} is currently in a deleted but recoverable state, and its "
                                           f"name cannot be reused; in this state, the secret can only be recovered "
                                           f"or purged.")
        if secret is None and len(secrets) >= MAX_SECRETS:
            return _error(400, "BadParameter", f"The emulator keeps at most {MAX_SECRETS} secrets per vault.")
        secret = secrets.setdefault(name.lower(), Secret())
        attributes = body.get("attributes") if isinstance(body.get("attributes"), dict) else {}
        version = Version(uuid.uuid4().hex, value, int(time.time()), body.get("contentType"),
                          body.get("tags") if isinstance(body.get("tags"), dict) else None,
                          attributes.get("enabled", True) is not False)
        secret.versions.append(version)
        del secret.versions[:-MAX_VERSIONS]
        return json_response(self.bundle(base, name, version))

    def list(self, vault: str, base: str) -> web.Response:
        out = []
        for name, secret in sorted(self.vaults.secrets.get(vault.lower(), {}).items()):
            if secret.deleted is None and secret.versions:
                item = self.bundle(base, name, secret.versions[-1], with_value=False)
                item["id"] = f"{base}/secrets/{name}"
                out.append(item)
        return json_response({"value": out, "nextLink": None})

    def delete(self, vault: str, name: str, base: str) -> web.Response:
        secret = self.vaults.secrets.get(vault.lower(), {}).get(name.lower())
        if secret is None or secret.deleted is not None or not secret.versions:
            return _not_found(name)
        secret.deleted = int(time.time())
        return json_response(self.deleted_bundle(base, name, secret))

    @staticmethod
    def deleted_bundle(base: str, name: str, secret: Secret) -> dict:
        return {"recoveryId": f"{base}/deletedsecrets/{name}", "deletedDate": secret.deleted,
                "scheduledPurgeDate": secret.deleted + RECOVERABLE_DAYS * 86400,
                **KeyVaultApi.bundle(base, name, secret.versions[-1], with_value=False)}

    def deleted(self, method: str, vault: str, name: str, base: str) -> web.Response:
        secrets = self.vaults.secrets.get(vault.lower(), {})
        secret = secrets.get(name.lower())
        if secret is None or secret.deleted is None:
            return _error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        if method == "GET":
            return json_response(self.deleted_bundle(base, name, secret))
        if method == "DELETE":       # purge
            del secrets[name.lower()]
            return web.Response(status=204)
        return _error(405, "BadParameter", f"{method} is not supported on deleted secrets.")
