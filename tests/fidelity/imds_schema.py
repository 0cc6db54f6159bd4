"""The documented IMDS schema, written down from the IMDS swagger 2023-07-01 and the Learn field tables.

docs/protocol.md#instance-metadata (the "Instance metadata schema" table) is the prose form of this module;
the two say the same. Sources: ``Azure/azure-rest-api-specs``
``specification/imds/data-plane/InstanceMetadataService/stable/2023-07-01/imds.json`` (definitions
``Compute``, ``Network``, ``StorageProfile``…, ``IdentityTokenResponse``, ``IdentityErrorResponse``,
``IdentityInfoResponse``, ``Versions``, ``ErrorResponse``) and Learn "Azure Instance Metadata Service" (the
field tables add ``compute.customData`` and ``compute.physicalZone``, which the swagger lacks; the
"newest-versions" list of the api-version error). Entra's ``invalid_resource`` body carries five more fields
than the swagger's ``IdentityErrorResponse`` (docs/protocol.md#errors); they are listed as Entra's.

Every primitive is a string (IMDS doc); nothing in the instance document is required by the swagger.
"""

from __future__ import annotations

from fidelity.spec import Schema

__all__ = [
    "IDENTITY_ERROR",
    "IDENTITY_INFO",
    "INSTANCE",
    "INSTANCE_ERROR",
    "TOKEN",
    "VERSIONS",
]


def _obj(name: str, *keys: str, **nested: Schema) -> Schema:
    fields = {k: Schema("str") for k in keys}
    fields.update(nested)
    return Schema("object", name, fields)


def _arr(item: Schema) -> Schema:
    return Schema("array", item=item)


_VAULT = _obj("SourceVault", "id")
_ENCRYPTION = _obj(
    "EncryptionSettings",
    "enabled",
    diskEncryptionKey=_obj("DiskEncryptionKey", "secretUrl", sourceVault=_VAULT),
    keyEncryptionKey=_obj("KeyEncryptionKey", "keyUrl", sourceVault=_VAULT),
)
_DISK_COMMON = ("caching", "createOption", "diskSizeGB", "name", "writeAcceleratorEnabled")
_OS_DISK = _obj(
    "OsDisk",
    *_DISK_COMMON,
    "osType",
    diffDiskSettings=_obj("DiffDiskSettings", "option"),
    encryptionSettings=_ENCRYPTION,
    image=_obj("DiskImage", "uri"),
    managedDisk=_obj("ManagedDisk", "id", "storageAccountType"),
    vhd=_obj("VirtualHardDisk", "uri"),
)
_DATA_DISK = _obj(
    "DataDisk",
    *_DISK_COMMON,
    "bytesPerSecondThrottle",
    "diskCapacityBytes",
    "isSharedDisk",
    "isUltraDisk",
    "lun",
    "opsPerSecondThrottle",
    "osType",
    diffDiskSettings=_obj("DiffDiskSettings", "option"),
    encryptionSettings=_ENCRYPTION,
    image=_obj("DiskImage", "uri"),
    managedDisk=_obj("ManagedDisk", "id", "storageAccountType"),
    vhd=_obj("VirtualHardDisk", "uri"),
)
_STORAGE = _obj(
    "StorageProfile",
    imageReference=_obj(
        "ImageReference",
        "id",
        "offer",
        "publisher",
        "sku",
        "version",
        "communityGalleryImageId",
        "sharedGalleryImageId",
        "exactVersion",
    ),
    osDisk=_OS_DISK,
    dataDisks=_arr(_DATA_DISK),
    resourceDisk=_obj("ResourceDisk", "size"),
)
COMPUTE = _obj(
    "Compute",
    "azEnvironment",
    "customData",  # Learn field table (2019-02-01); not in the swagger
    "evictionPolicy",
    "isHostCompatibilityLayerVm",
    "licenseType",
    "location",
    "name",
    "offer",
    "osType",
    "physicalZone",  # Learn field table (2023-11-15); not in the swagger
    "placementGroupId",
    "platformFaultDomain",
    "platformSubFaultDomain",
    "platformUpdateDomain",
    "priority",
    "provider",
    "publisher",
    "resourceGroupName",
    "resourceId",
    "sku",
    "subscriptionId",
    "tags",
    "userData",
    "version",
    "vmId",
    "vmScaleSetName",
    "vmSize",
    "zone",
    additionalCapabilities=_obj("AdditionalCapabilities", "hibernationEnabled"),
    extendedLocation=_obj("ExtendedLocationProperties", "type", "name"),
    host=_obj("Host", "id"),
    hostGroup=_obj("HostGroup", "id"),
    osProfile=_obj("OsProfile", "adminUsername", "computerName", "disablePasswordAuthentication"),
    plan=_obj("PlanProperties", "name", "publisher", "product"),
    publicKeys=_arr(_obj("PublicKeysProperties", "path", "keyData")),
    securityProfile=_obj(
        "SecurityProfile", "secureBootEnabled", "virtualTpmEnabled", "encryptionAtHost", "securityType"
    ),
    storageProfile=_STORAGE,
    tagsList=_arr(_obj("TagsProperties", "name", "value")),
    virtualMachineScaleSet=_obj("VirtualMachineScaleSet", "id"),
)
NETWORK = _obj(
    "Network",
    interface=_arr(
        _obj(
            "NetworkInterface",
            "macAddress",
            ipv4=_obj(
                "Ipv4",
                ipAddress=_arr(_obj("Ipv4Properties", "privateIpAddress", "publicIpAddress")),
                subnet=_arr(_obj("SubnetProperties", "address", "prefix")),
            ),
            ipv6=_obj("Ipv6", ipAddress=_arr(_obj("Ipv6Properties", "privateIpAddress"))),
        )
    ),
)
INSTANCE = _obj("Instance", compute=COMPUTE, network=NETWORK)

TOKEN = _obj(
    "IdentityTokenResponse",
    "access_token",
    "expires_in",
    "expires_on",
    "ext_expires_in",
    "not_before",
    "resource",
    "token_type",
    "client_id",
    "object_id",
    "msi_res_id",
)
TOKEN.required = {"access_token", "expires_in", "expires_on", "resource", "token_type"}

IDENTITY_ERROR = _obj(
    "IdentityErrorResponse",
    "error",
    "error_description",
    # Entra's fields of an AADSTS error, relayed by IMDS for invalid_resource (docs/protocol.md#errors)
    "timestamp",
    "trace_id",
    "correlation_id",
    "error_uri",
    error_codes=_arr(Schema("int")),
)
IDENTITY_ERROR.required = {"error", "error_description"}

IDENTITY_INFO = _obj("IdentityInfoResponse", "tenantId")
VERSIONS = _obj("Versions", apiVersions=_arr(Schema("str")))
#: ``ErrorResponse {error: string}``; the api-version error adds Learn's ``newest-versions``.
INSTANCE_ERROR = _obj("ErrorResponse", "error", **{"newest-versions": _arr(Schema("str"))})
INSTANCE_ERROR.required = {"error"}
