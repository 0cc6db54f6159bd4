"""Key Vault and Blob storage in the world, and the data-plane rule: may this principal read that?

The world's ``data_plane`` block declares each key vault (its permission model -- Azure RBAC or access
policies --, its access policies and its secrets with their versions) and each storage account (its
containers and blobs). Who may read is decided here, for both HTTP layers (``keyvault.py``, ``blob.py``):

* a vault in **RBAC mode** (``enableRbacAuthorization: true``) asks Azure RBAC for the data action
  (``Microsoft.KeyVault/vaults/secrets/getSecret/action`` to read a value, ``…/readMetadata/action`` to
  list) at the secret's scope; Owner and Contributor hold no data actions, so they cannot read a secret;
* a vault in **access-policy mode** asks its access policies for the secret permission (``get``, ``list``)
  of the caller's object ID; role assignments do not count there;
* Blob storage asks RBAC for the action ``…/blobServices/containers/read`` (list containers, container
  properties: an *action*, which Reader/Owner/Contributor hold) or the data action
  ``…/blobServices/containers/blobs/read`` (list blobs, read a blob) at the container's scope.

(docs/protocol.md, "Key Vault" and "Blob storage"; Learn "Azure built-in roles", "Authorize access to blobs
using Microsoft Entra ID".) A data-role assignment made after the world was set up can be made to take a
few requests to be seen (``DataPlane.propagation_n``): what ``data-role-propagating`` and the
"-missing" scenarios use to show that a fresh grant needs a bounded retry. Nothing here knows HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from mi_helpers.emulator.model import scope_within
from mi_helpers.validate import InputError

__all__ = [
    "KV_GET_SECRET",
    "KV_LIST_SECRETS",
    "STORAGE_BLOB_READ",
    "STORAGE_CONTAINER_READ",
    "AccessPolicy",
    "Blob",
    "Container",
    "DataPlane",
    "Denial",
    "KeyVault",
    "SecretVersion",
    "StorageAccount",
    "blob_decision",
    "parse_data_plane",
    "secret_decision",
]

KV_GET_SECRET = "Microsoft.KeyVault/vaults/secrets/getSecret/action"  # noqa: S105 - an action name
KV_LIST_SECRETS = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
STORAGE_CONTAINER_READ = "Microsoft.Storage/storageAccounts/blobServices/containers/read"
STORAGE_BLOB_READ = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
#: The secret permissions an access policy may grant (Key Vault's ``SecretPermissions``).
SECRET_PERMISSIONS = ("get", "list", "set", "delete", "backup", "restore", "recover", "purge", "all")
_STAMP = 1767225600  # 2026-01-01T00:00:00Z: when the default world's data was written


@dataclass
class SecretVersion:
    """One version of a secret: a 32-hex version ID, the value, and its attributes (Unix seconds)."""

    version: str
    value: str = field(repr=False)
    created: int = _STAMP
    enabled: bool = True
    content_type: str | None = None


@dataclass
class AccessPolicy:
    """An access-policy entry of a vault: an object ID and the secret permissions granted to it."""

    object_id: str
    secrets: tuple[str, ...] = ("get", "list")
    tenant_id: str = ""

    def grants(self, permission: str) -> bool:
        perms = {p.lower() for p in self.secrets}
        return permission.lower() in perms or "all" in perms


@dataclass
class KeyVault:
    """A key vault: its permission model, access policies and secrets (name → versions, oldest first)."""

    subscription_id: str
    resource_group: str
    name: str
    location: str = "westeurope"
    rbac: bool = True
    access_policies: list[AccessPolicy] = field(default_factory=list)
    secrets: dict[str, list[SecretVersion]] = field(default_factory=dict)

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.KeyVault/vaults/{self.name}"
        )

    def secret(self, name: str) -> tuple[str, list[SecretVersion]] | None:
        """(name as stored, versions) of a secret; names compare case-insensitively, as Key Vault does."""
        for key, versions in self.secrets.items():
            if key.lower() == name.lower():
                return key, versions
        return None

    def policy_for(self, object_id: str) -> AccessPolicy | None:
        return next((p for p in self.access_policies if p.object_id.lower() == object_id.lower()), None)


@dataclass
class Blob:
    """A block blob: its bytes, content type and creation time."""

    name: str
    content: bytes = field(repr=False)
    content_type: str = "application/octet-stream"
    created: int = _STAMP

    @property
    def md5(self) -> str:
        return base64.b64encode(hashlib.md5(self.content, usedforsecurity=False).digest()).decode()

    @property
    def etag(self) -> str:
        return _etag(f"{self.name}|{self.created}|{self.md5}")


@dataclass
class Container:
    """A blob container and its blobs (name → blob)."""

    name: str
    blobs: dict[str, Blob] = field(default_factory=dict)
    created: int = _STAMP

    @property
    def etag(self) -> str:
        return _etag(f"container|{self.name}|{self.created}")


@dataclass
class StorageAccount:
    """A storage account with its blob containers."""

    subscription_id: str
    resource_group: str
    name: str
    location: str = "westeurope"
    containers: dict[str, Container] = field(default_factory=dict)

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Storage/storageAccounts/{self.name}"
        )

    def container_scope(self, container: str) -> str:
        """The RBAC scope of a container (where a container-level role assignment is made)."""
        return f"{self.resource_id}/blobServices/default/containers/{container}"


def _etag(seed: str) -> str:
    """``0x8D…`` plus 13 hex digits, the shape of Blob storage's ETags, stable for the same ``seed``."""
    return "0x8D" + hashlib.sha256(seed.encode()).hexdigest()[:13].upper()


