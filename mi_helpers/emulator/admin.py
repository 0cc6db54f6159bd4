"""The admin API (``/_emulator/…``) and the token-verification documents (JWKS, OpenID metadata).

Admin requests are accepted only from loopback peers and only with the per-run key in ``X-Emulator-Key``;
bad input gets a 4xx JSON body that names what is allowed. The discovery documents are public, as Entra ID's
are, so any reader can verify an emulated token's signature.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.emulator.backend import FIX_ACTIONS, Backend
from mi_helpers.emulator.endpoints import Endpoints, is_loopback
from mi_helpers.emulator.errors import AdminError, WireError, admin_framing_error
from mi_helpers.emulator.layer import Layer
from mi_helpers.emulator.scenarios import SCENARIOS
from mi_helpers.validate import InputError

__all__ = ["ADMIN_PATHS", "AdminLayer", "is_discovery_path"]

ADMIN_PATHS = (
    "GET /_emulator/health",
    "GET|PUT /_emulator/scenario",
    "GET /_emulator/scenarios",
    "GET /_emulator/world",
    "POST /_emulator/fix",
    "GET|DELETE /_emulator/requests",
    "GET /_emulator/environment",
)

_URLS = Map(
    [
        Rule("/_emulator/health", endpoint="health", methods=["GET"]),
        Rule("/_emulator/scenario", endpoint="scenario_get", methods=["GET"]),
        Rule("/_emulator/scenario", endpoint="scenario_put", methods=["PUT", "POST"]),
        Rule("/_emulator/scenarios", endpoint="scenarios", methods=["GET"]),
        Rule("/_emulator/world", endpoint="world", methods=["GET"]),
        Rule("/_emulator/fix", endpoint="fix", methods=["POST"]),
        Rule("/_emulator/requests", endpoint="requests_get", methods=["GET"]),
        Rule("/_emulator/requests", endpoint="requests_delete", methods=["DELETE"]),
        Rule("/_emulator/log", endpoint="requests_get", methods=["GET"]),  # alias of /requests
        Rule("/_emulator/log", endpoint="requests_delete", methods=["DELETE"]),
        Rule("/_emulator/environment", endpoint="environment", methods=["GET"]),
        # Token verification documents (public, no key), as Entra ID serves them per tenant.
        Rule("/<tenant>/discovery/keys", endpoint="jwks", methods=["GET"]),
        Rule("/<tenant>/discovery/v2.0/keys", endpoint="jwks", methods=["GET"]),
        Rule("/<tenant>/.well-known/openid-configuration", endpoint="openid", methods=["GET"]),
        Rule("/<tenant>/v2.0/.well-known/openid-configuration", endpoint="openid", methods=["GET"]),
    ],
    strict_slashes=False,
    merge_slashes=True,
)


def is_discovery_path(path: str) -> bool:
    """True for the JWKS / OpenID metadata paths served next to IMDS and the admin API."""
    p = path.rstrip("/")
    return (
        p.endswith("/discovery/keys")
        or p.endswith("/discovery/v2.0/keys")
        or p.endswith("/.well-known/openid-configuration")
    )


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, indent=None), status=status, content_type="application/json")


class AdminLayer(Layer):
    """Serves ``/_emulator/…`` and the discovery documents for one backend.

    ``endpoints`` returns where the emulator can be reached right now (the health and environment
    documents show it; the admin key in it guards every ``/_emulator`` request).
    """

    name = "admin"

    def __init__(self, backend: Backend, endpoints: Callable[[], Endpoints]) -> None:
        super().__init__(backend)
        self.endpoints = endpoints

    def framing_error(self, status: int, detail: str) -> WireError:
        return admin_framing_error(status, detail)

    def respond(self, request: Request) -> Response:
        try:
            return self._route(request)
        except InputError as err:
            allowed = None
            if err.field == "scenario":
                allowed = list(SCENARIOS)
            elif err.field == "action":
                allowed = list(FIX_ACTIONS)
            raise AdminError(400, "invalid_input", str(err), allowed) from None

    def _route(self, request: Request) -> Response:
        adapter = _URLS.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except HTTPException as exc:
            code = exc.code or 404
            if code == 405:
                raise AdminError(
                    405,
                    "method_not_allowed",
                    f"{request.method} is not allowed on {request.path}",
                    list(ADMIN_PATHS),
                ) from None
            raise AdminError(
                404, "not_found", f"no admin endpoint {request.path}", list(ADMIN_PATHS)
            ) from None
        if endpoint in ("jwks", "openid"):
            return self._discovery(request, endpoint, str(args["tenant"]))
        if not is_loopback(request.remote_addr):
            raise AdminError(403, "forbidden", "the admin API only answers loopback clients")
        key = request.headers.get("X-Emulator-Key", "")
        if not secrets.compare_digest(key.encode(), self.endpoints().admin_key.encode()):
            raise AdminError(
                401,
                "unauthorized",
                f"missing or wrong X-Emulator-Key header (see {Env.MI_HELPERS_EMULATOR_KEY})",
            )
        result: Response = getattr(self, "_" + endpoint)(request)
        return result

    def _body(self, request: Request) -> dict[str, Any]:
        raw = request.get_data(cache=True)
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise AdminError(
                400, "invalid_json", f"request body is not valid JSON ({type(exc).__name__})"
            ) from None
        if not isinstance(data, dict):
            raise AdminError(400, "invalid_json", "request body must be a JSON object")
        return data

    # ------------------------------------------------------------------ endpoints
    def _health(self, request: Request) -> Response:
        ep = self.endpoints()
        return _json(
            {
                "status": "ok",
                "scenario": self.backend.scenario,
                "imds_url": ep.imds_url,
                "imds_listening": ep.imds_listening,
                "arm_url": ep.arm_url,
                "admin_url": ep.admin_url,
                "ca_bundle": ep.ca_bundle,
            }
        )

    def _scenario_get(self, request: Request) -> Response:
        return _json(self.backend.scenario_state(self.endpoints()))

    def _scenario_put(self, request: Request) -> Response:
        body = self._body(request)
        name = body.get("scenario", body.get("name"))
        if not isinstance(name, str):
            raise AdminError(
                400, "invalid_input", 'scenario: give {"scenario": NAME, "params": {...}}', list(SCENARIOS)
            )
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise AdminError(400, "invalid_input", "params: must be a JSON object of parameter values")
        extra = {k: v for k, v in body.items() if k not in ("scenario", "name", "params")}
        self.backend.set_scenario(name, **{**extra, **params})
        return _json(self.backend.scenario_state(self.endpoints()))

    def _scenarios(self, request: Request) -> Response:
        return _json({"scenarios": [s.to_dict() for s in SCENARIOS.values()]})

    def _world(self, request: Request) -> Response:
        return _json(self.backend.world_dict())

    def _fix(self, request: Request) -> Response:
        body = self._body(request)
        action = body.pop("action", None)
        if not isinstance(action, str):
            raise AdminError(400, "invalid_input", 'action: give {"action": NAME, ...}', list(FIX_ACTIONS))
        return _json(self.backend.apply_fix(action, **body))

    def _requests_get(self, request: Request) -> Response:
        return _json({"requests": self.backend.request_log()})

    def _requests_delete(self, request: Request) -> Response:
        self.backend.clear_log()
        return _json({"cleared": True})

    def _environment(self, request: Request) -> Response:
        ep = self.endpoints()
        return _json(ep.environment(self.backend.scenario_environment(ep)))

    def _discovery(self, request: Request, endpoint: str, tenant: str) -> Response:
        tid = self.backend.world.tenant.id
        if tenant.lower() not in (tid.lower(), "common", "organizations"):
            raise AdminError(404, "not_found", f"unknown tenant {tenant!r} (this emulator serves {tid})")
        if endpoint == "jwks":
            return _json(self.backend.jwks())
        base = f"{request.scheme}://{request.host}"
        return _json(self.backend.issuer.openid_configuration(base))
