"""The documented default world (docs/architecture.md, "The default world"), declared once for every test.

The suite checks the emulator *against* these values instead of reading them from the emulator it is
testing, so a change to ``default_world.yaml`` that breaks the documented IDs fails a test.
"""

from __future__ import annotations

TENANT = "5f3b7d2a-8c41-4e6b-9a0d-2c7e1b4f6a93"
SUB = "3c9e6f1a-52d8-4b7e-a1c4-9d8e7f6a5b4c"
RG = "rg-mi-tutorial"
LOCATION = "westeurope"
VM = "vm-mi-tutorial"
VM_ID = "7d4a9c1e-3b6f-4e2a-8c5d-0f9b2e7a6c13"
VM_SIZE = "Standard_D2s_v5"
OTHER_VM = "vm-build-agent"  # no identity
STORAGE_ACCOUNT = "stmitutorial"
KEY_VAULT = "kv-mi-tutorial"
SYS_PRINCIPAL = "9a7b5c3d-1e2f-4a6b-8c9d-0e1f2a3b4c5d"
SYS_CLIENT = "4e6f8a0b-2c4d-4e6f-9a1b-3c5d7e9f1a2b"
UAMI_READER = "uami-reader"
UAMI_READER_CLIENT = "1b3d5f7a-9c1e-4b3d-8f5a-7c9e1b3d5f7a"
UAMI_READER_PRINCIPAL = "6c8e0a2b-4d6f-4a8c-9e0b-2d4f6a8c0e1b"
UAMI_DEPLOY = "uami-deploy"
UAMI_DEPLOY_CLIENT = "2c4e6a8b-0d2f-4c4e-8a6b-8d0f2c4e6a8b"
UAMI_DEPLOY_PRINCIPAL = "7d9f1b3c-5e7a-4b9d-8f1c-3e5a7c9e1b3d"
#: The operator service principal (Owner on the subscription; Directory.Read.All on Microsoft Graph).
OPERATOR_NAME = "mi-tutorial-operator"
OPERATOR_CLIENT = "8b2d4f6a-0c1e-4a3b-9d5f-7e9a1c3b5d7f"
OPERATOR_PRINCIPAL = "3e5a7c9e-1b3d-4f5a-8c7e-9a1b3c5d7e9f"

SUB_SCOPE = f"/subscriptions/{SUB}"
RG_SCOPE = f"{SUB_SCOPE}/resourceGroups/{RG}"
VM_RESOURCE_ID = f"{RG_SCOPE}/providers/Microsoft.Compute/virtualMachines/{VM}"
# --- the data planes: the vault and the storage account, and the system identity's data roles there
KEY_VAULT_SCOPE = f"{RG_SCOPE}/providers/Microsoft.KeyVault/vaults/{KEY_VAULT}"
STORAGE_SCOPE = f"{RG_SCOPE}/providers/Microsoft.Storage/storageAccounts/{STORAGE_ACCOUNT}"
#: The system identity's role assignment scopes, in the world's order: Reader on the group, Key Vault
#: Secrets User on the vault, Storage Blob Data Reader on the account.
SYS_ASSIGNMENT_SCOPES = (RG_SCOPE, KEY_VAULT_SCOPE, STORAGE_SCOPE)
#: The default world's secrets (name → versions, oldest first) and blobs (container → blob → text).
SECRET_VALUES = {
    "db-password": ("Tutorial-DbPassword-v1-4f9c2a7e", "Tutorial-DbPassword-v2-8b3d1f6c"),
    "api-key": ("tutorial-api-key-5e7a9c1b3d",),
}
HELLO_BLOB = "Hello from Blob storage, read with the VM's managed identity.\n"

#: Every scenario the emulator must offer (the documented catalogue, docs/protocol.md "Failure modes").
REQUIRED_SCENARIOS = frozenset(
    {
        "healthy",
        "no-identity",
        "user-assigned-only",
        "multiple-user-assigned",
        "no-role-assignment",
        "role-propagating",
        "identity-propagating",
        "imds-unreachable",
        "imds-hang",
        "imds-updating",
        "imds-throttled",
        "imds-server-error",
        "foreign-metadata-server",
        "proxy-intercept",
        "legacy-extension-endpoint",
        "expired-token",
        "arm-throttled",
    }
)


def uami_resource_id(name: str) -> str:
    """ARM ID of a user-assigned identity of the default world (as the world declares it)."""
    return f"{RG_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"


UAMI_READER_RESOURCE_ID = uami_resource_id(UAMI_READER)
