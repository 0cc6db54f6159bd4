"""Microsoft.ManagedIdentity: user-assigned identities (client ID, principal ID, tenant).

The provider spells its resource IDs with a lower-case ``resourcegroups`` segment, in GET, list and the
``Location`` of a create alike (Azure CLI test recordings; docs/protocol.md#resources-and-bodies), while ARM's
own ``/resources`` list keeps ``resourceGroups``: two spellings of one ID, which is why IDs must be compared
case-insensitively. ``properties.isolationScope`` exists from api-version 2024-11-30 on.
"""

from __future__ import annotations

from typing import Any

from mi_helpers.emulator.arm.apiversions import MSI_USER_ASSIGNED_IDENTITIES
from mi_helpers.emulator.arm.call import Call
from mi_helpers.emulator.arm.kinds import ResourceKind, routes
from mi_helpers.emulator.model import mirid  # the provider's spelling: lower-case "resourcegroups"
from mi_helpers.emulator.world import UserAssignedIdentity

__all__ = ["ROUTES", "USER_ASSIGNED_IDENTITIES"]

#: The first api-version whose body has ``properties.isolationScope`` (recorded at 2024-11-30, absent at
#: 2023-01-31).
ISOLATION_SCOPE_SINCE = "2024-11-30"


def _summary(call: Call, u: UserAssignedIdentity) -> dict[str, Any]:
    """The ``/resources`` entry (ARM's index: ``resourceGroups`` as the world spells it)."""
    return {
        "id": u.resource_id,
        "name": u.name,
        "type": USER_ASSIGNED_IDENTITIES.type,
        "location": u.location,
        "tags": dict(u.tags),
    }


def _uami_json(call: Call, u: UserAssignedIdentity) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    if call.request.args.get("api-version", "") >= ISOLATION_SCOPE_SINCE:
        properties["isolationScope"] = "None"
    properties.update(
        {"tenantId": call.world.tenant.id, "principalId": u.principal_id, "clientId": u.client_id}
    )
    return {
        "location": u.location,
        "tags": dict(u.tags),
        "id": mirid(u.resource_id),
        "name": u.name,
        "type": USER_ASSIGNED_IDENTITIES.type,
        "properties": properties,
    }


USER_ASSIGNED_IDENTITIES = ResourceKind(
    "Microsoft.ManagedIdentity/userAssignedIdentities",
    lambda w: w.identities,
    _uami_json,
    _summary,
    MSI_USER_ASSIGNED_IDENTITIES,
)
ROUTES = routes(USER_ASSIGNED_IDENTITIES)
