"""Microsoft.Compute writes: the VM's identity block (``PATCH``/``PUT``) and the operation a client polls.

``az vm identity assign/remove`` and the SDK's ``begin_update``/``begin_create_or_update`` send the VM's
``identity`` (docs/protocol.md#arm-writes):

* ``type`` is ``SystemAssigned``, ``UserAssigned``, ``SystemAssigned, UserAssigned`` (the CLI sends it
  without the space, the spec's enum has it; both are accepted, the reply always has the space) or ``None``;
* ``userAssignedIdentities`` maps resource IDs to ``{}`` (attach) or ``null`` (detach); the whole map
  ``null`` detaches them all; a type without ``UserAssigned`` detaches them all too;
* turning the system identity on creates a new service principal: a new ``principalId``
  (:meth:`World.set_vm_identity`).

The rules ARM applies first: ``Microsoft.Compute/virtualMachines/write`` on the VM (403
``AuthorizationFailed``), then ``Microsoft.ManagedIdentity/userAssignedIdentities/assign/action`` on every
identity the body links (403 ``LinkedAuthorizationFailed``). The reply is 200 with the VM in
``provisioningState: Updating`` and an ``Azure-AsyncOperation`` URL on Compute's operations path, whose
status is already ``Succeeded``: the CLI's and the SDK's pollers GET it once, then GET the VM (the final
state of a ``PATCH``/``PUT``). Other VM properties in a ``PUT`` are accepted and left as they are.
"""

from __future__ import annotations

import uuid
from typing import Any

from werkzeug.wrappers import Response

from mi_helpers.emulator.arm.apiversions import COMPUTE_VIRTUAL_MACHINES
from mi_helpers.emulator.arm.bodies import json_body, now_stamp, object_at, tags_of
from mi_helpers.emulator.arm.call import Call, Route, arm_json
from mi_helpers.emulator.arm.compute import VIRTUAL_MACHINES
from mi_helpers.emulator.errors import (
    ArmError,
    arm_identity_not_found,
    arm_invalid_parameter,
    arm_invalid_request_content,
    arm_linked_authorization_failed,
    arm_resource_not_found,
    arm_write_not_emulated,
)
from mi_helpers.emulator.model import mirid, norm_scope
from mi_helpers.emulator.world import VirtualMachine

__all__ = ["KEYWORDS", "READ_ROUTES", "WRITE_ROUTES"]

KEYWORDS = ("locations", "operations")
WRITE = "Microsoft.Compute/virtualMachines/write"
ASSIGN = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"
_TYPES = {"systemassigned": "SystemAssigned", "userassigned": "UserAssigned", "none": "None"}
_ABSENT: Any = object()


def _requested_scope(call: Call) -> str:
    """The request's path as the caller spelled it (ARM's texts quote that spelling)."""
    return "/" + "/".join(p for p in call.request.path.split("/") if p)


def _identity_kinds(ident: dict[str, Any]) -> set[str]:
    raw = ident.get("type")
    if raw is None:
        raise arm_invalid_parameter("Required parameter 'identity.type' is missing (null).", "identity.type")
    if not isinstance(raw, str):
        raise arm_invalid_request_content("Expected a string at path 'identity.type'. Path 'identity.type'.")
    kinds = {part.strip().lower() for part in raw.split(",")}
    if not kinds <= set(_TYPES) or ("none" in kinds and len(kinds) > 1):
        raise arm_invalid_request_content(
            f"Error converting value \"{raw[:64]}\" to type 'ResourceIdentityType' (allowed: SystemAssigned, "
            "UserAssigned, 'SystemAssigned, UserAssigned', None). Path 'identity.type'."
        )
    return kinds


def _user_changes(ident: dict[str, Any]) -> dict[str, bool] | None:
    """``{resource ID as given: attach?}`` of the body, None for ``userAssignedIdentities: null``."""
    if "userAssignedIdentities" not in ident:
        return {}
    raw = ident["userAssignedIdentities"]
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise arm_invalid_request_content(
            "Expected a JSON object at path 'identity.userAssignedIdentities'. "
            "Path 'identity.userAssignedIdentities'."
        )
    changes: dict[str, bool] = {}
    for rid, value in raw.items():
        if value is not None and not isinstance(value, dict):
            raise arm_invalid_request_content(
                f"Expected an object or null for '{rid[:200]}'. Path 'identity.userAssignedIdentities'."
            )
        if not rid.strip().lower().startswith("/subscriptions/"):
            raise arm_invalid_parameter(
                f"The user assigned identity '{rid[:200]}' is not a valid resource ID.",
                "identity.userAssignedIdentities",
            )
        changes[rid.strip()] = value is not None
    return changes


