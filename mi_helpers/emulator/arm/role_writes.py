"""Microsoft.Authorization writes: create (``PUT``) and delete role assignments at any scope.

``az role assignment create --role Reader --scope S …`` resolves the role by listing role definitions at
``S`` with ``$filter=roleName eq 'Reader'``, then ``PUT``s ``S/providers/Microsoft.Authorization/
roleAssignments/<new GUID>`` with ``{"properties": {"principalId", "principalType"?, "roleDefinitionId"}}``
(docs/protocol.md#arm-writes). The rules, in ARM's order:

* ``Microsoft.Authorization/roleAssignments/write`` (``…/delete``) over the assignment's path, or 403
  ``AuthorizationFailed`` with ARM's "or an ABAC condition not fulfilled" clause;
* the name is a GUID, the role definition exists (400 ``RoleDefinitionDoesNotExist``);
* no ``principalType``: the principal must exist in the directory (400 ``PrincipalNotFound``); with one,
  ARM skips that lookup (as its own error text says), so a typo goes through, while a known principal of
  another type is 400 ``UnmatchedPrincipalType`` (the Python SDK's default ``principal_type`` is ``User``);
* one assignment per (scope, principal, role): 409 ``RoleAssignmentExists`` naming the existing one; the same
  name with other values is 400 ``RoleAssignmentUpdateNotPermitted``; the same name and values again is 201.

A new assignment applies at once, except in the ``role-propagating`` scenario, where its principal is
refused for the scenario's window (:func:`~mi_helpers.emulator.scenarios.new_assignment_faults`).
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from mi_helpers.emulator.arm.apiversions import AUTHORIZATION_ROLE_ASSIGNMENTS
from mi_helpers.emulator.arm.authorization import _ra_json as assignment_json  # the GET body, shared
from mi_helpers.emulator.arm.bodies import GUID, json_body, object_at, string_at
from mi_helpers.emulator.arm.call import Call, arm_json
from mi_helpers.emulator.errors import (
    ArmError,
    arm_invalid_request_content,
    arm_principal_not_found,
    arm_role_assignment_exists,
    arm_role_assignment_update_not_permitted,
    arm_role_definition_not_found,
    arm_unmatched_principal_type,
)
from mi_helpers.emulator.model import RoleAssignment
from mi_helpers.emulator.principals import by_object_id
from mi_helpers.emulator.rbac import RoleDefinition, find_role

__all__ = ["WRITE_ROUTES"]

_PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")


def _spelled_scope(call: Call) -> tuple[str, str]:
    """(the scope as the caller spelled it, the assignment's full path)."""
    parts = [p for p in call.request.path.split("/") if p]
    lowered = [p.lower() for p in parts]
    at = len(lowered) - 1 - lowered[::-1].index("providers")
    return "/" + "/".join(parts[:at]), "/" + "/".join(parts)


def _checked(call: Call, scope: str, verb: str) -> tuple[str, str]:
    call.check_api_version(AUTHORIZATION_ROLE_ASSIGNMENTS)
    spelled, path = _spelled_scope(call)
    parts = [p for p in spelled.split("/") if p]
    call.subscription(parts[1])
    call.authorize(path, f"Microsoft.Authorization/roleAssignments/{verb}")
    if len(parts) >= 4 and parts[2].lower() == "resourcegroups":
        call.resource_group(parts[1], parts[3])
    return spelled, path


def _role_of(properties: dict[str, Any]) -> RoleDefinition:
    ref = string_at(properties, "roleDefinitionId", "properties.roleDefinitionId")
    if not ref:
        raise arm_invalid_request_content(
            "Required property 'roleDefinitionId' not found in JSON. Path 'properties'."
        )
    guid = ref.rstrip("/").rsplit("/", 1)[-1]
    role = find_role(guid) if GUID.match(guid) else None
    if role is None:
        raise arm_role_definition_not_found(guid)
    return role


def _principal_of(call: Call, properties: dict[str, Any]) -> tuple[str, str]:
    """(principal ID, principal type) of the body; the directory is asked when no type is given."""
    pid = string_at(properties, "principalId", "properties.principalId")
    if not pid or not GUID.match(pid.strip()):
        raise ArmError(
            400, "InvalidPrincipalId", "A valid principal ID must be provided for role assignment."
        )
    pid = pid.strip().lower()
    ptype = string_at(properties, "principalType", "properties.principalType")
    if ptype is not None:
        match = next((t for t in _PRINCIPAL_TYPES if t.lower() == ptype.strip().lower()), None)
        if match is None:
            raise arm_invalid_request_content(
                f"Error converting value \"{ptype[:40]}\" to type 'PrincipalType' (allowed: "
                f"{', '.join(_PRINCIPAL_TYPES)}). Path 'properties.principalType'."
            )
        known = by_object_id(call.world, pid)
        if known is not None and match != "ServicePrincipal":
            raise arm_unmatched_principal_type(pid, "ServicePrincipal", match)
        return pid, match
    if by_object_id(call.world, pid) is None:
        raise arm_principal_not_found(pid, call.world.tenant.id)
    return pid, "ServicePrincipal"  # every principal of the emulated directory is a service principal


def _put(call: Call, scope: str, name: str) -> Response:
    spelled, _ = _checked(call, scope, "write")
    if not GUID.match(name):
        raise ArmError(
            400,
            "InvalidRoleAssignmentId",
            f"The role assignment ID '{name[:64]}' is not valid. The role assignment ID must be a GUID.",
        )
    properties = object_at(json_body(call.request), "properties", "properties")
    if properties is None:
        raise arm_invalid_request_content("Required property 'properties' not found in JSON. Path ''.")
    role = _role_of(properties)
    pid, ptype = _principal_of(call, properties)
    world = call.world
    with world.lock:
        named = world.role_assignment_named(spelled, name)
        if named is not None:
            if named.principal_id.lower() != pid or named.role != role.name:
                raise arm_role_assignment_update_not_permitted()
            return arm_json(assignment_json(call, named), 201)
        same = world.same_role_assignment(spelled, pid, role.name)
        if same is not None:
            raise arm_role_assignment_exists(same.id)
        created = RoleAssignment(pid, role.name, spelled, name.lower(), ptype, created_by=call.oid)
        world.put_role_assignment(created)
    call.backend.role_assignment_created(pid)
    return arm_json(assignment_json(call, created), 201)


def _delete(call: Call, scope: str, name: str) -> Response:
    spelled, _ = _checked(call, scope, "delete")
    removed = call.world.delete_role_assignment(spelled, name)
    if removed is None:
        return Response(status=204)
    return arm_json(assignment_json(call, removed))


_PATH = "/<path:scope>/providers/microsoft.authorization/roleassignments/<name>"
WRITE_ROUTES: list[tuple[str, Any, tuple[str, ...]]] = [
    (_PATH, _put, ("PUT",)),
    (_PATH, _delete, ("DELETE",)),
]