Reason = Literal["rbac", "access-policy", "propagating"]


@dataclass(frozen=True)
class Denial:
    """Why a data-plane request is refused: the missing RBAC action, or access-policy permission."""

    reason: Reason
    action: str  # the RBAC (data) action, or the access-policy permission ("get", "list")
    scope: str


@dataclass
class DataPlane:
    """The world's vaults and storage accounts, and how fresh data-role assignments propagate."""

    vaults: list[KeyVault] = field(default_factory=list)
    accounts: list[StorageAccount] = field(default_factory=list)
    #: Data-plane decisions a role assignment made after set-up is still not seen by (None: seen at once).
    propagation_n: int | None = None
    #: IDs of the role assignments in effect from the start (None: every assignment is).
    settled: set[str] | None = None
    #: How many decisions each fresh assignment has been ignored by so far.
    seen: dict[str, int] = field(default_factory=dict)

    def vault(self, name: str) -> KeyVault | None:
        return next((v for v in self.vaults if v.name.lower() == name.lower()), None)

    def account(self, name: str) -> StorageAccount | None:
        return next((a for a in self.accounts if a.name.lower() == name.lower()), None)

    def unsettle(self, world: Any, principal_ids: set[str], role_names: set[str]) -> None:
        """Make each assignment of ``role_names`` to ``principal_ids`` "just granted" (not yet propagated)."""
        lowered = {p.lower() for p in principal_ids}
        self.settled = {
            a.id
            for a in world.role_assignments
            if not (a.principal_id.lower() in lowered and a.role in role_names)
        }

    def to_dict(self) -> dict[str, Any]:
        """The ``data_plane`` block of ``World.to_dict()``: secret values are left out (never shown)."""
        return {
            "key_vaults": [
                {
                    "name": v.name,
                    "resource_group": v.resource_group,
                    "subscription_id": v.subscription_id,
                    "location": v.location,
                    "enable_rbac_authorization": v.rbac,
                    "resource_id": v.resource_id,
                    "access_policies": [
                        {"object_id": p.object_id, "secrets": list(p.secrets)} for p in v.access_policies
                    ],
                    "secrets": [
                        {
                            "name": name,
                            "versions": [
                                {
                                    "version": s.version,
                                    "created": s.created,
                                    "enabled": s.enabled,
                                    "content_type": s.content_type,
                                }
                                for s in versions
                            ],
                        }
                        for name, versions in v.secrets.items()
                    ],
                }
                for v in self.vaults
            ],
            "storage_accounts": [
                {
                    "name": a.name,
                    "resource_group": a.resource_group,
                    "subscription_id": a.subscription_id,
                    "location": a.location,
                    "resource_id": a.resource_id,
                    "containers": [
                        {
                            "name": c.name,
                            "blobs": [
                                {"name": b.name, "content_type": b.content_type, "size": len(b.content)}
                                for b in c.blobs.values()
                            ],
                        }
                        for c in a.containers.values()
                    ],
                }
                for a in self.accounts
            ],
        }


# ------------------------------------------------------------------------------------------- decisions
def _effective_roles(world: Any, dp: DataPlane, principal_id: str, scope: str) -> tuple[list[Any], list[Any]]:
    """(settled, fresh) role assignments of the principal at ``scope`` or above it."""
    settled, fresh = [], []
    for a in world.assignments_for(principal_id):
        if not scope_within(scope, a.scope):
            continue
        if dp.propagation_n is None or dp.settled is None or a.id in dp.settled:
            settled.append(a)
        else:
            fresh.append(a)
    return settled, fresh


def _rbac(world: Any, principal_id: str, action: str, scope: str, *, data: bool) -> Denial | None:
    """None when RBAC allows ``action`` at ``scope``; a fresh assignment counts once it has propagated."""
    dp: DataPlane = world.data_plane
    with world.lock:
        settled, fresh = _effective_roles(world, dp, principal_id, scope)
        if any(a.definition.allows(action, data=data) for a in settled):
            return None
        granting = [a for a in fresh if a.definition.allows(action, data=data)]
        if not granting:
            return Denial("rbac", action, scope)
        for a in granting:
            if dp.seen.get(a.id, 0) >= (dp.propagation_n or 0):
                assert dp.settled is not None
                dp.settled.add(a.id)
                return None
        for a in granting:
            dp.seen[a.id] = dp.seen.get(a.id, 0) + 1
        return Denial("propagating", action, scope)


