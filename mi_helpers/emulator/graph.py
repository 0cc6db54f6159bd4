"""A minimal Microsoft Graph: the directory reads ``az`` makes on the tutorial's paths, with Graph's rights.

Served (docs/protocol.md, "Microsoft Graph"): ``GET /v1.0/servicePrincipals`` with the ``$filter`` forms az
sends (``servicePrincipalNames/any(c:c eq '<id>')``, ``appId eq``, ``displayName eq``, ``startswith(
displayName,'…')``, joined by ``and``), ``GET /v1.0/servicePrincipals/{id}`` and ``(appId='{appId}')``,
``POST /v1.0/directoryObjects/getByIds`` (what ``az role assignment list`` uses to fill ``principalName``)
and ``GET /v1.0/directoryObjects/{id}``; ``beta`` answers the same. Managed identities appear as service
principals of type ``ManagedIdentity`` (``alternativeNames``: ``isExplicit=…`` and the ARM resource ID).

Order of checks: bearer token (401 ``InvalidAuthenticationToken``: empty, not ours, wrong audience,
expired) → path (400 ``BadRequest`` for an unknown segment) → method → Graph application permissions in
the token's ``roles`` (403 ``Authorization_RequestDenied``, "Insufficient privileges to complete the
operation.") → query and body → the objects. Graph accepts tokens whose audience is its own base URL (``az``
uses the cloud's Graph resource ID as both base URL and token resource) or ``https://graph.microsoft.com``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from mi_helpers.constants import Graph
from mi_helpers.emulator import principals
from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.endpoints import Endpoints
from mi_helpers.emulator.errors import WireError
from mi_helpers.emulator.identity_errors import GraphError, graph_framing_error
from mi_helpers.emulator.layer import Layer
from mi_helpers.emulator.principals import DirectoryEntry
from mi_helpers.emulator.tokens import (
    TokenAudienceError,
    TokenError,
    TokenExpiredError,
    TokenNotYetValidError,
)

__all__ = ["GRAPH_JSON", "GraphLayer", "service_principal_json"]

#: The content type of Graph's JSON answers (OData minimal metadata).
GRAPH_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_BY_APP_ID = re.compile(r"^serviceprincipals\(appid='((?:[^']|'')*)'\)$", re.IGNORECASE)
_VERSIONS = ("v1.0", "beta")
_DENIED = "Insufficient privileges to complete the operation."
_STAMP = "2026-01-01T00:00:00Z"
_SUPPORTED_OPTIONS = ("$filter", "$select", "$top")


def _quoted(value: str) -> str:
    """An OData string literal's value (``''`` is one quote)."""
    return value.replace("''", "'")


_CLAUSES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^servicePrincipalNames/any\((\w+):\s*\1\s+eq\s+'((?:[^']|'')*)'\)$", re.I), "spn"),
    (re.compile(r"^(\w+)\s+eq\s+'((?:[^']|'')*)'$", re.I), "eq"),
    (re.compile(r"^startswith\(\s*(\w+)\s*,\s*'((?:[^']|'')*)'\s*\)$", re.I), "startswith"),
]
#: Properties a ``$filter`` may compare (Graph's servicePrincipal supports ``eq`` on these, and more).
_FILTERABLE = {
    "appid": "appId",
    "id": "id",
    "displayname": "displayName",
    "serviceprincipaltype": "servicePrincipalType",
}


