"""The instance metadata document (``GET /metadata/instance``) of the host VM, as each api-version shows it.

IMDS adds fields over time and answers an older api-version without the newer ones: the "Version
introduced" column of the IMDS doc's field tables says when each appeared (docs/protocol.md#instance-metadata,
where the schema is written out). :func:`instance_document` builds the newest document from the world
(every primitive a string, missing values empty strings) and drops what ``api_version`` predates;
:data:`INTRODUCED` is that column. An object whose fields are all newer than the version disappears with
them. The same VM facts feed ARM's VM body (``arm/compute.py``), so the two never disagree: image, OS disk,
SSH key, security type.
"""

from __future__ import annotations

from typing import Any

from mi_helpers.emulator.world import World

__all__ = ["INTRODUCED", "instance_document"]

#: Dotted path in the document -> the api-version that introduced it (IMDS doc, field tables). Paths not
#: listed are as old as their parent; ``compute`` and ``network`` fields not listed date from 2017-04-02.
INTRODUCED: dict[str, str] = {
    "compute.azEnvironment": "2018-10-01",
    "compute.additionalCapabilities": "2021-11-01",
    "compute.customData": "2019-02-01",
    "compute.evictionPolicy": "2020-12-01",
    "compute.extendedLocation": "2021-03-01",
    "compute.host": "2021-11-15",
    "compute.hostGroup": "2021-11-15",
    "compute.isHostCompatibilityLayerVm": "2020-06-01",
    "compute.licenseType": "2020-09-01",
    "compute.osProfile.adminUsername": "2020-07-15",
    "compute.osProfile.computerName": "2020-07-15",
    "compute.osProfile.disablePasswordAuthentication": "2020-10-01",
    "compute.physicalZone": "2023-11-15",
    "compute.placementGroupId": "2017-08-01",
    "compute.plan": "2018-04-02",
    "compute.platformSubFaultDomain": "2021-10-01",
    "compute.priority": "2020-12-01",
    "compute.provider": "2018-10-01",
    "compute.publicKeys": "2018-04-02",
    "compute.resourceGroupName": "2017-08-01",
    "compute.resourceId": "2019-03-11",
    "compute.securityProfile.secureBootEnabled": "2020-06-01",
    "compute.securityProfile.virtualTpmEnabled": "2020-06-01",
    "compute.securityProfile.encryptionAtHost": "2021-11-01",
    "compute.securityProfile.securityType": "2021-12-13",
    "compute.storageProfile": "2019-06-01",
    "compute.storageProfile.imageReference.communityGalleryImageId": "2023-07-01",
    "compute.storageProfile.imageReference.sharedGalleryImageId": "2023-07-01",
    "compute.storageProfile.imageReference.exactVersion": "2023-07-01",
    "compute.storageProfile.resourceDisk": "2021-02-01",
    "compute.subscriptionId": "2017-08-01",
    "compute.tags": "2017-08-01",
    "compute.tagsList": "2019-06-04",
    "compute.userData": "2021-01-01",
    "compute.virtualMachineScaleSet": "2021-03-01",
    "compute.vmScaleSetName": "2017-12-01",
    "compute.zone": "2017-12-01",
}


def _s(value: Any) -> Any:
    """IMDS rule: every primitive in a JSON reply is a string (missing values are empty strings)."""
    if isinstance(value, dict):
        return {k: _s(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_s(v) for v in value]
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _gate(doc: Any, version: str, path: str = "") -> Any:
    """``doc`` without the fields introduced after ``version`` (objects left empty by that go too)."""
    if not isinstance(doc, dict):
        return doc
    out: dict[str, Any] = {}
    for key, value in doc.items():
        here = f"{path}.{key}" if path else key
        if INTRODUCED.get(here, "") > version:
            continue
        kept = _gate(value, version, here)
        if isinstance(value, dict) and value and not kept:
            continue
        out[key] = kept
    return out


def _storage_profile(w: World) -> dict[str, Any]:
    vm = w.host_vm
    image = vm.image
    return {
        "dataDisks": [],
        "imageReference": {
            "id": "",
            "offer": image.offer,
            "publisher": image.publisher,
            "sku": image.sku,
            "version": image.version,
            "communityGalleryImageId": "",
            "sharedGalleryImageId": "",
            "exactVersion": image.exact_version,
        },
        "osDisk": {
            "caching": "ReadWrite",
            "createOption": "FromImage",
            "diffDiskSettings": {"option": ""},
            "diskSizeGB": "30",
            "encryptionSettings": {"enabled": "false"},
            "image": {"uri": ""},
            "managedDisk": {"id": vm.os_disk_id, "storageAccountType": "Premium_LRS"},
            "name": vm.os_disk_name,
            "osType": vm.os_type,
            "vhd": {"uri": ""},
            "writeAcceleratorEnabled": "false",
        },
        "resourceDisk": {"size": "0"},
    }


def _compute(w: World) -> dict[str, Any]:
    vm = w.host_vm
    image = vm.image
    key = vm.ssh_public_key
    trusted = vm.security_type == "TrustedLaunch"
    return {
        "additionalCapabilities": {"hibernationEnabled": False},
        "azEnvironment": w.az_environment,
        "customData": "",
        "evictionPolicy": "",
        "extendedLocation": {"name": "", "type": ""},
        "host": {"id": ""},
        "hostGroup": {"id": ""},
        "isHostCompatibilityLayerVm": False,
        "licenseType": "",
        "location": vm.location,
        "name": vm.name,
        "offer": image.offer,
        "osProfile": {
            "adminUsername": vm.admin_username,
            "computerName": vm.name,
            "disablePasswordAuthentication": vm.linux,
        },
        "osType": vm.os_type,
        "physicalZone": "",
        "placementGroupId": "",
        "plan": {"name": "", "product": "", "publisher": ""},
        "platformFaultDomain": "0",
        "platformSubFaultDomain": "",
        "platformUpdateDomain": "0",
        "priority": "",
        "provider": "Microsoft.Compute",
        "publicKeys": [] if key is None else [{"keyData": key, "path": vm.ssh_key_path}],
        "publisher": image.publisher,
        "resourceGroupName": vm.resource_group,
        "resourceId": vm.resource_id,
        "securityProfile": {
            "encryptionAtHost": False,
            "secureBootEnabled": trusted,
            "securityType": vm.security_type,
            "virtualTpmEnabled": trusted,
        },
        "sku": image.sku,
        "storageProfile": _storage_profile(w),
        "subscriptionId": vm.subscription_id,
        "tags": ";".join(f"{k}:{v}" for k, v in vm.tags.items()),
        "tagsList": [{"name": k, "value": v} for k, v in vm.tags.items()],
        "userData": "",
        "version": image.exact_version,
        "virtualMachineScaleSet": {"id": ""},
        "vmId": vm.vm_id,
        "vmScaleSetName": "",
        "vmSize": vm.vm_size,
        "zone": "",
    }


_NETWORK = {
    "interface": [
        {
            "ipv4": {
                "ipAddress": [{"privateIpAddress": "10.0.0.4", "publicIpAddress": ""}],
                "subnet": [{"address": "10.0.0.0", "prefix": "24"}],
            },
            "ipv6": {"ipAddress": []},
            "macAddress": "000D3A2B4C5D",
        }
    ]
}


def instance_document(w: World, api_version: str = "2025-04-07") -> dict[str, Any]:
    """``/metadata/instance`` for the host VM as ``api_version`` shows it (all primitives strings)."""
    with w.lock:
        doc = {"compute": _compute(w), "network": _NETWORK}
    result: dict[str, Any] = _gate(_s(doc), api_version)
    return result
