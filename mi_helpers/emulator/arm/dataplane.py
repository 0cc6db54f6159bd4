"""ARM's bodies of a key vault and a storage account: where their data planes are (``vaultUri``,
``primaryEndpoints.blob``), as code on Azure discovers them before it calls the data plane.

Shapes of the REST specs' examples (``Microsoft.KeyVault`` ``getVault.json``; ``Microsoft.Storage``
``StorageAccountGetProperties.json``; docs/protocol.md, "Key Vault", "Blob storage"). The endpoints point at
the emulator's listeners: the vault URL is the Key Vault listener, the blob endpoint is
``<blob listener>/<account>/`` (path-style, what the storage SDK uses for an ``127.0.0.1`` host).
"""

from __future__ import annotations

from typing import Any

from mi_helpers.emulator.arm.call import Call
from mi_helpers.emulator.model import GenericResource

__all__ = ["data_plane_properties"]

_CREATED = "2026-01-01T00:00:00.0000000Z"


def _vault(call: Call, r: GenericResource) -> dict[str, Any]:
    world = call.world
    vault = world.data_plane.vault(r.name)
    base = call.backend.data_plane_urls.get("keyvault", "")
    rbac = vault.rbac if vault is not None else True
    policies = [
        {
            "tenantId": p.tenant_id or world.tenant.id,
            "objectId": p.object_id,
            "permissions": {"keys": [], "secrets": list(p.secrets), "certificates": []},
        }
        for p in (vault.access_policies if vault is not None else [])
    ]
    return {
        "sku": {"family": "A", "name": "standard"},
        "tenantId": world.tenant.id,
        "accessPolicies": policies,
        "enabledForDeployment": False,
        "enabledForDiskEncryption": False,
        "enabledForTemplateDeployment": False,
        "enableSoftDelete": True,
        "softDeleteRetentionInDays": 90,
        "enableRbacAuthorization": rbac,
        "vaultUri": (base + "/") if base and vault is not None else f"https://{r.name}.vault.azure.net/",
        "provisioningState": "Succeeded",
        "publicNetworkAccess": "Enabled",
    }


def _account(call: Call, r: GenericResource) -> dict[str, Any]:
    base = call.backend.data_plane_urls.get("blob", "")
    account = call.world.data_plane.account(r.name)
    blob = f"{base}/{r.name}/" if base and account is not None else f"https://{r.name}.blob.core.windows.net/"
    return {
        "keyCreationTime": {"key1": _CREATED, "key2": _CREATED},
        "privateEndpointConnections": [],
        "minimumTlsVersion": "TLS1_2",
        "allowBlobPublicAccess": False,
        "allowSharedKeyAccess": True,
        "networkAcls": {
            "bypass": "AzureServices",
            "virtualNetworkRules": [],
            "ipRules": [],
            "defaultAction": "Allow",
        },
        "supportsHttpsTrafficOnly": True,
        "encryption": {
            "services": {
                "file": {"keyType": "Account", "enabled": True, "lastEnabledTime": _CREATED},
                "blob": {"keyType": "Account", "enabled": True, "lastEnabledTime": _CREATED},
            },
            "keySource": "Microsoft.Storage",
        },
        "accessTier": "Hot",
        "provisioningState": "Succeeded",
        "creationTime": _CREATED,
        "primaryEndpoints": {"blob": blob},
        "primaryLocation": r.location,
        "statusOfPrimary": "available",
    }


def data_plane_properties(call: Call, r: GenericResource) -> dict[str, Any] | None:
    """``properties`` of a vault or storage account (None for any other generic resource)."""
    kind = r.type.lower()
    if kind == "microsoft.keyvault/vaults":
        return _vault(call, r)
    if kind == "microsoft.storage/storageaccounts":
        return _account(call, r)
    return None
