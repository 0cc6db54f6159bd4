"""The world's rules without any HTTP: identity selection, RBAC scopes, fixes, the file layout."""

from __future__ import annotations

import json

import pytest
from support.world import (
    RG,
    RG_SCOPE,
    SUB,
    SUB_SCOPE,
    SYS_CLIENT,
    SYS_PRINCIPAL,
    TENANT,
    UAMI_DEPLOY,
    UAMI_DEPLOY_CLIENT,
    UAMI_DEPLOY_PRINCIPAL,
    UAMI_READER,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    VM,
    VM_RESOURCE_ID,
    uami_resource_id,
)

from mi_helpers.constants import Roles
from mi_helpers.emulator.model import BUILTIN_ROLES, IdentitySelectionError, scope_within
from mi_helpers.emulator.world import World
from mi_helpers.validate import InputError

KEY_HEADER = "X-Emulator-Key"


@pytest.fixture
def world() -> World:
    return World.default()


def test_selection_prefers_the_system_identity_then_a_single_user_assigned_one(world: World) -> None:
    assert world.select_identity().principal_id == SYS_PRINCIPAL
    world.disable_system_identity()
    assert world.select_identity().client_id == UAMI_READER_CLIENT
    world.attach_user_identity(name=UAMI_DEPLOY)
    with pytest.raises(IdentitySelectionError) as info:
        world.select_identity()
    assert info.value.reason == "multiple"
    assert (
        world.select_identity("client_id", UAMI_DEPLOY_CLIENT.upper()).principal_id == UAMI_DEPLOY_PRINCIPAL
    )
    rid = uami_resource_id(UAMI_DEPLOY).replace("resourceGroups", "resourcegroups")
    assert world.select_identity("msi_res_id", rid).name == UAMI_DEPLOY
    with pytest.raises(IdentitySelectionError):
        world.select_identity("client_id", UAMI_READER_PRINCIPAL)  # a principal id is not a client id


def test_the_token_form_of_resource_ids_is_lower_case_resourcegroups(world: World) -> None:
    system = world.select_identity()
    assert system.mirid.lower() == VM_RESOURCE_ID.lower() and "/resourcegroups/" in system.mirid
    assert system.client_id == SYS_CLIENT and system.tenant_id == TENANT


VM_READ = "Microsoft.Compute/virtualMachines/read"
VM_WRITE = "Microsoft.Compute/virtualMachines/write"


def test_rbac_covers_a_scope_and_everything_below_it(world: World) -> None:
    assert world.allowed(SYS_PRINCIPAL, VM_READ, VM_RESOURCE_ID)
    assert world.allowed(SYS_PRINCIPAL, VM_READ, RG_SCOPE.upper())  # ARM compares IDs case-insensitively
    assert not world.allowed(SYS_PRINCIPAL, VM_READ, SUB_SCOPE)
    assert world.allowed_within(SYS_PRINCIPAL, VM_READ, SUB_SCOPE)  # something inside it is readable
    assert world.has_access_in(SYS_PRINCIPAL, SUB_SCOPE)
    assert not world.allowed(SYS_PRINCIPAL, VM_WRITE, VM_RESOURCE_ID)  # Reader: */read only
    assert scope_within(f"{RG_SCOPE}/", RG_SCOPE) and not scope_within(RG_SCOPE + "x", RG_SCOPE)
    assert scope_within("/anything", "/")


def test_role_fixes_and_their_validation(world: World) -> None:
    assert world.add_role_assignment(SYS_PRINCIPAL, "owner", SUB_SCOPE).startswith("granted Owner")
    assert "already holds" in world.add_role_assignment(SYS_PRINCIPAL, Roles.OWNER, SUB_SCOPE + "/")
    assert world.allowed(SYS_PRINCIPAL, VM_WRITE, SUB_SCOPE)
    assert world.remove_role_assignment(SYS_PRINCIPAL, role="Owner") == "removed 1 role assignment(s)"
    with pytest.raises(InputError) as info:
        world.add_role_assignment(SYS_PRINCIPAL, "Overlord")
    assert info.value.field == "role" and "Reader" in str(info.value)
    with pytest.raises(InputError) as info:
        world.add_role_assignment(SYS_PRINCIPAL, "Reader", "rg-mi-tutorial")
    assert info.value.field == "scope"


def test_builtin_roles_take_their_ids_from_the_constants(world: World) -> None:
    ids = {k: v.id for k, v in BUILTIN_ROLES.items()}
    for name, role_id in Roles.BY_NAME.items():
        if name in ids:
            assert ids[name] == role_id, name
    assert {"Reader", "Contributor", "Owner", "User Access Administrator"} <= set(ids)
    assert world.role_name(Roles.READER) == "Reader" and world.role_name("nope") is None


def test_the_file_layout_round_trips_and_copies_are_independent(world: World) -> None:
    doc = world.to_dict()
    assert World.from_dict(json.loads(json.dumps(doc))).to_dict() == doc
    copy = world.copy()
    copy.disable_system_identity()
    assert world.host_vm.has_system_identity and not copy.host_vm.has_system_identity


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.update(subscriptions=[]), "world.subscriptions"),
        (
            lambda d: d["virtual_machines"][0].update(user_assigned=["uami-nope"]),
            "world.virtual_machines.user_assigned",
        ),
        (lambda d: d["role_assignments"][0].update(role="Overlord"), "world.role_assignments.role"),
        (lambda d: d.update(host_vm="vm-nope"), "host_vm"),
        (lambda d: d["resource_groups"][0].update(tags=["x"]), "tags"),
    ],
    ids=["no-subscription", "unknown-identity", "unknown-role", "unknown-host", "bad-tags"],
)
def test_malformed_worlds_name_the_field(world: World, edit: object, field: str) -> None:
    doc = world.to_dict()
    edit(doc)
    with pytest.raises(InputError) as info:
        World.from_dict(doc)
    assert info.value.field == field, str(info.value)


def test_world_dict_documents_the_default_world(emu):
    """The documented default world: tenant, subscription, group, VM, every identity, the roles."""
    w = _admin_world(emu)
    assert w == emu.world_dict()
    assert w["tenant"]["id"] == TENANT
    assert [s["id"] for s in w["subscriptions"]] == [SUB]
    assert RG in [g["name"] for g in w["resource_groups"]]
    vm = next(v for v in w["virtual_machines"] if v["name"] == VM)
    assert vm["system_identity"]["principal_id"] == SYS_PRINCIPAL
    assert vm["system_identity"]["client_id"] == SYS_CLIENT
    uamis = {u["name"]: u for u in w["user_assigned_identities"]}
    for name, client, principal in (
        (UAMI_READER, UAMI_READER_CLIENT, UAMI_READER_PRINCIPAL),
        (UAMI_DEPLOY, UAMI_DEPLOY_CLIENT, UAMI_DEPLOY_PRINCIPAL),
    ):
        assert uamis[name]["client_id"] == client
        assert uamis[name]["principal_id"] == principal
        assert uamis[name]["resource_id"].lower() == uami_resource_id(name).lower()
    readers = {
        a["principal_id"]
        for a in w["role_assignments"]
        if a.get("role", a.get("role_name")) == "Reader" and a["scope"].lower() == RG_SCOPE.lower()
    }
    assert readers == {SYS_PRINCIPAL, UAMI_READER_PRINCIPAL, UAMI_DEPLOY_PRINCIPAL}


def _admin_world(emu) -> dict:
    from support.emulator import plain_session

    with plain_session() as s:
        return s.get(emu.admin_url + "/world", headers={KEY_HEADER: emu.admin_key}, timeout=5).json()
