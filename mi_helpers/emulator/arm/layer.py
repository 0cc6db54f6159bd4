"""The ARM HTTP layer: canonical path → api-version → token → faults → route → type's api-versions → handler.

Paths are case-insensitive in their fixed keywords and ``//`` collapses (the az CLI asks for
``//metadata/endpoints``). The checks and their order follow docs/protocol.md#request-checks-and-their-order:
a missing ``api-version`` is refused first, then the bearer token (signature, issuer, one of the four ARM
audiences, ``exp`` against ARM's clock, which a scenario may skew), the route (a type nothing serves is
``InvalidResourceType``), the api-versions of the route's type (``arm/apiversions.py``), then subscription
existence, RBAC (403 ``AuthorizationFailed`` naming the action at the requested scope), resource-group
existence and finally the resource; the handlers of the provider modules run the last four through
:class:`~mi_helpers.emulator.arm.call.Call`. A write (``PUT``/``PATCH``/``DELETE``/``POST``) is checked the
same way for the action it needs; the writes the emulator carries out (VM identity, user-assigned
identities, role assignments, resource groups: docs/protocol.md#arm-writes) are routed by ``arm/writes.py``,
any other one that RBAC allows gets the documented 405.

Routes come from the provider modules (``resources``, ``compute``, ``msi``, ``authorization``): a new
provider is a new module with its ``ROUTES`` (and ``KEYWORDS``), added to ``_PROVIDERS`` below.
"""

from __future__ import annotations

import datetime as _dt
import re
import uuid
from collections.abc import Callable
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

import mi_helpers.emulator.arm.authorization as authorization
import mi_helpers.emulator.arm.compute as compute
import mi_helpers.emulator.arm.compute_writes as compute_writes
import mi_helpers.emulator.arm.metadata as metadata
import mi_helpers.emulator.arm.msi as msi
import mi_helpers.emulator.arm.resources as resources
from mi_helpers.emulator.arm.call import Call, Route
from mi_helpers.emulator.arm.writes import write_handler, write_target
from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.endpoints import Endpoints
from mi_helpers.emulator.errors import (
    ARM_BODY_LIMIT,
    ArmError,
    WireError,
    arm_expired_token,
    arm_framing_error,
    arm_invalid_audience,
    arm_invalid_token,
    arm_malformed_authorization,
    arm_missing_api_version,
    arm_missing_authorization,
    arm_not_yet_valid,
    arm_throttled,
    arm_write_not_emulated,
)
from mi_helpers.emulator.faults import TokenBucket
from mi_helpers.emulator.layer import Layer
from mi_helpers.emulator.tokens import (
    TokenAudienceError,
    TokenError,
    TokenExpiredError,
    TokenNotYetValidError,
)

__all__ = ["ArmLayer", "canonical_path"]

_ROUTES: list[Route] = [
    *resources.ROUTES,
    *compute.ROUTES,
    *msi.ROUTES,
    *authorization.ROUTES,
    *compute_writes.READ_ROUTES,  # the operation status a write's poller reads
]
_KEYWORDS = {
    k.lower(): k.lower()
    for k in (
        *resources.KEYWORDS,
        *authorization.KEYWORDS,
        *compute.VIRTUAL_MACHINES.keywords,
        *msi.USER_ASSIGNED_IDENTITIES.keywords,
        *compute_writes.KEYWORDS,
    )
}
_URLS = Map(
    [Rule(path, endpoint=handler, defaults=extra or None) for path, handler, extra in _ROUTES],
    strict_slashes=False,
    merge_slashes=True,
)
_ADAPTER = _URLS.bind("arm.local")  # paths are canonicalised first; binding once saves per-request work
_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)")


def canonical_path(path: str) -> str:
    """Collapse empty segments and lower-case the fixed ARM keywords (names keep their case)."""
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(_KEYWORDS.get(p.lower(), p) for p in parts)


