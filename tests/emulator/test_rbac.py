"""Azure RBAC by actions (mi_helpers/emulator/rbac.py): wildcards, not-actions, data actions, inheritance."""

from __future__ import annotations

import pytest
from support.world import RG_SCOPE, SUB_SCOPE, SYS_PRINCIPAL, VM_RESOURCE_ID

from mi_helpers.constants import Roles
from mi_helpers.emulator.rbac import BUILTIN_ROLE_DEFINITIONS, action_matches, find_role
from mi_helpers.emulator.world import World


@pytest.mark.parametrize(
    ("pattern", "action", "matches"),
    [
        ("*/read", "Microsoft.Compute/virtualMachines/read", True),
        ("*/read", "Microsoft.Compute/virtualMachines/write", False),
        ("*", "Microsoft.Authorization/roleAssignments/write", True),
        (
            "Microsoft.Authorization/*/Write",
            "microsoft.authorization/roleassignments/write",
            True,
        ),  # any case
        ("Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/read", False),
        ("Microsoft.Compute/virtualMachines/*", "Microsoft.Compute/virtualMachines/extensions/delete", True),
        ("Microsoft.Compute/virtualMachines/*", "Microsoft.Compute/disks/read", False),
        (
            "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
            "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
            False,
        ),
        (
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Resources/subscriptions/resourcegroups/read",
            True,
        ),
        ("Microsoft.Storage/*.read", "Microsoft.Storage/x/read", False),  # '.' is not a wildcard
    ],
)
def test_actions_match_as_azure_wildcards(pattern: str, action: str, matches: bool) -> None:
    assert action_matches(pattern, action) is matches


def test_contributor_may_do_everything_but_assign_roles() -> None:
    contributor = find_role("Contributor")
    assert contributor is not None and contributor.id == Roles.CONTRIBUTOR
    assert contributor.allows("Microsoft.Compute/virtualMachines/write")
    assert contributor.allows("Microsoft.Authorization/roleAssignments/read")
    assert not contributor.allows("Microsoft.Authorization/roleAssignments/write")
    assert not contributor.allows("Microsoft.Authorization/roleAssignments/delete")
    assert not contributor.allows("Microsoft.Authorization/elevateAccess/Action")


def test_data_actions_are_apart_from_actions() -> None:
    secrets_user = find_role("key vault secrets user")
    assert secrets_user is not None
    assert secrets_user.allows("Microsoft.KeyVault/vaults/secrets/getSecret/action", data=True)
    assert not secrets_user.allows("Microsoft.KeyVault/vaults/secrets/getSecret/action")
    assert not secrets_user.allows("Microsoft.KeyVault/vaults/read")
    reader = find_role(Roles.READER)
    assert reader is not None and reader.allows("Microsoft.KeyVault/vaults/read")
    assert not reader.allows("Microsoft.KeyVault/vaults/secrets/getSecret/action", data=True)
    blob = find_role("Storage Blob Data Reader")
    assert blob is not None
    assert blob.allows("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", data=True)
    assert not blob.allows("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", data=True)


def test_every_builtin_role_is_found_by_name_and_id() -> None:
    for role in BUILTIN_ROLE_DEFINITIONS:
        assert find_role(role.name) is role and find_role(role.id.upper()) is role
    assert {r.name: r.id for r in BUILTIN_ROLE_DEFINITIONS if r.name in Roles.BY_NAME} == {
        name: rid for name, rid in Roles.BY_NAME.items() if find_role(name) is not None
    }


def test_roles_apply_to_their_scope_and_below(world: World) -> None:
    world.add_role_assignment(SYS_PRINCIPAL, "Contributor", VM_RESOURCE_ID)
    assert world.allowed(SYS_PRINCIPAL, "Microsoft.Compute/virtualMachines/write", VM_RESOURCE_ID)
    assert world.allowed(
        SYS_PRINCIPAL, "Microsoft.Compute/virtualMachines/write", VM_RESOURCE_ID + "/extensions/x"
    )
    assert not world.allowed(SYS_PRINCIPAL, "Microsoft.Compute/virtualMachines/write", RG_SCOPE)
    assert world.allowed_within(SYS_PRINCIPAL, "Microsoft.Compute/virtualMachines/write", SUB_SCOPE)
    assert world.allowed(SYS_PRINCIPAL, "Microsoft.Storage/storageAccounts/read", RG_SCOPE)  # the Reader


@pytest.fixture
def world() -> World:
    return World.default()
