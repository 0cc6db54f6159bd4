"""The emulator's world as a person at the portal reads it: the host VM, its identities, its role assignments.

``EmulatorControl.world_dict()`` returns the live world as JSON (the emulator's own description). The
helpers read it where a real VM would need the portal: the checklist (is the requested identity attached?),
notebook 04 (the VM's Identity page when ARM cannot be asked) and the error lab (whom the program signs in
as, which role to grant). :class:`WorldView` is the one reader of that shape; a world without the expected
parts reads as "unknown" (None or empty), never as an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["IDENTITY_COLUMNS", "WorldView"]

#: The columns of an identity row (as ``mi.vm_identity()`` returns them).
IDENTITY_COLUMNS = ("kind", "name", "principal_id", "client_id", "resource_id")


class WorldView:
    """Read-only answers about the host VM of an emulator world (``world_dict()``)."""

    def __init__(self, world: Mapping[str, Any]) -> None:
        self.data = world
        name = (world.get("host_vm") or {}).get("name")
        vms = world.get("virtual_machines") or []
        self.host: dict[str, Any] | None = next((dict(v) for v in vms if v.get("name") == name), None)

    @property
    def user_assigned(self) -> list[dict[str, Any]]:
        """Every user-assigned identity of the world (attached or not), in the world's order."""
        return [dict(u) for u in self.data.get("user_assigned_identities") or []]

    @property
    def role_assignments(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.data.get("role_assignments") or []]

    def _system_identity(self) -> dict[str, Any] | None:
        si = (self.host or {}).get("system_identity")
        return dict(si) if si and si.get("enabled") else None

    def attached_user_assigned(self) -> list[dict[str, Any]]:
        """The user-assigned identities attached to the host VM, in the world's order."""
        attached = {str(rid).lower() for rid in (self.host or {}).get("user_assigned") or []}
        return [u for u in self.user_assigned if str(u.get("resource_id", "")).lower() in attached]

    def identity_rows(self) -> list[dict[str, Any]]:
        """The host VM's Identity page: a system-assigned row (when enabled), one row per attached UAMI."""
        rows = []
        si = self._system_identity()
        if self.host is not None and si is not None:
            rows.append(
                {
                    "kind": "system-assigned",
                    "name": self.host["name"],
                    "principal_id": si["principal_id"],
                    "client_id": "",
                    "resource_id": self.host["resource_id"],
                }
            )
        for uami in self.attached_user_assigned():
            rows.append({"kind": "user-assigned", **{k: uami[k] for k in IDENTITY_COLUMNS[1:]}})
        return rows

    def identity_attached(self, client_id: str | None) -> bool | None:
        """Is the identity a request asks for (``client_id``, or none: the default) on the host VM?

        Without a selector IMDS answers for the system identity, or for the only user-assigned one. None
        when the world has no host VM (nothing is known).
        """
        if self.host is None:
            return None
        if client_id is None:
            return self._system_identity() is not None or len(self.host.get("user_assigned") or []) == 1
        attached = {str(u.get("resource_id", "")).lower() for u in self.attached_user_assigned()}
        for uami in self.user_assigned:
            if str(uami.get("client_id", "")).lower() == client_id.lower():
                return str(uami.get("resource_id", "")).lower() in attached
        return False

    def principal(self, client_id: str | None) -> str | None:
        """The principal a program signs in as: the UAMI with ``client_id``; else the system identity, or
        the first attached UAMI when the VM has no system identity."""
        if client_id:
            for uami in self.user_assigned:
                if str(uami.get("client_id", "")).lower() == client_id.lower():
                    return str(uami["principal_id"])
            return None
        si = self._system_identity()
        if si is not None:
            return str(si["principal_id"])
        attached = self.attached_user_assigned()
        return str(attached[0]["principal_id"]) if attached else None

    @property
    def resource_group_scope(self) -> str:
        """``/subscriptions/<sub>/resourceGroups/<rg>`` of the host VM."""
        host = self.host or {}
        return f"/subscriptions/{host.get('subscription_id')}/resourceGroups/{host.get('resource_group')}"
