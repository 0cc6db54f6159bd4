"""WorldView: the emulator's world JSON read as the portal shows it (the default world, and odd worlds)."""

from __future__ import annotations

from typing import Any

from support.world import (
    SYS_PRINCIPAL,
    UAMI_DEPLOY_CLIENT,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    UAMI_READER_RESOURCE_ID,
    VM,
)

from mi_helpers.world_view import IDENTITY_COLUMNS, WorldView


def test_the_default_world(emu: Any) -> None:
    world = WorldView(emu.world_dict())
    assert world.host is not None and world.host["name"] == VM
    rows = world.identity_rows()
    assert [r["kind"] for r in rows] == ["system-assigned", "user-assigned"]
    assert rows[0]["principal_id"] == SYS_PRINCIPAL and rows[0]["name"] == VM
    assert rows[1]["client_id"] == UAMI_READER_CLIENT and rows[1]["resource_id"] == UAMI_READER_RESOURCE_ID
    assert all(set(r) == set(IDENTITY_COLUMNS) for r in rows)
    assert world.principal(None) == SYS_PRINCIPAL
    assert world.principal(UAMI_READER_CLIENT) == UAMI_READER_PRINCIPAL
    assert world.identity_attached(None) is True
    assert world.identity_attached(UAMI_READER_CLIENT) is True
    assert world.identity_attached(UAMI_DEPLOY_CLIENT) is False  # exists, not on this VM
    assert world.identity_attached("00000000-0000-4000-8000-000000000000") is False
    assert world.resource_group_scope.endswith("/resourceGroups/rg-mi-tutorial")


def test_no_system_identity_and_one_uami() -> None:
    uami = {"name": "u", "principal_id": "p", "client_id": "c", "resource_id": "/x/u"}
    world = WorldView(
        {
            "host_vm": {"name": "vm"},
            "virtual_machines": [
                {"name": "vm", "system_identity": {"enabled": False}, "user_assigned": ["/X/U"]}
            ],
            "user_assigned_identities": [uami],
        }
    )
    assert world.identity_attached(None) is True  # IMDS answers with the only UAMI
    assert world.principal(None) == "p"
    assert [r["kind"] for r in world.identity_rows()] == ["user-assigned"]


def test_a_world_without_a_host_is_unknown_not_an_error() -> None:
    world = WorldView({})
    assert world.host is None
    assert world.identity_attached(None) is None
    assert world.identity_rows() == [] and world.attached_user_assigned() == []
    assert world.principal(None) is None and world.role_assignments == []
