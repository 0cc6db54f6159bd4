"""What a notebook can look up, after an error, to make its diagnosis right.

An error text alone cannot tell some failures apart (``mi_helpers.diagnosis.context``): a 403 on a resource
group the identity cannot see reads the same whether the name is misspelt or a role is missing, and
"Identity not found" for a ``client_id`` reads the same whether the identity is not attached or the GUID is
its principal (object) ID. :func:`context_for` asks ARM what the identity itself can see (the resource
groups it can list, the identities attached to this VM), the way a person would check in the portal, and
returns a :class:`~mi_helpers.diagnosis.DiagnosisContext` dict for :func:`mi_helpers.diagnose`.

Every look-up is best effort: bounded, silent (no SDK log lines) and never an error of its own; what cannot
be learnt is simply left out.
"""

from __future__ import annotations

import re
from typing import Any

from mi_helpers.logs import quiet_sdk_logs

__all__ = ["context_for", "known_identities", "visible_resource_groups"]

_SCOPE_SUB = re.compile(r"over scope '/subscriptions/(?P<sub>[0-9a-fA-F-]{36})", re.IGNORECASE)
# One short try per look-up: it explains an error that already happened, it must not add a wait of its own.
_QUICK = {"retry_total": 0, "connection_timeout": 3, "read_timeout": 5}


def visible_resource_groups(subscription_id: str) -> list[str] | None:
    """The resource groups the current identity can list in ``subscription_id`` (None: it cannot say)."""
    from mi_helpers.arm import resource_client

    try:
        with quiet_sdk_logs(), resource_client(subscription_id, **_QUICK) as client:
            return [str(g.name) for g in client.resource_groups.list()]
    except Exception:  # the look-up only sharpens a diagnosis; without it the card is the generic one
        return None


def known_identities() -> list[dict[str, Any]] | None:
    """The identities attached to this VM (kind, name, principal_id, client_id), from ARM; None if unknown."""
    from mi_helpers.arm import vm_identity

    try:
        with quiet_sdk_logs():
            records = vm_identity(credential=_quick_credential()).to_dict("records")
    except Exception:  # as above: no identities known, the generic card
        return None
    return [{str(k): v for k, v in row.items()} for row in records]


def _quick_credential() -> Any:
    from mi_helpers.identity import credential

    return credential(connection_timeout=2, read_timeout=3)


def _authorization_failed(exc: BaseException) -> str | None:
    """The subscription of the scope an ``AuthorizationFailed`` error names, or None for other errors."""
    if getattr(getattr(exc, "error", None), "code", None) != "AuthorizationFailed":
        return None
    m = _SCOPE_SUB.search(str(exc))
    return m.group("sub") if m else None


def _client_id_not_found(exc: BaseException) -> str | None:
    """The ``client_id`` of a sign-in that IMDS answered with 400 (``SignInError.selector``), or None."""
    selector = getattr(exc, "selector", None)
    if not (isinstance(selector, tuple) and len(selector) == 2 and selector[0] == "client_id"):
        return None
    return str(selector[1]) if getattr(exc, "status", None) == 400 else None


def context_for(exc: BaseException) -> dict[str, Any] | None:
    """A diagnosis context for ``exc`` with what a look-up adds, or None when nothing would help."""
    subscription = _authorization_failed(exc)
    if subscription is not None:
        groups = visible_resource_groups(subscription)
        return {"subscription_id": subscription, "visible_resource_groups": groups} if groups else None
    client_id = _client_id_not_found(exc)
    if client_id is not None:
        identities = known_identities()
        return {"client_id": client_id, "known_identities": identities} if identities else None
    return None
