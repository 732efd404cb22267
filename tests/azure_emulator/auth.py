"""Entra ID, just enough for MSAL: OpenID discovery, instance discovery and the client-credentials token route.

Tokens are JWT-shaped (HS256 over an emulator secret) so code that peeks at claims works, and
`verify()` checks the signature and expiry on every ARM call (401 otherwise).

Sources: the token answer's fields and lifetimes follow R05 amlcompute_2022 #1 (expires_in 86399, ext_expires_in
86399, refresh_in 43199); the AADSTS error codes/texts are the public Entra ones (learn.microsoft.com
entra/identity-platform/reference-error-codes); the OpenID/instance-discovery documents carry the fields MSAL reads
(guess on the rest). ARM's 401 + WWW-Authenticate on a bad token: ARM RPC (guess on the exact wording).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

from aiohttp import web

from .context import Settings
from .errors import json_response

TOKEN_LIFETIME = 86399          # R05 amlcompute_2022 #1
REFRESH_IN = 43199              # R05 amlcompute_2022 #1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuthority:
    def __init__(self, settings: Settings, secret: bytes | None = None):
        self.settings = settings
        self.secret = secret or secrets.token_bytes(32)

    # -- tokens ------------------------------------------------------------------------------------
    def issue(self, audience: str, client_id: str, lifetime: int = TOKEN_LIFETIME) -> str:
        now = int(time.time())
        header = {"alg": "HS256", "typ": "JWT"}
        claims = {"aud": audience, "iss": f"https://sts.windows.net/{self.settings.tenant_id}/", "iat": now,
                  "nbf": now, "exp": now + lifetime, "tid": self.settings.tenant_id, "appid": client_id,
                  "oid": client_id, "sub": client_id, "idtyp": "app"}
        signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        return signing_input + "." + _b64(hmac.new(self.secret, signing_input.encode(), hashlib.sha256).digest())

    def verify(self, authorization: str | None, audience: str | None = None) -> str | None:
        """Return None if the bearer token is good (and, when `audience` is given, issued for it), else the reason.
        Data-plane services (Key Vault, Load Testing) accept only tokens for their own resource (Entra ID access
        tokens: `aud` is validated by the resource; learn.microsoft.com/entra/identity-platform/access-tokens)."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return "The request does not have a bearer token (Authorization header missing)."
        token = authorization[7:].strip()
        try:
            signing_input, sig = token.rsplit(".", 1)
            expected = _b64(hmac.new(self.secret, signing_input.encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(sig, expected):
                return "The access token signature is invalid (not issued by this emulator)."
            claims = json.loads(_unb64(signing_input.split(".")[1]))
        except (ValueError, IndexError):
            return "The access token is malformed."
        if claims.get("exp", 0) < time.time():
            return "The access token has expired."
        if audience is not None and str(claims.get("aud", "")).rstrip("/").lower() != audience.rstrip("/").lower():
            return f"The access token's audience '{claims.get('aud')}' is not {audience}."
        return None

    @staticmethod
    def claims(authorization: str) -> dict:
        """The claims of a bearer token `verify` accepted (oid: the caller's object id)."""
        try:
            return json.loads(_unb64(authorization[7:].strip().split(".")[1]))
        except (ValueError, IndexError):
            return {}

    # -- routes ------------------------------------------------------------------------------------
    def openid_configuration(self, base_url: str, tenant: str) -> web.Response:
        root = f"{base_url}/{tenant}"
        return json_response({
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "issuer": f"{root}/v2.0",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "tenant_region_scope": "WW",
        })

    def instance_discovery(self, base_url: str) -> web.Response:
        host = base_url.split("://", 1)[1]
        return json_response({
            "tenant_discovery_endpoint": f"{base_url}/{self.settings.tenant_id}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        })

    async def token(self, request: web.Request, tenant: str) -> web.Response:
        form = await request.post()
        client_id = form.get("client_id", "")
        secret = form.get("client_secret", "")
        auth = request.headers.get("Authorization", "")
        if not client_id and auth.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        if tenant.lower() not in (self.settings.tenant_id.lower(), "organizations", "common"):
            return self._oauth_error(400, "invalid_request",
                                     f"AADSTS90002: Tenant '{tenant}' not found. (emulated tenant is "
                                     f"{self.settings.tenant_id})")
        if form.get("grant_type") != "client_credentials":
            return self._oauth_error(400, "unsupported_grant_type",
                                     "AADSTS70003: The emulator only supports the client_credentials grant.")
        if client_id != self.settings.client_id:
            return self._oauth_error(400, "unauthorized_client",
                                     f"AADSTS700016: Application with identifier '{client_id}' was not found in the "
                                     f"directory '{tenant}'.")
        if secret != self.settings.client_secret:
            return self._oauth_error(401, "invalid_client",
                                     "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in "
                                     "the request is the client secret value.")
        scope = str(form.get("scope", "")).split()
        audience = next((s for s in scope if s.endswith("/.default")), "https://management.azure.com/.default")
        audience = audience[: -len("/.default")]
        return json_response({"token_type": "Bearer", "expires_in": TOKEN_LIFETIME, "ext_expires_in": TOKEN_LIFETIME,
                              "refresh_in": REFRESH_IN, "access_token": self.issue(audience, client_id)})

    @staticmethod
    def _oauth_error(status: int, error: str, description: str) -> web.Response:
        return json_response({"error": error, "error_description": description, "error_codes": [],
                              "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())}, status=status)
