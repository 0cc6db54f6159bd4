"""Key Vault secrets over HTTPS: the requests ``SecretClient`` and ``az keyvault secret`` make, with Key
Vault's challenge, permission models and error texts.

Served (docs/protocol.md, "Key Vault"): ``GET /secrets`` (list, ``maxresults`` and ``nextLink`` paging),
``GET /secrets/{name}[/]`` (current version), ``GET /secrets/{name}/{version}``, ``GET
/secrets/{name}/versions``. The listener is the vault's host: its URL is the vault URL, the world's one
vault (``data_plane.key_vaults``), and every ``id`` in a body is built on the URL the client used.

Order of checks, as Key Vault answers: the bearer token (none → 401 ``AKV10000`` with the challenge the SDK
follows; the wrong audience → 401 ``AKV10022``; expired or not ours → 401), the ``api-version``, the path,
the method, the caller's permission (RBAC mode: 403 ``Forbidden``/``ForbiddenByRbac`` naming the caller,
the data action and the secret's scope; access-policy mode: 403 ``Forbidden``/``AccessDenied`` "does not
have secrets get permission on key vault …"), then the secret (404 ``SecretNotFound``). Every 401 carries
``WWW-Authenticate``. A client on ``https://127.0.0.1:PORT`` must pass ``verify_challenge_resource=False``
(the vault URL cannot end in ``.vault.azure.net``), exactly as the Azure CLI always does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from mi_helpers.constants import Entra, KeyVault
from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.dataplane import (
    KeyVault as Vault,
)
from mi_helpers.emulator.dataplane import (
    SecretVersion,
    secret_decision,
)
from mi_helpers.emulator.dataplane_errors import (
    KEYVAULT_CONTENT_TYPE,
    KeyVaultError,
    keyvault_challenge,
    keyvault_framing_error,
)
from mi_helpers.emulator.endpoints import Endpoints
from mi_helpers.emulator.errors import WireError
from mi_helpers.emulator.layer import Layer, json_response
from mi_helpers.emulator.tokens import (
    TokenAudienceError,
    TokenError,
    TokenExpiredError,
    TokenNotYetValidError,
)

__all__ = ["API_VERSIONS", "KeyVaultLayer"]

#: The api-versions Key Vault's secrets API answers (azure-keyvault-secrets' ``ApiVersion`` list; the Azure
#: CLI sends 7.4).
API_VERSIONS = ("2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01")
_AUDIENCES = (KeyVault.RESOURCE, KeyVault.RESOURCE + "/", KeyVault.APP_ID)
_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
_PAGE = 25  # Key Vault's default and largest page (maxresults 1-25)
_NOT_FOUND_HELP = (
    "If you recently deleted this secret you may be able to recover it using the correct recovery "
    "command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
)


class KeyVaultLayer(Layer):
    """Answers requests on the Key Vault (HTTPS) listener."""

    name = "keyvault"
    body_limit = 200_000  # a secret is at most 25 KB; Key Vault refuses larger requests

    def __init__(self, backend: Backend, endpoints: Callable[[], Endpoints]) -> None:
        super().__init__(backend)
        self.endpoints = endpoints

    def framing_error(self, status: int, detail: str) -> WireError:
        return keyvault_framing_error(status, detail)

    def finish(self, request: Request, response: Response) -> Response:
        """Headers every Key Vault reply carries (as a captured 401 shows them)."""
        h = response.headers
        h["Cache-Control"] = "no-cache"
        h["x-ms-request-id"] = str(uuid.uuid4())
        h["x-ms-keyvault-region"] = self._vault_location()
        h["x-ms-keyvault-service-version"] = "1.9.2700.1"
        h["x-ms-keyvault-network-info"] = (
            f"conn_type=Ipv4;addr={request.remote_addr or '127.0.0.1'};act_addr_fam=InterNetwork;"
        )
        h["Strict-Transport-Security"] = "max-age=31536000;includeSubDomains"
        h["X-Content-Type-Options"] = "nosniff"
        crid = request.headers.get("x-ms-client-request-id")
        if crid:
            h["x-ms-client-request-id"] = crid[:100]
        return response

    def _vault_location(self) -> str:
        vault = self._vault_or_none()
        return vault.location if vault is not None else "westeurope"

    def _vault_or_none(self) -> Vault | None:
        vaults = self.backend.world.data_plane.vaults
        return vaults[0] if vaults else None

    # ------------------------------------------------------------------ the request
    def respond(self, request: Request) -> Response:
        world = self.backend.world  # one world per request, even if a scenario switch replaces it
        claims = self._authenticate(request)
        request.environ["mi.identity"] = str(claims.get("oid", ""))
        version = request.args.get("api-version", "")
        if not version:
            raise KeyVaultError(400, "BadParameter", "The request URI contains an invalid api-version.")
        if version not in API_VERSIONS:
            raise KeyVaultError(
                400,
                "BadParameter",
                f"The specified version ({version[:40]}) is not recognized. Consider using the latest "
                f"supported version ({API_VERSIONS[-1]}).",
            )
        vault = self._vault_or_none()
        if vault is None:
            raise KeyVaultError(404, "VaultNotFound", "The world has no key vault (data_plane.key_vaults).")
        segments = request.path.split("/")[1:]
        if segments and segments[-1] == "" and len(segments) > 1:
            segments = segments[:-1]  # "/secrets/one/" is the current version
        if not segments or segments[0].lower() != "secrets" or len(segments) > 3:
            raise KeyVaultError(400, "BadParameter", f"Request URL path '{request.path[:200]}' is not valid.")
        if request.method not in ("GET", "HEAD"):
            raise KeyVaultError(
                405,
                "MethodNotAllowed",
                f"The emulated Key Vault reads secrets only; {request.method[:10]} is not emulated.",
            )
        if len(segments) == 1:
            self._check(world, vault, claims, "list", None)
            return self._list(request, vault)
        name = segments[1]
        if not _NAME.match(name):
            raise KeyVaultError(
                400,
                "BadParameter",
                "The request URI contains an invalid name: "
                f"{name[:130]}. Follow this link for more information on appropriate naming conventions: "
                "https://go.microsoft.com/fwlink/?linkid=2147742",
            )
        if len(segments) == 3 and segments[2].lower() == "versions":
            self._check(world, vault, claims, "list", name)
            return self._list(request, vault, name)
        self._check(world, vault, claims, "get", name)
        return self._get(request, vault, name, segments[2] if len(segments) == 3 else "")

    def _authenticate(self, request: Request) -> dict[str, Any]:
        tenant = self.backend.world.tenant.id
        challenge = {"WWW-Authenticate": keyvault_challenge(tenant)}
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise KeyVaultError(
                401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", headers=challenge
            )
        try:
            return self.backend.issuer.verify_for(token.strip(), self.backend.clock.time(), _AUDIENCES)
        except TokenAudienceError as exc:
            raise KeyVaultError(
                401,
                "Unauthorized",
                f"AKV10022: Invalid audience. Expected {KeyVault.RESOURCE}, found: {exc.aud[:200]}.",
                headers=challenge,
            ) from None
        except (TokenExpiredError, TokenNotYetValidError):
            raise KeyVaultError(
                401, "Unauthorized", "AKV10032: Token is expired or not yet valid.", headers=challenge
            ) from None
        except TokenError:
            raise KeyVaultError(
                401,
                "Unauthorized",
                f"AKV10032: Invalid issuer. Expected one of {Entra.V1_ISSUER_HOST}/{tenant}/, "
                f"{Entra.AUTHORITY_HOST}/{tenant}/v2.0.",
                headers=challenge,
            ) from None

    def _check(
        self, world: Any, vault: Vault, claims: dict[str, Any], permission: str, secret: str | None
    ) -> None:
        """403 unless the vault's permission model lets the caller ``get``/``list`` (``secret`` scope)."""
        oid = str(claims.get("oid", ""))
        denial = secret_decision(world, vault, oid, permission, secret)
        if denial is None:
            return
        caller = f"appid={claims.get('appid', '')};oid={oid};iss={claims.get('iss', '')}"
        if denial.reason == "access-policy":
            raise KeyVaultError(
                403,
                "Forbidden",
                f"The user, group or application '{caller}' does not have secrets {permission} permission on "
                f"key vault '{vault.name};location={vault.location}'. For help resolving this issue, please "
                "see https://go.microsoft.com/fwlink/?linkid=2125287",
                "AccessDenied",
            )
        raise KeyVaultError(
            403,
            "Forbidden",
            "Caller is not authorized to perform action on resource.\r\n"
            "If role assignments, deny assignments or role definitions were changed recently, please observe "
            "propagation time.\r\n"
            f"Caller: {caller}\r\n"
            f"Action: '{denial.action}'\r\n"
            f"Resource: '{denial.scope.lower()}'\r\n"
            "Assignment: (not found)\r\n"
            "DenyAssignmentId: null\r\n"
            "DecisionReason: 'DeniedWithNoValidRBAC' \r\n"
            f"Vault: {vault.name};location={vault.location}\r\n",
            "ForbiddenByRbac",
        )

    # ------------------------------------------------------------------ bodies
    @staticmethod
    def _base(request: Request) -> str:
        return f"https://{request.host}"

    @staticmethod
    def _attributes(v: SecretVersion) -> dict[str, Any]:
        return {
            "enabled": v.enabled,
            "created": v.created,
            "updated": v.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }

    def _get(self, request: Request, vault: Vault, name: str, version: str) -> Response:
        found = vault.secret(name)
        wanted = None
        if found is not None:
            stored, versions = found
            if not version:
                wanted = versions[-1]
            else:
                wanted = next((v for v in versions if v.version.lower() == version.lower()), None)
        if found is None or wanted is None:
            raise _not_found(f"{name}/{version}" if version else name)
        if not wanted.enabled:
            raise KeyVaultError(
                403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled"
            )
        body: dict[str, Any] = {"value": wanted.value}
        if wanted.content_type is not None:
            body["contentType"] = wanted.content_type
        body["id"] = f"{self._base(request)}/secrets/{stored}/{wanted.version}"
        body["attributes"] = self._attributes(wanted)
        body["tags"] = {}
        return json_response(body, content_type=KEYVAULT_CONTENT_TYPE)

    def _list(self, request: Request, vault: Vault, name: str | None = None) -> Response:
        base = self._base(request)
        items: list[dict[str, Any]] = []
        if name is None:
            for stored, versions in vault.secrets.items():
                item: dict[str, Any] = {
                    "id": f"{base}/secrets/{stored}",
                    "attributes": self._attributes(versions[-1]),
                }
                if versions[-1].content_type is not None:
                    item["contentType"] = versions[-1].content_type
                item["tags"] = {}
                items.append(item)
        else:
            found = vault.secret(name)
            if found is None:
                raise _not_found(name)
            stored, versions = found
            for v in versions:
                entry: dict[str, Any] = {
                    "id": f"{base}/secrets/{stored}/{v.version}",
                    "attributes": self._attributes(v),
                }
                if v.content_type is not None:
                    entry["contentType"] = v.content_type
                entry["tags"] = {}
                items.append(entry)
        size, offset = self._page(request)
        body: dict[str, Any] = {"value": items[offset : offset + size], "nextLink": None}
        if offset + size < len(items):
            query = {"api-version": request.args["api-version"], "$skiptoken": str(offset + size)}
            if "maxresults" in request.args:
                query["maxresults"] = str(size)
            body["nextLink"] = f"{base}{request.path.rstrip('/')}?{urlencode(query)}"
        return json_response(body, content_type=KEYVAULT_CONTENT_TYPE)

    @staticmethod
    def _page(request: Request) -> tuple[int, int]:
        text = request.args.get("maxresults")
        size = _PAGE
        if text is not None:
            if not text.isdigit() or not 1 <= int(text) <= _PAGE:
                raise KeyVaultError(
                    400, "BadParameter", f"Invalid value for maxresults: {text[:20]}. It must be 1 to 25."
                )
            size = int(text)
        token = request.args.get("$skiptoken", "0")
        if not token.isdigit():
            raise KeyVaultError(400, "BadParameter", "The $skiptoken is invalid.")
        return size, int(token)


def _not_found(ref: str) -> KeyVaultError:
    return KeyVaultError(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {ref[:170]} was not found in this key vault. {_NOT_FOUND_HELP}",
    )
