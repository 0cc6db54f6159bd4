"""The Entra ID HTTP layer: OpenID configuration, signing keys, the v1/v2 client-credentials token endpoints.

What a confidential client needs to sign in with a client secret against a custom authority
(docs/protocol.md, "Entra ID token endpoints"): MSAL (and azure-identity's ``ClientSecretCredential``, and
``az login --service-principal``) first reads ``GET <authority>/v2.0/.well-known/openid-configuration``,
takes the tenant from its ``token_endpoint``, then ``POST``s the token endpoint with ``grant_type=
client_credentials``, ``client_id``, ``client_secret`` and ``scope=<resource>/.default``. The v1 endpoint
(``/oauth2/token``, ``resource=``) is what raw HTTP examples and ADAL-era code use.

Checks of a token request, in order: method (AADSTS900561) → tenant (AADSTS90002; ``common``/``consumers``
AADSTS9001023) → ``grant_type`` (AADSTS900144 missing, AADSTS70003 other than ``client_credentials``) →
``client_id`` (AADSTS900144) → scope or resource (AADSTS900144, AADSTS901002 ``resource`` on v2,
AADSTS1002012 no ``/.default``, AADSTS70011 several resources) → application (AADSTS700016) → secret
(AADSTS7000218 missing, AADSTS7000215 wrong; a managed identity has no secret) → resource principal
(AADSTS500011). Tokens are v1 app-only tokens signed with the emulator's one key (the one IMDS tokens use),
so ARM and Graph verify both kinds the same way; ``roles`` carry the app's Graph permissions when the
resource is Graph.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from mi_helpers.constants import Arm, Entra, Graph
from mi_helpers.emulator import principals
from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.endpoints import Endpoints
from mi_helpers.emulator.errors import WireError
from mi_helpers.emulator.identity_errors import ENTRA_CONTENT_TYPE, EntraError, entra_framing_error
from mi_helpers.emulator.layer import Layer
from mi_helpers.emulator.model import ServicePrincipal

__all__ = ["APP_TOKEN_LIFETIME", "FIRST_PARTY_RESOURCES", "EntraLayer"]

#: Lifetime of an app token for a client that did not declare the CP1 capability (Entra's usual 3599 s);
#: a CAE-capable client (``claims`` with ``xms_cc`` ``CP1``, as az sends) gets the issuer's long lifetime.
APP_TOKEN_LIFETIME = 3599

#: Resource principals every tenant has (Microsoft's first-party APIs), besides Graph and the tenant's own
#: applications; compared without case and trailing slash (docs/protocol.md#audiences-and-clouds).
FIRST_PARTY_RESOURCES = frozenset(
    r.rstrip("/").lower()
    for r in (
        *Arm.AUDIENCES,
        "https://vault.azure.net",
        "https://storage.azure.com",
        "https://database.windows.net",
        "https://servicebus.azure.net",
        "https://eventhubs.azure.net",
        "https://cognitiveservices.azure.com",
    )
)
#: Tenant aliases that are not a tenant: discovery answers for them, a client-credentials grant does not.
_AUDIENCE_ALIASES = ("common", "organizations", "consumers")
_TOKEN_METHODS_TEXT = "The endpoint only accepts POST, OPTIONS requests. Received a {method} request."  # noqa: S105

_URLS = Map(
    [
        Rule("/<tenant>/v2.0/.well-known/openid-configuration", endpoint="openid_v2"),
        Rule("/<tenant>/.well-known/openid-configuration", endpoint="openid_v1"),
        Rule("/<tenant>/discovery/keys", endpoint="keys"),
        Rule("/<tenant>/discovery/v2.0/keys", endpoint="keys"),
        Rule("/<tenant>/oauth2/v2.0/token", endpoint="token_v2"),
        Rule("/<tenant>/oauth2/token", endpoint="token_v1"),
    ],
    strict_slashes=False,
    merge_slashes=True,
)
_ADAPTER = _URLS.bind("login.local")

_CLAIMS_SUPPORTED = [
    "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
    "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid",
    "ver", "at_hash", "c_hash", "email",
]  # fmt: skip


def _json(body: Any, status: int = 200, cache: str | None = None) -> Response:
    resp = Response(json.dumps(body, separators=(",", ":")), status=status, content_type=ENTRA_CONTENT_TYPE)
    if cache:
        resp.headers["Cache-Control"] = cache
    return resp


def _missing(name: str) -> EntraError:
    return EntraError(
        400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'."
    )


class EntraLayer(Layer):
    """Answers requests on the Entra ID (HTTPS) listener: the authority ``<entra_url>/<tenant>``."""

    name = "entra"

    def __init__(self, backend: Backend, endpoints: Callable[[], Endpoints]) -> None:
        super().__init__(backend)
        self.endpoints = endpoints

    def framing_error(self, status: int, detail: str) -> WireError:
        return entra_framing_error(status, detail)

    def handle(self, request: Request) -> Response:
        """As :meth:`Layer.handle`, but an Entra error names the client's ``client-request-id``."""
        try:
            response = self.respond(request)
        except EntraError as err:
            response = err.response_for(request.headers.get("client-request-id"))
        except WireError as err:
            response = err.response()
        return self.finish(request, response)

    def respond(self, request: Request) -> Response:
        try:
            endpoint, args = _ADAPTER.match(request.path, method="GET")
        except HTTPException:
            raise WireError(
                404,
                f"404: the emulated Entra ID does not serve {request.path[:200]} (it serves "
                "/<tenant>/v2.0/.well-known/openid-configuration, /<tenant>/discovery/keys and the "
                "client-credentials token endpoints /<tenant>/oauth2/v2.0/token and /<tenant>/oauth2/token)",
                content_type="text/plain; charset=utf-8",
            ) from None
        tenant = str(args["tenant"])
        if endpoint.startswith("token"):
            return self._token(request, tenant, v2=endpoint == "token_v2")
        if request.method not in ("GET", "HEAD"):
            raise WireError(405, f"405: {request.method} is not allowed here", content_type="text/plain")
        if endpoint == "keys":
            self._discovery_tenant(tenant, v1=False)
            return _json(self.backend.jwks(), cache="max-age=86400, private")
        return self._openid(request, tenant, v2=endpoint == "openid_v2")

    def finish(self, request: Request, response: Response) -> Response:
        """Headers every Entra reply carries (token replies are never cached)."""
        h = response.headers
        h.setdefault("Cache-Control", "no-store, no-cache")
        if h["Cache-Control"].startswith("no-store"):
            h["Pragma"] = "no-cache"
            h["Expires"] = "-1"
        h["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        h["X-Content-Type-Options"] = "nosniff"
        h.setdefault("x-ms-request-id", str(uuid.uuid4()))
        h["x-ms-ests-server"] = "2.1.emulated - WEULR1 ProdSlices"
        return response

    # ------------------------------------------------------------------ tenants
    def _unknown_tenant(self, tenant: str) -> EntraError:
        return EntraError(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{tenant[:100]}' not found. Check to make sure you have the correct tenant ID and are "
            "signing into the correct cloud. Check with your subscription administrator, this may happen if "
            "there are no active subscriptions for the tenant.",
        )

    def _discovery_tenant(self, tenant: str, *, v1: bool) -> str:
        """The tenant of a discovery document: the world's, or an alias (v1 knows no ``organizations``)."""
        tid = self.backend.world.tenant.id
        t = tenant.lower()
        if t == tid.lower():
            return tid
        if t in _AUDIENCE_ALIASES and not (v1 and t != "common"):
            return t
        raise self._unknown_tenant(tenant)

    def _token_tenant(self, tenant: str) -> str:
        tid = self.backend.world.tenant.id
        t = tenant.lower()
        if t in (tid.lower(), "organizations"):
            return tid
        if t in ("common", "consumers"):
            raise EntraError(
                400,
                "invalid_request",
                9001023,
                "The grant type is not supported over the /common or /consumers endpoints. Please use the "
                "/organizations or tenant-specific endpoint.",
            )
        raise self._unknown_tenant(tenant)

    # ------------------------------------------------------------------ discovery
    def _openid(self, request: Request, tenant: str, *, v2: bool) -> Response:
        seg = self._discovery_tenant(tenant, v1=not v2)
        tid = self.backend.world.tenant.id
        issuer_tid = tid if seg == tid else "{tenantid}"
        base = f"https://{request.host}/{seg}"
        graph = self.endpoints().graph_url or Graph.URL
        o2 = "oauth2/v2.0" if v2 else "oauth2"
        doc: dict[str, Any] = {
            "token_endpoint": f"{base}/{o2}/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys"
            if v2
            else f"https://{request.host}/common/discovery/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"]
            if v2
            else ["code", "id_token", "code id_token", "token id_token", "token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"] if v2 else ["openid"],
            "issuer": f"https://{request.host}/{issuer_tid}/v2.0"
            if v2
            else f"{Entra.V1_ISSUER_HOST}/{issuer_tid}/",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{graph}/oidc/userinfo" if v2 else f"{base}/openid/userinfo",
            "authorization_endpoint": f"{base}/{o2}/authorize",
            "device_authorization_endpoint": f"{base}/{o2}/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{o2}/logout",
            "claims_supported": _CLAIMS_SUPPORTED,
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": urlsplit(graph).netloc,
            "rbac_url": "https://pas.windows.net",
        }
        if not v2:
            doc["microsoft_multi_refresh_token"] = True
        return _json(doc, cache="max-age=86400, private")

    # ------------------------------------------------------------------ the token endpoints
    def _token(self, request: Request, tenant: str, *, v2: bool) -> Response:
        if request.method == "OPTIONS":  # a CORS preflight: the other method the endpoint accepts
            return Response(status=200, headers={"Allow": "POST, OPTIONS"})
        if request.method != "POST":
            raise EntraError(
                400, "invalid_request", 900561, _TOKEN_METHODS_TEXT.format(method=request.method)
            )
        tid = self._token_tenant(tenant)
        form = request.form
        grant = form.get("grant_type", "").strip()
        if not grant:
            raise _missing("grant_type")
        if grant != "client_credentials":
            raise EntraError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant[:100]}'.",
            )
        client_id, secret = _client_credentials(request)
        if not client_id:
            raise _missing("client_id")
        resource = _v2_resource(form) if v2 else _v1_resource(form)
        app = self._authenticate(client_id, secret, tid)
        roles = self._resource_roles(resource, app, tid)
        lifetime = self.backend.issuer.lifetime
        if not _cae_capable(form):
            lifetime = min(lifetime, APP_TOKEN_LIFETIME)
        now = self.backend.clock.time()
        tok = self.backend.issuer.issue_app_token(
            app_id=app.app_id,
            object_id=app.object_id,
            audience=resource,
            roles=roles,
            lifetime=lifetime,
            now=now,
        )
        request.environ["mi.identity"] = app.object_id
        if v2:
            body: dict[str, Any] = {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
            }
            return _json({**body, "access_token": tok.access_token})
        return _json(
            {
                "token_type": "Bearer",
                "expires_in": str(lifetime),
                "ext_expires_in": str(lifetime),
                "expires_on": str(tok.exp),
                "not_before": str(tok.nbf),
                "resource": resource,
                "access_token": tok.access_token,
            }
        )

    def _authenticate(self, client_id: str, secret: str, tid: str) -> ServicePrincipal:
        """The application ``client_id`` names, if ``secret`` is its secret (AADSTS700016/7000218/7000215)."""
        world = self.backend.world
        app = principals.application(world, client_id)
        if app is None and principals.by_app_id(world, client_id) is None:
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id[:100]}' was not found in the directory '{tid}'. "
                "This can happen if the application has not been installed by the administrator of the "
                "tenant or consented to by any user in the tenant. You may have sent your authentication "
                "request to the wrong tenant.",
            )
        if not secret:
            raise EntraError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        if app is None or not self.backend.secrets.check(app.app_id, secret):
            raise EntraError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id[:100]}'.",
            )
        return app

    def _resource_roles(self, resource: str, app: ServicePrincipal, tid: str) -> list[str]:
        """The ``roles`` a token for ``resource`` carries, or AADSTS500011 for a resource nobody provides."""
        norm = resource.rstrip("/").lower()
        graph_names = {Graph.URL.lower(), Graph.APP_ID}
        if self.endpoints().graph_url:
            graph_names.add(self.endpoints().graph_url.rstrip("/").lower())
        if norm in graph_names:
            return list(app.graph_app_roles)
        if norm in FIRST_PARTY_RESOURCES:
            return []
        if self.backend.directory.resolve(resource, self.backend.world.applications) is not None:
            return []  # the same tenant directory IMDS asks: first-party services, the world's applications
        app_id = norm[len("api://") :] if norm.startswith("api://") else norm
        if principals.by_app_id(self.backend.world, app_id) is not None:
            return []
        raise EntraError(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource[:256]} was not found in the tenant named {tid}. This "
            "can happen if the application has not been installed by the administrator of the tenant or "
            "consented to by any user in the tenant. You might have sent your authentication request to the "
            "wrong tenant.",
        )


