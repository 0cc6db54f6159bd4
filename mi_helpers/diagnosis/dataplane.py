"""Diagnoses of the data planes: Key Vault and Blob storage refuse a signed-in identity.

The rule (:func:`data_plane_rule`, first in :data:`~mi_helpers.diagnosis.rules.RULES`: Key Vault's RBAC 403
contains ARM's "please observe propagation time" sentence, and Storage's ``AuthenticationFailed`` is ARM's
code too) reads the services' own codes and texts (docs/protocol.md, "Key Vault", "Blob storage");
:func:`refine_data_plane` tells "never granted" from "granted, still propagating"; :data:`RECIPES` are the
catalogue entries, with portal, ``az`` and PowerShell fixes.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from mi_helpers.constants import KeyVault, Roles, Storage
from mi_helpers.diagnosis.catalogue import DOC_RBAC_TROUBLESHOOT, Placeholders, Recipe
from mi_helpers.diagnosis.context import DiagnosisContext
from mi_helpers.diagnosis.facts import Facts

__all__ = ["DATA_PLANE_IDS", "RECIPES", "data_plane_findings", "data_plane_rule", "refine_data_plane"]

DOC_KV_RBAC = "https://learn.microsoft.com/azure/key-vault/general/rbac-guide"
DOC_KV_POLICY = "https://learn.microsoft.com/azure/key-vault/general/assign-access-policy"
DOC_KV_AUTH = "https://learn.microsoft.com/azure/key-vault/general/authentication"
DOC_BLOB_RBAC = "https://learn.microsoft.com/azure/storage/blobs/assign-azure-role-data-access"
DOC_BLOB_AAD = "https://learn.microsoft.com/rest/api/storageservices/authorize-with-azure-active-directory"
DOC_BLOB_CODES = "https://learn.microsoft.com/rest/api/storageservices/blob-service-error-codes"
DOC_KV_ERRORS = "https://learn.microsoft.com/azure/key-vault/general/rest-error-codes"
DOC_KV_SDK = "https://learn.microsoft.com/python/api/overview/azure/keyvault-secrets-readme"

_KV_RESOURCE = re.compile(r"Resource: '(?P<scope>/subscriptions/[^']+?)(?:/secrets/[^']*)?'", re.IGNORECASE)
_KV_POLICY_VAULT = re.compile(r"on key vault '(?P<vault>[^;']+)", re.IGNORECASE)


def _code(facts: Facts) -> str:
    return facts.arm_code or ""


def data_plane_rule(s: Any) -> str | None:
    """The data-plane id for what Key Vault or Blob storage answered (None: not a data-plane failure)."""
    facts: Facts = s.facts
    if facts.has("does not match the requested domain", "verify_challenge_resource"):
        return "kv-challenge-resource-mismatch"
    if facts.has("ForbiddenByRbac") or (
        facts.has("Caller is not authorized to perform action on resource")
        and facts.has("Microsoft.KeyVault/vaults/")
    ):
        return "kv-rbac-data-role-missing"
    if facts.has("does not have secrets get permission", "does not have secrets list permission") or (
        facts.has("AccessDenied") and facts.has("permission on key vault")
    ):
        return "kv-access-policy-missing"
    if facts.has("AKV10022"):
        return "kv-wrong-audience"
    if _code(facts) == "SecretNotFound" or facts.has("(SecretNotFound)", "was not found in this key vault"):
        return "kv-secret-not-found"
    if facts.has("AuthorizationPermissionMismatch"):
        return "storage-data-role-missing"
    if facts.has("Audience validation failed") or (
        facts.has("InvalidAuthenticationInfo") and facts.has("audience")
    ):
        return "storage-wrong-audience"
    if facts.has("Authentication scheme Bearer is not supported", "Unversioned authenticated access"):
        return "storage-version-too-old"
    if facts.has("ContainerNotFound", "The specified container does not exist"):
        return "storage-container-not-found"
    if facts.has("BlobNotFound", "The specified blob does not exist"):
        return "storage-blob-not-found"
    return None


#: The data roles that can read a secret / a blob: only an assignment of one of these means "propagating".
_DATA_READERS = {
    "kv-rbac-data-role-missing": frozenset(
        {Roles.KEY_VAULT_SECRETS_USER, Roles.KEY_VAULT_SECRETS_OFFICER, Roles.KEY_VAULT_ADMINISTRATOR}
    ),
    "storage-data-role-missing": frozenset(
        {Roles.STORAGE_BLOB_DATA_READER, Roles.STORAGE_BLOB_DATA_CONTRIBUTOR, Roles.STORAGE_BLOB_DATA_OWNER}
    ),
}


def refine_data_plane(did: str, facts: Facts, ctx: DiagnosisContext) -> str:
    """A data-role 403 whose *data* role assignment exists (per the context), or that later passed:
    propagation. Owner or Contributor of the resource is not a data role (their refusal is the lesson)."""
    if did in _DATA_READERS:
        sts = [a.get("status") if isinstance(a, dict) else getattr(a, "status", None) for a in facts.attempts]
        retried = len(sts) >= 2 and sts[-1] == 200 and any(x != 200 for x in sts[:-1])
        if ctx.role_exists(_DATA_READERS[did]) or retried:
            return "data-role-propagating"
    return did


def data_plane_findings(
    did: str, facts: Facts, ctx: DiagnosisContext
) -> tuple[dict[str, str], DiagnosisContext]:
    """The vault's scope from Key Vault's RBAC 403 (its ``Resource:`` line), for the commands."""
    if did in ("kv-rbac-data-role-missing", "data-role-propagating") and not ctx.scope:
        m = _KV_RESOURCE.search(facts.blob)
        if m:
            return {"finding": f"Key Vault refused at {m.group('scope')}"}, dataclasses.replace(
                ctx, scope=m.group("scope")
            )
    if did == "kv-access-policy-missing":
        m = _KV_POLICY_VAULT.search(facts.blob)
        if m and not ctx.scope:
            sub, rg = ctx.subscription_id or "<sub>", ctx.resource_group or "<rg>"
            vault = m.group("vault")
            scope = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{vault}"
            finding = f"vault {m.group('vault')} uses access policies"
            return {"finding": finding}, dataclasses.replace(ctx, scope=scope)
    return {}, ctx


# ------------------------------------------------------------------------------------------- commands
_NEEDS_KV = "needs Azure: az builds the vault host from its name and the cloud's .vault.azure.net"
_NEEDS_ST = "needs Azure: az builds the account host from its name and the cloud's .blob.core.windows.net"
_NEEDS_PUT = "needs Azure: access policies change by a PUT of the whole vault, not served by the emulator"


def _name_in(scope: str, kind: str, placeholder: str) -> str:
    m = re.search(rf"/{kind}/([^/]+)", scope, re.IGNORECASE)
    return m.group(1) if m else placeholder


def _vault(p: Placeholders) -> str:
    return _name_in(p.scope, "vaults", "<vault>")


def _account(p: Placeholders) -> str:
    return _name_in(p.scope, "storageAccounts", "<account>")


def _kv_scope(p: Placeholders) -> str:
    """The vault's ID when known; else its resource group (a role there covers the vault too)."""
    return p.scope if "/vaults/" in p.scope.lower() else f"/subscriptions/{p.sub}/resourceGroups/{p.rg}"


