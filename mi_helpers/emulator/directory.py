"""The tenant's directory as a token request sees it: which ``resource`` names a service principal.

Entra issues a managed-identity token only for a resource it knows: a first-party Microsoft service, an
application registered in the tenant (a custom API), or an application ID. Anything else -- a typo
(``https://managements.azure.com``), a scope passed as a resource (``https://management.azure.com/.default``),
a delegated scope of a custom API (``api://<app>/read``), a GUID of no application -- is refused with
``invalid_resource`` AADSTS500011, which IMDS relays (docs/protocol.md#errors).

What the emulator knows, in order (docs/protocol.md#audiences-and-clouds):

1. the first-party audiences of every cloud in :mod:`mi_helpers.clouds` (``SERVICES`` and ``CLOUDS``: ARM's
   SDK and CLI resources, Key Vault, Storage, Graph, SQL, …) and ARM's four accepted audiences
   (:data:`mi_helpers.constants.Arm.AUDIENCES`), each with or without the trailing ``/``;
2. the application IDs of a few first-party apps (:data:`FIRST_PARTY_APP_IDS`) and the account-style hosts
   the SDKs use as resources (``https://<account>.blob.core.windows.net``…, :data:`ACCOUNT_HOST_SUFFIXES`);
3. the world's ``applications`` (``app_id`` and ``identifier_uris``);
4. the emulator's own service URLs: a client aimed at the emulator asks for a token for the emulated
   service's URL where it would ask for the real one. The Azure CLI does so for Microsoft Graph, whose
   resource is the cloud's ``microsoft_graph_resource_id`` -- in the emulator's CLI profile, the
   emulator's own ARM URL (``mi_helpers/launch/azure_cli.py``). The server facade registers each listener
   URL it opens (:meth:`Directory.register_service`); a resource on a loopback host (``127.0.0.1``,
   ``localhost``, ``[::1]``) whose scheme and port are one of those URLs and whose path is ``/`` names it.

A scheme, host or trailing slash never makes a difference, as in Entra; a path does (``/.default`` is not a
resource).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from mi_helpers.clouds import CLOUDS, SERVICES
from mi_helpers.constants import Arm
from mi_helpers.emulator.endpoints import is_loopback
from mi_helpers.emulator.model import Application

__all__ = ["ACCOUNT_HOST_SUFFIXES", "FIRST_PARTY_APP_IDS", "Directory", "ResourcePrincipal"]

#: Application IDs of first-party services a token may be asked for by GUID. ARM and Graph: Learn, "Verify
#: first-party Microsoft applications in sign-in reports"; Key Vault and Storage: the IDs their data planes
#: name as accepted audiences in their 401 texts (AKV10022 "Expected https://vault.azure.net or cfa8b339-…").
FIRST_PARTY_APP_IDS: dict[str, str] = {
    "797f4846-ba00-4fd7-ba43-dac1f8f63013": "Azure Resource Manager",
    "00000003-0000-0000-c000-000000000000": "Microsoft Graph",
    "cfa8b339-82a2-471a-a3c9-0fc0be7a4093": "Key Vault",
    "e406a681-f3d4-42a8-90b6-c2b029497af1": "Storage",
}

#: Hosts under which any account name is a resource the service accepts (``https://<account>.<suffix>``):
#: Storage's account URLs and Cosmos DB's account scope, as ``mi_helpers.clouds`` notes for those services.
ACCOUNT_HOST_SUFFIXES: tuple[str, ...] = (
    *(f".{kind}.core.windows.net" for kind in ("blob", "queue", "table", "file", "dfs")),
    *(f".{kind}.core.usgovcloudapi.net" for kind in ("blob", "queue", "table", "file", "dfs")),
    *(f".{kind}.core.chinacloudapi.cn" for kind in ("blob", "queue", "table", "file", "dfs")),
    ".documents.azure.com",
)

_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def _key(uri: str) -> str:
    """Comparison form of a resource URI: lower-case, one trailing ``/`` dropped."""
    text = uri.strip().lower()
    return text[:-1] if text.endswith("/") and not text.endswith("//") else text


def _first_party_uris() -> dict[str, str]:
    known: dict[str, str] = {}
    for svc in SERVICES:
        for cloud_name in CLOUDS:
            rid = svc.resource_id(cloud_name)
            if rid:
                known[_key(rid)] = svc.name
    for cloud in CLOUDS.values():
        for uri in (cloud.arm_url, cloud.arm_scope.removesuffix(".default"), cloud.cli_resource):
            known[_key(uri)] = "Azure Resource Manager"
    for aud in Arm.AUDIENCES:
        known[_key(aud)] = "Azure Resource Manager"
    return known


_FIRST_PARTY = _first_party_uris()


@dataclass(frozen=True)
class ResourcePrincipal:
    """What a ``resource`` of a token request names: a service or application, and whether it is Microsoft's.

    ``first_party`` decides claims that Entra adds only to tokens for Microsoft's own services
    (``xms_mirid``; docs/protocol.md#access-tokens).
    """

    name: str
    first_party: bool


class Directory:
    """Resolves token ``resource`` values against the world's applications and the known services."""

    def __init__(self) -> None:
        self._services: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def register_service(self, url: str) -> None:
        """Make ``url`` (an emulated service's base URL, e.g. the ARM listener's) a known resource."""
        parts = urlsplit(url)
        if parts.scheme and parts.port:
            with self._lock:
                self._services.add((parts.scheme.lower(), int(parts.port)))

    def _own_service(self, resource: str) -> bool:
        try:
            parts = urlsplit(resource.strip())
            port = parts.port
        except ValueError:
            return False
        if port is None or parts.path not in ("", "/") or parts.query or parts.fragment:
            return False
        if not is_loopback(parts.hostname):
            return False
        with self._lock:
            return (parts.scheme.lower(), port) in self._services

    def resolve(self, resource: str, applications: Iterable[Application]) -> ResourcePrincipal | None:
        """The service or application ``resource`` names, or None (Entra's AADSTS500011)."""
        key = _key(resource)
        if key in _FIRST_PARTY:
            return ResourcePrincipal(_FIRST_PARTY[key], True)
        if key in FIRST_PARTY_APP_IDS:
            return ResourcePrincipal(FIRST_PARTY_APP_IDS[key], True)
        for app in applications:
            if key == app.app_id.lower() or key in {_key(u) for u in app.identifier_uris}:
                return ResourcePrincipal(app.name, False)
        if _account_host(resource):
            return ResourcePrincipal("account endpoint", True)
        if self._own_service(resource):
            return ResourcePrincipal("emulated service", True)
        return None


def _account_host(resource: str) -> bool:
    """``https://<account>.<suffix>[/]`` for one of :data:`ACCOUNT_HOST_SUFFIXES`."""
    try:
        parts = urlsplit(resource.strip())
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() != "https" or parts.path not in ("", "/") or parts.query or parts.port:
        return False
    for suffix in ACCOUNT_HOST_SUFFIXES:
        if host.endswith(suffix) and _ACCOUNT.match(host[: -len(suffix)]):
            return True
    return False
