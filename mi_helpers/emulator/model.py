"""The records of the emulated estate (tenant, subscriptions, groups, VMs, identities, resources, role
assignments) and their file layout.

Plain dataclasses, no rules and no locks: :class:`~mi_helpers.emulator.world.World` holds them and owns the
rules that read them. :func:`parse_world` reads the YAML/JSON layout of ``default_world.yaml``.
"""

from __future__ import annotations

import base64
import functools
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from mi_helpers.emulator.rbac import BUILTIN_ROLE_DEFINITIONS, RoleDefinition, find_role
from mi_helpers.validate import InputError

__all__ = [
    "BUILTIN_ROLES",
    "Application",
    "GenericResource",
    "IdentitySelectionError",
    "Principal",
    "ResourceGroup",
    "RoleAssignment",
    "ServicePrincipal",
    "Subscription",
    "SystemIdentity",
    "Tenant",
    "UserAssignedIdentity",
    "VirtualMachine",
    "VmImage",
    "WorldParts",
    "find_uami",
    "mirid",
    "norm_scope",
    "parse_directory",
    "parse_world",
    "scope_within",
]

#: The built-in role definitions, by ``roleName`` (docs/protocol.md#role-assignments-and-definitions).
BUILTIN_ROLES: dict[str, RoleDefinition] = {d.name: d for d in BUILTIN_ROLE_DEFINITIONS}


def norm_scope(scope: str) -> str:
    """Case-insensitive, slash-tolerant form of an ARM scope for comparisons."""
    parts = [p for p in scope.strip().split("/") if p]
    return "/" + "/".join(parts).lower()


def scope_within(scope: str, ancestor: str) -> bool:
    """True when ``scope`` equals ``ancestor`` or lies below it (case-insensitive, as ARM compares IDs)."""
    s, a = norm_scope(scope), norm_scope(ancestor)
    return a == "/" or s == a or s.startswith(a + "/")


@dataclass
class Tenant:
    """The Entra tenant every identity belongs to."""

    id: str
    name: str = "Emulated Tenant"


@dataclass
class Subscription:
    """An Azure subscription."""

    id: str
    name: str = "Emulated Subscription"

    @property
    def resource_id(self) -> str:
        return f"/subscriptions/{self.id}"


@dataclass
class ResourceGroup:
    """A resource group in a subscription."""

    subscription_id: str
    name: str
    location: str = "westeurope"
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def resource_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.name}"


@dataclass
class UserAssignedIdentity:
    """A user-assigned managed identity (a standalone ARM resource that can be attached to VMs)."""

    subscription_id: str
    resource_group: str
    name: str
    client_id: str
    principal_id: str
    location: str = "westeurope"
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{self.name}"
        )


@dataclass
class SystemIdentity:
    """A VM's system-assigned identity. The IDs stay when disabled, so re-enabling restores them."""

    principal_id: str
    client_id: str
    enabled: bool = True


