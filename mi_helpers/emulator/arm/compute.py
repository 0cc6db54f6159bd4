"""Microsoft.Compute: virtual machines, with the identity block a learner looks for.

Bodies: docs/protocol.md#resources-and-bodies.
"""

from __future__ import annotations

from typing import Any

from mi_helpers.emulator.arm.call import Call
from mi_helpers.emulator.arm.kinds import ResourceKind, routes
from mi_helpers.emulator.world import VirtualMachine

__all__ = ["ROUTES", "VIRTUAL_MACHINES", "vm_identity"]


def vm_identity(call: Call, vm: VirtualMachine) -> dict[str, Any] | None:
    """The VM's ``identity`` block, or None when it has no managed identity (ARM then omits the key)."""
    world = call.world
    uamis = world.attached_identities(vm)
    system = vm.has_system_identity
    if not system and not uamis:
        return None
    kinds = (["SystemAssigned"] if system else []) + (["UserAssigned"] if uamis else [])
    ident: dict[str, Any] = {"type": ", ".join(kinds)}
    if system:
        assert vm.system_identity is not None
        ident["principalId"] = vm.system_identity.principal_id
        ident["tenantId"] = world.tenant.id
    if uamis:
        ident["userAssignedIdentities"] = {
            u.resource_id: {"principalId": u.principal_id, "clientId": u.client_id} for u in uamis
        }
    return ident


def _summary(call: Call, vm: VirtualMachine) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": vm.resource_id,
        "name": vm.name,
        "type": VIRTUAL_MACHINES.type,
        "location": vm.location,
        "tags": dict(vm.tags),
    }
    ident = vm_identity(call, vm)
    if ident is not None:
        body["identity"] = ident
    return body


def _os_profile(vm: VirtualMachine, linux: bool) -> dict[str, Any]:
    config = (
        {"linuxConfiguration": {"disablePasswordAuthentication": True, "provisionVMAgent": True}}
        if linux
        else {"windowsConfiguration": {"provisionVMAgent": True, "enableAutomaticUpdates": True}}
    )
    return {
        "computerName": vm.name,
        "adminUsername": "azureuser",
        **config,
        "secrets": [],
        "allowExtensionOperations": True,
    }


def _vm_json(call: Call, vm: VirtualMachine) -> dict[str, Any]:
    linux = vm.os_type.lower() == "linux"
    body: dict[str, Any] = {
        "name": vm.name,
        "id": vm.resource_id,
        "type": VIRTUAL_MACHINES.type,
        "location": vm.location,
        "tags": dict(vm.tags),
    }
    ident = vm_identity(call, vm)
    if ident is not None:
        body["identity"] = ident
    body["properties"] = {
        "vmId": vm.vm_id,
        "hardwareProfile": {"vmSize": vm.vm_size},
        "storageProfile": {
            "imageReference": {
                "publisher": "Canonical" if linux else "MicrosoftWindowsServer",
                "offer": "0001-com-ubuntu-server-jammy" if linux else "WindowsServer",
                "sku": "22_04-lts-gen2" if linux else "2022-datacenter-g2",
                "version": "latest",
            },
            "osDisk": {
                "osType": vm.os_type,
                "name": f"{vm.name}_OsDisk_1",
                "createOption": "FromImage",
                "caching": "ReadWrite",
                "managedDisk": {"storageAccountType": "Premium_LRS"},
                "deleteOption": "Delete",
                "diskSizeGB": 30,
            },
            "dataDisks": [],
        },
        "osProfile": _os_profile(vm, linux),
        "networkProfile": {
            "networkInterfaces": [
                {
                    "id": f"/subscriptions/{vm.subscription_id}/resourceGroups/{vm.resource_group}"
                    f"/providers/Microsoft.Network/networkInterfaces/{vm.name}-nic"
                }
            ]
        },
        "provisioningState": "Succeeded",
        "timeCreated": "2026-01-01T00:00:00.0000000+00:00",
    }
    return body


VIRTUAL_MACHINES = ResourceKind("Microsoft.Compute/virtualMachines", lambda w: w.vms, _vm_json, _summary)
ROUTES = routes(VIRTUAL_MACHINES)