def _st_scope(p: Placeholders) -> str:
    """The account's ID when known; else its resource group (a role there covers the account too)."""
    if "/storageaccounts/" in p.scope.lower():
        return p.scope
    return f"/subscriptions/{p.sub}/resourceGroups/{p.rg}"


def _grant(role: str, scope: str, p: Placeholders, where: str) -> dict[str, str]:
    return {
        "portal": f"Open the {where} → Access control (IAM) → + Add → Add role assignment → {role} → "
        "Members: Managed identity → + Select members → pick the VM's identity → Review + assign.",
        "az": f'az role assignment create --role "{role}" --assignee-object-id {p.principal} '
        f"--assignee-principal-type ServicePrincipal --scope {scope}\n"
        f"az role assignment list --all --assignee-object-id {p.principal} -o table",
        "powershell": f'New-AzRoleAssignment -ObjectId {p.principal} -RoleDefinitionName "{role}" '
        f"-Scope {scope}\n"
        f"Get-AzRoleAssignment -ObjectId {p.principal} -Scope {scope}",
    }


def _cmd_kv_rbac(p: Placeholders) -> dict[str, str]:
    return _grant("Key Vault Secrets User", _kv_scope(p), p, "key vault")


def _cmd_kv_policy(p: Placeholders) -> dict[str, str]:
    vault = _vault(p)
    return {
        "portal": "Open the key vault → Access policies → + Create → Secret permissions: Get, List → "
        "Principal: the VM's identity → Create. (Or Access configuration → Azure role-based access control, "
        "then grant Key Vault Secrets User.)",
        "az": f"az keyvault set-policy --name {vault} --resource-group {p.rg} --object-id {p.principal} "
        f"--secret-permissions get list  # {_NEEDS_PUT}\n"
        f"# or switch the vault to Azure RBAC and grant a data role:\n"
        f"# az keyvault update --name {vault} --resource-group {p.rg} --enable-rbac-authorization true",
        "powershell": f"Set-AzKeyVaultAccessPolicy -VaultName {vault} -ResourceGroupName {p.rg} "
        f"-ObjectId {p.principal} -PermissionsToSecrets get,list",
    }