@dataclass
class VirtualMachine:
    """A virtual machine, with its identity block (system-assigned and attached user-assigned identities)."""

    subscription_id: str
    resource_group: str
    name: str
    vm_id: str
    location: str = "westeurope"
    vm_size: str = "Standard_D2s_v5"
    os_type: str = "Linux"
    tags: dict[str, str] = field(default_factory=dict)
    system_identity: SystemIdentity | None = None
    #: Resource IDs of the attached UAMIs, spelled as they were given when attached: ARM's
    #: ``identity.userAssignedIdentities`` keys keep that casing (docs/protocol.md#resources-and-bodies).
    user_assigned: list[str] = field(default_factory=list)
    admin_username: str = "azureuser"
    #: ``securityProfile.securityType`` in ARM and in instance metadata (``TrustedLaunch``, ``Standard``…).
    security_type: str = "TrustedLaunch"
    #: Counts changes to the VM: ARM's ``etag`` is ``"<revision>"``.
    revision: int = 1

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.name}"
        )

    @property
    def has_system_identity(self) -> bool:
        return self.system_identity is not None and self.system_identity.enabled

    @property
    def linux(self) -> bool:
        return self.os_type.lower() == "linux"

    @property
    def image(self) -> VmImage:
        """The marketplace image the VM was created from (Ubuntu 22.04 or Windows Server 2022)."""
        return _LINUX_IMAGE if self.linux else _WINDOWS_IMAGE

    @property
    def os_disk_name(self) -> str:
        """``<vm>_OsDisk_1_<32 hex>``: the managed OS disk's name as Compute makes it (stable per VM)."""
        return f"{self.name}_OsDisk_1_{_disk_suffix(self.vm_id)}"

    @property
    def os_disk_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/disks/{self.os_disk_name}"
        )

    @property
    def ssh_public_key(self) -> str | None:
        """The admin's SSH public key (Linux VMs, password sign-in disabled): the same in ARM and IMDS.

        A well-formed ``ssh-ed25519`` key derived from the VM ID, so every run shows the same one. It is a
        public key of no private key anyone holds.
        """
        if not self.linux:
            return None
        return f"ssh-ed25519 {_ssh_key_blob(self.vm_id)} {self.admin_username}@{self.name}"

    @property
    def ssh_key_path(self) -> str:
        return f"/home/{self.admin_username}/.ssh/authorized_keys"


@functools.lru_cache(maxsize=256)
def _disk_suffix(vm_id: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_OID, vm_id).hex


@functools.lru_cache(maxsize=256)
def _ssh_key_blob(vm_id: str) -> str:
    algo = b"ssh-ed25519"
    blob = uuid.uuid5(uuid.NAMESPACE_OID, "ssh:" + vm_id).bytes * 2
    wire = len(algo).to_bytes(4, "big") + algo + len(blob).to_bytes(4, "big") + blob
    return base64.b64encode(wire).decode()


@dataclass(frozen=True)
class VmImage:
    """A marketplace image reference (what ARM's ``imageReference`` and IMDS's offer/sku/version report)."""

    publisher: str
    offer: str
    sku: str
    version: str
    exact_version: str


_LINUX_IMAGE = VmImage(
    "Canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2", "latest", "22.04.202411010"
)
_WINDOWS_IMAGE = VmImage(
    "MicrosoftWindowsServer", "WindowsServer", "2022-datacenter-g2", "latest", "20348.2849.241106"
)


@dataclass
class GenericResource:
    """Any other resource in a resource group (storage account, key vault, …): listed, not modelled."""

    subscription_id: str
    resource_group: str
    name: str
    type: str
    location: str = "westeurope"
    kind: str | None = None
    sku: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{self.type}/{self.name}"
        )


@dataclass
class RoleAssignment:
    """A built-in role (by ``roleName``) granted to a principal at a scope.

    ``created_by`` is the object ID of whoever created it: ARM reports it as ``createdBy``/``updatedBy`` of an
    existing assignment (docs/protocol.md#role-assignments-and-definitions).
    """

    principal_id: str
    role: str
    scope: str
    id: str = ""
    principal_type: str = "ServicePrincipal"
    created_by: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            key = f"{self.principal_id}|{self.role}|{norm_scope(self.scope)}".lower()
            self.id = str(uuid.uuid5(uuid.NAMESPACE_URL, key))

    @property
    def definition(self) -> RoleDefinition:
        return BUILTIN_ROLES[self.role]

    @property
    def role_definition_guid(self) -> str:
        return self.definition.id

    @property
    def resource_id(self) -> str:
        scope = self.scope.rstrip("/")
        return f"{scope}/providers/Microsoft.Authorization/roleAssignments/{self.id}"


@dataclass(frozen=True)
class Application:
    """An application registered in the tenant (a custom API): the resources a token may be asked for.

    A token request names it by its application ID (``app_id``) or one of its ``identifier_uris``
    (``api://<app_id>``…), as Entra resolves a ``resource`` (docs/protocol.md#audiences-and-clouds).
    """

    name: str
    app_id: str
    identifier_uris: tuple[str, ...] = ()