class ArmLayer(Layer):
    """Answers requests on the ARM (HTTPS) listener."""

    name = "arm"
    body_limit = ARM_BODY_LIMIT

    def __init__(self, backend: Backend, endpoints: Callable[[], Endpoints] | None = None) -> None:
        super().__init__(backend)
        self.endpoints = endpoints
        # What the x-ms-ratelimit-remaining-* headers count down (ARM's documented read budget).
        self.reads = TokenBucket(250, 25)

    def framing_error(self, status: int, detail: str) -> WireError:
        return arm_framing_error(status, detail)

    def respond(self, request: Request) -> Response:
        backend = self.backend
        path = canonical_path(request.path)
        if path == metadata.PATH:
            return metadata.endpoints(request, self.endpoints() if self.endpoints else None)
        if not request.args.get("api-version", "").strip():
            raise arm_missing_api_version()
        claims = self._authenticate(request)
        oid = str(claims.get("oid", ""))
        request.environ["mi.authenticated"] = True
        request.environ["mi.identity"] = oid
        now = backend.clock.monotonic()
        self.reads.take(now)
        fault = backend.engine.check("arm", now)
        if fault is not None:
            request.environ["mi.fault"] = fault.label
            m = _SUBSCRIPTION.match(path)
            sub = m.group(1) if m else backend.world.default_subscription.id
            if fault.status == 429:
                raise arm_throttled(sub, oid, int(fault.headers.get("Retry-After", "1")))
            raise WireError(fault.status, fault.body, content_type=fault.content_type, headers=fault.headers)
        call = Call(request, backend, claims)
        args: dict[str, Any]
        try:
            handler, matched = _ADAPTER.match(path, method="GET")
            args = dict(matched)
        except HTTPException:
            handler, args = None, {}
        api = args.pop("api", None)
        if api is not None:
            call.check_api_version(api)
        if request.method not in ("GET", "HEAD"):
            return self._write(call, path)
        if handler is None:
            resources.unmodelled(call, request.path)
            raise ArmError(
                404,
                "NotFound",
                f"The requested path '{request.path}' is not served by the emulated Azure Resource Manager.",
            )
        result: Response = handler(call, **args)
        return result

    def _write(self, call: Call, path: str) -> Response:
        """A write the emulator carries out (``arm/writes.py``), or RBAC for its action then the 405."""
        request = call.request
        routed = write_handler(path, request.method)
        if routed is not None:
            handler, args = routed
            result: Response = handler(call, **args)
            return result
        target = write_target(request.path, request.method)
        if target is None:
            raise ArmError(
                404,
                "NotFound",
                f"The requested path '{request.path}' is not served by the emulated Azure Resource Manager.",
            )
        scope, action = target
        call.subscription(scope.split("/")[2])
        call.authorize(scope, action)
        raise arm_write_not_emulated(request.method, action, scope)

    def _authenticate(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("Authorization")
        if header is None:
            raise arm_missing_authorization()
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise arm_malformed_authorization()
        try:
            return self.backend.issuer.verify(token.strip(), self.backend.arm_now())
        except TokenAudienceError as exc:
            raise arm_invalid_audience(exc.aud) from None
        except TokenExpiredError as exc:
            raise arm_expired_token(exc.exp, exc.now) from None
        except TokenNotYetValidError as exc:
            raise arm_not_yet_valid(exc.nbf, exc.now) from None
        except TokenError:
            raise arm_invalid_token() from None

    def finish(self, request: Request, response: Response) -> Response:
        """The headers every ARM reply carries (docs/protocol.md#throttling-headers), errors included."""
        rid = str(uuid.uuid4())
        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        h = response.headers
        h["Cache-Control"] = "no-cache"
        h.add("Pragma", "no-cache")  # no layer sets these two: add, not set (cheaper)
        h.add("Expires", "-1")
        h["x-ms-request-id"] = rid
        h["x-ms-correlation-request-id"] = request.headers.get(
            "x-ms-correlation-request-id"
        ) or request.headers.get("x-ms-client-request-id", rid)
        h["x-ms-routing-request-id"] = f"WESTEUROPE:{now}:{rid}"
        h["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        h["X-Content-Type-Options"] = "nosniff"
        if request.environ.get("mi.authenticated"):
            reads = self.reads.remaining()
            h["x-ms-ratelimit-remaining-subscription-reads"] = str(max(reads - 1, 0))
            h["x-ms-ratelimit-remaining-subscription-global-reads"] = str(max(reads * 15 - 1, 0))
        return response
