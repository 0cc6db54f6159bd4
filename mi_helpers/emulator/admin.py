"""The admin API (``/_emulator/…``) and the token-verification documents (JWKS, OpenID metadata).

Admin requests are accepted only from loopback peers and only with the per-run key in ``X-Emulator-Key``;
bad input gets a 4xx JSON body that names what is allowed. The discovery documents are public, as Entra ID's
are, so any reader can verify an emulated token's signature.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from mi_helpers.emulator.errors import AdminError, WireError
from mi_helpers.emulator.scenarios import SCENARIOS
from mi_helpers.validate import InputError

if TYPE_CHECKING:
    from mi_helpers.emulator.server import Emulator

__all__ = ["ADMIN_PATHS", "FIX_ACTIONS", "AdminLayer", "is_discovery_path"]

FIX_ACTIONS = (
    "enable-system-identity",
    "disable-system-identity",
    "attach-user-identity",
    "detach-user-identity",
    "add-role-assignment",
    "remove-role-assignment",
    "clear-faults",
    "reset",
)
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


def _loopback(addr: str | None) -> bool:
    try:
        return ipaddress.ip_address((addr or "").split("%")[0]).is_loopback
    except ValueError:
        return False


class AdminLayer:
    """Serves ``/_emulator/…`` and the discovery documents for one :class:`Emulator`."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def handle(self, request: Request) -> Response:
        try:
            return self._handle(request)
        except WireError as err:
            return err.response()
        except InputError as err:
            allowed = None
            if err.field == "scenario":
                allowed = list(SCENARIOS)
            elif err.field == "action":
                allowed = list(FIX_ACTIONS)
            return AdminError(400, "invalid_input", str(err), allowed).response()

    def _handle(self, request: Request) -> Response:
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
        if not _loopback(request.remote_addr):
            raise AdminError(403, "forbidden", "the admin API only answers loopback clients")
        key = request.headers.get("X-Emulator-Key", "")
        if not secrets.compare_digest(key.encode(), self.emu.admin_key.encode()):
            raise AdminError(
                401, "unauthorized", "missing or wrong X-Emulator-Key header (see MI_HELPERS_EMULATOR_KEY)"
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
        emu = self.emu
        return _json(
            {
                "status": "ok",
                "scenario": emu.scenario,
                "imds_url": emu.imds_url,
                "imds_listening": emu.imds_listening,
                "arm_url": emu.arm_url,
                "admin_url": emu.admin_url,
                "ca_bundle": emu.ca_bundle,
            }
        )

    def _scenario_get(self, request: Request) -> Response:
        return _json(self.emu.scenario_state())

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
        self.emu.set_scenario(name, **{**extra, **params})
        return _json(self.emu.scenario_state())

    def _scenarios(self, request: Request) -> Response:
        return _json({"scenarios": [s.to_dict() for s in SCENARIOS.values()]})

    def _world(self, request: Request) -> Response:
        return _json(self.emu.world_dict())

    def _fix(self, request: Request) -> Response:
        body = self._body(request)
        action = body.pop("action", None)
        if not isinstance(action, str):
            raise AdminError(400, "invalid_input", 'action: give {"action": NAME, ...}', list(FIX_ACTIONS))
        return _json(self.emu.apply_fix(action, **body))

    def _requests_get(self, request: Request) -> Response:
        return _json({"requests": self.emu.request_log()})

    def _requests_delete(self, request: Request) -> Response:
        self.emu.clear_log()
        return _json({"cleared": True})

    def _environment(self, request: Request) -> Response:
        return _json(self.emu.environment())

    def _discovery(self, request: Request, endpoint: str, tenant: str) -> Response:
        tid = self.emu.world.tenant.id
        if tenant.lower() not in (tid.lower(), "common", "organizations"):
            raise AdminError(404, "not_found", f"unknown tenant {tenant!r} (this emulator serves {tid})")
        if endpoint == "jwks":
            return _json(self.emu.issuer.jwks())
        base = f"{request.scheme}://{request.host}"
        return _json(self.emu.issuer.openid_configuration(base))
