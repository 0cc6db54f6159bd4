"""Microsoft.Resources writes: create or update a resource group (``PUT``: 201 new, 200 existing).

``az group create -n <rg> -l <location>`` ``PUT``s ``{"location"}`` (plus ``tags``) to
``/subscriptions/<sub>/resourcegroups/<rg>``; RBAC checks
``Microsoft.Resources/subscriptions/resourcegroups/write`` (ARM spells its own types in lower case in
the 403). An existing group keeps its location: another one is 400 ``InvalidResourceGroupLocation``
(docs/protocol.md#arm-writes).
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from mi_helpers.emulator.arm.apiversions import RESOURCES
from mi_helpers.emulator.arm.bodies import json_body, location_of, tags_of
from mi_helpers.emulator.arm.call import Call, arm_json
from mi_helpers.emulator.errors import ArmError

__all__ = ["WRITE_ROUTES"]

ACTION = "Microsoft.Resources/subscriptions/resourcegroups/write"


def _put(call: Call, sub: str, rg: str) -> Response:
    call.check_api_version(RESOURCES)
    sid = call.subscription(sub)
    call.authorize("/" + "/".join(p for p in call.request.path.split("/") if p), ACTION)
    body = json_body(call.request)
    existing = call.world.resource_group(sid, rg)
    location = location_of(body, required=existing is None)
    if existing is not None and location is not None and location != existing.location.lower():
        raise ArmError(
            400,
            "InvalidResourceGroupLocation",
            f"Invalid resource group location '{location}'. The Resource group already exists in location "
            f"'{existing.location}'.",
        )
    group, created = call.world.put_resource_group(sid, rg, location or "", tags_of(body))
    reply = {
        "id": group.resource_id,
        "name": group.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": group.location,
        "tags": dict(group.tags),
        "properties": {"provisioningState": "Succeeded"},
    }
    return arm_json(reply, 201 if created else 200)


WRITE_ROUTES: list[tuple[str, Any, tuple[str, ...]]] = [
    ("/subscriptions/<sub>/resourcegroups/<rg>", _put, ("PUT",))
]
