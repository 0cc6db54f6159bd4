"""Microsoft.Authorization: role assignments and role definitions.

Reads only (docs/protocol.md#role-assignments-and-definitions). Role assignments are listed at, above and
below a scope (``atScope()`` keeps those at or above); a caller without read access to the whole scope sees
the assignments it could read one by one. Role definitions are readable by any authenticated principal (the
built-in roles).
"""

from __future__ import annotations

import re
from typing import Any

from werkzeug.wrappers import Response

from mi_helpers.emulator.arm.call import Call, Route, arm_json
from mi_helpers.emulator.errors import ArmError
from mi_helpers.emulator.world import BUILTIN_ROLES, RoleAssignment, scope_within

__all__ = ["KEYWORDS", "ROUTES", "get_role_assignment", "get_role_definition"]

KEYWORDS = ("Microsoft.Authorization", "roleAssignments", "roleDefinitions")
_READ = "Microsoft.Authorization/roleAssignments/read"
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_SUB = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)
_STAMP = "2026-01-01T00:00:00.0000000Z"


def _ra_json(call: Call, a: RoleAssignment) -> dict[str, Any]:
    m = _SUB.match(a.scope)
    sub = m.group(1) if m else call.world.default_subscription.id
    return {
        "id": a.resource_id,
        "name": a.id,
        "type": "Microsoft.Authorization/roleAssignments",
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
            "createdBy": None,
            "updatedBy": "00000000-0000-0000-0000-000000000000",
            "delegatedManagedIdentityResourceId": None,
            "description": None,
        },
    }


def _rd_json(role: str, prefix: str) -> dict[str, Any]:
    d = BUILTIN_ROLES[role]
    return {
        "id": f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{d['id']}",
        "name": d["id"],
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role,
            "type": "BuiltInRole",
            "description": d["description"],
            "assignableScopes": ["/"],
            "permissions": [
                {
                    "actions": list(d["actions"]),
                    "notActions": list(d["not_actions"]),
                    "dataActions": [],
                    "notDataActions": [],
                }
            ],
            "createdOn": "2015-02-02T21:55:09.8806423Z",
            "updatedOn": "2021-11-11T20:13:47.8628684Z",
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
            raise ArmError(
                400,
                "InvalidFilterInQueryString",
                f"Invalid $filter '{flt}' specified in the query string. Supported: atScope(), "
                "principalId eq '…', assignedTo('…').",
            )
    return at_scope, principal


def _list_assignments(call: Call, scope: str = "") -> Response:
    scope, full = call.scope_checks(scope, _READ, listing=True)
    at_scope, principal = _assignment_filter((call.request.args.get("$filter") or "").strip())
    world = call.world
    mine = world.assignments_for(call.oid)
    with world.lock:
        out = []
        for a in world.role_assignments:
            above = scope_within(scope, a.scope)
            below = scope_within(a.scope, scope)
            if (at_scope and not above) or not (above or below):
                continue
            if principal is not None and a.principal_id.lower() != principal.lower():
                continue
            if not full and not (
                world.can_read(call.oid, a.scope) or any(scope_within(x.scope, a.scope) for x in mine)
            ):
                continue
            out.append(_ra_json(call, a))
    return arm_json({"value": out})


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


def _list_definitions(call: Call, scope: str = "") -> Response:
    prefix = _role_prefix(call, scope)
    flt = (call.request.args.get("$filter") or "").strip()
    wanted = None
    if flt:
        m = re.fullmatch(r"roleName\s+eq\s+'([^']*)'", flt, re.IGNORECASE)
        if m is None and not re.fullmatch(r"type\s+eq\s+'BuiltInRole'", flt, re.IGNORECASE):
            raise ArmError(
                400, "InvalidFilterInQueryString", f"Invalid $filter '{flt}' specified in the query string."
            )
        wanted = m.group(1).lower() if m else None
    roles = [r for r in BUILTIN_ROLES if wanted is None or r.lower() == wanted]
    return arm_json({"value": [_rd_json(r, prefix) for r in roles]})


def get_role_definition(call: Call, name: str, scope: str = "") -> Response:
    """One built-in role definition by its GUID (any authenticated principal may read it)."""
    prefix = _role_prefix(call, scope)
    role = call.world.role_name(name)
    if role is None:
        raise ArmError(
            404,
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{name}' does not exist.",
        )
    return arm_json(_rd_json(role, prefix))


_P = "providers/microsoft.authorization"
ROUTES: list[Route] = [
    (f"/{_P}/roleassignments", _list_assignments, {}),
    (f"/<path:scope>/{_P}/roleassignments", _list_assignments, {}),
    (f"/<path:scope>/{_P}/roleassignments/<name>", get_role_assignment, {}),
    (f"/{_P}/roledefinitions", _list_definitions, {}),
    (f"/{_P}/roledefinitions/<name>", get_role_definition, {}),
    (f"/<path:scope>/{_P}/roledefinitions", _list_definitions, {}),
    (f"/<path:scope>/{_P}/roledefinitions/<name>", get_role_definition, {}),
]
