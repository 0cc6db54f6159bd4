"""Azure RBAC as ARM evaluates it: role definitions made of actions, and a decision per action and scope.

A role definition lists ``actions``/``notActions`` (control plane: ``Microsoft.Compute/virtualMachines/read``,
``…/write``, ``…/assign/action``) and ``dataActions``/``notDataActions`` (data plane:
``Microsoft.KeyVault/vaults/secrets/getSecret/action``). One permission block allows an action when one of
its actions matches it and none of its not-actions does; a role allows what any of its blocks allows; a
principal may do what any of its role assignments at the scope or above it allows (assignments are
inherited downwards; there are no deny assignments here). ``*`` in an action is a wildcard for any run of
characters, ``/`` included, and names compare case-insensitively: ``*/read`` covers every read,
``Microsoft.Authorization/*/Write`` every write under Microsoft.Authorization
(docs/protocol.md#role-assignments-and-definitions; Learn "Understand Azure role definitions",
https://learn.microsoft.com/azure/role-based-access-control/role-definitions).

The definitions are the built-in roles of "Azure built-in roles" (Microsoft Learn), copied with their IDs,
descriptions and permission lists; the IDs already in :class:`mi_helpers.constants.Roles` come from there.
Nothing here knows HTTP: ARM's layer asks :func:`allowed` (through the world) and words the 403 itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from mi_helpers.constants import Roles

__all__ = [
    "BUILTIN_ROLE_DEFINITIONS",
    "Permission",
    "RoleDefinition",
    "action_matches",
    "find_role",
    "role_allows",
]


@lru_cache(maxsize=512)
def _pattern(action: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in action.split("*")), re.IGNORECASE)


def action_matches(pattern: str, action: str) -> bool:
    """Does a role's ``pattern`` (``*/read``, ``Microsoft.Compute/*``) cover ``action``? Case-insensitive."""
    return _pattern(pattern).fullmatch(action) is not None


@dataclass(frozen=True)
class Permission:
    """One permission block of a role definition (the ``permissions`` array of the ARM body)."""

    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()

    def allows(self, action: str, *, data: bool = False) -> bool:
        """Allowed by this block: matched by an (data) action and by no not-(data) action."""
        allow, deny = (self.data_actions, self.not_data_actions) if data else (self.actions, self.not_actions)
        return any(action_matches(a, action) for a in allow) and not any(
            action_matches(n, action) for n in deny
        )


@dataclass(frozen=True)
class RoleDefinition:
    """A role definition: its name (``roleName``), GUID, description and permission blocks."""

    name: str
    id: str
    description: str
    permissions: tuple[Permission, ...]
    role_type: str = "BuiltInRole"
    assignable_scopes: tuple[str, ...] = ("/",)
    #: ``createdOn``/``updatedOn`` as ARM reports them for the built-in definition.
    created_on: str = "2015-02-02T21:55:09.8806423Z"
    updated_on: str = "2021-11-11T20:13:47.8628684Z"

    def allows(self, action: str, *, data: bool = False) -> bool:
        return any(p.allows(action, data=data) for p in self.permissions)


def role_allows(definitions: Iterable[RoleDefinition], action: str, *, data: bool = False) -> bool:
    """True when any of ``definitions`` allows ``action``."""
    return any(d.allows(action, data=data) for d in definitions)


_KEY_VAULT_SECRETS_USER = Roles.KEY_VAULT_SECRETS_USER
_STORAGE_BLOB_DATA_READER = Roles.STORAGE_BLOB_DATA_READER
_RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"

#: The built-in roles the emulator knows, as "Azure built-in roles" (Microsoft Learn) lists them. Add a role
#: by copying its JSON from that page: every field here is a field of that JSON.
BUILTIN_ROLE_DEFINITIONS: tuple[RoleDefinition, ...] = (
    RoleDefinition(
        "Reader",
        Roles.READER,
        "View all resources, but does not allow you to make any changes.",
        (Permission(actions=("*/read",)),),
    ),
    RoleDefinition(
        "Contributor",
        Roles.CONTRIBUTOR,
        "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, "
        "manage assignments in Azure Blueprints, or share image galleries.",
        (
            Permission(
                actions=("*",),
                not_actions=(
                    "Microsoft.Authorization/*/Delete",
                    "Microsoft.Authorization/*/Write",
                    "Microsoft.Authorization/elevateAccess/Action",
                    "Microsoft.Blueprint/blueprintAssignments/write",
                    "Microsoft.Blueprint/blueprintAssignments/delete",
                    "Microsoft.Compute/galleries/share/action",
                    "Microsoft.Purview/consents/write",
                    "Microsoft.Purview/consents/delete",
                    "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
                    "Microsoft.Subscription/cancel/action",
                    "Microsoft.Subscription/enable/action",
                ),
            ),
        ),
    ),
    RoleDefinition(
        "Owner",
        Roles.OWNER,
        "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        (Permission(actions=("*",)),),
    ),
    RoleDefinition(
        "User Access Administrator",
        Roles.USER_ACCESS_ADMINISTRATOR,
        "Lets you manage user access to Azure resources.",
        (Permission(actions=("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*")),),
    ),
    RoleDefinition(
        "Role Based Access Control Administrator",
        _RBAC_ADMINISTRATOR,
        "Manage access to Azure resources by assigning roles using Azure RBAC. This role does not allow you "
        "to manage access using other ways, such as Azure Policy.",
        (
            Permission(
                actions=(
                    "Microsoft.Authorization/roleAssignments/write",
                    "Microsoft.Authorization/roleAssignments/delete",
                    "*/read",
                    "Microsoft.Support/*",
                )
            ),
        ),
    ),
    RoleDefinition(
        "Managed Identity Operator",
        Roles.MANAGED_IDENTITY_OPERATOR,
        "Read and Assign User Assigned Identity",
        (
            Permission(
                actions=(
                    "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
                    "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
                    "Microsoft.Authorization/*/read",
                    "Microsoft.Insights/alertRules/*",
                    "Microsoft.Resources/subscriptions/resourceGroups/read",
                    "Microsoft.Resources/deployments/*",
                    "Microsoft.Support/*",
                )
            ),
        ),
    ),
    RoleDefinition(
        "Key Vault Secrets User",
        _KEY_VAULT_SECRETS_USER,
        "Read secret contents. Only works for key vaults that use the 'Azure role-based access control' "
        "permission model.",
        (
            Permission(
                data_actions=(
                    "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                    "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                )
            ),
        ),
    ),
    RoleDefinition(
        "Storage Blob Data Reader",
        _STORAGE_BLOB_DATA_READER,
        "Allows for read access to Azure Storage blob containers and data",
        (
            Permission(
                actions=(
                    "Microsoft.Storage/storageAccounts/blobServices/containers/read",
                    "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
                ),
                data_actions=("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",),
            ),
        ),
    ),
)

