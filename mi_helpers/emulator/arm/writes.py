"""What a write asks ARM for: the action RBAC checks and the scope it is checked over.

ARM names the operation of a ``PUT``/``PATCH`` ``<type>/write``, of a ``DELETE`` ``<type>/delete`` and of a
``POST`` to ``…/<name>/<verb>`` ``<type>/<verb>/action``, where ``<type>`` is the namespace and the type
segments of the path (``Microsoft.Compute/virtualMachines/extensions``; ARM's own types are
``Microsoft.Resources/subscriptions/resourcegroups``…). A principal without that action at the scope gets
403 ``AuthorizationFailed`` naming it (docs/protocol.md#errors-1).

The writes the emulated ARM carries out (docs/protocol.md#arm-writes) are the routes of the ``*_writes``
modules, dispatched by :func:`write_handler`: the VM's identity (``compute_writes``), user-assigned
identities (``msi_writes``), role assignments (``role_writes``) and resource groups (``group_writes``). Any
other write is checked for its action as above and then gets the documented 405 of
docs/protocol.md#known-differences.
"""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

import mi_helpers.emulator.arm.compute_writes as compute_writes
import mi_helpers.emulator.arm.group_writes as group_writes
import mi_helpers.emulator.arm.msi_writes as msi_writes
import mi_helpers.emulator.arm.role_writes as role_writes

__all__ = ["write_handler", "write_target"]

_WRITES = Map(
    [
        Rule(path, endpoint=handler, methods=list(methods))
        for module in (compute_writes, msi_writes, role_writes, group_writes)
        for path, handler, methods in module.WRITE_ROUTES
    ],
    strict_slashes=False,
    merge_slashes=True,
).bind("arm.local")


def write_handler(path: str, method: str) -> tuple[Any, dict[str, Any]] | None:
    """(handler, route arguments) of a write the emulator carries out, for a canonical ``path``; else None."""
    try:
        handler, args = _WRITES.match(path, method=method.upper())
    except HTTPException:
        return None
    return handler, dict(args)


_VERBS = {"PUT": "write", "PATCH": "write", "DELETE": "delete"}


def write_target(path: str, method: str) -> tuple[str, str] | None:
    """(scope, action) of a write to ``path``, or None when it is not an ARM resource path."""
    parts = [p for p in path.split("/") if p]
    lowered = [p.lower() for p in parts]
    if len(parts) < 2 or lowered[0] != "subscriptions":
        return None
    if "providers" in lowered[2:]:
        at = len(lowered) - 1 - lowered[::-1].index("providers")
        if at + 1 >= len(parts):
            return None
        prefix, namespace, rest = parts[: at + 2], parts[at + 1], parts[at + 2 :]
    else:
        # ARM's own types: keywords lower-case, as ARM's texts spell them ("…/resourcegroups/write").
        prefix, namespace, rest = (
            [],
            "Microsoft.Resources",
            [p if i % 2 else p.lower() for i, p in enumerate(parts)],
        )
    verb = _VERBS.get(method.upper())
    scope_parts = parts
    if verb is None:  # POST: …/<name>/<verb> is "<type>/<verb>/action"
        if len(rest) % 2 == 1:
            verb, rest, scope_parts = f"{rest[-1]}/action", rest[:-1], parts[:-1]
        else:
            verb = "action"
    types = rest[0::2]
    if not types and not prefix:
        return None
    action = "/".join([namespace, *types, verb])
    return "/" + "/".join(scope_parts), action
