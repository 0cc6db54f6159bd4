"""Microsoft.Resources: subscriptions, resource groups, the generic ``/resources`` list, any other resource.

Lists are RBAC-filtered as ARM filters them: a principal with Reader on one resource group sees that group's
resources in a subscription-wide list; one without any role in the subscription gets 403, and no
subscription at all in ``GET /subscriptions`` (docs/protocol.md#request-checks-and-their-order).
"""

from __future__ import annotations

import re
from typing import Any

from werkzeug.wrappers import Response

from mi_helpers.emulator.arm.authorization import get_role_assignment, get_role_definition
from mi_helpers.emulator.arm.call import Call, Route, arm_json
from mi_helpers.emulator.arm.compute import VIRTUAL_MACHINES
from mi_helpers.emulator.arm.kinds import ResourceKind
from mi_helpers.emulator.arm.msi import USER_ASSIGNED_IDENTITIES
from mi_helpers.emulator.errors import ArmError, arm_resource_group_not_found, arm_resource_not_found
from mi_helpers.emulator.world import GenericResource

__all__ = ["KEYWORDS", "MODELLED_KINDS", "ROUTES", "generic_json"]

KEYWORDS = ("subscriptions", "resourceGroups", "providers", "resources", "metadata", "endpoints")
#: The typed kinds the generic ``/resources`` list shows next to the world's other resources.
MODELLED_KINDS: tuple[ResourceKind, ...] = (VIRTUAL_MACHINES, USER_ASSIGNED_IDENTITIES)

_TERM = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_FILTER_FIELDS = {
    "name": "name",
    "resourcetype": "type",
    "resourcegroup": "resource_group",
    "location": "location",
}
_STAMP = "2026-01-01T00:00:00.0000000Z"


def _sub_json(call: Call, sub_id: str) -> dict[str, Any]:
    s = call.world.subscription(sub_id)
    assert s is not None
    return {
        "id": f"/subscriptions/{s.id}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": s.id,
        "tenantId": call.world.tenant.id,
        "displayName": s.name,
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }


def _rg_json(call: Call, sub: str, rg: str) -> dict[str, Any]:
    r = call.world.resource_group(sub, rg)
    assert r is not None
    return {
        "id": r.resource_id,
        "name": r.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": r.location,
        "tags": dict(r.tags),
        "properties": {"provisioningState": "Succeeded"},
    }


def generic_json(r: GenericResource) -> dict[str, Any]:
    """A resource the world lists but does not model (storage account, key vault, …)."""
    body: dict[str, Any] = {
        "id": r.resource_id,
        "name": r.name,
        "type": r.type,
        "location": r.location,
        "tags": dict(r.tags),
    }
    if r.kind:
        body["kind"] = r.kind
    if r.sku:
        body["sku"] = {"name": r.sku}
    return body


# ------------------------------------------------------------------ subscriptions and resource groups
def _list_subscriptions(call: Call) -> Response:
    world = call.world
    denied = call.rbac_denied()
    subs = (
        []
        if denied
        else [s.id for s in world.subscriptions if world.has_access_in(call.oid, f"/subscriptions/{s.id}")]
    )
    return arm_json(
        {"value": [_sub_json(call, s) for s in subs], "count": {"type": "Total", "value": len(subs)}}
    )


def _get_subscription(call: Call, sub: str) -> Response:
    sid = call.subscription(sub)
    call.list_access(f"/subscriptions/{sub}", "Microsoft.Resources/subscriptions/read")
    return arm_json(_sub_json(call, sid))


def _list_groups(call: Call, sub: str) -> Response:
    world = call.world
    call.subscription(sub)
    full = call.list_access(f"/subscriptions/{sub}", "Microsoft.Resources/subscriptions/resourceGroups/read")
    with world.lock:
        rgs = [r for r in world.resource_groups if r.subscription_id.lower() == sub.lower()]
        rgs = [r for r in rgs if full or world.can_read(call.oid, r.resource_id)]
        return arm_json({"value": [_rg_json(call, sub, r.name) for r in rgs]})


def _get_group(call: Call, sub: str, rg: str) -> Response:
    call.subscription(sub)
    call.authorize(
        f"/subscriptions/{sub}/resourceGroups/{rg}", "Microsoft.Resources/subscriptions/resourceGroups/read"
    )
    head = call.request.method == "HEAD"
    if call.world.resource_group(sub, rg) is None:
        if head:
            return Response(status=404)
        raise arm_resource_group_not_found(rg)
    if head:
        return Response(status=204)
    return arm_json(_rg_json(call, sub, rg))


