"""One ARM request as the handlers see it: the caller, and the checks ARM runs in its documented order.

A handler is a plain function ``handler(call, **route_args) -> Response``; :class:`Call` gives it the
backend, the world, the caller's object ID and the checks of docs/protocol.md#request-checks-and-their-order
(subscription → RBAC at the requested scope → resource group), each raising the wire error ARM answers.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from mi_helpers.emulator.arm.apiversions import TypeVersions
from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.errors import (
    ARM_CONTENT_TYPE,
    ArmError,
    arm_authorization_failed,
    arm_resource_group_not_found,
    arm_subscription_not_found,
)
from mi_helpers.emulator.world import World

__all__ = ["PAGE_SIZE", "Call", "Handler", "Route", "arm_json", "in_group", "paged"]

#: A route handler: the request's :class:`Call` and the route's arguments, to the reply.
Handler = Callable[..., Response]
#: One route: the canonical (lower-case keyword) path pattern, its handler, and extra handler arguments.
Route = tuple[str, Handler, dict[str, Any]]

_SCOPE = re.compile(r"^/subscriptions/([^/]+)(?:/resourcegroups/([^/]+))?", re.IGNORECASE)
#: Items per page of a list when the caller gives no ``$top`` (ARM's lists page at 1000).
PAGE_SIZE = 1000


def arm_json(body: Any, status: int = 200) -> Response:
    """A compact JSON reply with ARM's content type."""
    return Response(json.dumps(body, separators=(",", ":")), status=status, content_type=ARM_CONTENT_TYPE)


def in_group(resource: Any, sub: str, rg: str) -> bool:
    """Is ``resource`` in resource group ``rg`` of subscription ``sub``? (ARM names are case-insensitive.)"""
    return resource.subscription_id.lower() == sub.lower() and resource.resource_group.lower() == rg.lower()


class Call:
    """The authenticated caller of one ARM request and the checks ARM runs for it."""

    __slots__ = ("_rbac_denied", "backend", "claims", "oid", "request", "world")

    def __init__(self, request: Request, backend: Backend, claims: dict[str, Any]) -> None:
        self.request = request
        self.backend = backend
        self.world: World = backend.world  # one world per request, even if a scenario switch replaces it
        self.claims = claims
        self.oid = str(claims.get("oid", ""))
        self._rbac_denied: bool | None = None

    # ------------------------------------------------------------------ checks, in ARM's order
    def check_api_version(self, api: TypeVersions) -> None:
        """400 unless the type ``api`` has the request's api-version (docs/protocol.md, request checks).

        A provider's refusal names a location: the resource group's of the path when the world has it, else
        the host VM's (where the emulated estate lives).
        """
        version = self.request.args.get("api-version", "")
        if not api.accepts(version):
            raise api.refusal(version, self.location_of_path())

    def spelled(self, segment: str) -> str:
        """``segment`` as the request spelled it (routes see fixed keywords in lower case)."""
        for part in self.request.path.split("/"):
            if part.lower() == segment.lower():
                return part
        return segment

    def location_of_path(self) -> str:
        m = _SCOPE.match("/" + self.request.path.strip("/"))
        if m is not None and m.group(2):
            rg = self.world.resource_group(m.group(1), m.group(2))
            if rg is not None:
                return rg.location
        return self.world.host_vm.location

    def rbac_denied(self) -> bool:
        """Consult the fault engine once per request (``role-propagating`` denies while its window lasts)."""
        if self._rbac_denied is None:
            fault = self.backend.engine.check("arm-rbac", principal=self.oid)
            if fault is not None:
                self.request.environ["mi.fault"] = fault.label
            self._rbac_denied = fault is not None
        return self._rbac_denied

    def subscription(self, sub: str) -> str:
        """The subscription's ID as the world spells it, or 404 ``SubscriptionNotFound``."""
        s = self.world.subscription(sub)
        if s is None:
            raise arm_subscription_not_found(sub)
        return s.id

    def allowed(self, action: str, scope: str) -> bool:
        """May the caller perform ``action`` over ``scope`` (RBAC; a ``role-propagating`` fault denies)?"""
        return not self.rbac_denied() and self.world.allowed(self.oid, action, scope)

    def authorize(self, scope: str, action: str) -> None:
        """403 ``AuthorizationFailed`` unless a role of the caller at ``scope`` or above allows ``action``."""
        if not self.allowed(action, scope):
            raise arm_authorization_failed(self.oid, action, scope)

    def list_access(self, scope: str, action: str) -> bool:
        """For lists: True = ``action`` allowed on the whole scope; False = filter per item; 403 if no role
        anywhere inside the scope allows it."""
        if self.rbac_denied():
            raise arm_authorization_failed(self.oid, action, scope)
        if self.world.allowed(self.oid, action, scope):
            return True
        if self.world.allowed_within(self.oid, action, scope):
            return False
        raise arm_authorization_failed(self.oid, action, scope)

    def resource_group(self, sub: str, rg: str) -> str:
        """The group's name as the world spells it, or 404 ``ResourceGroupNotFound``."""
        r = self.world.resource_group(sub, rg)
        if r is None:
            raise arm_resource_group_not_found(rg)
        return r.name

    def scope_checks(self, scope: str, action: str, *, listing: bool) -> tuple[str, bool]:
        """Subscription → RBAC → resource group checks for any scope; returns (normalised scope, full)."""
        scope = "/" + scope.strip("/")
        m = _SCOPE.match(scope)
        if m is None:
            if not self.allowed(action, "/"):
                raise arm_authorization_failed(self.oid, action, scope)
            return scope, True
        sub, rg = m.group(1), m.group(2)
        self.subscription(sub)
        if listing:
            full = self.list_access(scope, action)
        else:
            self.authorize(scope, action)
            full = True
        if rg is not None:
            self.resource_group(sub, rg)
        return scope, full


def _page_bounds(request: Request) -> tuple[int, int]:
    """(offset, page size) of a list request: ``$skiptoken`` (ours, opaque) and ``$top``."""
    top_text = request.args.get("$top")
    size = PAGE_SIZE
    if top_text is not None:
        if not top_text.strip().isdigit() or int(top_text) < 1:
            raise ArmError(
                400, "InvalidTopInQueryString", f"Invalid $top '{top_text}' specified in the query string."
            )
        size = min(int(top_text), PAGE_SIZE)
    token = request.args.get("$skiptoken")
    if token is None:
        return 0, size
    try:
        offset = int(base64.urlsafe_b64decode(token.encode() + b"==").decode().removeprefix("offset:"))
    except (ValueError, UnicodeDecodeError):
        raise ArmError(400, "InvalidSkipToken", f"The skip token '{token[:64]}' is invalid.") from None
    return max(offset, 0), size


def paged(request: Request, items: Sequence[Any], extra: dict[str, Any] | None = None) -> Response:
    """A list reply: one page of ``items`` and, when more follow, ``nextLink`` (``$top`` kept, ``$skiptoken``
    added), as ARM pages its lists; the SDK pagers and the CLI follow it
    (docs/protocol.md#resources-and-bodies)."""
    offset, size = _page_bounds(request)
    body: dict[str, Any] = {"value": list(items[offset : offset + size]), **(extra or {})}
    if offset + size < len(items):
        query = [(k, v) for k, v in request.args.items(multi=True) if k != "$skiptoken"]
        token = base64.urlsafe_b64encode(f"offset:{offset + size}".encode()).decode().rstrip("=")
        query.append(("$skiptoken", token))
        body["nextLink"] = f"https://{request.host}{request.path}?{urlencode(query)}"
    return arm_json(body)