def _split_and(text: str) -> list[str]:
    """``a and b and c`` → clauses, ignoring ``and`` inside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted, i = False, 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        if not quoted and text[i : i + 5].lower() == " and " and current:
            parts.append("".join(current).strip())
            current, i = [], i + 5
            continue
        current.append(ch)
        i += 1
    parts.append("".join(current).strip())
    return parts


def _matcher(clause: str) -> Callable[[DirectoryEntry], bool]:
    """A predicate for one ``$filter`` clause, or a Graph 400 for what it cannot read."""
    for pattern, kind in _CLAUSES:
        m = pattern.match(clause)
        if m is None:
            continue
        if kind == "spn":
            want = _quoted(m.group(2)).lower()
            return lambda e: want in (s.lower() for s in e.service_principal_names)
        prop = _FILTERABLE.get(m.group(1).lower())
        if prop is None or (kind == "startswith" and prop != "displayName"):
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"Unsupported or invalid query filter clause specified for property '{m.group(1)[:80]}' of "
                "resource 'ServicePrincipal'.",
            )
        want = _quoted(m.group(2)).lower()
        if kind == "startswith":
            return lambda e: e.display_name.lower().startswith(want)
        return lambda e: str(_PROPERTY[prop](e)).lower() == want
    raise GraphError(400, "BadRequest", "Invalid filter clause")


_PROPERTY: dict[str, Callable[[DirectoryEntry], str]] = {
    "appId": lambda e: e.app_id,
    "id": lambda e: e.object_id,
    "displayName": lambda e: e.display_name,
    "servicePrincipalType": lambda e: e.kind,
}


def service_principal_json(e: DirectoryEntry, tenant_id: str) -> dict[str, Any]:
    """A Graph ``servicePrincipal`` (v1.0 property order; properties the directory has no data for empty)."""
    app = e.kind == "Application"
    return {
        "id": e.object_id,
        "deletedDateTime": None,
        "accountEnabled": True,
        "alternativeNames": e.alternative_names,
        "appDisplayName": e.display_name,
        "appDescription": None,
        "appId": e.app_id,
        "applicationTemplateId": None,
        "appOwnerOrganizationId": tenant_id if app else None,
        "appRoleAssignmentRequired": False,
        "createdDateTime": _STAMP,
        "description": None,
        "disabledByMicrosoftStatus": None,
        "displayName": e.display_name,
        "homepage": None,
        "loginUrl": None,
        "logoutUrl": None,
        "notes": None,
        "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": None,
        "preferredTokenSigningKeyThumbprint": None,
        "replyUrls": [],
        "servicePrincipalNames": e.service_principal_names,
        "servicePrincipalType": e.kind,
        "signInAudience": "AzureADMyOrg" if app else None,
        "tags": [],
        "tokenEncryptionKeyId": None,
        "samlSingleSignOnSettings": None,
        "addIns": [],
        "appRoles": [],
        "info": {
            "logoUrl": None,
            "marketingUrl": None,
            "privacyStatementUrl": None,
            "supportUrl": None,
            "termsOfServiceUrl": None,
        },
        "keyCredentials": [],
        "oauth2PermissionScopes": [],
        "passwordCredentials": [],
        "resourceSpecificApplicationPermissions": [],
        "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
    }


def _odata(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, content_type=GRAPH_JSON)


class GraphLayer(Layer):
    """Answers requests on the Microsoft Graph (HTTPS) listener."""

    name = "graph"

    def __init__(self, backend: Backend, endpoints: Callable[[], Endpoints]) -> None:
        super().__init__(backend)
        self.endpoints = endpoints

    def framing_error(self, status: int, detail: str) -> WireError:
        return graph_framing_error(status, detail)

    def handle(self, request: Request) -> Response:
        """As :meth:`Layer.handle`; an error's ``innerError`` names this request's IDs."""
        rid = str(uuid.uuid4())
        request.environ["mi.graph_request_id"] = rid
        try:
            response = self.respond(request)
        except GraphError as err:
            err.body = err.body_for(request.headers.get("client-request-id"), rid)
            response = err.response()
        except WireError as err:
            response = err.response()
        return self.finish(request, response)

    def finish(self, request: Request, response: Response) -> Response:
        """Headers every Graph reply carries."""
        rid = request.environ.get("mi.graph_request_id") or str(uuid.uuid4())
        h = response.headers
        h["request-id"] = rid
        h["client-request-id"] = request.headers.get("client-request-id") or rid
        h["x-ms-ags-diagnostic"] = (
            '{"ServerInfo":{"DataCenter":"West Europe","Slice":"E","Ring":"5","ScaleUnit":"000",'
            '"RoleInstance":"EMULATED"}}'
        )
        h["Strict-Transport-Security"] = "max-age=31536000"
        h["Cache-Control"] = "no-cache"
        if response.status_code < 400:
            h["OData-Version"] = "4.0"
        return response

    # ------------------------------------------------------------------ the request
    def respond(self, request: Request) -> Response:
        claims = self._authenticate(request)
        request.environ["mi.identity"] = str(claims.get("oid", ""))
        roles = claims.get("roles") or []
        segments = [s for s in request.path.split("/") if s]
        if not segments:
            raise GraphError(400, "BadRequest", "Invalid version.")
        version, rest = segments[0], segments[1:]
        if version not in _VERSIONS:
            raise GraphError(400, "BadRequest", f"Invalid version: {version[:40]}")
        if not rest:
            raise GraphError(400, "BadRequest", "Resource not found for the segment ''.")
        base = f"https://{request.host}/{version}/$metadata"
        head = rest[0].lower()
        if head == "me":
            raise GraphError(
                400, "BadRequest", "/me request is only valid with delegated authentication flow."
            )
        if head == "serviceprincipals" or _BY_APP_ID.match(rest[0]):
            self._method(request, "GET")
            self._require(roles, principals.GRAPH_READ_SERVICE_PRINCIPALS)
            return self._service_principals(request, rest, base)
        if head == "directoryobjects" and len(rest) == 2 and rest[1].lower() == "getbyids":
            self._method(request, "POST")
            self._require(roles, principals.GRAPH_READ_DIRECTORY)
            return self._get_by_ids(request, base)
        if head == "directoryobjects" and len(rest) == 2:
            self._method(request, "GET")
            self._require(roles, principals.GRAPH_READ_DIRECTORY)
            entry = self._entry(rest[1])
            body = {"@odata.context": f"{base}#directoryObjects/$entity", **self._typed(entry)}
            return _odata(body)
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[0][:100]}'.")

    def _authenticate(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        graph_url = self.endpoints().graph_url.rstrip("/")
        audiences = {Graph.URL, Graph.URL + "/", Graph.APP_ID}
        if graph_url:
            audiences |= {graph_url, graph_url + "/"}
        try:
            return self.backend.issuer.verify_for(token.strip(), self.backend.clock.time(), audiences)
        except TokenAudienceError:
            raise GraphError(
                401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
            ) from None
        except (TokenExpiredError, TokenNotYetValidError):
            raise GraphError(
                401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
            ) from None
        except TokenError:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.") from None

    @staticmethod
    def _method(request: Request, allowed: str) -> None:
        if request.method != allowed and not (allowed == "GET" and request.method == "HEAD"):
            raise GraphError(
                405,
                "Request_BadRequest",
                f"The emulated Microsoft Graph serves only {allowed} at {request.path[:200]}.",
            )

    @staticmethod
    def _require(roles: Any, needed: frozenset[str]) -> None:
        if not isinstance(roles, list) or not principals.graph_allows(roles, needed):
            raise GraphError(403, "Authorization_RequestDenied", _DENIED)

    # ------------------------------------------------------------------ servicePrincipals
    def _service_principals(self, request: Request, rest: list[str], base: str) -> Response:
        tid = self.backend.world.tenant.id
        by_app = _BY_APP_ID.match(rest[0])
        if by_app or len(rest) == 2:
            if len(rest) > (1 if by_app else 2):
                raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[-1][:100]}'.")
            entry = self._by_app_id(_quoted(by_app.group(1))) if by_app else self._entry(rest[1])
            select = self._options(request)[1]
            body = _selected(service_principal_json(entry, tid), select)
            return _odata({"@odata.context": f"{base}#servicePrincipals{_context(select)}/$entity", **body})
        if len(rest) > 2:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[2][:100]}'.")
        flt, select, top = self._options(request)
        found = principals.entries(self.backend.world)
        for clause in _split_and(flt) if flt else []:
            match = _matcher(clause)
            found = [e for e in found if match(e)]
        if top is not None:
            found = found[:top]
        value = [_selected(service_principal_json(e, tid), select) for e in found]
        return _odata({"@odata.context": f"{base}#servicePrincipals{_context(select)}", "value": value})

    @staticmethod
    def _options(request: Request) -> tuple[str, list[str], int | None]:
        """``$filter``, ``$select`` (property names) and ``$top``; any other ``$`` option is refused."""
        for key in request.args:
            if key.startswith("$") and key.lower() not in _SUPPORTED_OPTIONS:
                raise GraphError(400, "BadRequest", f"Unrecognized query argument specified: '{key[1:80]}'.")
        args = {k.lower(): v for k, v in request.args.items()}
        select = [s.strip() for s in args.get("$select", "").split(",") if s.strip()]
        top = None
        if "$top" in args:
            if not args["$top"].isdigit() or not 1 <= int(args["$top"]) <= 999:
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    "Invalid page size specified: '"
                    + args["$top"][:20]
                    + "'. Must be between 1 and 999 inclusive.",
                )
            top = int(args["$top"])
        return args.get("$filter", "").strip(), select, top

    def _entry(self, object_id: str) -> DirectoryEntry:
        if not _GUID.match(object_id):
            raise GraphError(400, "Request_BadRequest", f"Invalid object identifier '{object_id[:100]}'.")
        entry = principals.by_object_id(self.backend.world, object_id)
        if entry is None:
            raise _not_found(object_id)
        return entry

    def _by_app_id(self, app_id: str) -> DirectoryEntry:
        entry = principals.by_app_id(self.backend.world, app_id)
        if entry is None:
            raise _not_found(app_id)
        return entry

    # ------------------------------------------------------------------ directoryObjects
    def _typed(self, entry: DirectoryEntry) -> dict[str, Any]:
        body = service_principal_json(entry, self.backend.world.tenant.id)
        return {"@odata.type": "#microsoft.graph.servicePrincipal", **body}

    def _get_by_ids(self, request: Request, base: str) -> Response:
        raw = request.get_data(cache=True)
        try:
            body = json.loads(raw) if raw.strip() else None
        except (UnicodeDecodeError, ValueError):
            body = None
        if not isinstance(body, dict):
            raise GraphError(
                400,
                "BadRequest",
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload "
                "is of valid JSON format.",
            )
        ids, types = body.get("ids"), body.get("types")
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(i, str) for i in ids)
            or len(ids) > 1000
        ):
            raise GraphError(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'ids' of resource 'DirectoryObject'.",
            )
        if types is not None and not (isinstance(types, list) and all(isinstance(t, str) for t in types)):
            raise GraphError(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'types' of resource 'DirectoryObject'.",
            )
        wanted = {t.lower() for t in types} if types else {"serviceprincipal"}
        value = []
        if "serviceprincipal" in wanted or "directoryobject" in wanted:
            for object_id in ids:
                entry = principals.by_object_id(self.backend.world, object_id)
                if entry is not None:
                    value.append(self._typed(entry))
        return _odata({"@odata.context": f"{base}#directoryObjects", "value": value})


def _not_found(ref: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{ref[:100]}' does not exist or one of its queried reference-property objects are not "
        "present.",
    )


def _selected(body: dict[str, Any], select: list[str]) -> dict[str, Any]:
    """``body`` cut down to the ``$select``ed properties (case-insensitive, Graph's order kept)."""
    if not select:
        return body
    wanted = {s.lower() for s in select}
    return {k: v for k, v in body.items() if k.lower() in wanted}


def _context(select: list[str]) -> str:
    return f"({','.join(select)})" if select else ""
