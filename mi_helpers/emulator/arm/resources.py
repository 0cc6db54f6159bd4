"""Microsoft.Resources: subscriptions, resource groups, the generic ``/resources`` list, any other resource.

Lists are RBAC-filtered as ARM filters them: a principal with Reader on one resource group sees that group's
resources in a subscription-wide list; one without any role in the subscription gets 403, and no
subscription at all in ``GET /subscriptions`` (docs/protocol.md#request-checks-and-their-order). The
``/resources`` lists take the documented ``$filter`` grammar (``arm/odata.py``), ``$expand`` and ``$top``
with ``nextLink`` paging; their entries keep the recorded key order. A resource type the world has no
resource of and the emulator does not model is 400 ``InvalidResourceType``.
"""

from __future__ import annotations

import re
from typing import Any

from werkzeug.wrappers import Response

from mi_helpers.emulator.arm import authorization
from mi_helpers.emulator.arm.apiversions import RESOURCES
from mi_helpers.emulator.arm.call import Call, Route, arm_json, paged
from mi_helpers.emulator.arm.compute import VIRTUAL_MACHINES
from mi_helpers.emulator.arm.dataplane import data_plane_properties
from mi_helpers.emulator.arm.kinds import ResourceKind
from mi_helpers.emulator.arm.msi import USER_ASSIGNED_IDENTITIES
from mi_helpers.emulator.arm.odata import parse_filter
from mi_helpers.emulator.errors import (
    arm_invalid_resource_type,
    arm_resource_group_not_found,
    arm_resource_not_found,
)
from mi_helpers.emulator.world import GenericResource

__all__ = ["KEYWORDS", "MODELLED_KINDS", "ROUTES", "generic_json", "unmodelled"]

KEYWORDS = ("subscriptions", "resourceGroups", "providers", "resources", "metadata", "endpoints")
#: The typed kinds the generic ``/resources`` list shows next to the world's other resources.
MODELLED_KINDS: tuple[ResourceKind, ...] = (VIRTUAL_MACHINES, USER_ASSIGNED_IDENTITIES)

_STAMP = "2026-01-01T00:00:00.0000000Z"
#: Key order of a ``/resources`` entry, as recorded (``test_resource_scenario.yaml``).
_ITEM_ORDER = ("id", "name", "type", "sku", "kind", "location", "identity", "createdTime", "changedTime",
               "provisioningState", "tags")  # fmt: skip
_EXPAND = {"createdtime": ("createdTime", _STAMP), "changedtime": ("changedTime", _STAMP),
           "provisioningstate": ("provisioningState", "Succeeded")}  # fmt: skip
_PROVIDERS = re.compile(r"/providers/([^/]+)/(.+)$", re.IGNORECASE)


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


def _sku(name: str) -> dict[str, str]:
    """``{"name": "Standard_LRS", "tier": "Standard"}``: the tier is the name's first part, as ARM shows."""
    tier = name.split("_", 1)[0]
    return {"name": name, "tier": tier} if "_" in name and tier in ("Standard", "Premium") else {"name": name}


def generic_json(r: GenericResource) -> dict[str, Any]:
    """A resource the world lists but does not model (storage account, key vault, …)."""
    body: dict[str, Any] = {"id": r.resource_id, "name": r.name, "type": r.type}
    if r.sku:
        body["sku"] = _sku(r.sku)
    if r.kind:
        body["kind"] = r.kind
    body["location"] = r.location
    if r.type.lower() == "microsoft.storage/storageaccounts":
        body["identity"] = {"type": "None"}  # storage accounts report "no identity" explicitly
    body["tags"] = dict(r.tags)
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
    items = [_sub_json(call, s) for s in subs]
    return paged(call.request, items, {"count": {"type": "Total", "value": len(subs)}})


def _get_subscription(call: Call, sub: str) -> Response:
    sid = call.subscription(sub)
    call.list_access(f"/subscriptions/{sub}", "Microsoft.Resources/subscriptions/read")
    return arm_json(_sub_json(call, sid))


def _list_groups(call: Call, sub: str) -> Response:
    world = call.world
    call.subscription(sub)
    action = "Microsoft.Resources/subscriptions/resourceGroups/read"
    full = call.list_access(f"/subscriptions/{sub}", action)
    flt = parse_filter(call.request.args.get("$filter"))
    with world.lock:
        rgs = [r for r in world.resource_groups if r.subscription_id.lower() == sub.lower()]
        rgs = [r for r in rgs if full or world.allowed(call.oid, action, r.resource_id)]
        items = [_rg_json(call, sub, r.name) for r in rgs]
    if flt is not None:
        items = [i for i in items if flt.matches(_filter_fields(i, i["name"]))]
    return paged(call.request, items)


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
def _filter_fields(body: dict[str, Any], group: str) -> dict[str, Any]:
    """What ``$filter`` compares for one entry (docs/protocol.md#resources-and-bodies)."""
    identity = body.get("identity") or {}
    return {
        "name": body.get("name", ""),
        "resourcetype": body.get("type", ""),
        "resourcegroup": group,
        "location": body.get("location", ""),
        "identity": identity.get("type", ""),
        "identity/principalid": identity.get("principalId", ""),
        "tags": body.get("tags") or {},
    }


def _items_in(call: Call, sub: str, rg: str | None) -> list[tuple[str, dict[str, Any]]]:
    """(resource group, list entry) of every resource in a subscription or one of its groups."""
    world = call.world
    found: list[tuple[Any, Any]] = []
    with world.lock:
        for kind in MODELLED_KINDS:
            found.extend((x, kind) for x in kind.items(world))
        found.extend((r, None) for r in world.resources)
        items = []
        for obj, kind in found:
            if obj.subscription_id.lower() != sub.lower():
                continue
            if rg is not None and obj.resource_group.lower() != rg.lower():
                continue
            body = kind.summary(call, obj) if kind is not None else generic_json(obj)
            items.append((obj.resource_group, body))
        return items


