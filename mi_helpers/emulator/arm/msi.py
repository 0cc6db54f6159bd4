"""Microsoft.ManagedIdentity: user-assigned identities (client ID, principal ID, tenant)."""

from __future__ import annotations

from typing import Any

from mi_helpers.emulator.arm.call import Call
from mi_helpers.emulator.arm.kinds import ResourceKind, routes
from mi_helpers.emulator.world import UserAssignedIdentity

__all__ = ["ROUTES", "USER_ASSIGNED_IDENTITIES"]


def _summary(call: Call, u: UserAssignedIdentity) -> dict[str, Any]:
    return {
        "id": u.resource_id,
        "name": u.name,
        "type": USER_ASSIGNED_IDENTITIES.type,
        "location": u.location,
        "tags": dict(u.tags),
    }


def _uami_json(call: Call, u: UserAssignedIdentity) -> dict[str, Any]:
    return {
        **_summary(call, u),
        "properties": {
            "isolationScope": "None",
            "tenantId": call.world.tenant.id,
            "principalId": u.principal_id,
            "clientId": u.client_id,
        },
    }


USER_ASSIGNED_IDENTITIES = ResourceKind(
    "Microsoft.ManagedIdentity/userAssignedIdentities", lambda w: w.identities, _uami_json, _summary
)
ROUTES = routes(USER_ASSIGNED_IDENTITIES)
