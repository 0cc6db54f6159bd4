"""The tenant's service principals as Entra ID and Microsoft Graph see them: who signs in, secrets, rights.

Every principal that can hold a token is a service principal of the tenant: the world's applications (the
operator, ``World.service_principals``) and every managed identity: a VM's *enabled* system-assigned
identity (disabling it deletes its service principal) and each user-assigned identity
(docs/protocol.md, "Microsoft Graph"). This module derives that list from the world, finds entries by object
ID, app ID or service principal name, and says which Graph application permissions a call needs.
:class:`ClientSecrets` holds the per-run client secrets of the applications outside the world, so no world
file, world dump or scenario switch ever carries one.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mi_helpers.emulator.model import ServicePrincipal, mirid
from mi_helpers.emulator.world import World
from mi_helpers.redaction import redact_secret

__all__ = [
    "GRAPH_READ_DIRECTORY",
    "GRAPH_READ_SERVICE_PRINCIPALS",
    "ClientSecrets",
    "DirectoryEntry",
    "application",
    "by_app_id",
    "by_object_id",
    "by_service_principal_name",
    "entries",
    "graph_allows",
    "operator",
]

#: Graph application permissions that allow reading service principals (Graph's "List servicePrincipals"
#: and "Get servicePrincipal" pages: Application.Read.All is the least privileged one).
GRAPH_READ_SERVICE_PRINCIPALS = frozenset(
    {"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
#: Graph application permissions that allow reading any directory object ("directoryObject: getByIds").
GRAPH_READ_DIRECTORY = frozenset({"Directory.Read.All", "Directory.ReadWrite.All"})


@dataclass(frozen=True)
class DirectoryEntry:
    """One service principal: an application (the operator) or a managed identity."""

    object_id: str
    app_id: str
    display_name: str
    kind: Literal["Application", "ManagedIdentity"]
    #: The managed identity's ARM resource (the VM, or the user-assigned identity), ``resourcegroups`` casing.
    resource_id: str | None = None
    #: True for a user-assigned identity (Graph's ``alternativeNames`` say ``isExplicit=True``).
    explicit: bool = False
    #: Graph application permissions granted to it (the ``roles`` of its Graph tokens).
    graph_app_roles: tuple[str, ...] = ()

    @property
    def service_principal_names(self) -> list[str]:
        """The app ID first (what ``az`` shows as ``principalName``), then the identity's URI for an MI."""
        if self.kind == "Application" or not self.resource_id:
            return [self.app_id]
        digest = hashlib.sha256(self.resource_id.lower().encode()).digest()
        return [self.app_id, "https://identity.azure.net/" + base64.b64encode(digest).decode()]

    @property
    def alternative_names(self) -> list[str]:
        """``["isExplicit=False|True", <resource ID>]`` for a managed identity, empty for an application."""
        if self.kind == "Application" or not self.resource_id:
            return []
        return [f"isExplicit={self.explicit}", self.resource_id]


def entries(world: World) -> list[DirectoryEntry]:
    """Every service principal of the tenant: applications, then system- and user-assigned identities."""
    with world.lock:
        out = [
            DirectoryEntry(
                p.object_id, p.app_id, p.display_name, "Application", None, False, tuple(p.graph_app_roles)
            )
            for p in world.service_principals
        ]
        for vm in world.vms:
            si = vm.system_identity
            if si is not None and si.enabled:
                out.append(
                    DirectoryEntry(
                        si.principal_id, si.client_id, vm.name, "ManagedIdentity", mirid(vm.resource_id)
                    )
                )
        for u in world.identities:
            out.append(
                DirectoryEntry(
                    u.principal_id, u.client_id, u.name, "ManagedIdentity", mirid(u.resource_id), True
                )
            )
        return out


def by_object_id(world: World, object_id: str) -> DirectoryEntry | None:
    """The service principal whose object ID is ``object_id`` (case-insensitive)."""
    oid = object_id.strip().lower()
    return next((e for e in entries(world) if e.object_id.lower() == oid), None)


def by_app_id(world: World, app_id: str) -> DirectoryEntry | None:
    """The service principal of application (client) ID ``app_id`` (case-insensitive)."""
    aid = app_id.strip().lower()
    return next((e for e in entries(world) if e.app_id.lower() == aid), None)


def by_service_principal_name(world: World, name: str) -> list[DirectoryEntry]:
    """Service principals that list ``name`` among their ``servicePrincipalNames`` (case-insensitive)."""
    n = name.strip().lower()
    return [e for e in entries(world) if n in (s.lower() for s in e.service_principal_names)]


def application(world: World, app_id: str) -> ServicePrincipal | None:
    """The world's application with client ID ``app_id``: a principal that can hold a client secret."""
    aid = app_id.strip().lower()
    with world.lock:
        return next((p for p in world.service_principals if p.app_id.lower() == aid), None)


def operator(world: World) -> ServicePrincipal | None:
    """The service principal that stands in for the learner (``World.operator``), or None."""
    ref = world.operator.strip().lower()
    if not ref:
        return None
    with world.lock:
        return next(
            (p for p in world.service_principals if ref in (p.app_id.lower(), p.display_name.lower())), None
        )


def graph_allows(roles: Iterable[str], needed: frozenset[str]) -> bool:
    """True when one of the token's ``roles`` is one of the permissions a Graph call accepts."""
    return any(str(r) in needed for r in roles)


# ------------------------------------------------------------------------------------------- secrets
_FIRST = string.ascii_letters + string.digits
_REST = string.ascii_letters + string.digits + "_.~-"


def _new_secret() -> str:
    """A secret shaped like Entra's (40 characters, ``xxx8Q~…``); it never starts with ``-``."""
    return (
        "".join(secrets.choice(_FIRST) for _ in range(3))
        + "8Q~"
        + "".join(secrets.choice(_REST) for _ in range(34))
    )


class ClientSecrets:
    """The client secret of each application, made on first use and kept for the backend's lifetime."""

    def __init__(self) -> None:
        self._by_app: dict[str, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ClientSecrets for {len(self._by_app)} application(s)>"

    def secret_for(self, app_id: str) -> str:
        """The secret of application ``app_id`` (created now if it has none yet)."""
        key = app_id.strip().lower()
        with self._lock:
            if key not in self._by_app:
                self._by_app[key] = _new_secret()
            return self._by_app[key]

    def check(self, app_id: str, candidate: str) -> bool:
        """Does ``candidate`` equal the secret of ``app_id``? (constant time)"""
        return secrets.compare_digest(self.secret_for(app_id).encode(), candidate.encode("utf-8", "replace"))

    def scrub(self, text: str) -> str:
        """``text`` with every secret shown as :func:`redact_secret` of it.

        The secrets' characters are all URL-safe (RFC 3986 "unreserved"), so a secret in a query string or
        a form body reads the same as the plain one.
        """
        with self._lock:
            values = list(self._by_app.values())
        for value in values:
            if value in text:
                text = text.replace(value, redact_secret(value))
        return text
