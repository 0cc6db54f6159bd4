"""Typed ARM resources (a provider's resource type the emulator models) and their read routes.

A :class:`ResourceKind` says where the world keeps one resource type and how ARM renders it; :func:`routes`
gives its three read routes (list in a subscription, list in a resource group, get by name). A provider
module (``compute``, ``msi``, and later ``keyvault``…) declares its kinds and nothing else; writes and
long-running operations will be further hooks on the kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Response

from mi_helpers.emulator.arm.apiversions import TypeVersions
from mi_helpers.emulator.arm.call import Call, Route, arm_json, in_group, paged
from mi_helpers.emulator.errors import arm_resource_not_found
from mi_helpers.emulator.world import World

__all__ = ["ResourceKind", "routes"]


@dataclass(frozen=True)
class ResourceKind:
    """One modelled resource type: ``Microsoft.Compute/virtualMachines`` and the like."""

    #: Full type, ``<namespace>/<type>`` as ARM spells it.
    type: str
    #: Where the world keeps them (read under ``world.lock``).
    items: Callable[[World], list[Any]]
    #: The body of a GET of one resource.
    render: Callable[[Call, Any], dict[str, Any]]
    #: The entry of a ``/resources`` list (id, name, type, location, tags and what the type adds).
    summary: Callable[[Call, Any], dict[str, Any]]
    #: The api-versions the type's provider accepts (checked before the handler runs).
    api: TypeVersions
    #: Extra headers of a GET of one resource (Compute's ``ETag``), from the rendered body.
    headers: Callable[[dict[str, Any]], dict[str, str]] | None = None

    @property
    def namespace(self) -> str:
        return self.type.split("/", 1)[0]

    @property
    def collection(self) -> str:
        return self.type.split("/", 1)[1]

    @property
    def keywords(self) -> tuple[str, str]:
        """The path segments ARM matches case-insensitively for this type."""
        return self.namespace, self.collection


def _list_in_subscription(call: Call, sub: str, kind: ResourceKind) -> Response:
    world = call.world
    call.subscription(sub)
    full = call.list_access(f"/subscriptions/{sub}", f"{kind.type}/read")
    with world.lock:
        found = [x for x in kind.items(world) if x.subscription_id.lower() == sub.lower()]
        found = [x for x in found if full or world.allowed(call.oid, f"{kind.type}/read", x.resource_id)]
        return paged(call.request, [kind.render(call, x) for x in found])


def _list_in_group(call: Call, sub: str, rg: str, kind: ResourceKind) -> Response:
    world = call.world
    call.subscription(sub)
    call.authorize(f"/subscriptions/{sub}/resourceGroups/{rg}", f"{kind.type}/read")
    call.resource_group(sub, rg)
    with world.lock:
        return paged(call.request, [kind.render(call, x) for x in kind.items(world) if in_group(x, sub, rg)])


def _get(call: Call, sub: str, rg: str, name: str, kind: ResourceKind) -> Response:
    world = call.world
    call.subscription(sub)
    call.authorize(
        f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{kind.type}/{name}", f"{kind.type}/read"
    )
    rg_name = call.resource_group(sub, rg)
    with world.lock:
        found = next(
            (x for x in kind.items(world) if in_group(x, sub, rg) and x.name.lower() == name.lower()), None
        )
        if found is None:
            raise arm_resource_not_found(kind.type, name, rg_name)
        body = kind.render(call, found)
    reply = arm_json(body)
    for key, value in (kind.headers(body) if kind.headers else {}).items():
        reply.headers[key] = value
    return reply


def routes(kind: ResourceKind) -> list[Route]:
    """The read routes of ``kind`` (paths in canonical, lower-case-keyword form)."""
    provider = f"providers/{kind.namespace.lower()}/{kind.collection.lower()}"
    args = {"kind": kind, "api": kind.api}
    return [
        (f"/subscriptions/<sub>/{provider}", _list_in_subscription, args),
        (f"/subscriptions/<sub>/resourcegroups/<rg>/{provider}", _list_in_group, args),
        (f"/subscriptions/<sub>/resourcegroups/<rg>/{provider}/<name>", _get, args),
    ]
