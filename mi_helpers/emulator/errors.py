"""Every error the emulator puts on the wire: one class or factory per IMDS/ARM error (status, body, headers).

Bodies and texts follow docs/protocol.md (#errors of the IMDS token endpoint, #instance-metadata, and
#errors of Azure Resource Manager). Keeping them here means a rule such as "the ExpiredAuthenticationToken
message uses the US date format" lives in exactly one place, and the HTTP layers (``imds``, ``arm``,
``admin``, ``proxy``) and the transport only decide *which* error applies. The ``*_framing_error`` factories
are each service's answer to a request the transport cannot accept (body too large, malformed request line
or framing); their texts are this project's choice where the real ones are unknown
(docs/protocol.md#known-differences).
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
from typing import Any

from werkzeug.wrappers import Response

from mi_helpers.constants import Arm, Imds

__all__ = [
    "ARM_BODY_LIMIT",
    "IMDS_CONTENT_TYPE",
    "IMDS_NEWEST_VERSIONS",
    "AdminError",
    "ArmError",
    "DropConnection",
    "ImdsError",
    "WireError",
    "admin_framing_error",
    "arm_authorization_failed",
    "arm_expired_token",
    "arm_framing_error",
    "arm_identity_not_found",
    "arm_invalid_api_version",
    "arm_invalid_audience",
    "arm_invalid_filter",
    "arm_invalid_parameter",
    "arm_invalid_request_content",
    "arm_invalid_resource_type",
    "arm_linked_authorization_failed",
    "arm_location_required",
    "arm_no_registered_provider",
    "arm_principal_not_found",
    "arm_resource_group_not_found",
    "arm_resource_not_found",
    "arm_role_assignment_exists",
    "arm_role_assignment_update_not_permitted",
    "arm_role_definition_not_found",
    "arm_subscription_not_found",
    "arm_throttled",
    "arm_unmatched_principal_type",
    "arm_unsupported_media_type",
    "arm_write_not_emulated",
    "entra_invalid_resource",
    "imds_api_version",
    "imds_framing_error",
    "imds_identity_not_found",
    "proxy_framing_error",
    "us_datetime",
]

IMDS_CONTENT_TYPE = "application/json; charset=utf-8"
ARM_CONTENT_TYPE = "application/json; charset=utf-8"
IMDS_NEWEST_VERSIONS = list(Imds.NEWEST_VERSIONS)
ALLOWED_ARM_AUDIENCES_TEXT = ",".join(f"'{aud}'" for aud in Arm.AUDIENCES)
#: ARM's request body limit (its RequestContentTooLarge text names "4 MB").
ARM_BODY_LIMIT = 4 * 1024 * 1024
#: Short reason phrases of the statuses a transport-level refusal can have.
_FRAMING_REASONS = {
    400: "Bad request",
    408: "Request timeout",
    413: "Request entity too large",
    414: "Request URI too long",
    431: "Request header fields too large",
}


def _dumps(body: Any) -> str:
    """Compact JSON as Azure services send it (no spaces after separators)."""
    return json.dumps(body, separators=(",", ":"))


class WireError(Exception):
    """An HTTP error reply: status, body (str or JSON-able), content type and extra headers."""

    def __init__(
        self,
        status: int,
        body: Any,
        *,
        content_type: str = IMDS_CONTENT_TYPE,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = dict(headers or {})
        super().__init__(f"{status} {body if isinstance(body, str) else _dumps(body)}")

    def response(self) -> Response:
        """The werkzeug response for this error (HEAD-safe: werkzeug drops the body for HEAD)."""
        text = self.body if isinstance(self.body, str) else _dumps(self.body)
        resp = Response(text, status=self.status, content_type=self.content_type)
        for key, value in self.headers.items():
            resp.headers[key] = value
        return resp


class DropConnection(ConnectionAbortedError):
    """Not an answer: close the connection without replying (a hung request being released).

    A ``ConnectionError`` so werkzeug treats it as a dropped connection (no 500, no traceback).
    """


class ImdsError(WireError):
    """An IMDS error: ``{"error", "error_description"}`` or the instance-style ``{"error": ...}``."""

    @classmethod
    def oauth(cls, status: int, error: str, description: str, **kw: Any) -> ImdsError:
        """Token-endpoint style error body."""
        return cls(status, {"error": error, "error_description": description}, **kw)

    @classmethod
    def plain(cls, status: int, message: str, **kw: Any) -> ImdsError:
        """Instance-metadata style error body (swagger ``ErrorResponse {error: string}``)."""
        return cls(status, {"error": message}, **kw)


def imds_identity_not_found() -> ImdsError:
    """400 ``Identity not found``: no identity, identity disabled, or a selector that matches nothing."""
    return ImdsError.oauth(400, "invalid_request", "Identity not found")


def imds_api_version() -> ImdsError:
    """400 for a missing or unknown ``api-version`` (documented body, with the newest versions)."""
    return ImdsError(
        400,
        {
            "error": "Bad request. api-version is invalid or was not specified in the request. "
            "For more information refer to aka.ms/azureimds",
            "newest-versions": IMDS_NEWEST_VERSIONS,
        },
    )


def entra_invalid_resource(resource: str, tenant: str, now: float, correlation_id: str) -> ImdsError:
    """400 ``invalid_resource``: Entra has no service principal for ``resource`` (AADSTS500011), via IMDS.

    The body is Entra's current one: the description ends with ``Trace ID``, ``Correlation ID`` and
    ``Timestamp`` lines; ``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id`` and ``error_uri``
    follow (docs/protocol.md#errors). ``tenant`` is the tenant's display name, as in real replies.
    """
    stamp = _dt.datetime.fromtimestamp(int(now), tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    trace = str(uuid.uuid4())
    text = (
        f"AADSTS500011: The resource principal named {resource[:256]} was not found in the tenant named "
        f"{tenant}. This can happen if the application has not been installed by the administrator of the "
        "tenant or consented to by any user in the tenant. You might have sent your authentication request "
        f"to the wrong tenant.\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {stamp}"
    )
    return ImdsError(
        400,
        {
            "error": "invalid_resource",
            "error_description": text,
            "error_codes": [500011],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation_id,
            "error_uri": "https://login.microsoftonline.com/error?code=500011",
        },
    )


class ArmError(WireError):
    """An ARM error in the OData envelope ``{"error": {"code": ..., "message": ...}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self.code = code
        self.message = message
        super().__init__(
            status,
            {"error": {"code": code, "message": message}},
            content_type=ARM_CONTENT_TYPE,
            headers=headers,
        )


def us_datetime(ts: float) -> str:
    """Format epoch seconds as ARM does in token-expiry messages: ``3/5/2025 1:40:20 AM`` (UTC)."""
    d = _dt.datetime.fromtimestamp(int(ts), tz=_dt.timezone.utc)
    hour = d.hour % 12 or 12
    return f"{d.month}/{d.day}/{d.year} {hour}:{d.minute:02d}:{d.second:02d} {'AM' if d.hour < 12 else 'PM'}"


_WWW_MISSING = (
    'Bearer authorization_uri="https://login.windows.net/", error="invalid_token", '
    "error_description=\"The authentication failed because of missing 'Authorization' header.\""
)
_WWW_INVALID = (
    'Bearer authorization_uri="https://login.windows.net/", error="invalid_token", '
    'error_description="The access token is invalid."'
)


def arm_missing_authorization() -> ArmError:
    """401 ``AuthenticationFailed``: no ``Authorization`` header."""
    return ArmError(
        401,
        "AuthenticationFailed",
        "Authentication failed. The 'Authorization' header is missing.",
        {"WWW-Authenticate": _WWW_MISSING},
    )


def arm_malformed_authorization() -> ArmError:
    """401 ``AuthenticationFailed``: an ``Authorization`` header that is not ``Bearer <token>``."""
    return ArmError(
        401,
        "AuthenticationFailed",
        "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        {"WWW-Authenticate": _WWW_INVALID},
    )


def arm_invalid_token() -> ArmError:
    """401 ``InvalidAuthenticationToken``: not a JWT, bad signature, unknown issuer."""
    return ArmError(
        401, "InvalidAuthenticationToken", "The access token is invalid.", {"WWW-Authenticate": _WWW_INVALID}
    )


def arm_invalid_audience(aud: str) -> ArmError:
    """401 ``InvalidAuthenticationTokenAudience`` with the exact list of the four allowed audiences."""
    return ArmError(
        401,
        "InvalidAuthenticationTokenAudience",
        f"The access token has been obtained for wrong audience or resource '{aud}'. It should exactly match "
        f"with one of the allowed audiences {ALLOWED_ARM_AUDIENCES_TEXT}.",
        {"WWW-Authenticate": _WWW_INVALID},
    )


def arm_expired_token(exp: float, now: float) -> ArmError:
    """401 ``ExpiredAuthenticationToken`` (ARM's clock is past the token's ``exp``)."""
    return ArmError(
        401,
        "ExpiredAuthenticationToken",
        f"The access token expiry UTC time '{us_datetime(exp)}' is earlier than current UTC time "
        f"'{us_datetime(now)}'.",
        {"WWW-Authenticate": _WWW_INVALID},
    )


def arm_not_yet_valid(nbf: float, now: float) -> ArmError:
    """401 ``InvalidAuthenticationToken`` for a token whose ``nbf`` lies in ARM's future."""
    return ArmError(
        401,
        "InvalidAuthenticationToken",
        f"The access token is not yet valid. Its validity starts at UTC time '{us_datetime(nbf)}', "
        f"current UTC time is '{us_datetime(now)}'.",
        {"WWW-Authenticate": _WWW_INVALID},
    )


def arm_subscription_not_found(sub: str) -> ArmError:
    """404 ``SubscriptionNotFound``."""
    return ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")


def arm_authorization_failed(oid: str, action: str, scope: str) -> ArmError:
    """403 ``AuthorizationFailed``: the object ID appears in both slots, as for every app-only principal.

    For role-assignment writes ARM adds "or an ABAC condition not fulfilled" (Learn, "Troubleshoot Azure
    RBAC": conditions can restrict who may assign which role).
    """
    abac = " or an ABAC condition not fulfilled" if action.lower() in _ABAC_ACTIONS else ""
    return ArmError(
        403,
        "AuthorizationFailed",
        f"The client '{oid}' with object id '{oid}' does not have authorization{abac} to perform action "
        f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, "
        "please refresh your credentials.",
    )


_ABAC_ACTIONS = frozenset(
    {"microsoft.authorization/roleassignments/write", "microsoft.authorization/roleassignments/delete"}
)


def arm_write_not_emulated(method: str, action: str, scope: str) -> ArmError:
    """405: a write the caller may perform to a type the emulated ARM does not write (creating a VM, a VM
    extension, any unmodelled resource).

    The RBAC check has passed, so the text says so; docs/protocol.md#known-differences lists what is written
    (docs/protocol.md#arm-writes).
    """
    return ArmError(
        405,
        "MethodNotAllowed",
        f"The emulated Azure Resource Manager does not carry out this write: '{method}' over scope '{scope}' "
        f"needs '{action}', which the caller holds, but it only writes virtual machine identities, "
        "user-assigned identities, role assignments and resource groups. See "
        "docs/protocol.md#known-differences.",
    )


def arm_no_registered_provider(
    location: str, version: str, rtype: str, versions: tuple[str, ...], locations: tuple[str, ...]
) -> ArmError:
    """400 ``NoRegisteredProviderFound``: the resource type has no such api-version (oldest first, ", ")."""
    return ArmError(
        400,
        "NoRegisteredProviderFound",
        f"No registered resource provider found for location '{location}' and API version '{version}' for "
        f"type '{rtype}'. The supported api-versions are '{', '.join(versions)}'. The supported locations "
        f"are '{', '.join(locations)}'.",
    )


def arm_invalid_api_version(version: str, versions: tuple[str, ...]) -> ArmError:
    """400 ``InvalidApiVersionParameter``: ARM's own types (subscriptions, resource groups, resources)."""
    return ArmError(
        400,
        "InvalidApiVersionParameter",
        f"The api-version '{version}' is invalid. The supported versions are '{','.join(versions)}'.",
    )


def arm_invalid_resource_type(rtype: str, namespace: str, version: str) -> ArmError:
    """400 ``InvalidResourceType``: a type the namespace does not have (or the emulator does not model)."""
    return ArmError(
        400,
        "InvalidResourceType",
        f"The resource type '{rtype}' could not be found in the namespace '{namespace}' for api version "
        f"'{version}'.",
    )


def arm_invalid_filter(text: str) -> ArmError:
    """400 ``InvalidFilterInQueryString``: a ``$filter`` the list does not understand."""
    return ArmError(
        400, "InvalidFilterInQueryString", f"Invalid $filter '{text}' specified in the query string."
    )


def arm_resource_group_not_found(rg: str) -> ArmError:
    """404 ``ResourceGroupNotFound``."""
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")


def arm_resource_not_found(rtype: str, name: str, rg: str) -> ArmError:
    """404 ``ResourceNotFound`` with the documented fix link."""
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{rtype}/{name}' under resource group '{rg}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def arm_missing_api_version() -> ArmError:
    """400 ``MissingApiVersionParameter``."""
    return ArmError(
        400,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
    )


def arm_throttled(sub: str, oid: str, retry_after: int) -> ArmError:
    """429 ``SubscriptionRequestsThrottled`` with ``Retry-After``."""
    return ArmError(
        429,
        "SubscriptionRequestsThrottled",
        f"Number of 'read' requests for subscription '{sub}' actor '{oid}' exceeded. Please try again after "
        f"'{retry_after}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling",
        {"Retry-After": str(retry_after)},
    )


class AdminError(WireError):
    """An admin-API error: ``{"error": code, "message": text}`` (plus ``allowed`` when it helps)."""

    def __init__(self, status: int, code: str, message: str, allowed: list[str] | None = None) -> None:
        body: dict[str, Any] = {"error": code, "message": message}
        if allowed is not None:
            body["allowed"] = allowed
        super().__init__(status, body, content_type="application/json")


def _reason(status: int) -> str:
    return _FRAMING_REASONS.get(status, "Bad request")


def imds_framing_error(status: int, detail: str) -> ImdsError:
    """IMDS's answer to a request it cannot accept, in its instance-style ``{"error": text}`` envelope."""
    return ImdsError.plain(status, f"{_reason(status)}. {detail}")


def arm_framing_error(status: int, detail: str) -> ArmError:
    """ARM's answer to a request it cannot accept; 413 is ARM's documented ``RequestContentTooLarge``."""
    if status == 413:
        return ArmError(
            413, "RequestContentTooLarge", "The request content size exceeds the maximum size of 4 MB."
        )
    code = {408: "RequestTimeout", 414: "RequestUriTooLong", 431: "RequestHeaderFieldsTooLarge"}.get(
        status, "BadRequest"
    )
    return ArmError(status, code, f"{_reason(status)}. {detail}")


def admin_framing_error(status: int, detail: str) -> AdminError:
    """The admin API's answer to a request it cannot accept."""
    code = {408: "request_timeout", 413: "request_too_large", 414: "uri_too_long", 431: "headers_too_large"}
    return AdminError(status, code.get(status, "bad_request"), f"{_reason(status)}: {detail}")


def proxy_framing_error(status: int, detail: str) -> WireError:
    """The fake corporate proxy's answer to a request it cannot read: a small HTML page."""
    title = f"{status} {_reason(status).title()}"
    html = (
        f"<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n<body><h1>{title}</h1>\n"
        "<p>The proxy could not read the request.</p><hr><address>corporate-proxy</address></body></html>\n"
    )
    return WireError(status, html, content_type="text/html; charset=UTF-8")


# ------------------------------------------------------------------------------------------- ARM writes
# The refusals of the writes ARM carries out (arm/*_writes.py; docs/protocol.md#arm-writes).


def arm_invalid_request_content(detail: str) -> ArmError:
    """400 ``InvalidRequestContent``: a write body that is not JSON, or not of the shape the type takes.

    ARM's text wraps the deserializer's message (Json.NET's in real replies: "Unexpected character
    encountered while parsing value …"); the emulator's deserializer words its own ``detail``.
    """
    return ArmError(
        400,
        "InvalidRequestContent",
        f"The request content was invalid and could not be deserialized: '{detail[:300]}'.",
    )


def arm_unsupported_media_type(content_type: str) -> ArmError:
    """415 ``UnsupportedMediaType``: a write body that is not ``application/json``."""
    return ArmError(
        415,
        "UnsupportedMediaType",
        f"The content media type '{content_type[:100]}' is not supported. Only 'application/json' is "
        "supported.",
    )


def arm_linked_authorization_failed(oid: str, action: str, scope: str, linked: list[str]) -> ArmError:
    """403 ``LinkedAuthorizationFailed``: the caller may write the VM but not assign the identities it links.

    Attaching a user-assigned identity needs
    ``Microsoft.ManagedIdentity/userAssignedIdentities/assign/action`` on each one (Azure/aad-pod-identity
    #443 and #636 quote the text; several scopes are comma-joined, #339).
    """
    return ArmError(
        403,
        "LinkedAuthorizationFailed",
        f"The client '{oid}' with object id '{oid}' has permission to perform action '{action}' on scope "
        f"'{scope}'; however, it does not have permission to perform action "
        "'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action' on the linked scope(s) "
        f"'{','.join(linked)}' or the linked scope(s) are invalid.",
    )


def arm_role_assignment_exists(existing_id: str) -> ArmError:
    """409 ``RoleAssignmentExists``: the same (scope, principal, role) is already assigned under another name.

    The text names the existing assignment's name without dashes, as 2025-2026 replies do (older replies
    stop after the first sentence).
    """
    return ArmError(
        409,
        "RoleAssignmentExists",
        f"The role assignment already exists. The ID of the existing role assignment is "
        f"{existing_id.replace('-', '')}.",
    )


def arm_principal_not_found(principal_id: str, tenant_id: str) -> ArmError:
    """400 ``PrincipalNotFound``: no ``principalType`` given and the directory has no such principal.

    The two spaces before "See" are ARM's (public deployment-error captures, e.g. Azure/avdaccelerator#99).
    """
    return ArmError(
        400,
        "PrincipalNotFound",
        f"Principal {principal_id.replace('-', '')} does not exist in the directory {tenant_id}. Check that "
        "you have the correct principal ID. If you are creating this principal and then immediately "
        "assigning a role, this error might be related to a replication delay. In this case, set the role "
        "assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See "
        "https://aka.ms/docs-principaltype",
    )


def arm_unmatched_principal_type(principal_id: str, actual: str, given: str) -> ArmError:
    """400 ``UnmatchedPrincipalType``: ``principalType`` says otherwise than the directory (the Python SDK's
    ``RoleAssignmentCreateParameters`` defaults to ``User``). Spacing and "PrinciaplType" are ARM's own
    (Azure/modern-web-app-pattern-dotnet#129)."""
    return ArmError(
        400,
        "UnmatchedPrincipalType",
        f"The PrincipalId '{principal_id.replace('-', '')}' has type '{actual}' , which is different from "
        f"specified PrinciaplType '{given}'.",
    )


def arm_role_definition_not_found(definition_id: str) -> ArmError:
    """400 ``RoleDefinitionDoesNotExist``: a role assignment naming a role definition that does not exist."""
    return ArmError(
        400,
        "RoleDefinitionDoesNotExist",
        f"The specified role definition with ID '{definition_id}' does not exist.",
    )


def arm_role_assignment_update_not_permitted() -> ArmError:
    """400 ``RoleAssignmentUpdateNotPermitted``: a PUT of an existing assignment's name with other values."""
    return ArmError(
        400,
        "RoleAssignmentUpdateNotPermitted",
        "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
    )


def arm_invalid_parameter(message: str, target: str) -> ArmError:
    """400 ``InvalidParameter`` of Compute, with the parameter named (Compute adds ``target``)."""
    err = ArmError(400, "InvalidParameter", message)
    err.body["error"]["target"] = target
    return err


def arm_identity_not_found(vm_id: str, identity_id: str) -> ArmError:
    """400 ``FailedIdentityOperation``: a VM write that links a user-assigned identity that does not exist.

    The inner reply is Microsoft.ManagedIdentity's "Resource '…' was not found." (Azure/azure-policy#1311).
    """
    inner = json.dumps(
        {"error": {"code": "BadRequest", "message": f"Resource '{identity_id}' was not found."}},
        separators=(",", ":"),
    )
    return ArmError(
        400,
        "FailedIdentityOperation",
        f"Identity operation for resource '{vm_id}' failed with error 'Failed to perform resource identity "
        f"operation. Status: 'BadRequest'. Response: '{inner}'.'.",
    )


def arm_location_required() -> ArmError:
    """400 ``LocationRequired``: a tracked resource (resource group, identity) created without a location."""
    return ArmError(400, "LocationRequired", "The location property is required for this definition.")