# --- data-plane roles beyond the two above (Key Vault, Blob storage), copied from "Azure built-in roles"
# (Security: learn.microsoft.com/azure/role-based-access-control/built-in-roles/security; Storage:
# …/built-in-roles/storage). Owner and Contributor hold no dataActions: they cannot read a secret in an
# RBAC vault nor a blob's data.
_KEY_VAULT_CONTROL_READS = (
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Support/*",
    "Microsoft.KeyVault/checkNameAvailability/read",
    "Microsoft.KeyVault/deletedVaults/read",
    "Microsoft.KeyVault/locations/*/read",
    "Microsoft.KeyVault/vaults/*/read",
    "Microsoft.KeyVault/operations/read",
)
_RBAC_ONLY = "Only works for key vaults that use the 'Azure role-based access control' permission model."
_BLOBS = "Microsoft.Storage/storageAccounts/blobServices"
DATA_ROLE_DEFINITIONS: tuple[RoleDefinition, ...] = (
    RoleDefinition(
        "Key Vault Secrets Officer",
        Roles.KEY_VAULT_SECRETS_OFFICER,
        "Perform any action on the secrets of a key vault, except manage permissions. " + _RBAC_ONLY,
        (
            Permission(
                actions=_KEY_VAULT_CONTROL_READS, data_actions=("Microsoft.KeyVault/vaults/secrets/*",)
            ),
        ),
    ),
    RoleDefinition(
        "Key Vault Administrator",
        Roles.KEY_VAULT_ADMINISTRATOR,
        "Perform all data plane operations on a key vault and all objects in it, including certificates, "
        "keys, and secrets. Cannot manage key vault resources or manage role assignments. " + _RBAC_ONLY,
        (Permission(actions=_KEY_VAULT_CONTROL_READS, data_actions=("Microsoft.KeyVault/vaults/*",)),),
    ),
    RoleDefinition(
        "Key Vault Reader",
        Roles.KEY_VAULT_READER,
        "Read metadata of key vaults and its certificates, keys, and secrets. Cannot read sensitive values "
        "such as secret contents or key material. " + _RBAC_ONLY,
        (
            Permission(
                actions=_KEY_VAULT_CONTROL_READS,
                data_actions=(
                    "Microsoft.KeyVault/vaults/*/read",
                    "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                ),
            ),
        ),
    ),
    RoleDefinition(
        "Storage Blob Data Contributor",
        Roles.STORAGE_BLOB_DATA_CONTRIBUTOR,
        "Allows for read, write and delete access to Azure Storage blob containers and data",
        (
            Permission(
                actions=(
                    f"{_BLOBS}/containers/delete",
                    f"{_BLOBS}/containers/read",
                    f"{_BLOBS}/containers/write",
                    f"{_BLOBS}/generateUserDelegationKey/action",
                ),
                data_actions=(
                    f"{_BLOBS}/containers/blobs/delete",
                    f"{_BLOBS}/containers/blobs/read",
                    f"{_BLOBS}/containers/blobs/write",
                    f"{_BLOBS}/containers/blobs/move/action",
                    f"{_BLOBS}/containers/blobs/add/action",
                ),
            ),
        ),
    ),
    RoleDefinition(
        "Storage Blob Data Owner",
        Roles.STORAGE_BLOB_DATA_OWNER,
        "Allows for full access to Azure Storage blob containers and data, including assigning POSIX access "
        "control.",
        (
            Permission(
                actions=(f"{_BLOBS}/containers/*", f"{_BLOBS}/generateUserDelegationKey/action"),
                data_actions=(f"{_BLOBS}/containers/blobs/*",),
            ),
        ),
    ),
)
BUILTIN_ROLE_DEFINITIONS = (*BUILTIN_ROLE_DEFINITIONS, *DATA_ROLE_DEFINITIONS)

_BY_KEY: dict[str, RoleDefinition] = {}
for _role in BUILTIN_ROLE_DEFINITIONS:
    _BY_KEY[_role.name.lower()] = _role
    _BY_KEY[_role.id.lower()] = _role


def find_role(ref: str) -> RoleDefinition | None:
    """The built-in role named ``ref`` (its ``roleName`` or GUID, case-insensitive), or None."""
    return _BY_KEY.get(str(ref).strip().lower())