def _cmd_propagating(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "Resource → Access control (IAM) → Role assignments: the data role is listed; wait "
        "(minutes) and retry.",
        "az": f"az role assignment list --all --assignee-object-id {p.principal} -o table\n"
        "# then retry the read with back-off, e.g. every 30 s for 10 minutes",
        "powershell": f"Get-AzRoleAssignment -ObjectId {p.principal}\n"
        "# then retry the read with back-off, e.g. every 30 s for 10 minutes",
    }


def _cmd_kv_audience(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "No portal change: request the token for Key Vault.",
        "az": f"az account get-access-token --resource {KeyVault.RESOURCE} --query expiresOn -o tsv\n"
        f'# Python: credential.get_token("{KeyVault.SCOPE}"), or let SecretClient ask (its challenge)',
        "powershell": f"Get-AzAccessToken -ResourceUrl {KeyVault.RESOURCE}",
    }


def _cmd_storage_audience(p: Placeholders) -> dict[str, str]:
    account = _account(p)
    return {
        "portal": "No portal change: request the token for Storage.",
        "az": f"az account get-access-token --resource {Storage.RESOURCE} --query expiresOn -o tsv\n"
        f'TOKEN=$(curl -s -H "Metadata: true" "http://169.254.169.254/metadata/identity/oauth2/token'
        f'?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com%2F" | jq -r .access_token)\n'
        f'curl -H "Authorization: Bearer $TOKEN" -H "x-ms-version: 2026-10-06" '
        f'"https://{account}.blob.core.windows.net/<container>/<blob>"',
        "powershell": f"Get-AzAccessToken -ResourceUrl {Storage.RESOURCE}",
    }


def _cmd_storage_role(p: Placeholders) -> dict[str, str]:
    return _grant("Storage Blob Data Reader", _st_scope(p), p, "storage account (or container)")


def _cmd_secret_missing(p: Placeholders) -> dict[str, str]:
    vault = _vault(p)
    return {
        "portal": "Open the key vault → Objects → Secrets: check the name (and Manage deleted secrets).",
        "az": f"az keyvault secret list --vault-name {vault} --query [].name -o tsv  # {_NEEDS_KV}\n"
        f"az keyvault secret list-deleted --vault-name {vault} -o table  # {_NEEDS_KV}",
        "powershell": "# a recently deleted secret: recover it\n"
        f"Undo-AzKeyVaultSecretRemoval -VaultName {vault} -Name <name>",
    }


