"""The emulator's state: the estate (tenant, subscriptions, groups, VMs, identities, resources, role
assignments) and the rules that depend only on it.

The records are the dataclasses of :mod:`mi_helpers.emulator.model`, loadable from a small YAML/JSON file
(``default_world.yaml`` is the documented default). The rules live here, so IMDS and ARM cannot disagree
about them: which identity a token request selects (docs/protocol.md#identity-selection), and whether a
principal may read a scope (Azure RBAC: an assignment applies to its scope and everything below it,
docs/protocol.md#role-assignments-and-definitions). Every read and write takes ``World.lock``.
"""

from __future__ import annotations

import copy
import importlib.resources as importlib_resources
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import yaml

from mi_helpers.emulator.dataplane import DataPlane, parse_data_plane
from mi_helpers.emulator.model import (
    BUILTIN_ROLES,
    Application,
    GenericResource,
    IdentitySelectionError,
    Principal,
    ResourceGroup,
    RoleAssignment,
    ServicePrincipal,
    Subscription,
    SystemIdentity,
    Tenant,
    UserAssignedIdentity,
    VirtualMachine,
    find_uami,
    mirid,
    norm_scope,
    parse_directory,
    parse_world,
    scope_within,
)
from mi_helpers.emulator.rbac import RoleDefinition, find_role
from mi_helpers.validate import InputError

__all__ = [
    "BUILTIN_ROLES",
    "Application",
    "GenericResource",
    "IdentitySelectionError",
    "Principal",
    "ResourceGroup",
    "RoleAssignment",
    "Subscription",
    "SystemIdentity",
    "Tenant",
    "UserAssignedIdentity",
    "VirtualMachine",
    "World",
    "scope_within",
]

#: Who created the role assignments of a world file that names no ``created_by``: one stable object ID per
#: tenant ("the administrator who set the estate up"), reported as ``createdBy``/``updatedBy``.
_SETUP_NAMESPACE = uuid.UUID("6f1c3a5e-2b4d-4e8f-9a0b-1c2d3e4f5a6b")


