"""Which principals a world's role assignments name but its directory no longer has (stale assignments).

Switching a VM's system-assigned identity off deletes its service principal; switching it on makes a new one.
Role assignments made for the old one stay and grant nothing: the portal lists them as "Identity not found",
``Get-AzRoleAssignment`` as ``ObjectType Unknown`` (docs/protocol.md#arm-writes).
:func:`deleted_principal_ids` finds them in a world description (``Emulator.world_dict()``, the admin API's
``/world``) so that ``diagnose`` can name ``stale-principal-assignment``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["deleted_principal_ids"]


def _existing(world: Mapping[str, Any]) -> set[str]:
    ids = {str(p.get("object_id", "")).lower() for p in world.get("service_principals") or []}
    ids |= {str(u.get("principal_id", "")).lower() for u in world.get("user_assigned_identities") or []}
    for vm in world.get("virtual_machines") or []:
        si = vm.get("system_identity") or {}
        if si.get("enabled"):
            ids.add(str(si.get("principal_id", "")).lower())
    return ids


def deleted_principal_ids(world: Mapping[str, Any]) -> tuple[str, ...]:
    """Principal IDs of the world's role assignments that no service principal of the world has."""
    existing = _existing(world)
    seen: dict[str, None] = {}
    for ra in world.get("role_assignments") or []:
        pid = str(ra.get("principal_id", ""))
        if pid and pid.lower() not in existing:
            seen.setdefault(pid, None)
    return tuple(seen)