def _cmd_blob_missing(p: Placeholders) -> dict[str, str]:
    account = _account(p)
    return {
        "portal": "Open the storage account → Data storage → Containers: check the container and blob names "
        "(they are case-sensitive).",
        "az": f"az storage container list --account-name {account} --auth-mode login -o table "
        f"# {_NEEDS_ST}\n"
        f"az storage blob list --account-name {account} --container-name <container> --auth-mode login "
        f"-o table  # {_NEEDS_ST}",
        "powershell": f"$ctx = New-AzStorageContext -StorageAccountName {account} -UseConnectedAccount\n"
        "Get-AzStorageBlob -Container <container> -Context $ctx",
    }


def _cmd_version(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "No portal change: send a current x-ms-version with a bearer token.",
        "az": 'curl -H "Authorization: Bearer $TOKEN" -H "x-ms-version: 2026-10-06" "<blob url>"',
        "powershell": "Invoke-RestMethod "
        '-Headers @{Authorization="Bearer $token"; "x-ms-version"="2026-10-06"} '
        '-Uri "<blob url>"',
    }


def _cmd_challenge(p: Placeholders) -> dict[str, str]:
    return {
        "portal": "No portal change: use the vault's real URL (https://<vault>.vault.azure.net/).",
        "az": "# the vault's URL is ARM's properties.vaultUri of the vault (mi.vault_url(name))\n"
        "# Python: SecretClient(vault_url, credential); only for a vault URL on another host (an emulator):\n"
        "#         SecretClient(vault_url, credential, verify_challenge_resource=False)",
        "powershell": "(Get-AzResource -ResourceType Microsoft.KeyVault/vaults -Name <vault> "
        "-ExpandProperties).Properties.vaultUri",
    }


