"""One ARM request as the handlers see it: the caller, and the checks ARM runs in its documented order.

A handler is a plain function ``handler(call, **route_args) -> Response``; :class:`Call` gives it the
backend, the world, the caller's object ID and the checks of docs/protocol.md#request-checks-and-their-order
(subscription → RBAC at the requested scope → resource group), each raising the wire error ARM answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.errors import (
    ARM_CONTENT_TYPE,
    arm_authorization_failed,
    arm_resource_group_not_found,
    arm_subscription_not_found,
)
from mi_helpers.emulator.world import World

__all__ = ["Call", "Handler", "Route", "arm_json", "in_group"]

#: A route handler: the request's :class:`Call` and the route's arguments, to the reply.
Handler = Callable[..., Response]
#: One route: the canonical (lower-case keyword) path pattern, its handler, and extra handler arguments.
Route = tuple[str, Handler, dict[str, Any]]

_SCOPE = re.compile(r"^/subscriptions/([^/]+)(?:/resourcegroups/([^/]+))?", re.IGNORECASE)


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
    def rbac_denied(self) -> bool:
        """Consult the fault engine once per request (``role-propagating`` denies while its window lasts)."""
        if self._rbac_denied is None:
            fault = self.backend.engine.check("arm-rbac")
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

    def authorize(self, scope: str, action: str) -> None:
        """403 unless the caller may read ``scope`` (an assignment at it or above it)."""
        if self.rbac_denied() or not self.world.can_read(self.oid, scope):
            raise arm_authorization_failed(self.oid, action, scope)

    def list_access(self, scope: str, action: str) -> bool:
        """For lists: True = whole scope readable; False = filter per item; 403 if nothing inside is."""
        if self.rbac_denied():
            raise arm_authorization_failed(self.oid, action, scope)
        if self.world.can_read(self.oid, scope):
            return True
        if self.world.has_access_in(self.oid, scope):
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
            if self.rbac_denied() or not self.world.can_read(self.oid, "/"):
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