def secret_decision(
    world: Any, vault: KeyVault, principal_id: str, permission: str, secret: str | None
) -> Denial | None:
    """May ``principal_id`` ``get`` a secret's value or ``list`` the vault's secrets? None = yes."""
    if not vault.rbac:
        policy = vault.policy_for(principal_id)
        if policy is not None and policy.grants(permission):
            return None
        return Denial("access-policy", permission, vault.resource_id)
    action = KV_GET_SECRET if permission == "get" else KV_LIST_SECRETS
    scope = vault.resource_id + (f"/secrets/{secret}" if secret else "")
    return _rbac(world, principal_id, action, scope, data=True)


def blob_decision(
    world: Any, account: StorageAccount, principal_id: str, container: str | None, *, data: bool
) -> Denial | None:
    """May the principal list containers / read a container's properties (``data`` False) or list and
    read its blobs (``data`` True)? None = yes."""
    scope = account.container_scope(container) if container else account.resource_id
    action = STORAGE_BLOB_READ if data else STORAGE_CONTAINER_READ
    return _rbac(world, principal_id, action, scope, data=data)


# ------------------------------------------------------------------------------------------- parsing
def _version_id(vault: str, secret: str, index: int) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"kv:{vault}:{secret}:{index}".lower()).hex


def _secret_versions(vault: str, s: dict[str, Any]) -> list[SecretVersion]:
    name = str(s["name"])
    raw = s.get("versions")
    if raw is None:
        raw = [{"value": s.get("value"), "content_type": s.get("content_type")}]
    if not isinstance(raw, list) or not raw:
        raise InputError("world.data_plane.key_vaults.secrets.versions", "must be a non-empty list", raw)
    out = []
    for i, v in enumerate(raw):
        if not isinstance(v, dict):
            raise InputError("world.data_plane.key_vaults.secrets.versions", "each version is a mapping", v)
        version = str(v.get("version") or _version_id(vault, name, i))
        # A world written by to_dict() has no values (they are never shown): a stand-in is derived.
        value = v.get("value")
        if value is None:
            value = "emulated-" + uuid.uuid5(uuid.NAMESPACE_URL, f"value:{vault}:{name}:{version}").hex
        out.append(
            SecretVersion(
                version,
                str(value),
                int(v.get("created") or _STAMP + 86400 * i),
                bool(v.get("enabled", True)),
                None if v.get("content_type") is None else str(v["content_type"]),
            )
        )
    return out


def _vault(d: dict[str, Any], default_sub: str) -> KeyVault:
    name = str(d["name"])
    policies = []
    for p in d.get("access_policies") or []:
        perms = tuple(str(x).lower() for x in p.get("secrets") or ())
        bad = [x for x in perms if x not in SECRET_PERMISSIONS]
        if bad:
            raise InputError(
                "world.data_plane.key_vaults.access_policies.secrets",
                f"unknown permission {bad[0]!r} (allowed: {', '.join(SECRET_PERMISSIONS)})",
                bad[0],
            )
        policies.append(AccessPolicy(str(p["object_id"]), perms, str(p.get("tenant_id") or "")))
    secrets = {str(s["name"]): _secret_versions(name, s) for s in d.get("secrets") or []}
    return KeyVault(
        str(d.get("subscription_id") or default_sub),
        str(d["resource_group"]),
        name,
        str(d.get("location", "westeurope")),
        bool(d.get("enable_rbac_authorization", True)),
        policies,
        secrets,
    )


def _account(d: dict[str, Any], default_sub: str) -> StorageAccount:
    containers = {}
    for c in d.get("containers") or []:
        blobs = {}
        for b in c.get("blobs") or []:
            content = b.get("content", "")
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            if "size" in b and "content" not in b:  # from to_dict(): sizes only
                data = b"\0" * int(b["size"])
            blobs[str(b["name"])] = Blob(str(b["name"]), data, str(b.get("content_type") or "text/plain"))
        containers[str(c["name"])] = Container(str(c["name"]), blobs)
    return StorageAccount(
        str(d.get("subscription_id") or default_sub),
        str(d["resource_group"]),
        str(d["name"]),
        str(d.get("location", "westeurope")),
        containers,
    )


def parse_data_plane(data: dict[str, Any], default_sub: str) -> DataPlane:
    """The world file's ``data_plane`` block (``key_vaults``, ``storage_accounts``); absent = empty."""
    block = data.get("data_plane") or {}
    if not isinstance(block, dict):
        raise InputError("world.data_plane", "must be a mapping with key_vaults and storage_accounts", block)
    vaults = [_vault(v, default_sub) for v in block.get("key_vaults") or []]
    if len(vaults) > 1:
        raise InputError(
            "world.data_plane.key_vaults",
            "the emulator serves one key vault (its listener is the vault's host)",
            [v.name for v in vaults],
        )
    accounts = [_account(a, default_sub) for a in block.get("storage_accounts") or []]
    return DataPlane(vaults, accounts)