class World:
    """The whole emulated estate plus "the VM this IMDS belongs to" (``host_vm``)."""

    def __init__(
        self,
        tenant: Tenant,
        subscriptions: list[Subscription],
        resource_groups: list[ResourceGroup],
        identities: list[UserAssignedIdentity],
        vms: list[VirtualMachine],
        resources: list[GenericResource],
        role_assignments: list[RoleAssignment],
        host_vm: str,
        az_environment: str = "AzurePublicCloud",
        applications: list[Application] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.tenant = tenant
        self.subscriptions = subscriptions
        self.resource_groups = resource_groups
        self.identities = identities
        self.vms = vms
        self.resources = resources
        self.role_assignments = role_assignments
        self.az_environment = az_environment
        self.applications = list(applications or [])
        self.setup_principal = str(uuid.uuid5(_SETUP_NAMESPACE, tenant.id.lower()))
        for a in self.role_assignments:
            a.created_by = a.created_by or self.setup_principal
        self._host_vm_id = ""
        vm = self._find_vm_by_ref(host_vm)
        if vm is None:
            raise InputError("host_vm", f"no virtual machine named {host_vm!r} in the world", host_vm)
        self._host_vm_id = vm.resource_id
        #: Application service principals (the operator); managed identities are derived (principals.py).
        self.service_principals: list[ServicePrincipal] = []
        #: Display name or app ID of the service principal that stands in for the learner ("" = none).
        self.operator = ""
        # --- data plane (Key Vault, Blob storage): vaults, accounts, secrets, blobs (dataplane.py)
        self.data_plane = DataPlane()

    # ----------------------------------------------------------------- loading and saving
    @classmethod
    def default(cls) -> World:
        """The documented default world (``default_world.yaml``)."""
        text = (
            importlib_resources.files("mi_helpers.emulator").joinpath("default_world.yaml").read_text("utf-8")
        )
        return cls.from_dict(yaml.safe_load(text))

    @classmethod
    def load(cls, path: str | Path) -> World:
        """Load a world from a YAML or JSON file (same keys as ``default_world.yaml``)."""
        p = Path(path)
        try:
            text = p.read_text("utf-8")
        except OSError as exc:
            raise InputError(
                "world", f"cannot read {str(p)!r}: {exc.strerror} (give a YAML or JSON file)"
            ) from exc
        try:
            data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError("world", f"{str(p)!r} is not valid YAML/JSON: {first}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> World:
        """Build a world from a dict (the YAML layout, or the output of :meth:`to_dict`)."""
        if not isinstance(data, dict):
            raise InputError(
                "world", "must be a mapping with tenant, subscriptions, virtual_machines, …", data
            )
        try:
            world = cls(*parse_world(data))
            world.service_principals, world.operator = parse_directory(data)
            world._attach_data_plane(parse_data_plane(data, world.default_subscription.id))
            return world
        except InputError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError("world", f"malformed world description ({type(exc).__name__}: {exc})") from exc

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description of the world (loadable again with :meth:`from_dict`)."""
        with self.lock:
            host = self.host_vm
            return {
                "tenant": {"id": self.tenant.id, "name": self.tenant.name},
                "az_environment": self.az_environment,
                "service_principals": [
                    {
                        "display_name": p.display_name,
                        "app_id": p.app_id,
                        "object_id": p.object_id,
                        "graph_app_roles": list(p.graph_app_roles),
                    }
                    for p in self.service_principals
                ],
                "operator": self.operator,
                "subscriptions": [
                    {"id": s.id, "name": s.name, "resource_id": s.resource_id} for s in self.subscriptions
                ],
                "resource_groups": [
                    {
                        "subscription_id": r.subscription_id,
                        "name": r.name,
                        "location": r.location,
                        "tags": dict(r.tags),
                        "resource_id": r.resource_id,
                    }
                    for r in self.resource_groups
                ],
                "user_assigned_identities": [
                    {
                        "subscription_id": u.subscription_id,
                        "resource_group": u.resource_group,
                        "name": u.name,
                        "client_id": u.client_id,
                        "principal_id": u.principal_id,
                        "location": u.location,
                        "tags": dict(u.tags),
                        "resource_id": u.resource_id,
                        "attached_to": [v.name for v in self.vms if self._attached(v, u)],
                    }
                    for u in self.identities
                ],
                "virtual_machines": [self._vm_dict(v) for v in self.vms],
                "resources": [
                    {
                        "subscription_id": r.subscription_id,
                        "resource_group": r.resource_group,
                        "name": r.name,
                        "type": r.type,
                        "location": r.location,
                        "kind": r.kind,
                        "sku": r.sku,
                        "tags": dict(r.tags),
                        "resource_id": r.resource_id,
                    }
                    for r in self.resources
                ],
                "role_assignments": [
                    {
                        "id": a.id,
                        "principal_id": a.principal_id,
                        "principal_type": a.principal_type,
                        "role": a.role,
                        "role_definition_id": a.role_definition_guid,
                        "scope": a.scope,
                        "resource_id": a.resource_id,
                        "created_by": a.created_by,
                    }
                    for a in self.role_assignments
                ],
                "applications": [
                    {"name": p.name, "app_id": p.app_id, "identifier_uris": list(p.identifier_uris)}
                    for p in self.applications
                ],
                "host_vm": {"name": host.name, "resource_id": host.resource_id},
                "data_plane": self.data_plane.to_dict(),
            }

    # --- data plane (Key Vault, Blob storage) -------------------------------------------------------
    def _attach_data_plane(self, plane: DataPlane) -> None:
        """Use ``plane``; a vault or account ARM does not list yet is added to ``resources``."""
        self.data_plane = plane
        declared: list[tuple[Any, str, str | None, str | None]]
        declared = [(v, "Microsoft.KeyVault/vaults", None, None) for v in plane.vaults]
        declared += [
            (a, "Microsoft.Storage/storageAccounts", "StorageV2", "Standard_LRS") for a in plane.accounts
        ]
        for item, rtype, kind, sku in declared:
            if not any(norm_scope(r.resource_id) == norm_scope(item.resource_id) for r in self.resources):
                self.resources.append(
                    GenericResource(
                        item.subscription_id, item.resource_group, item.name, rtype, item.location, kind, sku
                    )
                )

    def _vm_dict(self, v: VirtualMachine) -> dict[str, Any]:
        si = v.system_identity
        return {
            "subscription_id": v.subscription_id,
            "resource_group": v.resource_group,
            "name": v.name,
            "vm_id": v.vm_id,
            "location": v.location,
            "vm_size": v.vm_size,
            "os_type": v.os_type,
            "tags": dict(v.tags),
            "resource_id": v.resource_id,
            "system_identity": None
            if si is None
            else {"enabled": si.enabled, "principal_id": si.principal_id, "client_id": si.client_id},
            "user_assigned": list(v.user_assigned),
            "admin_username": v.admin_username,
            "security_type": v.security_type,
        }

    def copy(self) -> World:
        """An independent deep copy (scenarios edit copies, never the loaded original)."""
        with self.lock:
            return copy.deepcopy(self)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("lock", None)  # locks cannot be copied; every copy gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()

    # ----------------------------------------------------------------- lookups
    @property
    def host_vm(self) -> VirtualMachine:
        """The VM this IMDS belongs to (instance metadata and token requests describe it)."""
        vm = self._find_vm_by_ref(self._host_vm_id)
        assert vm is not None
        return vm

    @property
    def default_subscription(self) -> Subscription:
        return self.subscriptions[0]

    def _find_vm_by_ref(self, ref: str) -> VirtualMachine | None:
        for v in self.vms:
            if ref.lower() in (v.name.lower(), v.resource_id.lower()):
                return v
        return None

    def _find_uami(self, ref: str) -> UserAssignedIdentity | None:
        return find_uami(self.identities, ref)

    def _attached(self, vm: VirtualMachine, u: UserAssignedIdentity) -> bool:
        return any(norm_scope(x) == norm_scope(u.resource_id) for x in vm.user_assigned)

    def subscription(self, sub_id: str) -> Subscription | None:
        with self.lock:
            return next((s for s in self.subscriptions if s.id.lower() == sub_id.lower()), None)

    def resource_group(self, sub_id: str, name: str) -> ResourceGroup | None:
        with self.lock:
            return next(
                (
                    r
                    for r in self.resource_groups
                    if r.subscription_id.lower() == sub_id.lower() and r.name.lower() == name.lower()
                ),
                None,
            )

    def vm(self, sub_id: str, rg: str, name: str) -> VirtualMachine | None:
        with self.lock:
            return next(
                (
                    v
                    for v in self.vms
                    if v.subscription_id.lower() == sub_id.lower()
                    and v.resource_group.lower() == rg.lower()
                    and v.name.lower() == name.lower()
                ),
                None,
            )

    def uami(self, sub_id: str, rg: str, name: str) -> UserAssignedIdentity | None:
        with self.lock:
            return next(
                (
                    u
                    for u in self.identities
                    if u.subscription_id.lower() == sub_id.lower()
                    and u.resource_group.lower() == rg.lower()
                    and u.name.lower() == name.lower()
                ),
                None,
            )

    def uami_by_id(self, resource_id: str) -> UserAssignedIdentity | None:
        with self.lock:
            return next(
                (u for u in self.identities if norm_scope(u.resource_id) == norm_scope(resource_id)), None
            )

    def attached_identities(self, vm: VirtualMachine) -> list[UserAssignedIdentity]:
        """UAMIs attached to ``vm``, in attachment order."""
        return [u for _, u in self.attachments(vm)]

    def attachments(self, vm: VirtualMachine) -> list[tuple[str, UserAssignedIdentity]]:
        """(resource ID as it was given when attached, UAMI) for each UAMI attached to ``vm``, in order."""
        with self.lock:
            out = []
            for rid in vm.user_assigned:
                u = self.uami_by_id(rid)
                if u is not None:
                    out.append((rid, u))
            return out

    # ----------------------------------------------------------------- identity selection (IMDS rule)
    def _system_principal(self, vm: VirtualMachine) -> Principal:
        assert vm.system_identity is not None
        return Principal(
            "system",
            vm.system_identity.principal_id,
            vm.system_identity.client_id,
            self.tenant.id,
            mirid(vm.resource_id),
            None,
            vm.name,
        )

    def _user_principal(self, u: UserAssignedIdentity) -> Principal:
        return Principal(
            "user", u.principal_id, u.client_id, self.tenant.id, mirid(u.resource_id), u.resource_id, u.name
        )

    def select_identity(self, selector: str | None = None, value: str | None = None) -> Principal:
        """Pick the identity for a token request on the host VM, following IMDS's rules.

        ``selector`` is ``client_id``, ``object_id`` or ``msi_res_id`` (``mi_res_id`` is the same). Without a
        selector: the system-assigned identity if enabled; else exactly one attached UAMI; else
        ``IdentitySelectionError("multiple")`` for two or more, ``IdentitySelectionError("not_found")`` for
        none.
        IDs compare case-insensitively.
        """
        with self.lock:
            vm = self.host_vm
            uamis = self.attached_identities(vm)
            if selector is None:
                if vm.has_system_identity:
                    return self._system_principal(vm)
                if len(uamis) == 1:
                    return self._user_principal(uamis[0])
                raise IdentitySelectionError("multiple" if uamis else "not_found")
            v = (value or "").strip().lower()
            candidates = [self._user_principal(u) for u in uamis]
            if vm.has_system_identity:
                candidates.append(self._system_principal(vm))
            for p in candidates:
                if selector == "client_id" and p.client_id.lower() == v:
                    return p
                if selector == "object_id" and p.principal_id.lower() == v:
                    return p
                if (
                    selector in ("msi_res_id", "mi_res_id", "resource_id")
                    and p.resource_id
                    and norm_scope(p.resource_id) == norm_scope(v)
                ):
                    return p
            raise IdentitySelectionError("not_found")

    # ----------------------------------------------------------------- RBAC (ARM rule)
    def assignments_for(self, principal_id: str) -> list[RoleAssignment]:
        with self.lock:
            return [a for a in self.role_assignments if a.principal_id.lower() == principal_id.lower()]

    def roles_covering(self, principal_id: str, scope: str) -> list[RoleDefinition]:
        """The role definitions the principal holds at ``scope`` or above it (inherited downwards)."""
        target = norm_scope(scope)
        return [
            a.definition
            for a in self.assignments_for(principal_id)
            if (s := norm_scope(a.scope)) == "/" or target == s or target.startswith(s + "/")
        ]

    def allowed(self, principal_id: str, action: str, scope: str, *, data: bool = False) -> bool:
        """May the principal perform ``action`` (a data action when ``data``) over ``scope``?

        Azure RBAC (docs/protocol.md#role-assignments-and-definitions): some role assigned at the scope or
        above it allows the action (matched by one of its (data) actions, not by its not-(data) actions).
        """
        return any(d.allows(action, data=data) for d in self.roles_covering(principal_id, scope))

    def allowed_within(self, principal_id: str, action: str, scope: str, *, data: bool = False) -> bool:
        """Like :meth:`allowed`, for an assignment at, above or anywhere below ``scope`` (what a list of
        ``scope`` can show some of)."""
        return any(
            (scope_within(scope, a.scope) or scope_within(a.scope, scope))
            and a.definition.allows(action, data=data)
            for a in self.assignments_for(principal_id)
        )

    def has_access_in(self, principal_id: str, scope: str) -> bool:
        """True when the principal holds any assignment at, above or below ``scope`` (``GET /subscriptions``
        lists the subscriptions where that is so)."""
        return any(
            scope_within(scope, a.scope) or scope_within(a.scope, scope)
            for a in self.assignments_for(principal_id)
        )

    # ----------------------------------------------------------------- state changes (fixes)
    def enable_system_identity(self) -> str:
        with self.lock:
            vm = self.host_vm
            if vm.system_identity is None:
                vm.system_identity = SystemIdentity(str(uuid.uuid4()), str(uuid.uuid4()), True)
            elif vm.system_identity.enabled:
                return f"system-assigned identity of {vm.name} was already enabled"
            vm.system_identity.enabled = True
            vm.revision += 1
            pid = vm.system_identity.principal_id
            return f"enabled the system-assigned identity of {vm.name} (principal {pid})"

    def disable_system_identity(self) -> str:
        with self.lock:
            vm = self.host_vm
            if not vm.has_system_identity:
                return f"system-assigned identity of {vm.name} was already disabled"
            assert vm.system_identity is not None
            vm.system_identity.enabled = False
            vm.revision += 1
            return f"disabled the system-assigned identity of {vm.name}"

    def _uami_from_kw(
        self, name: str | None, resource_id: str | None, client_id: str | None = None
    ) -> UserAssignedIdentity:
        ref = resource_id or name or client_id
        if not ref:
            raise InputError("name", "give name= or resource_id= of a user-assigned identity", None)
        u = self._find_uami(str(ref))
        if u is None:
            allowed = ", ".join(x.name for x in self.identities) or "none"
            raise InputError(
                "name" if name else "resource_id",
                f"no user-assigned identity {ref!r} (known: {allowed})",
                ref,
            )
        return u

    def attach_user_identity(
        self, name: str | None = None, resource_id: str | None = None, client_id: str | None = None
    ) -> str:
        with self.lock:
            u = self._uami_from_kw(name, resource_id, client_id)
            vm = self.host_vm
            if self._attached(vm, u):
                return f"{u.name} was already attached to {vm.name}"
            given = (resource_id or "").strip()
            vm.user_assigned.append(given if given.startswith("/") else u.resource_id)
            vm.revision += 1
            return f"attached {u.name} (client id {u.client_id}) to {vm.name}"

    def detach_user_identity(
        self, name: str | None = None, resource_id: str | None = None, client_id: str | None = None
    ) -> str:
        with self.lock:
            u = self._uami_from_kw(name, resource_id, client_id)
            vm = self.host_vm
            before = len(vm.user_assigned)
            vm.user_assigned = [x for x in vm.user_assigned if norm_scope(x) != norm_scope(u.resource_id)]
            if len(vm.user_assigned) == before:
                return f"{u.name} was not attached to {vm.name}"
            vm.revision += 1
            return f"detached {u.name} from {vm.name}"

    def _check_role(self, role: str) -> str:
        found = find_role(str(role))
        if found is None:
            raise InputError("role", f"unknown role {role!r} (allowed: {', '.join(BUILTIN_ROLES)})", role)
        return found.name

    def _check_scope(self, scope: str) -> str:
        s = str(scope).strip()
        if not s.startswith("/subscriptions/") and s != "/":
            raise InputError(
                "scope", "must be an ARM scope such as /subscriptions/<id>[/resourceGroups/<name>]", scope
            )
        return s.rstrip("/") or "/"

    def add_role_assignment(
        self, principal_id: str | None = None, role: str = "Reader", scope: str | None = None
    ) -> str:
        with self.lock:
            pid = principal_id or self._default_principal_id()
            r = self._check_role(role)
            sc = self._check_scope(scope or self.resource_group_scope())
            if any(
                a.principal_id.lower() == pid.lower()
                and a.role == r
                and norm_scope(a.scope) == norm_scope(sc)
                for a in self.role_assignments
            ):
                return f"{pid} already holds {r} at {sc}"
            self.role_assignments.append(RoleAssignment(pid, r, sc, created_by=self.setup_principal))
            return f"granted {r} to {pid} at {sc}"

    def remove_role_assignment(
        self,
        principal_id: str | None = None,
        role: str | None = None,
        scope: str | None = None,
        id: str | None = None,
    ) -> str:
        with self.lock:
            pid = principal_id or (None if id else self._default_principal_id())
            r = self._check_role(role) if role else None

            def match(a: RoleAssignment) -> bool:
                if id and a.id.lower() != id.lower():
                    return False
                if pid and a.principal_id.lower() != pid.lower():
                    return False
                if r and a.role != r:
                    return False
                return not (scope and norm_scope(a.scope) != norm_scope(scope))

            keep = [a for a in self.role_assignments if not match(a)]
            removed = len(self.role_assignments) - len(keep)
            self.role_assignments = keep
            return f"removed {removed} role assignment(s)"

    def resource_group_scope(self) -> str:
        vm = self.host_vm
        return f"/subscriptions/{vm.subscription_id}/resourceGroups/{vm.resource_group}"

    def _default_principal_id(self) -> str:
        """The principal a no-selector token request gets (system, else the single UAMI)."""
        try:
            return self.select_identity().principal_id
        except IdentitySelectionError as exc:
            raise InputError(
                "principal_id", "required: the VM has no unambiguous default identity", None
            ) from exc

    def role_name(self, role_definition_guid: str) -> str | None:
        role = find_role(role_definition_guid)
        return role.name if role is not None and role.id == role_definition_guid.lower() else None

    # ----------------------------------------------------------------- ARM writes (protocol.md#arm-writes)
    # What ARM's writes change (arm/*_writes.py check the request, the caller's rights and the body first).
    # A write changes this world only: each emulator has its own, and a scenario switch rebuilds it.

    def set_vm_identity(self, vm: VirtualMachine, *, system: bool, user_assigned: list[str]) -> None:
        """Give ``vm`` the identity block an ARM write asked for.

        ``system`` switches the system-assigned identity: turning it on when it is off creates a **new**
        service principal (new principal and client IDs), as Azure does, so role assignments made for an
        earlier one no longer apply to the VM; turning it off deletes it. ``user_assigned`` are the attached
        identities' resource IDs, spelled as the request gave them (ARM echoes that spelling).
        """
        with self.lock:
            if system and not vm.has_system_identity:
                vm.system_identity = SystemIdentity(str(uuid.uuid4()), str(uuid.uuid4()), True)
            elif not system:
                vm.system_identity = None
            vm.user_assigned = list(user_assigned)
            vm.revision += 1

    def put_user_assigned_identity(
        self, sub: str, rg: str, name: str, location: str, tags: dict[str, str] | None
    ) -> tuple[UserAssignedIdentity, bool]:
        """Create (new client and principal IDs) or update (tags) a user-assigned identity; (it, created)."""
        with self.lock:
            found = self.uami(sub, rg, name)
            if found is not None:
                if tags is not None:
                    found.tags = dict(tags)
                return found, False
            group = self.resource_group(sub, rg)
            assert group is not None
            u = UserAssignedIdentity(
                group.subscription_id,
                group.name,
                name,
                str(uuid.uuid4()),
                str(uuid.uuid4()),
                location,
                dict(tags or {}),
            )
            self.identities.append(u)
            return u, True

    def delete_user_assigned_identity(self, sub: str, rg: str, name: str) -> bool:
        """Delete the identity (VMs keep a dangling reference, as on Azure); False if there was none."""
        with self.lock:
            found = self.uami(sub, rg, name)
            if found is None:
                return False
            self.identities.remove(found)
            return True

    def role_assignment_named(self, scope: str, name: str) -> RoleAssignment | None:
        """The assignment called ``name`` at exactly ``scope``."""
        with self.lock:
            return next(
                (
                    a
                    for a in self.role_assignments
                    if a.id.lower() == name.lower() and norm_scope(a.scope) == norm_scope(scope)
                ),
                None,
            )

    def same_role_assignment(self, scope: str, principal_id: str, role: str) -> RoleAssignment | None:
        """An assignment of ``role`` to ``principal_id`` at exactly ``scope`` (ARM keeps these unique)."""
        with self.lock:
            return next(
                (
                    a
                    for a in self.role_assignments
                    if a.principal_id.lower() == principal_id.lower()
                    and a.role == role
                    and norm_scope(a.scope) == norm_scope(scope)
                ),
                None,
            )

    def put_role_assignment(self, assignment: RoleAssignment) -> None:
        """Add an assignment ARM has checked (unique name at its scope, unique role for its principal)."""
        with self.lock:
            self.role_assignments.append(assignment)

    def delete_role_assignment(self, scope: str, name: str) -> RoleAssignment | None:
        """Remove the assignment called ``name`` at ``scope``; the removed one, or None."""
        with self.lock:
            found = self.role_assignment_named(scope, name)
            if found is not None:
                self.role_assignments.remove(found)
            return found

    def put_resource_group(
        self, sub: str, name: str, location: str, tags: dict[str, str] | None
    ) -> tuple[ResourceGroup, bool]:
        """Create or update (tags) a resource group; (it, created)."""
        with self.lock:
            found = self.resource_group(sub, name)
            if found is not None:
                if tags is not None:
                    found.tags = dict(tags)
                return found, False
            s = self.subscription(sub)
            assert s is not None
            group = ResourceGroup(s.id, name, location, dict(tags or {}))
            self.resource_groups.append(group)
            return group, True