# ------------------------------------------------------------------------------------------- parsing
def _client_credentials(request: Request) -> tuple[str, str]:
    """``(client_id, client_secret)``: from the body (``client_secret_post``) or HTTP Basic (``…_basic``)."""
    form = request.form
    client_id = form.get("client_id", "").strip()
    secret = form.get("client_secret", "")
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        user, sep, password = decoded.partition(":")
        if sep:  # RFC 6749 section 2.3.1: both parts are form-urlencoded before the Basic encoding
            client_id = client_id or unquote(user.replace("+", " ")).strip()
            secret = secret or unquote(password.replace("+", " "))
    return client_id, secret


def _v2_resource(form: Any) -> str:
    """The resource of a v2 request's ``scope`` (exactly one ``<resource>/.default``)."""
    scope = form.get("scope", "").strip()
    if not scope:
        if form.get("resource", "").strip():
            raise EntraError(
                400, "invalid_request", 901002, "The 'resource' request parameter is not supported."
            )
        raise _missing("scope")
    parts = scope.split()
    if len(parts) > 1:
        raise EntraError(
            400,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid. "
            f"The scope {scope[:300]} is not valid.",
        )
    resource = parts[0][: -len("/.default")] if parts[0].endswith("/.default") else ""
    if not resource:
        raise EntraError(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {parts[0][:300]} is not valid. Client credential flows must have "
            "a scope value with /.default suffixed to the resource identifier (application ID URI).",
        )
    return resource


def _v1_resource(form: Any) -> str:
    resource = form.get("resource", "").strip()
    if not resource:
        raise _missing("resource")
    return resource


def _cae_capable(form: Any) -> bool:
    """Did the client declare CP1? (``claims={"access_token": {"xms_cc": {"values": ["CP1"]}}}``, as az)"""
    raw = form.get("claims", "")
    if not raw:
        return False
    try:
        claims = json.loads(raw)
    except ValueError:
        return False
    access = claims.get("access_token") if isinstance(claims, dict) else None
    xms_cc = access.get("xms_cc") if isinstance(access, dict) else None
    values = xms_cc.get("values") if isinstance(xms_cc, dict) else None
    return isinstance(values, list) and "CP1" in values
