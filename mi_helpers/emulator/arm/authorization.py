"""Microsoft.Authorization: role assignments and role definitions.

Reads only (docs/protocol.md#role-assignments-and-definitions). Role assignments are listed at, above and
below a scope (``atScope()`` keeps those at or above); a caller without read access to the whole scope sees
the assignments it could read one by one. Role definitions are the built-in ones of
:mod:`mi_helpers.emulator.rbac`, readable by any authenticated principal, filtered by ``roleName`` or
``type``. Bodies keep the recorded key order (``properties`` first) and ``createdBy``/``updatedBy`` of an
existing assignment name its creator.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Response

from mi_helpers.emulator.arm.apiversions import AUTHORIZATION_ROLE_ASSIGNMENTS, AUTHORIZATION_ROLE_DEFINITIONS
from mi_helpers.emulator.arm.call import Call, Route, arm_json, paged
from mi_helpers.emulator.errors import ArmError, arm_invalid_filter, arm_invalid_resource_type
from mi_helpers.emulator.rbac import BUILTIN_ROLE_DEFINITIONS, RoleDefinition
from mi_helpers.emulator.world import RoleAssignment, scope_within

__all__ = ["KEYWORDS", "ROUTES", "get_at", "get_role_assignment", "get_role_definition", "list_at"]

KEYWORDS = ("Microsoft.Authorization", "roleAssignments", "roleDefinitions")
_READ = "Microsoft.Authorization/roleAssignments/read"
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_SUB = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)
_STAMP = "2026-01-01T00:00:00.0000000Z"


def _ra_json(call: Call, a: RoleAssignment) -> dict[str, Any]:
    m = _SUB.match(a.scope)
    sub = m.group(1) if m else call.world.default_subscription.id
    return {
        "properties": {
            "roleDefinitionId": f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/"
            f"{a.role_definition_guid}",
            "principalId": a.principal_id,
            "principalType": a.principal_type,
            "scope": a.scope,
            "condition": None,
            "conditionVersion": None,
            "createdOn": _STAMP,
            "updatedOn": _STAMP,
            "createdBy": a.created_by or None,
            "updatedBy": a.created_by or None,
            "delegatedManagedIdentityResourceId": None,
            "description": None,
        },
        "id": a.resource_id,
        "type": "Microsoft.Authorization/roleAssignments",
        "name": a.id,
    }


def _rd_json(d: RoleDefinition, prefix: str) -> dict[str, Any]:
    return {
        "id": f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{d.id}",
        "name": d.id,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": d.name,
            "type": d.role_type,
            "description": d.description,
            "assignableScopes": list(d.assignable_scopes),
            "permissions": [
                {
                    "actions": list(p.actions),
                    "notActions": list(p.not_actions),
                    "dataActions": list(p.data_actions),
                    "notDataActions": list(p.not_data_actions),
                }
                for p in d.permissions
            ],
            "createdOn": d.created_on,
            "updatedOn": d.updated_on,
            "createdBy": None,
            "updatedBy": None,
        },
    }


def _assignment_filter(flt: str) -> tuple[bool, str | None]:
    """``$filter`` of a role-assignment list: (``atScope()`` given, the principal asked for)."""
    at_scope, principal = False, None
    for part in _AND.split(flt) if flt else []:
        p = part.strip()
        m1 = re.fullmatch(r"principalId\s+eq\s+'([^']*)'", p, re.IGNORECASE)
        m2 = re.fullmatch(r"assignedTo\('([^']*)'\)", p, re.IGNORECASE)
        if re.fullmatch(r"atScope\(\)", p, re.IGNORECASE):
            at_scope = True
        elif m1 or m2:
            principal = (m1 or m2).group(1)  # type: ignore[union-attr]
            if m1 and "atscope()" in flt.lower():
                raise ArmError(
                    400,
                    "UnsupportedQuery",
                    "The filter 'atScope() and principalId eq' is not supported. "
                    "Use 'atScope() and assignedTo(...)'.",
                )
        else:
            raise arm_invalid_filter(flt)
    return at_scope, principal


def _list_assignments(call: Call, scope: str = "") -> Response:
    scope, full = call.scope_checks(scope, _READ, listing=True)
    at_scope, principal = _assignment_filter((call.request.args.get("$filter") or "").strip())
    world = call.world
    readers = [x for x in world.assignments_for(call.oid) if x.definition.allows(_READ)]
    with world.lock:
        out = []
        for a in world.role_assignments:
            above = scope_within(scope, a.scope)
            below = scope_within(a.scope, scope)
            if (at_scope and not above) or not (above or below):
                continue
            if principal is not None and a.principal_id.lower() != principal.lower():
                continue
            # Visible: readable where it is, or inherited by a scope where the caller may read assignments.
            if not full and not any(
                scope_within(a.scope, x.scope) or scope_within(x.scope, a.scope) for x in readers
            ):
                continue
            out.append(_ra_json(call, a))
    return paged(call.request, out)


def get_role_assignment(call: Call, scope: str, name: str) -> Response:
    """One role assignment by its name (GUID) at exactly ``scope``."""
    scope, _ = call.scope_checks(scope, _READ, listing=False)
    world = call.world
    with world.lock:
        for a in world.role_assignments:
            if a.id.lower() == name.lower() and scope_within(a.scope, scope) and scope_within(scope, a.scope):
                return arm_json(_ra_json(call, a))
    raise ArmError(404, "RoleAssignmentNotFound", "The role assignment '" + name + "' is not found.")


def _role_prefix(call: Call, scope: str) -> str:
    m = _SUB.match("/" + scope.strip("/"))
    if m:
        call.subscription(m.group(1))
        return f"/subscriptions/{m.group(1)}"
    return ""


def _definition_filter(flt: str) -> Callable[[RoleDefinition], bool]:
    """``roleName eq '…'`` or ``type eq 'BuiltInRole'|'CustomRole'`` (what ``az role definition list`` and
    ``az role assignment create --role <name>`` send)."""
    m = re.fullmatch(r"\s*roleName\s+eq\s+'((?:[^']|'')*)'\s*", flt, re.IGNORECASE)
    if m:
        wanted = m.group(1).replace("''", "'").lower()
        return lambda d: d.name.lower() == wanted
    m = re.fullmatch(r"\s*type\s+eq\s+'(BuiltInRole|CustomRole)'\s*", flt, re.IGNORECASE)
    if m:
        kind = m.group(1).lower()
        return lambda d: d.role_type.lower() == kind
    raise arm_invalid_filter(flt)


def _list_definitions(call: Call, scope: str = "") -> Response:
    prefix = _role_prefix(call, scope)
    flt = (call.request.args.get("$filter") or "").strip()
    keep = _definition_filter(flt) if flt else (lambda d: True)
    return paged(call.request, [_rd_json(d, prefix) for d in BUILTIN_ROLE_DEFINITIONS if keep(d)])


def get_role_definition(call: Call, name: str, scope: str = "") -> Response:
    """One built-in role definition by its GUID (any authenticated principal may read it)."""
    prefix = _role_prefix(call, scope)
    found = next((d for d in BUILTIN_ROLE_DEFINITIONS if d.id == name.lower()), None)
    if found is None:
        raise ArmError(
            404,
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{name}' does not exist.",
        )
    return arm_json(_rd_json(found, prefix))


def list_at(call: Call, scope: str, rtype: str) -> Response:
    """``…/providers/Microsoft.Authorization/<rtype>`` at ``scope`` (when a generic route matched first)."""
    if rtype.lower() == "roleassignments":
        call.check_api_version(AUTHORIZATION_ROLE_ASSIGNMENTS)
        return _list_assignments(call, scope)
    if rtype.lower() == "roledefinitions":
        call.check_api_version(AUTHORIZATION_ROLE_DEFINITIONS)
        return _list_definitions(call, scope)
    raise arm_invalid_resource_type(
        rtype, "Microsoft.Authorization", call.request.args.get("api-version", "")
    )


def get_at(call: Call, scope: str, rtype: str, name: str) -> Response:
    """One role assignment or definition at ``scope`` (when a generic route matched first)."""
    if rtype.lower() == "roleassignments":
        call.check_api_version(AUTHORIZATION_ROLE_ASSIGNMENTS)
        return get_role_assignment(call, scope, name)
    if rtype.lower() == "roledefinitions":
        call.check_api_version(AUTHORIZATION_ROLE_DEFINITIONS)
        return get_role_definition(call, name, scope)
    raise arm_invalid_resource_type(
        rtype, "Microsoft.Authorization", call.request.args.get("api-version", "")
    )


_P = "providers/microsoft.authorization"
_RA = {"api": AUTHORIZATION_ROLE_ASSIGNMENTS}
_RD = {"api": AUTHORIZATION_ROLE_DEFINITIONS}
ROUTES: list[Route] = [
    (f"/{_P}/roleassignments", _list_assignments, _RA),
    (f"/<path:scope>/{_P}/roleassignments", _list_assignments, _RA),
    (f"/<path:scope>/{_P}/roleassignments/<name>", get_role_assignment, _RA),
    (f"/{_P}/roledefinitions", _list_definitions, _RD),
    (f"/{_P}/roledefinitions/<name>", get_role_definition, _RD),
    (f"/<path:scope>/{_P}/roledefinitions", _list_definitions, _RD),
    (f"/<path:scope>/{_P}/roledefinitions/<name>", get_role_definition, _RD),
]