#: The data-plane catalogue entries (merged into :data:`~mi_helpers.diagnosis.catalogue.CATALOGUE`).
RECIPES: dict[str, Recipe] = {
    "kv-rbac-data-role-missing": Recipe(
        "The identity holds no Key Vault data role (403 ForbiddenByRbac)",
        "The vault uses Azure RBAC, and no role of the identity at the secret, the vault or above grants the "
        "data action (Microsoft.KeyVault/vaults/secrets/getSecret/action to read a value). Owner and "
        "Contributor manage the vault but hold no data actions: they cannot read its secrets.",
        (
            "Grant Key Vault Secrets User on the vault (or one secret) to the identity's principal (object) "
            "ID.",
            "Role assignments take a few minutes to reach Key Vault: retry with back-off afterwards.",
        ),
        DOC_KV_RBAC,
        _cmd_kv_rbac,
    ),
    "kv-access-policy-missing": Recipe(
        "The vault uses access policies and none lets this identity read secrets",
        "The vault's permission model is 'Vault access policy': role assignments do not count there, only "
        "an access policy for the identity's object ID with the secret permission (get to read, list to "
        "list). Key Vault answers 403 Forbidden 'does not have secrets get permission on key vault …'.",
        (
            "Add an access policy for the identity's principal (object) ID with secret permissions get and "
            "list.",
            "Or switch the vault to Azure RBAC (Access configuration) and grant Key Vault Secrets User.",
        ),
        DOC_KV_POLICY,
        _cmd_kv_policy,
    ),
    "data-role-propagating": Recipe(
        "The data role exists but has not reached the service yet",
        "A Key Vault or Storage data role for this identity exists, but role assignments are eventually "
        "consistent: right after the grant, the data plane still answers 403 for a while (minutes).",
        ("Wait and retry with back-off (minutes, not seconds).",),
        DOC_RBAC_TROUBLESHOOT,
        _cmd_propagating,
        transient=True,
    ),
    "kv-wrong-audience": Recipe(
        "Key Vault got a token for another audience (401 AKV10022)",
        "The token's 'aud' is not https://vault.azure.net (often the ARM token reused). Key Vault accepts "
        "only tokens for itself.",
        (
            "Ask for https://vault.azure.net/.default, or let SecretClient get its own token (it follows the "
            "vault's 401 challenge).",
        ),
        DOC_KV_AUTH,
        _cmd_kv_audience,
    ),
    "kv-secret-not-found": Recipe(
        "No secret of that name (or version) in this vault (404 SecretNotFound)",
        "The vault has no secret with this name or version: a typo, another vault, or a deleted secret.",
        (
            "List the vault's secret names and compare (names are case-insensitive, versions are 32 hex).",
            "A recently deleted secret can be recovered while the vault's soft-delete keeps it.",
        ),
        DOC_KV_ERRORS,
        _cmd_secret_missing,
    ),
    "kv-challenge-resource-mismatch": Recipe(
        "The vault URL's host does not match Key Vault's challenge",
        "SecretClient checks that the vault URL ends in the domain its 401 challenge names "
        "(vault.azure.net). A URL on another host (an IP, a proxy, an emulator) fails this check before "
        "any token is requested.",
        (
            "Use the vault URL ARM reports (properties.vaultUri).",
            "Only for an emulator or a trusted proxy: SecretClient(..., verify_challenge_resource=False).",
        ),
        DOC_KV_SDK,
        _cmd_challenge,
    ),
    "storage-data-role-missing": Recipe(
        "The identity holds no Storage blob data role (403 AuthorizationPermissionMismatch)",
        "Reading blobs needs the data action Microsoft.Storage/storageAccounts/blobServices/containers/blobs/"
        "read. Owner, Contributor and Reader of the account hold only actions: they can list containers "
        "but not read blob data.",
        (
            "Grant Storage Blob Data Reader on the account (or the container) to the identity's principal "
            "(object) ID.",
            "Role assignments take a few minutes to reach Storage: retry with back-off afterwards.",
        ),
        DOC_BLOB_RBAC,
        _cmd_storage_role,
    ),
    "storage-wrong-audience": Recipe(
        "Blob storage got a token for another audience (401 InvalidAuthenticationInfo)",
        "The token's 'aud' is not https://storage.azure.com (often the ARM token reused). Storage answers "
        "401 'Audience validation failed' with a WWW-Authenticate challenge; the storage SDK follows it "
        "once, code that reuses one fixed token cannot.",
        ("Ask for https://storage.azure.com/.default, or pass the credential itself to the storage client.",),
        DOC_BLOB_AAD,
        _cmd_storage_audience,
    ),
    "storage-version-too-old": Recipe(
        "A bearer token needs x-ms-version 2017-11-09 or later",
        "Blob storage accepts Microsoft Entra tokens only with a service version of 2017-11-09 or newer; a "
        "request without x-ms-version, or with an older one, gets 403 AuthenticationFailed.",
        ("Send a current x-ms-version header (the SDKs do).",),
        DOC_BLOB_AAD,
        _cmd_version,
    ),
    "storage-container-not-found": Recipe(
        "No such container in this account (404 ContainerNotFound)",
        "The account has no container of that name (names are lower case), or it is another account.",
        ("List the account's containers and compare.",),
        DOC_BLOB_CODES,
        _cmd_blob_missing,
    ),
    "storage-blob-not-found": Recipe(
        "No such blob in this container (404 BlobNotFound)",
        "The container has no blob of that name: blob names are case-sensitive and include their 'folders'.",
        ("List the container's blobs (with a prefix) and compare.",),
        DOC_BLOB_CODES,
        _cmd_blob_missing,
    ),
}

DATA_PLANE_IDS: tuple[str, ...] = tuple(RECIPES)
