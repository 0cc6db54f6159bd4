"""Fixes carried out the way a learner carries them out: signed in as someone allowed, through ARM.

On Azure you would sign in as yourself (``az login`` in Cloud Shell or a terminal) and run the command the
diagnosis card shows. In the emulator the operator principal stands in for you (Owner on the subscription,
docs/protocol.md#entra-id-token-endpoints): :class:`OperatorFixes` signs in as it with azure-identity's
``ClientSecretCredential`` against the emulator's Entra ID and makes **the same ARM call** the card's
command makes, with the real management SDKs (docs/protocol.md#arm-writes). So an unattended run of the
lessons (``make tour``, CI) proves that the printed fix works against ARM's rules, RBAC included.

Only what ARM can do goes this way (:data:`ARM_ACTIONS`). Stopping a scripted fault (``clear-faults``) or
starting a scenario over (``reset``) is the emulator's own control, with no ARM call behind it: those stay
on the emulator's admin API (``Emulator.apply_fix``).
"""

from __future__ import annotations

import uuid
from typing import Any

from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.constants import Roles
from mi_helpers.validate import InputError

__all__ = ["ARM_ACTIONS", "OperatorFixes"]

#: The fix actions an ARM write carries out (the others are emulator controls).
ARM_ACTIONS = frozenset(
    {
        "enable-system-identity",
        "disable-system-identity",
        "attach-user-identity",
        "detach-user-identity",
        "add-role-assignment",
        "remove-role-assignment",
    }
)
#: Built-in roles a fix may grant, by lower-cased name: ARM's (Reader …) and the data planes' (Key Vault
#: Secrets User, Storage Blob Data Reader …), from the one table in constants.
_ROLE_IDS = {name.lower(): guid for name, guid in Roles.BY_NAME.items()}


def _quoted(role: str) -> str:
    """A role name as a shell argument: ``"Storage Blob Data Reader"`` in quotes, ``Reader`` bare."""
    return f'"{role}"' if " " in role else role


