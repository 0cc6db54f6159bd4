"""Microsoft.Compute: virtual machines, with the identity block a learner looks for.

Bodies follow the Azure CLI's recorded VM GET (docs/protocol.md#resources-and-bodies): the keys in Compute's
order, ``etag`` in the body and the ``ETag`` header, the managed OS disk with its hash-suffixed name and ID,
the admin's SSH key and the Trusted Launch ``securityProfile`` -- the same facts instance metadata reports
(``instance.py``), so ARM and IMDS agree about the VM.
"""

from __future__ import annotations

from typing import Any

from mi_helpers.emulator.arm.apiversions import COMPUTE_VIRTUAL_MACHINES
from mi_helpers.emulator.arm.call import Call
from mi_helpers.emulator.arm.kinds import ResourceKind, routes
from mi_helpers.emulator.world import VirtualMachine

__all__ = ["ROUTES", "VIRTUAL_MACHINES", "vm_identity"]


def vm_identity(call: Call, vm: VirtualMachine) -> dict[str, Any] | None:
    """The VM's ``identity`` block, or None when it has no managed identity (ARM then omits the key).

    ``userAssignedIdentities`` keys are the resource IDs as they were given when the identities were attached
    (their casing included), as Compute echoes them.
    """
    world = call.world
    attached = world.attachments(vm)
    system = vm.has_system_identity
    if not system and not attached:
        return None
    kinds = (["SystemAssigned"] if system else []) + (["UserAssigned"] if attached else [])
    ident: dict[str, Any] = {"type": ", ".join(kinds)}
    if system:
        assert vm.system_identity is not None
        ident["principalId"] = vm.system_identity.principal_id
        ident["tenantId"] = world.tenant.id
    if attached:
        ident["userAssignedIdentities"] = {
            rid: {"principalId": u.principal_id, "clientId": u.client_id} for rid, u in attached
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


def _os_profile(vm: VirtualMachine) -> dict[str, Any]:
    key = vm.ssh_public_key
    config: dict[str, Any] = (
        {
            "linuxConfiguration": {
                "disablePasswordAuthentication": True,
                "ssh": {"publicKeys": [{"path": vm.ssh_key_path, "keyData": key}]},
                "provisionVMAgent": True,
                "patchSettings": {"patchMode": "ImageDefault", "assessmentMode": "ImageDefault"},
            }
        }
        if vm.linux
        else {
            "windowsConfiguration": {
                "provisionVMAgent": True,
                "enableAutomaticUpdates": True,
                "patchSettings": {"patchMode": "AutomaticByOS", "assessmentMode": "ImageDefault"},
            }
        }
    )
    return {
        "computerName": vm.name,
        "adminUsername": vm.admin_username,
        **config,
        "secrets": [],
        "allowExtensionOperations": True,
        "requireGuestProvisionSignal": True,
    }


def _storage_profile(vm: VirtualMachine) -> dict[str, Any]:
    image = vm.image
    return {
        "imageReference": {
            "publisher": image.publisher,
            "offer": image.offer,
            "sku": image.sku,
            "version": image.version,
            "exactVersion": image.exact_version,
        },
        "osDisk": {
            "osType": vm.os_type,
            "name": vm.os_disk_name,
            "createOption": "FromImage",
            "caching": "ReadWrite",
            "managedDisk": {"storageAccountType": "Premium_LRS", "id": vm.os_disk_id},
            "deleteOption": "Detach",
            "diskSizeGB": 30,
        },
        "dataDisks": [],
        "diskControllerType": "SCSI",
    }


def _vm_json(call: Call, vm: VirtualMachine) -> dict[str, Any]:
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
    trusted = vm.security_type == "TrustedLaunch"
    body["properties"] = {
        "hardwareProfile": {"vmSize": vm.vm_size},
        "provisioningState": "Succeeded",
        "vmId": vm.vm_id,
        "storageProfile": _storage_profile(vm),
        "osProfile": _os_profile(vm),
        "securityProfile": {
            "uefiSettings": {"secureBootEnabled": trusted, "vTpmEnabled": trusted},
            "securityType": vm.security_type,
        },
        "networkProfile": {
            "networkInterfaces": [
                {
                    "id": f"/subscriptions/{vm.subscription_id}/resourceGroups/{vm.resource_group}"
                    f"/providers/Microsoft.Network/networkInterfaces/{vm.name}VMNic"
                }
            ]
        },
        "timeCreated": "2026-01-01T00:00:00.0000000+00:00",
    }
    body["etag"] = f'"{vm.revision}"'
    return body


def _etag_header(body: dict[str, Any]) -> dict[str, str]:
    return {"ETag": str(body["etag"])}


VIRTUAL_MACHINES = ResourceKind(
    "Microsoft.Compute/virtualMachines",
    lambda w: w.vms,
    _vm_json,
    _summary,
    COMPUTE_VIRTUAL_MACHINES,
    _etag_header,
)
ROUTES = routes(VIRTUAL_MACHINES)