# ------------------------------------------------------------------ /resources
def _items_in(call: Call, sub: str, rg: str | None) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(filterable fields, list entry) of every resource in a subscription or one of its groups."""
    world = call.world
    found: list[tuple[Any, str, Any]] = []
    with world.lock:
        for kind in MODELLED_KINDS:
            found.extend((x, kind.type, kind) for x in kind.items(world))
        found.extend((r, r.type, None) for r in world.resources)
        items = []
        for obj, rtype, kind in found:
            if obj.subscription_id.lower() != sub.lower():
                continue
            if rg is not None and obj.resource_group.lower() != rg.lower():
                continue
            body = kind.summary(call, obj) if kind is not None else generic_json(obj)
            fields = {"name": obj.name, "type": rtype, "resource_group": obj.resource_group}
            items.append(({**fields, "location": obj.location}, body))
        return items


def _resource_filter(text: str | None) -> dict[str, str]:
    if text is None or not text.strip():
        return {}
    terms: dict[str, str] = {}
    for part in _AND.split(text.strip()):
        m = _TERM.match(part)
        field = _FILTER_FIELDS.get(m.group(1).lower()) if m else None
        if m is None or field is None:
            raise ArmError(
                400,
                "InvalidFilterInQueryString",
                f"Invalid $filter '{text}' specified in the query string. The emulator understands "
                "name eq '…', resourceType eq '…', resourceGroup eq '…' and location eq '…', "
                "joined by 'and'.",
            )
        terms[field] = m.group(2).replace("''", "'")
    return terms


def _resources(call: Call, sub: str, rg: str | None) -> Response:
    request = call.request
    call.subscription(sub)
    terms = _resource_filter(request.args.get("$filter"))
    if rg is None:
        full = call.list_access(f"/subscriptions/{sub}", "Microsoft.Resources/subscriptions/resources/read")
    else:
        call.authorize(
            f"/subscriptions/{sub}/resourceGroups/{rg}",
            "Microsoft.Resources/subscriptions/resourceGroups/resources/read",
        )
        call.resource_group(sub, rg)
        full = True
    expand = {e.strip().lower() for e in request.args.get("$expand", "").split(",") if e.strip()}
    value = []
    for fields, body in _items_in(call, sub, rg):
        if not full and not call.world.can_read(call.oid, body["id"]):
            continue
        if all(fields[k].lower() == v.lower() for k, v in terms.items()):
            if "createdtime" in expand:
                body["createdTime"] = _STAMP
            if "changedtime" in expand:
                body["changedTime"] = _STAMP
            if "provisioningstate" in expand:
                body["provisioningState"] = "Succeeded"
            value.append(body)
    return arm_json({"value": value})


def _resources_in_subscription(call: Call, sub: str) -> Response:
    return _resources(call, sub, None)


def _resources_in_group(call: Call, sub: str, rg: str) -> Response:
    return _resources(call, sub, rg)


def _get_generic(call: Call, sub: str, rg: str, ns: str, rtype: str, name: str) -> Response:
    if ns.lower() == "microsoft.authorization":  # a role assignment/definition read at resource-group scope
        scope = f"/subscriptions/{sub}/resourceGroups/{rg}"
        if rtype.lower() == "roleassignments":
            return get_role_assignment(call, scope, name)
        if rtype.lower() == "roledefinitions":
            return get_role_definition(call, name, scope)
    rtype_full = f"{ns}/{rtype}"
    call.subscription(sub)
    call.authorize(
        f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{rtype_full}/{name}", f"{rtype_full}/read"
    )
    rg_name = call.resource_group(sub, rg)
    world = call.world
    with world.lock:
        for r in world.resources:
            if (
                r.subscription_id.lower() == sub.lower()
                and r.resource_group.lower() == rg.lower()
                and r.type.lower() == rtype_full.lower()
                and r.name.lower() == name.lower()
            ):
                return arm_json({**generic_json(r), "properties": {"provisioningState": "Succeeded"}})
    raise arm_resource_not_found(rtype_full, name, rg_name)


ROUTES: list[Route] = [
    ("/subscriptions", _list_subscriptions, {}),
    ("/subscriptions/<sub>", _get_subscription, {}),
    ("/subscriptions/<sub>/resourcegroups", _list_groups, {}),
    ("/subscriptions/<sub>/resourcegroups/<rg>", _get_group, {}),
    ("/subscriptions/<sub>/resources", _resources_in_subscription, {}),
    ("/subscriptions/<sub>/resourcegroups/<rg>/resources", _resources_in_group, {}),
    ("/subscriptions/<sub>/resourcegroups/<rg>/providers/<ns>/<rtype>/<name>", _get_generic, {}),
]