@dataclass(frozen=True)
class Principal:
    """The identity a token is issued for (what IMDS selected)."""

    kind: Literal["system", "user"]
    principal_id: str
    client_id: str
    tenant_id: str
    mirid: str  # xms_mirid: VM ID (system) or UAMI ID (user), with lower-case "resourcegroups"
    resource_id: str | None = None  # the UAMI's resource ID (user only)
    name: str = ""


class IdentitySelectionError(LookupError):
    """IMDS could not pick an identity: ``reason`` is ``"not_found"`` or ``"multiple"``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# ------------------------------------------------------------------------------------ the directory (Entra)
@dataclass
class ServicePrincipal:
    """An application's service principal in the tenant: a principal that signs in with a client secret.

    The default world's one is the operator (``mi-tutorial-operator``), which stands in for the learner.
    Its secret is not part of the world: the backend generates one per run. ``graph_app_roles`` are the
    Microsoft Graph application permissions granted to it (they appear in its Graph tokens' ``roles``).
    Managed identities are service principals too; they are derived from the VMs and user-assigned
    identities (:mod:`mi_helpers.emulator.principals`), not listed here.
    """

    app_id: str
    object_id: str
    display_name: str
    graph_app_roles: list[str] = field(default_factory=list)


def parse_directory(data: dict[str, Any]) -> tuple[list[ServicePrincipal], str]:
    """The world's ``service_principals`` and its ``operator`` (display name or app ID of one of them)."""
    sps = [
        ServicePrincipal(
            str(d["app_id"]),
            str(d["object_id"]),
            str(d.get("display_name") or d["app_id"]),
            [str(r) for r in d.get("graph_app_roles") or []],
        )
        for d in data.get("service_principals") or []
    ]
    operator = data.get("operator") or ""
    if isinstance(operator, dict):
        operator = operator.get("app_id") or operator.get("display_name") or ""
    operator = str(operator)
    if operator and not any(operator.lower() in (p.app_id.lower(), p.display_name.lower()) for p in sps):
        raise InputError("world.operator", f"{operator!r} names no service principal of the world", operator)
    return sps, operator


def mirid(resource_id: str) -> str:
    """``xms_mirid`` form of a resource ID: ``resourceGroups`` in lower case, as in real tokens."""
    parts = resource_id.split("/")
    return "/".join("resourcegroups" if p.lower() == "resourcegroups" else p for p in parts)


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(where, "must be a mapping of tag names to values", value)
    return {str(k): str(v) for k, v in value.items()}


def find_uami(identities: list[UserAssignedIdentity], ref: str) -> UserAssignedIdentity | None:
    """The identity ``ref`` names: its name, resource ID, client ID or principal ID (case-insensitive)."""
    r = ref.strip().lower()
    for u in identities:
        if r in (u.name.lower(), u.resource_id.lower(), u.client_id.lower(), u.principal_id.lower()):
            return u
    if r.startswith("/"):
        for u in identities:
            if norm_scope(u.resource_id) == norm_scope(r):
                return u
    return None


class WorldParts(NamedTuple):
    """Everything a world is made of, as read from its file (the arguments of ``World(...)``)."""

    tenant: Tenant
    subscriptions: list[Subscription]
    resource_groups: list[ResourceGroup]
    identities: list[UserAssignedIdentity]
    vms: list[VirtualMachine]
    resources: list[GenericResource]
    role_assignments: list[RoleAssignment]
    host_vm: str
    az_environment: str
    applications: list[Application]


def parse_world(data: dict[str, Any]) -> WorldParts:
    """Read the YAML/JSON layout (``default_world.yaml``'s keys, or ``World.to_dict()``'s output)."""
    t = data.get("tenant") or {}
    tenant = Tenant(id=str(t["id"]), name=str(t.get("name", "Emulated Tenant")))
    subs = [
        Subscription(id=str(s["id"]), name=str(s.get("name", "Emulated Subscription")))
        for s in data["subscriptions"]
    ]
    if not subs:
        raise InputError("world.subscriptions", "needs at least one subscription")
    default_sub = subs[0].id

    def sub_of(d: dict[str, Any]) -> str:
        return str(d.get("subscription_id") or d.get("subscription") or default_sub)

    rgs = [
        ResourceGroup(
            sub_of(r),
            str(r["name"]),
            str(r.get("location", "westeurope")),
            _str_map(r.get("tags"), "tags"),
        )
        for r in data.get("resource_groups", [])
    ]
    uamis = [
        UserAssignedIdentity(
            sub_of(u),
            str(u["resource_group"]),
            str(u["name"]),
            str(u["client_id"]),
            str(u["principal_id"]),
            str(u.get("location", "westeurope")),
            _str_map(u.get("tags"), "tags"),
        )
        for u in data.get("user_assigned_identities", [])
    ]
    vms = [_vm(v, sub_of(v), uamis) for v in data.get("virtual_machines", [])]
    res = [
        GenericResource(
            sub_of(r),
            str(r["resource_group"]),
            str(r["name"]),
            str(r["type"]),
            str(r.get("location", "westeurope")),
            r.get("kind"),
            r.get("sku"),
            _str_map(r.get("tags"), "tags"),
        )
        for r in data.get("resources", [])
    ]
    ras = [_role_assignment(a) for a in data.get("role_assignments", [])]
    apps = [_application(a) for a in data.get("applications", [])]
    host = data.get("host_vm")
    if isinstance(host, dict):
        host = host.get("resource_id") or host.get("name")
    if not host:
        if not vms:
            raise InputError("world.virtual_machines", "needs at least one VM (the one IMDS belongs to)")
        host = vms[0].name
    return WorldParts(
        tenant,
        subs,
        rgs,
        uamis,
        vms,
        res,
        ras,
        str(host),
        str(data.get("az_environment", "AzurePublicCloud")),
        apps,
    )


def _vm(v: dict[str, Any], subscription_id: str, uamis: list[UserAssignedIdentity]) -> VirtualMachine:
    si = v.get("system_identity")
    system = None
    if isinstance(si, dict):
        system = SystemIdentity(str(si["principal_id"]), str(si["client_id"]), bool(si.get("enabled", True)))
    attached = []
    for ref in v.get("user_assigned") or []:
        ua = find_uami(uamis, str(ref))
        if ua is None:
            raise InputError("world.virtual_machines.user_assigned", f"unknown identity {ref!r}", ref)
        # A full resource ID keeps the casing it was written with (ARM echoes it as attached).
        attached.append(str(ref).strip() if str(ref).strip().startswith("/") else ua.resource_id)
    return VirtualMachine(
        subscription_id,
        str(v["resource_group"]),
        str(v["name"]),
        str(v["vm_id"]),
        str(v.get("location", "westeurope")),
        str(v.get("vm_size", "Standard_D2s_v5")),
        str(v.get("os_type", "Linux")),
        _str_map(v.get("tags"), "tags"),
        system,
        attached,
        str(v.get("admin_username", "azureuser")),
        str(v.get("security_type", "TrustedLaunch")),
    )


def _role_assignment(a: dict[str, Any]) -> RoleAssignment:
    role = find_role(str(a["role"]))
    if role is None:
        raise InputError(
            "world.role_assignments.role",
            f"unknown role {a['role']!r} (allowed: {', '.join(BUILTIN_ROLES)})",
        )
    return RoleAssignment(
        str(a["principal_id"]),
        role.name,
        str(a["scope"]),
        str(a.get("id", "")),
        str(a.get("principal_type", "ServicePrincipal")),
        str(a.get("created_by") or ""),
    )


def _application(a: dict[str, Any]) -> Application:
    if not isinstance(a, dict) or not a.get("app_id"):
        raise InputError("world.applications", "each application needs an app_id (a GUID)", a)
    uris = a.get("identifier_uris") or []
    if isinstance(uris, str) or not all(isinstance(u, str) for u in uris):
        raise InputError(
            "world.applications.identifier_uris", "must be a list of URIs such as api://<app_id>", uris
        )
    return Application(str(a.get("name") or a["app_id"]), str(a["app_id"]), tuple(uris))
