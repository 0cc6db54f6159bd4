"""What the caller of ``diagnose`` knows beyond the error itself (:class:`DiagnosisContext`).

Text alone cannot tell some cases apart (an identity that was just attached vs one never attached; a role
assignment that exists but has not propagated vs none at all); the context settles them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from mi_helpers.constants import Roles
from mi_helpers.validate import InputError

__all__ = ["DiagnosisContext", "get_field", "input_error", "scope_covers"]


@dataclass(frozen=True)
class DiagnosisContext:
    """What the caller knows beyond the error itself; every field is optional.

    ``identity_attached``: ARM shows the requested identity on the VM (or it was just attached).
    ``role_assignment_exists``: a role assignment for ``principal_id`` exists at or above ``scope``;
    alternatively pass ``role_assignments`` (dicts/objects with ``principal_id`` and ``scope``).
    ``attempts``: the request history, each with ``status`` (``None`` = no HTTP answer) and optionally
    ``time`` and ``retry_after``. ``target``: ``"azure"`` or ``"emulator"`` (or a Target object).
    ``stage``: ``"imds"`` or ``"arm"`` when the caller knows which service failed.
    ``visible_resource_groups``: the resource groups the identity can list (ARM answers 403, not 404, for a
    group it cannot see, so a misspelt name looks like a missing role). ``known_identities``: identities
    the caller could look up (dicts/objects with ``name``, ``principal_id``, ``client_id``), to recognise an
    ID of the wrong kind.
    ``deleted_principal_ids``: principals that role assignments still name but the directory no longer has
    (a system identity switched off; the portal shows "Identity not found", ``Get-AzRoleAssignment``
    ``ObjectType Unknown``): an assignment of one of them at the scope is a stale one.
    """

    subscription_id: str | None = None
    resource_group: str | None = None
    vm_name: str | None = None
    principal_id: str | None = None
    client_id: str | None = None
    scope: str | None = None
    resource: str | None = None
    target: str | None = None
    emulator: bool | None = None
    imds_url: str | None = None
    arm_url: str | None = None
    url: str | None = None
    stage: str | None = None
    identity_attached: bool | None = None
    role_assignment_exists: bool | None = None
    role_assignments: tuple[Any, ...] | None = None
    attempts: tuple[Any, ...] | None = None
    environ: Mapping[str, str] | None = None
    visible_resource_groups: tuple[str, ...] | None = None
    known_identities: tuple[Any, ...] | None = None
    deleted_principal_ids: tuple[str, ...] | None = None

    @classmethod
    def coerce(cls, value: DiagnosisContext | Mapping[str, Any] | None) -> DiagnosisContext:
        """Accept a `DiagnosisContext`, a dict with the same keys, or None."""
        if value is None:
            return cls()
        if isinstance(value, DiagnosisContext):
            return value
        if not isinstance(value, Mapping):
            raise input_error("context", "a DiagnosisContext, a dict of its fields, or None")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise input_error("context", f"keys among {', '.join(sorted(names))} (got {unknown[0]!r})")
        kw: dict[str, Any] = dict(value)
        target = kw.get("target")
        if target is not None and not isinstance(target, str):
            kw["target"] = getattr(target, "name", None)
            if kw.get("emulator") is None:
                kw["emulator"] = getattr(target, "emulator", None) is not None or kw["target"] == "emulator"
            kw.setdefault("imds_url", getattr(target, "imds_url", None))
            kw.setdefault("arm_url", getattr(target, "arm_url", None))
        for key in (
            "role_assignments",
            "attempts",
            "visible_resource_groups",
            "known_identities",
            "deleted_principal_ids",
        ):
            if kw.get(key) is not None:
                if isinstance(kw[key], (str, bytes)):
                    raise input_error(f"context.{key}", "a list (or tuple), not a string", kw[key])
                try:
                    kw[key] = tuple(kw[key])
                except TypeError:
                    raise input_error(f"context.{key}", "a list (or tuple)", kw[key]) from None
        return cls(**kw)

    def as_placeholders(self) -> dict[str, object]:
        """The values `mi_helpers.diagnosis.catalogue` fills into commands."""
        return {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "vm_name": self.vm_name,
            "principal_id": self.principal_id,
            "client_id": self.client_id,
            "scope": self.scope,
            "resource": self.resource,
            "imds_url": self.imds_url if self.target == "emulator" else None,
        }

    def env(self) -> Mapping[str, str]:
        """The environment to judge (the given one, else this process's)."""
        return self.environ if self.environ is not None else os.environ

    def role_exists(self, roles: frozenset[str] | None = None) -> bool | None:
        """Whether a role assignment covers ``principal_id`` at or above ``scope`` (None = unknown).

        ``roles`` (role definition GUIDs) leaves out assignments of other known roles: a data-plane refusal is
        "still propagating" only when a *data* role was granted, not when the identity is Contributor.
        """
        if self.role_assignment_exists is not None:
            return self.role_assignment_exists
        if self.role_assignments is None or not self.principal_id:
            return None
        for ra in self.role_assignments:
            pid = get_field(ra, "principal_id") or get_field(ra, "principalId")
            ra_scope = get_field(ra, "scope")
            if str(pid).lower() != self.principal_id.lower() or not ra_scope:
                continue
            guid = _role_guid(ra)
            if roles is not None and guid and guid not in roles:  # an assignment of unknown role still counts
                continue
            if not self.scope or scope_covers(str(ra_scope), self.scope):
                return True
        return False

    def stale_assignment(self) -> bool:
        """True when an assignment at or above ``scope`` names a deleted principal and none names this one."""
        if not self.deleted_principal_ids or self.role_assignments is None or self.role_exists():
            return False
        deleted = {str(d).lower() for d in self.deleted_principal_ids}
        for ra in self.role_assignments:
            pid = get_field(ra, "principal_id") or get_field(ra, "principalId")
            ra_scope = get_field(ra, "scope")
            if (
                str(pid).lower() in deleted
                and ra_scope
                and (not self.scope or scope_covers(str(ra_scope), self.scope))
            ):
                return True
        return False


def input_error(fieldname: str, allowed: str, value: object = None) -> InputError:
    return InputError(fieldname, f"expected {allowed}", value)


def get_field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def scope_covers(outer: str, inner: str) -> bool:
    """True when scope `outer` is `inner` or one of its parents (segment-wise, case-insensitive)."""
    o = [s for s in outer.lower().split("/") if s]
    i = [s for s in inner.lower().split("/") if s]
    return len(o) <= len(i) and i[: len(o)] == o


def _role_guid(ra: Any) -> str:
    """The role definition GUID of an assignment, given by ID (``role_definition_id``) or name (``role``)."""
    rid = get_field(ra, "role_definition_id") or get_field(ra, "roleDefinitionId")
    if rid:
        return str(rid).rstrip("/").rsplit("/", 1)[-1].lower()
    return Roles.BY_NAME.get(str(get_field(ra, "role") or get_field(ra, "role_name") or ""), "")