def _planned_identity(
    call: Call, vm: VirtualMachine, ident: dict[str, Any]
) -> tuple[bool, list[str], list[str]]:
    """(system on?, attached IDs afterwards, IDs the body links) for the body's ``identity``."""
    kinds = _identity_kinds(ident)
    changes = _user_changes(ident)
    linked = [rid for rid, attach in (changes or {}).items() if attach]
    if "userassigned" not in kinds:
        if linked:
            shown = "None" if kinds == {"none"} else "SystemAssigned"
            raise arm_invalid_parameter(
                f'ResourceIdentity identityIds should not be provided if the type is "{shown}".',
                "resourceIdentity.identityIds",
            )
        return "systemassigned" in kinds, [], []
    attached = [] if changes is None else list(vm.user_assigned)
    for rid, attach in (changes or {}).items():
        attached = [x for x in attached if norm_scope(x) != norm_scope(rid)]
        if attach:
            attached.append(rid)
    if not attached:
        raise arm_invalid_parameter(
            "The identity ids must not be null or empty for 'UserAssigned' identity type.",
            "identity.userAssignedIdentities",
        )
    return "systemassigned" in kinds, attached, linked


def _check_linked(call: Call, vm_scope: str, linked: list[str]) -> None:
    """403 ``LinkedAuthorizationFailed`` unless the caller may assign every linked identity."""
    denied = [mirid(rid) for rid in linked if not call.allowed(ASSIGN, rid)]
    if denied:
        raise arm_linked_authorization_failed(call.oid, WRITE, vm_scope, denied)


def _write_vm(call: Call, sub: str, rg: str, name: str) -> Response:
    request = call.request
    call.check_api_version(COMPUTE_VIRTUAL_MACHINES)
    scope = _requested_scope(call)
    call.subscription(sub)
    call.authorize(scope, WRITE)
    rg_name = call.resource_group(sub, rg)
    world = call.world
    vm = world.vm(sub, rg, name)
    if vm is None:
        if request.method == "PATCH":
            raise arm_resource_not_found(VIRTUAL_MACHINES.type, name, rg_name)
        raise arm_write_not_emulated(request.method, WRITE, scope)  # creating a VM needs Azure
    body = json_body(request)
    tags = tags_of(body)
    ident = object_at(body, "identity", "identity")
    plan = None if ident is None else _planned_identity(call, vm, ident)
    if plan is not None:
        _check_linked(call, scope, plan[2])
        for rid in plan[2]:
            if world.uami_by_id(rid) is None:
                raise arm_identity_not_found(vm.resource_id, mirid(rid))
    with world.lock:
        if plan is not None:
            world.set_vm_identity(vm, system=plan[0], user_assigned=plan[1])
        if tags is not None:
            vm.tags = tags
            vm.revision += 1
        rendered = VIRTUAL_MACHINES.render(call, vm)
    rendered["properties"]["provisioningState"] = "Updating"
    op = call.backend.operations.start(vm.subscription_id, now_stamp())
    reply = arm_json(rendered)
    version = request.args.get("api-version", "")
    reply.headers["Azure-AsyncOperation"] = (
        f"https://{request.host}/subscriptions/{vm.subscription_id}/providers/Microsoft.Compute/locations/"
        f"{vm.location}/operations/{op}?p={uuid.uuid4()}&api-version={version}"
    )
    reply.headers["ETag"] = str(rendered["etag"])
    return reply


def _operation(call: Call, sub: str, location: str, op: str) -> Response:
    """Compute's operation status (``{startTime, endTime, status, name}``); the caller is not RBAC-checked,
    as whoever started the operation polls it."""
    call.check_api_version(COMPUTE_VIRTUAL_MACHINES)
    sid = call.subscription(sub)
    status = call.backend.operations.status(sid, op)
    if status is None:
        raise ArmError(
            404, "NotFound", f"The operation '{op[:64]}' was not found in location '{location[:64]}'."
        )
    return arm_json(status)


_VM = "/subscriptions/<sub>/resourcegroups/<rg>/providers/microsoft.compute/virtualmachines/<name>"
WRITE_ROUTES: list[tuple[str, Any, tuple[str, ...]]] = [(_VM, _write_vm, ("PUT", "PATCH"))]
READ_ROUTES: list[Route] = [
    ("/subscriptions/<sub>/providers/microsoft.compute/locations/<location>/operations/<op>", _operation, {})
]
