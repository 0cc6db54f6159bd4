"""The IMDS HTTP layer: parse a request, ask the backend (world, faults, issuer), render IMDS's exact reply.

Order of checks (docs/protocol.md#imds-token-endpoint, #instance-metadata): infrastructure faults (hang,
foreign server, …) → ``Metadata: true`` → ``X-Forwarded-For`` → method (405) → path (404) → ``api-version``
→ duplicate query parameters → ``resource`` → selectors → service faults (410/429/500/propagation) →
identity selection → Entra's check of the resource (the tenant directory, ``directory.py``) → token. Every
field of a JSON body is a string; the instance document is built in ``instance.py``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from mi_helpers.constants import Imds
from mi_helpers.emulator.errors import (
    IMDS_CONTENT_TYPE,
    DropConnection,
    ImdsError,
    WireError,
    entra_invalid_resource,
    imds_api_version,
    imds_framing_error,
    imds_identity_not_found,
)
from mi_helpers.emulator.faults import Fault
from mi_helpers.emulator.instance import instance_document
from mi_helpers.emulator.layer import Layer
from mi_helpers.emulator.world import IdentitySelectionError, World

__all__ = ["IDENTITY_API_VERSIONS", "INSTANCE_API_VERSIONS", "ImdsLayer", "instance_document"]

IDENTITY_API_VERSIONS = frozenset(v for v in Imds.API_VERSIONS if v >= Imds.TOKEN_API_VERSION)
INSTANCE_API_VERSIONS = frozenset(v for v in Imds.API_VERSIONS if v >= "2017-04-02")
# ``resource_id`` is what async azure-identity sends for identity_config={"resource_id": ...} (verbatim key).
SELECTORS = ("client_id", "object_id", "msi_res_id", "mi_res_id", "resource_id")
_HEADER_MISSING = "Required metadata header not specified"

_URLS = Map(
    [
        Rule(Imds.TOKEN_PATH, endpoint="token"),
        Rule(Imds.INFO_PATH, endpoint="info"),
        Rule(Imds.INSTANCE_PATH, endpoint="instance"),
        Rule(Imds.INSTANCE_PATH + "/<path:sub>", endpoint="instance"),
        Rule(Imds.VERSIONS_PATH, endpoint="versions"),
    ],
    strict_slashes=False,
    merge_slashes=True,
)


_ADAPTER = _URLS.bind("imds.local")  # only the path matters; binding once saves work on every request


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    resp = Response(json.dumps(body, separators=(",", ":")), status=status, content_type=IMDS_CONTENT_TYPE)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


class ImdsLayer(Layer):
    """Answers requests on the IMDS listener (``/metadata/…``)."""

    name = "imds"

    def framing_error(self, status: int, detail: str) -> WireError:
        return imds_framing_error(status, detail)

    def respond(self, request: Request) -> Response:
        endpoint: str | None
        args: Any = {}
        try:
            endpoint, args = _ADAPTER.match(request.path, method="GET")  # method checked after the header
        except HTTPException:
            endpoint = None
        request.environ["mi.fault"] = None
        fault = self.backend.engine.check("imds")
        if fault is not None:
            return self._infrastructure_fault(request, fault)
        identity_path = request.path.startswith("/metadata/identity")
        _check_headers(request, identity_path)
        if request.method != "GET":
            raise ImdsError.plain(405, "Method not allowed")
        if endpoint is None:
            raise ImdsError.plain(404, "Not found")
        if endpoint == "versions":
            return _json({"apiVersions": list(Imds.API_VERSIONS)})
        _check_query(request, identity_path)
        if endpoint == "token":
            return self._token(request)
        if endpoint == "info":
            return _json({"tenantId": self.backend.world.tenant.id})
        return self._instance(request, str(args.get("sub") or ""))

    def _infrastructure_fault(self, request: Request, fault: Fault) -> Response:
        """A fault that answers instead of IMDS (or, for ``hang``, never answers)."""
        request.environ["mi.fault"] = fault.label
        if fault.kind == "hang":
            self.backend.hold()
            raise DropConnection()
        return _fault_response(fault)

    def _token(self, request: Request) -> Response:
        backend = self.backend
        resource = request.args.get("resource", "")
        if not resource.strip():
            raise ImdsError.oauth(400, "invalid_request", "Required query variable 'resource' is missing")
        selector = _selector(request)
        fault = backend.engine.check("imds-token")
        if fault is not None:
            request.environ["mi.fault"] = fault.label
            return _fault_response(fault)
        world = backend.world
        principal = _select(world, selector, request.args.get(selector) if selector else None)
        now = backend.clock.time()
        target = backend.directory.resolve(resource, world.applications)
        if target is None:
            raise entra_invalid_resource(resource, world.tenant.name, now, _correlation_id(request))
        bypass = request.args.get("bypass_cache", "").lower() == "true"
        tok = backend.issuer.issue(
            principal, resource, now, bypass_cache=bypass, first_party=target.first_party
        )
        request.environ["mi.identity"] = principal.principal_id
        body = {
            "access_token": tok.access_token,
            "client_id": principal.client_id,
            "expires_in": str(max(0, int(tok.exp - now))),
            "expires_on": str(tok.exp),
            "ext_expires_in": str(tok.lifetime),
            "not_before": str(tok.nbf),
            "resource": resource,
            "token_type": "Bearer",
        }
        if selector == "object_id":
            body["object_id"] = principal.principal_id
        elif selector in ("msi_res_id", "mi_res_id", "resource_id"):
            body["msi_res_id"] = request.args.get(selector, "")  # "specified in the request" (IMDS spec)
        return _json(body)

    def _instance(self, request: Request, sub: str) -> Response:
        doc: Any = instance_document(self.backend.world, request.args.get("api-version", ""))
        for part in [p for p in sub.split("/") if p]:
            if isinstance(doc, dict) and part in doc:
                doc = doc[part]
            elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
                doc = doc[int(part)]
            else:
                raise ImdsError.plain(404, "Not found")
        fmt = request.args.get("format", "json")
        leaf = not isinstance(doc, (dict, list))
        if fmt == "text":
            return Response(_as_text(doc), status=200, content_type="text/plain; charset=utf-8")
        if fmt != "json":
            raise ImdsError.plain(400, "Bad request. format must be json or text")
        if leaf:
            raise ImdsError.plain(400, "Bad request. Leaf nodes only support text format (use format=text)")
        return _json(doc)


def _check_headers(request: Request, identity_path: bool) -> None:
    """``Metadata: true`` first, then no ``X-Forwarded-For`` (docs/protocol.md#request)."""
    if request.headers.get("Metadata") != "true":
        if identity_path:
            raise ImdsError.oauth(400, "invalid_request", _HEADER_MISSING)
        raise ImdsError.plain(400, f"Bad request. {_HEADER_MISSING}")
    if "X-Forwarded-For" in request.headers:
        # The one public report quotes this XML body (docs/protocol.md#known-differences: unconfirmed).
        raise WireError(
            400,
            '<?xml version="1.0" encoding="utf-8"?><Error><Code>InvalidHeaderValue</Code>'
            "<Message>Header contains 'X-Forwarded-For' are not supported.</Message></Error>",
            content_type="application/xml; charset=utf-8",
        )


def _check_query(request: Request, identity_path: bool) -> None:
    """A known ``api-version`` for the path, and no query parameter given twice."""
    versions = IDENTITY_API_VERSIONS if identity_path else INSTANCE_API_VERSIONS
    if request.args.get("api-version") not in versions:
        raise imds_api_version()
    dup = next((k for k in request.args if len(request.args.getlist(k)) > 1), None)
    if dup is not None:
        if identity_path:
            raise ImdsError.oauth(400, "invalid_request", f"Duplicate query parameter '{dup}' is not allowed")
        raise ImdsError.plain(400, f"Bad request. Duplicate query parameter '{dup}' is not allowed")


def _selector(request: Request) -> str | None:
    """The one identity selector of a token request, if any (two or more are refused)."""
    given = [k for k in SELECTORS if k in request.args]
    if len(given) > 1:
        # The wording is this project's (docs/protocol.md#known-differences): the real service only documents
        # that the selectors are mutually exclusive.
        raise ImdsError.oauth(
            400,
            "invalid_request",
            "Only one of client_id, object_id or msi_res_id may be specified in the token request",
        )
    return given[0] if given else None


def _select(world: World, selector: str | None, value: str | None) -> Any:
    """The identity IMDS issues for (docs/protocol.md#identity-selection), or its 400."""
    try:
        return world.select_identity(selector, value)
    except IdentitySelectionError as exc:
        if exc.reason == "multiple":
            raise ImdsError.oauth(
                400,
                "invalid_request",
                "Multiple user assigned identities exist, please specify the clientId / resourceId "
                "of the identity in the token request",
            ) from None
        raise imds_identity_not_found() from None


def _correlation_id(request: Request) -> str:
    """Entra's correlation ID: the client's ``x-ms-client-request-id`` when it is a GUID (MSAL sends one)."""
    given = request.headers.get("x-ms-client-request-id", "").strip()
    try:
        return str(uuid.UUID(given))
    except ValueError:
        return str(uuid.uuid4())


def _fault_response(fault: Fault) -> Response:
    body = fault.body
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    status = f"{fault.status} {fault.reason}" if fault.reason else fault.status
    resp = Response(text, status=status, content_type=fault.content_type)
    for k, v in fault.headers.items():
        resp.headers[k] = v
    return resp


def _as_text(doc: Any) -> str:
    """``format=text``: a leaf's value, or a category's keys (``name/`` for non-leaves) one per line."""
    if not isinstance(doc, (dict, list)):
        return str(doc)
    if isinstance(doc, dict):
        return "\n".join(k + ("/" if isinstance(v, (dict, list)) else "") for k, v in doc.items())
    return "\n".join(f"{i}/" for i in range(len(doc)))