def _entry(body: dict[str, Any], expand: set[str], by_tag: bool) -> dict[str, Any]:
    """One ``/resources`` entry in the recorded key order, with ``$expand`` fields, without tags when the
    list was filtered by tag (as documented)."""
    extra = {key: value for name, (key, value) in _EXPAND.items() if name in expand}
    merged = {**body, **extra}
    if by_tag:
        merged.pop("tags", None)
    return {k: merged[k] for k in _ITEM_ORDER if k in merged}


def _resources(call: Call, sub: str, rg: str | None) -> Response:
    request = call.request
    call.subscription(sub)
    flt = parse_filter(request.args.get("$filter"))
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
    for group, body in _items_in(call, sub, rg):
        if not full and not call.world.allowed(call.oid, f"{body['type']}/read", body["id"]):
            continue
        if flt is None or flt.matches(_filter_fields(body, group)):
            value.append(_entry(body, expand, flt is not None and flt.by_tag))
    return paged(request, value)


def _resources_in_subscription(call: Call, sub: str) -> Response:
    return _resources(call, sub, None)


def _resources_in_group(call: Call, sub: str, rg: str) -> Response:
    return _resources(call, sub, rg)


def _world_types(call: Call) -> set[str]:
    with call.world.lock:
        return {r.type.lower() for r in call.world.resources}


def unmodelled(call: Call, path: str) -> None:
    """400 ``InvalidResourceType`` for a ``…/providers/<ns>/<type>…`` path no route of the emulator serves."""
    m = _PROVIDERS.search(path)
    if m is None:
        return
    parts = [p for p in m.group(2).split("/") if p]
    rtype = "/".join(parts[0::2])
    raise arm_invalid_resource_type(rtype, m.group(1), call.request.args.get("api-version", ""))


def _known_type(call: Call, ns: str, rtype: str) -> str:
    """``<ns>/<type>`` as the world spells it, or 400 ``InvalidResourceType``."""
    full = f"{ns}/{rtype}"
    if full.lower() not in _world_types(call):
        version = call.request.args.get("api-version", "")
        raise arm_invalid_resource_type(call.spelled(rtype), call.spelled(ns), version)
    return next(r.type for r in call.world.resources if r.type.lower() == full.lower())


def _list_generic(call: Call, sub: str, ns: str, rtype: str, rg: str | None = None) -> Response:
    if ns.lower() == "microsoft.authorization":  # role assignments/definitions listed at this scope
        scope = f"/subscriptions/{sub}" + (f"/resourceGroups/{rg}" if rg is not None else "")
        return authorization.list_at(call, scope, rtype)
    rtype_full = _known_type(call, ns, rtype)
    world = call.world
    call.subscription(sub)
    action = f"{rtype_full}/read"
    if rg is None:
        full = call.list_access(f"/subscriptions/{sub}", action)
    else:
        call.authorize(f"/subscriptions/{sub}/resourceGroups/{rg}", action)
        call.resource_group(sub, rg)
        full = True
    with world.lock:
        found = [
            r
            for r in world.resources
            if r.type.lower() == rtype_full.lower()
            and r.subscription_id.lower() == sub.lower()
            and (rg is None or r.resource_group.lower() == rg.lower())
            and (full or world.allowed(call.oid, action, r.resource_id))
        ]
    return paged(call.request, [{**generic_json(r), "properties": _properties(call, r)} for r in found])


def _properties(call: Call, r: GenericResource) -> dict[str, Any]:
    """A generic resource's ``properties``: the data-plane endpoints of a vault or storage account."""
    return data_plane_properties(call, r) or {"provisioningState": "Succeeded"}


def _list_generic_in_group(call: Call, sub: str, rg: str, ns: str, rtype: str) -> Response:
    return _list_generic(call, sub, ns, rtype, rg)


def _get_generic(call: Call, sub: str, rg: str, ns: str, rtype: str, name: str) -> Response:
    if ns.lower() == "microsoft.authorization":  # a role assignment/definition read at resource-group scope
        return authorization.get_at(call, f"/subscriptions/{sub}/resourceGroups/{rg}", rtype, name)
    rtype_full = _known_type(call, ns, rtype)
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
                return arm_json({**generic_json(r), "properties": _properties(call, r)})
    raise arm_resource_not_found(rtype_full, name, rg_name)


_CORE = {"api": RESOURCES}
ROUTES: list[Route] = [
    ("/subscriptions", _list_subscriptions, _CORE),
    ("/subscriptions/<sub>", _get_subscription, _CORE),
    ("/subscriptions/<sub>/resourcegroups", _list_groups, _CORE),
    ("/subscriptions/<sub>/resourcegroups/<rg>", _get_group, _CORE),
    ("/subscriptions/<sub>/resources", _resources_in_subscription, _CORE),
    ("/subscriptions/<sub>/resourcegroups/<rg>/resources", _resources_in_group, _CORE),
    ("/subscriptions/<sub>/providers/<ns>/<rtype>", _list_generic, {}),
    ("/subscriptions/<sub>/resourcegroups/<rg>/providers/<ns>/<rtype>", _list_generic_in_group, {}),
    ("/subscriptions/<sub>/resourcegroups/<rg>/providers/<ns>/<rtype>/<name>", _get_generic, {}),
]
