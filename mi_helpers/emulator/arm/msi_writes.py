"""Microsoft.ManagedIdentity writes: create (``PUT``: 201 new, 200 existing) and delete user-assigned
identities.

``az identity create -g <rg> -n <name>`` reads the group for its location, then ``PUT``s ``{"location"}``
(plus ``tags``). A new identity gets new client and principal IDs (a new service principal in the
directory); a ``PUT`` of an existing one keeps them and updates its tags. The reply is the identity as a
``GET`` shows it, ``resourcegroups`` in lower case (docs/protocol.md#arm-writes). A ``DELETE`` answers 200,
or 204 when there was nothing to delete; VMs keep a reference to a deleted identity, as on Azure.
"""

from __future__ import annotations

import re
from typing import Any

from werkzeug.wrappers import Response

from mi_helpers.emulator.arm.apiversions import MSI_USER_ASSIGNED_IDENTITIES
from mi_helpers.emulator.arm.bodies import json_body, location_of, tags_of
from mi_helpers.emulator.arm.call import Call, arm_json
from mi_helpers.emulator.arm.msi import USER_ASSIGNED_IDENTITIES
from mi_helpers.emulator.errors import ArmError

__all__ = ["WRITE_ROUTES"]

_TYPE = USER_ASSIGNED_IDENTITIES.type
#: Learn, "Naming rules and restrictions for Azure resources": 3-128 characters, alphanumerics, hyphens and
#: underscores, starting with a letter or number.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$")


def _scope(call: Call) -> str:
    return "/" + "/".join(p for p in call.request.path.split("/") if p)


def _checked(call: Call, sub: str, rg: str, verb: str) -> str:
    call.check_api_version(MSI_USER_ASSIGNED_IDENTITIES)
    call.subscription(sub)
    call.authorize(_scope(call), f"{_TYPE}/{verb}")
    return call.resource_group(sub, rg)


def _put(call: Call, sub: str, rg: str, name: str) -> Response:
    rg_name = _checked(call, sub, rg, "write")
    if not _NAME.match(name):
        raise ArmError(
            400,
            "InvalidResourceName",
            f"Resource name '{name[:140]}' is invalid. The name can be 3-128 characters long and contain "
            "only letters, numbers, hyphens and underscores, starting with a letter or number.",
        )
    body = json_body(call.request)
    existing = call.world.uami(sub, rg, name)
    location = location_of(body, required=existing is None)
    tags = tags_of(body)
    if existing is not None and location is not None and location != existing.location.lower():
        raise ArmError(
            400,
            "InvalidResourceLocation",
            f"The resource '{existing.name}' already exists in location '{existing.location}' in resource "
            f"group '{rg_name}'. A resource with the same name cannot be created in location '{location}'. "
            "Please select a new resource name.",
        )
    u, created = call.world.put_user_assigned_identity(sub, rg, name, location or "", tags)
    return arm_json(USER_ASSIGNED_IDENTITIES.render(call, u), 201 if created else 200)


def _delete(call: Call, sub: str, rg: str, name: str) -> Response:
    _checked(call, sub, rg, "delete")
    if call.world.delete_user_assigned_identity(sub, rg, name):
        return Response(status=200)
    return Response(status=204)


_PATH = "/subscriptions/<sub>/resourcegroups/<rg>/providers/microsoft.managedidentity/userassignedidentities/<name>"  # noqa: E501
WRITE_ROUTES: list[tuple[str, Any, tuple[str, ...]]] = [
    (_PATH, _put, ("PUT",)),
    (_PATH, _delete, ("DELETE",)),
]