class OperatorFixes:
    """ARM writes as the operator of ``emulator`` (an :class:`~mi_helpers.emulator.Emulator`)."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self._credential: Any = None

    # ------------------------------------------------------------------ clients
    def credential(self) -> Any:
        """The operator's ``ClientSecretCredential`` (instance discovery off: nothing leaves the machine)."""
        if self._credential is None:
            from azure.identity import ClientSecretCredential

            env = self.emulator.environment()
            missing = [
                k
                for k in (
                    Env.MI_HELPERS_TENANT_ID,
                    Env.MI_HELPERS_OPERATOR_CLIENT_ID,
                    Env.MI_HELPERS_OPERATOR_CLIENT_SECRET,
                    Env.MI_HELPERS_ENTRA_URL,
                )
                if not env.get(k)
            ]
            if missing:
                raise InputError("emulator", f"has no operator sign-in ({', '.join(missing)} unset)", None)
            self._credential = ClientSecretCredential(
                env[Env.MI_HELPERS_TENANT_ID],
                env[Env.MI_HELPERS_OPERATOR_CLIENT_ID],
                env[Env.MI_HELPERS_OPERATOR_CLIENT_SECRET],
                authority=env[Env.MI_HELPERS_ENTRA_URL],
                disable_instance_discovery=True,
                connection_verify=self.emulator.ca_bundle,
            )
        return self._credential

    def _kwargs(self) -> dict[str, Any]:
        return {"base_url": self.emulator.arm_url, "connection_verify": self.emulator.ca_bundle}

    def host(self) -> dict[str, Any]:
        """The host VM as the emulator's world describes it (its identity, subscription, resource group)."""
        host = self.emulator.world_dict()["host_vm"]
        vm = next(v for v in self.emulator.world_dict()["virtual_machines"] if v["name"] == host["name"])
        return dict(vm)

    def _compute(self, sub: str) -> Any:
        from azure.mgmt.compute import ComputeManagementClient

        return ComputeManagementClient(self.credential(), sub, **self._kwargs())

    def authorization(self, sub: str) -> Any:
        """An ``AuthorizationManagementClient`` of subscription ``sub``, signed in as the operator."""
        from azure.mgmt.authorization import AuthorizationManagementClient

        return AuthorizationManagementClient(self.credential(), sub, **self._kwargs())

    @staticmethod
    def role_definition_id(role: str, sub: str) -> str:
        """The ``roleDefinitionId`` of built-in ``role`` (Reader, Key Vault Secrets User …), in ARM's form."""
        guid = _ROLE_IDS.get(role.lower())
        if guid is None:
            raise InputError("role", f"allowed: {', '.join(Roles.BY_NAME)}", role)
        return f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}"

    # ------------------------------------------------------------------ the fixes
    def apply(self, action: str, **params: Any) -> str:
        """Carry out fix ``action`` through ARM; one line saying what was done and with which command."""
        if action not in ARM_ACTIONS:
            raise InputError("action", f"not an ARM fix (allowed: {', '.join(sorted(ARM_ACTIONS))})", action)
        handler = {
            "enable-system-identity": self._enable_system,
            "disable-system-identity": self._disable_system,
            "attach-user-identity": self._attach,
            "detach-user-identity": self._detach,
            "add-role-assignment": self._grant,
            "remove-role-assignment": self._revoke,
        }[action]
        message: str = handler(**params)
        return message

    def _patch_identity(self, vm: dict[str, Any], system: bool, users: dict[str, Any] | None) -> Any:
        from azure.mgmt.compute.models import VirtualMachineIdentity, VirtualMachineUpdate

        attached = bool(users) if users is not None else bool(vm.get("user_assigned"))
        kinds = (["SystemAssigned"] if system else []) + (["UserAssigned"] if attached else [])
        identity = VirtualMachineIdentity(type=", ".join(kinds) or "None", user_assigned_identities=users)
        poller = self._compute(vm["subscription_id"]).virtual_machines.begin_update(
            vm["resource_group"], vm["name"], VirtualMachineUpdate(identity=identity)
        )
        return poller.result()

    def _enable_system(self, role: str = "Reader", scope: str | None = None) -> str:
        """``az vm identity assign -g <rg> -n <vm> --role Reader --scope <rg scope>``: on, then a role for the
        new principal (switching it on makes a new one, which holds no role yet)."""
        vm = self.host()
        done = self._patch_identity(vm, True, None)
        principal = done.identity.principal_id
        scope = scope or f"/subscriptions/{vm['subscription_id']}/resourceGroups/{vm['resource_group']}"
        self._create_assignment(vm["subscription_id"], principal, role, scope)
        rg, name = vm["resource_group"], vm["name"]
        return (
            f"switched the system-assigned identity of {name} on (principal {principal}) and granted "
            f"it {role} at {scope}: az vm identity assign -g {rg} -n {name} --role {role} --scope {scope}"
        )

    def _disable_system(self) -> str:
        vm = self.host()
        self._patch_identity(vm, False, None)
        return f"switched the system-assigned identity of {vm['name']} off: az vm identity remove"

    def _identity_id(self, name: str | None, resource_id: str | None, client_id: str | None) -> str:
        for u in self.emulator.world_dict()["user_assigned_identities"]:
            if name and u["name"].lower() == name.lower():
                return str(u["resource_id"])
            if client_id and u["client_id"].lower() == client_id.lower():
                return str(u["resource_id"])
            if resource_id and u["resource_id"].lower() == resource_id.lower():
                return resource_id
        raise InputError("name", f"no user-assigned identity {name or resource_id or client_id!r}", name)

    def _attach(
        self, name: str | None = None, resource_id: str | None = None, client_id: str | None = None
    ) -> str:
        vm = self.host()
        rid = self._identity_id(name, resource_id, client_id)
        system = bool((vm.get("system_identity") or {}).get("enabled"))
        self._patch_identity(vm, system, {rid: {}})
        return f"attached {rid.rsplit('/', 1)[-1]} to {vm['name']}: az vm identity assign --identities {rid}"

    def _detach(
        self, name: str | None = None, resource_id: str | None = None, client_id: str | None = None
    ) -> str:
        vm = self.host()
        rid = self._identity_id(name, resource_id, client_id)
        system = bool((vm.get("system_identity") or {}).get("enabled"))
        left = [x for x in vm.get("user_assigned") or [] if x.lower() != rid.lower()]
        users: dict[str, Any] = {rid: None} if left else {}
        if left:
            self._patch_identity(vm, system, users)
        else:
            self._patch_identity({**vm, "user_assigned": []}, system, None)
        return (
            f"detached {rid.rsplit('/', 1)[-1]} from {vm['name']}: az vm identity remove --identities {rid}"
        )

    def _create_assignment(self, sub: str, principal: str, role: str, scope: str) -> Any:
        from azure.core.exceptions import ResourceExistsError
        from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

        body = RoleAssignmentCreateParameters(
            role_definition_id=self.role_definition_id(role, sub),
            principal_id=principal,
            principal_type="ServicePrincipal",  # the SDK's default is "User" (docs/protocol.md#arm-writes)
        )
        try:
            return self.authorization(sub).role_assignments.create(scope, str(uuid.uuid4()), body)
        except ResourceExistsError:  # 409 RoleAssignmentExists: what the card asks for is already there
            return None

    def _grant(self, principal_id: str | None = None, role: str = "Reader", scope: str | None = None) -> str:
        """``az role assignment create --assignee-object-id … --assignee-principal-type ServicePrincipal``."""
        vm = self.host()
        if not principal_id:
            raise InputError("principal_id", "required: whose role is granted", None)
        scope = scope or f"/subscriptions/{vm['subscription_id']}/resourceGroups/{vm['resource_group']}"
        made = self._create_assignment(vm["subscription_id"], principal_id, role, scope)
        verb = "granted" if made is not None else "found (already there)"
        return (
            f"{verb} {role} for {principal_id} at {scope}: az role assignment create --assignee-object-id "
            f"{principal_id} --assignee-principal-type ServicePrincipal --role {_quoted(role)} "
            f"--scope {scope}"
        )

    def _revoke(
        self,
        principal_id: str | None = None,
        role: str | None = None,
        scope: str | None = None,
        id: str | None = None,
    ) -> str:
        vm = self.host()
        client = self.authorization(vm["subscription_id"]).role_assignments
        scope = scope or f"/subscriptions/{vm['subscription_id']}"
        flt = f"principalId eq '{principal_id}'" if principal_id else None
        removed = 0
        for a in list(client.list_for_scope(scope, filter=flt)):
            if id and a.name.lower() != id.lower():
                continue
            if role and not a.role_definition_id.lower().endswith(_ROLE_IDS.get(role.lower(), "?")):
                continue
            client.delete_by_id(a.id)
            removed += 1
        return f"removed {removed} role assignment(s): az role assignment delete"
