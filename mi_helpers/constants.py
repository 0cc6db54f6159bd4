"""One home for the Azure facts and variable names the helpers, the emulator, the bench and the tests share.

Everything here is a documented fact of the real services or clients (sources in ``docs/protocol.md``), or a
name this project gives its own environment variables. Nothing in the package re-declares these values:
import them from here. Modelled on azure-identity's ``_constants.py`` (``EnvironmentVariables``,
``Endpoints``).
"""

from __future__ import annotations

from typing import Final

# ruff: noqa: S105 - environment variable names and api-versions, not secrets

__all__ = [
    "AZURE_ASSET_TAG",
    "CLIENT_REDIRECT_VARIABLES",
    "CREDENTIAL_CHOICE_VARIABLES",
    "EMULATOR_POINTER_VARIABLES",
    "LOOPBACK_NO_PROXY",
    "MANAGED_IDENTITY_VARIABLES",
    "NO_PROXY_VARIABLES",
    "PROXY_VARIABLES",
    "SECRET_VARIABLES",
    "Arc",
    "Arm",
    "Entra",
    "EnvironmentVariables",
    "Graph",
    "Imds",
    "KeyVault",
    "Roles",
    "Storage",
]

#: The SMBIOS chassis asset tag every Azure VM carries (how target selection recognises Azure offline).
AZURE_ASSET_TAG: Final = "7783-7084-3265-9085-8269-3286-77"


class Imds:
    """The Azure Instance Metadata Service (docs/protocol.md, "IMDS token endpoint", "Instance metadata")."""

    ADDRESS: Final = "169.254.169.254"
    URL: Final = f"http://{ADDRESS}"
    TOKEN_PATH: Final = "/metadata/identity/oauth2/token"
    INSTANCE_PATH: Final = "/metadata/instance"
    INFO_PATH: Final = "/metadata/identity/info"
    VERSIONS_PATH: Final = "/metadata/versions"
    #: The api-version the SDKs send to the token endpoint (azure-identity, MSAL, az CLI).
    TOKEN_API_VERSION: Final = "2018-02-01"
    #: The api-version this tutorial uses for instance metadata.
    INSTANCE_API_VERSION: Final = "2021-02-01"
    #: Documented IMDS api-versions, oldest first (``GET /metadata/versions`` lists them).
    API_VERSIONS: Final = (
        "2017-03-01", "2017-04-02", "2017-08-01", "2017-10-01", "2017-12-01", "2018-02-01", "2018-04-02",
        "2018-10-01", "2019-02-01", "2019-03-11", "2019-04-30", "2019-06-01", "2019-06-04", "2019-08-01",
        "2019-08-15", "2019-11-01", "2020-06-01", "2020-07-15", "2020-09-01", "2020-10-01", "2020-12-01",
        "2021-01-01", "2021-02-01", "2021-03-01", "2021-05-01", "2021-08-01", "2021-10-01", "2021-11-01",
        "2021-11-15", "2021-12-13", "2023-07-01", "2023-11-15", "2024-03-15", "2024-07-17", "2025-04-07",
    )  # fmt: skip
    #: The three newest versions, as IMDS names them in its "api-version is invalid" error body.
    NEWEST_VERSIONS: Final = tuple(reversed(API_VERSIONS[-3:]))
    #: Seconds within which IMDS is back after a 410 ("available in a maximum of 70 seconds").
    UPDATE_WINDOW: Final = 70.0
    #: The ``Server`` header value real IMDS sends.
    SERVER_HEADER: Final = "IMDS/150.870.65.1854"
    #: Port of the retired managed-identity VM extension (``http://localhost:50342/oauth2/token``).
    LEGACY_EXTENSION_PORT: Final = 50342


class Arm:
    """Azure Resource Manager in the public cloud (docs/protocol.md, "Azure Resource Manager")."""

    URL: Final = "https://management.azure.com"
    #: The resource (audience) the Python management SDKs ask IMDS for.
    RESOURCE: Final = "https://management.azure.com/"
    #: What the Python management SDKs ask the credential for.
    SCOPE: Final = "https://management.azure.com/.default"
    #: The az CLI's resource (``active_directory_resource_id``).
    CLI_RESOURCE: Final = "https://management.core.windows.net/"
    #: The four audiences public ARM accepts (its InvalidAuthenticationTokenAudience text lists them).
    AUDIENCES: Final = (
        "https://management.core.windows.net/",
        "https://management.core.windows.net",
        "https://management.azure.com/",
        "https://management.azure.com",
    )


class Arc:
    """Azure Arc-enabled servers: MSAL treats a machine with the agent installed as Arc, not as a VM."""

    #: The file whose presence makes MSAL choose Arc's identity endpoint (msal ``managed_identity.py``).
    AGENT_PATH: Final = "/opt/azcmagent/bin/himds"
    #: The local identity endpoint of the Arc agent.
    ENDPOINT: Final = "http://localhost:40342"


class Entra:
    """Microsoft Entra ID, the token service (docs/protocol.md, "Entra ID token endpoints")."""

    #: The authority host of the public cloud (MSAL's and azure-identity's default).
    AUTHORITY_HOST: Final = "https://login.microsoftonline.com"
    #: Host of the v1 issuer: every token for a v1 resource (ARM, Graph) has ``iss`` ``<this>/<tid>/``.
    V1_ISSUER_HOST: Final = "https://sts.windows.net"


class Graph:
    """Microsoft Graph (docs/protocol.md, "Microsoft Graph")."""

    URL: Final = "https://graph.microsoft.com"
    #: Graph's application ID: a valid token audience and resource name, like its URL.
    APP_ID: Final = "00000003-0000-0000-c000-000000000000"
    #: The application permission (app role) that lets an app read every directory object.
    DIRECTORY_READ_ALL: Final = "Directory.Read.All"


class KeyVault:
    """Azure Key Vault's data plane (docs/protocol.md, "Key Vault")."""

    #: The resource (audience) a Key Vault token is for; its 401 challenge names it.
    RESOURCE: Final = "https://vault.azure.net"
    SCOPE: Final = "https://vault.azure.net/.default"
    #: Key Vault's application ID, also an accepted audience (its AKV10022 text names both).
    APP_ID: Final = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"
    #: The DNS suffix of public-cloud vault URLs (``https://<name>.vault.azure.net/``).
    DNS_SUFFIX: Final = ".vault.azure.net"


class Storage:
    """Azure Blob storage's data plane (docs/protocol.md, "Blob storage")."""

    RESOURCE: Final = "https://storage.azure.com"
    SCOPE: Final = "https://storage.azure.com/.default"
    APP_ID: Final = "e406a681-f3d4-42a8-90b6-c2b029497af1"
    #: The oldest ``x-ms-version`` that accepts a bearer token (Learn, "Authorize with Microsoft Entra ID").
    OAUTH_MIN_VERSION: Final = "2017-11-09"
    BLOB_DNS_SUFFIX: Final = ".blob.core.windows.net"


class Roles:
    """Built-in Azure role definition IDs (learn.microsoft.com, "Azure built-in roles")."""

    READER: Final = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
    CONTRIBUTOR: Final = "b24988ac-6180-42a0-ab88-20f7382dd24c"
    OWNER: Final = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
    USER_ACCESS_ADMINISTRATOR: Final = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
    VIRTUAL_MACHINE_CONTRIBUTOR: Final = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
    MANAGED_IDENTITY_OPERATOR: Final = "f1a07417-d97a-45cb-824c-7a7467783830"
    # --- data-plane roles (Key Vault, Blob storage): "Azure built-in roles", Security and Storage pages
    KEY_VAULT_SECRETS_USER: Final = "4633458b-17de-408a-b874-0445c86b69e6"
    KEY_VAULT_SECRETS_OFFICER: Final = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
    KEY_VAULT_ADMINISTRATOR: Final = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
    KEY_VAULT_READER: Final = "21090545-7ca7-4776-b22c-e363652d74d2"
    STORAGE_BLOB_DATA_READER: Final = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
    STORAGE_BLOB_DATA_CONTRIBUTOR: Final = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
    STORAGE_BLOB_DATA_OWNER: Final = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"

    #: Role name -> definition ID, for display and for ``--role <name>`` lookups.
    BY_NAME: Final = {
        "Reader": READER,
        "Contributor": CONTRIBUTOR,
        "Owner": OWNER,
        "User Access Administrator": USER_ACCESS_ADMINISTRATOR,
        "Virtual Machine Contributor": VIRTUAL_MACHINE_CONTRIBUTOR,
        "Managed Identity Operator": MANAGED_IDENTITY_OPERATOR,
        # data-plane roles
        "Key Vault Secrets User": KEY_VAULT_SECRETS_USER,
        "Key Vault Secrets Officer": KEY_VAULT_SECRETS_OFFICER,
        "Key Vault Administrator": KEY_VAULT_ADMINISTRATOR,
        "Key Vault Reader": KEY_VAULT_READER,
        "Storage Blob Data Reader": STORAGE_BLOB_DATA_READER,
        "Storage Blob Data Contributor": STORAGE_BLOB_DATA_CONTRIBUTOR,
        "Storage Blob Data Owner": STORAGE_BLOB_DATA_OWNER,
    }
    #: Definition ID -> role name.
    BY_ID: Final = {v: k for k, v in BY_NAME.items()}


class EnvironmentVariables:
    """Names of the environment variables the clients (azure-identity, MSAL, az CLI, requests) and this
    project read. docs/protocol.md, "Environment variables", says what each one does."""

    # azure-identity / MSAL managed-identity back ends (App Service, Arc, Cloud Shell, Service Fabric…)
    AZURE_POD_IDENTITY_AUTHORITY_HOST: Final = "AZURE_POD_IDENTITY_AUTHORITY_HOST"
    IDENTITY_ENDPOINT: Final = "IDENTITY_ENDPOINT"
    IDENTITY_HEADER: Final = "IDENTITY_HEADER"
    IDENTITY_SERVER_THUMBPRINT: Final = "IDENTITY_SERVER_THUMBPRINT"
    IMDS_ENDPOINT: Final = "IMDS_ENDPOINT"
    MSI_ENDPOINT: Final = "MSI_ENDPOINT"
    MSI_SECRET: Final = "MSI_SECRET"
    # azure-identity's EnvironmentCredential / workload identity / DefaultAzureCredential
    AZURE_CLIENT_ID: Final = "AZURE_CLIENT_ID"
    AZURE_TENANT_ID: Final = "AZURE_TENANT_ID"
    AZURE_CLIENT_SECRET: Final = "AZURE_CLIENT_SECRET"
    AZURE_FEDERATED_TOKEN_FILE: Final = "AZURE_FEDERATED_TOKEN_FILE"
    AZURE_AUTHORITY_HOST: Final = "AZURE_AUTHORITY_HOST"
    AZURE_TOKEN_CREDENTIALS: Final = "AZURE_TOKEN_CREDENTIALS"
    # TLS trust and proxies (requests / urllib3 / curl)
    REQUESTS_CA_BUNDLE: Final = "REQUESTS_CA_BUNDLE"
    CURL_CA_BUNDLE: Final = "CURL_CA_BUNDLE"
    HTTP_PROXY: Final = "HTTP_PROXY"
    HTTPS_PROXY: Final = "HTTPS_PROXY"
    NO_PROXY: Final = "NO_PROXY"
    # Azure Cloud Shell (serves MSI_ENDPOINT on localhost:50342 legitimately; MSAL's detection rule)
    AZUREPS_HOST_ENVIRONMENT: Final = "AZUREPS_HOST_ENVIRONMENT"
    # this project
    MI_HELPERS_TARGET: Final = "MI_HELPERS_TARGET"
    MI_HELPERS_CLOUD: Final = "MI_HELPERS_CLOUD"
    MI_HELPERS_ARM_URL: Final = "MI_HELPERS_ARM_URL"
    MI_HELPERS_EMULATOR_ADMIN: Final = "MI_HELPERS_EMULATOR_ADMIN"
    MI_HELPERS_EMULATOR_KEY: Final = "MI_HELPERS_EMULATOR_KEY"
    MI_HELPERS_STATE_DIR: Final = "MI_HELPERS_STATE_DIR"
    MI_HELPERS_SCENARIO: Final = "MI_HELPERS_SCENARIO"
    # this project: the emulator's Entra ID and Microsoft Graph, and the operator principal that signs in
    # there. Deliberately not AZURE_CLIENT_ID / AZURE_CLIENT_SECRET / AZURE_TENANT_ID: azure-identity reads
    # those in every process (DefaultAzureCredential's EnvironmentCredential would sign in as the operator
    # instead of the managed identity, and AZURE_CLIENT_ID picks a user-assigned identity), so exporting
    # them into the kernels would silently change what the lessons demonstrate.
    MI_HELPERS_ENTRA_URL: Final = "MI_HELPERS_ENTRA_URL"
    MI_HELPERS_GRAPH_URL: Final = "MI_HELPERS_GRAPH_URL"
    MI_HELPERS_TENANT_ID: Final = "MI_HELPERS_TENANT_ID"
    MI_HELPERS_OPERATOR_CLIENT_ID: Final = "MI_HELPERS_OPERATOR_CLIENT_ID"
    MI_HELPERS_OPERATOR_CLIENT_SECRET: Final = "MI_HELPERS_OPERATOR_CLIENT_SECRET"
    # this project: the emulator's Key Vault (the vault URL) and Blob storage (the service base URL; an
    # account's endpoint is <base>/<account>/, path-style, as the storage SDK addresses 127.0.0.1)
    MI_HELPERS_KEYVAULT_URL: Final = "MI_HELPERS_KEYVAULT_URL"
    MI_HELPERS_BLOB_URL: Final = "MI_HELPERS_BLOB_URL"
    # this project: the audience mi_helpers.read_blob asks for instead of Storage's (the scenario
    # storage-wrong-audience sets it, as a program that reuses one token for every service would)
    MI_HELPERS_STORAGE_TOKEN_RESOURCE: Final = "MI_HELPERS_STORAGE_TOKEN_RESOURCE"


_E = EnvironmentVariables

#: Both spellings of the proxy exclusion list (requests reads either; the lower-case one wins).
NO_PROXY_VARIABLES: Final = ("NO_PROXY", "no_proxy")

#: Proxy variables requests/urllib3 honour (both spellings; requests reads either).
PROXY_VARIABLES: Final = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")

#: Variables that make azure-identity/MSAL choose a managed-identity back end other than IMDS (or change
#: which identity it asks for): a developer machine may have them set from another tool.
MANAGED_IDENTITY_VARIABLES: Final = (
    _E.MSI_ENDPOINT,
    _E.MSI_SECRET,
    _E.IDENTITY_ENDPOINT,
    _E.IDENTITY_HEADER,
    _E.IDENTITY_SERVER_THUMBPRINT,
    _E.IMDS_ENDPOINT,
    _E.AZURE_FEDERATED_TOKEN_FILE,
)

#: Variables the local emulator exports to point a client process at itself (see ``Emulator.environment``).
EMULATOR_POINTER_VARIABLES: Final = (
    _E.AZURE_POD_IDENTITY_AUTHORITY_HOST,
    _E.REQUESTS_CA_BUNDLE,
    _E.CURL_CA_BUNDLE,
    _E.MI_HELPERS_ARM_URL,
    _E.MI_HELPERS_EMULATOR_ADMIN,
    _E.MI_HELPERS_EMULATOR_KEY,
    _E.MI_HELPERS_ENTRA_URL,
    _E.MI_HELPERS_GRAPH_URL,
    _E.MI_HELPERS_KEYVAULT_URL,
    _E.MI_HELPERS_BLOB_URL,
)

#: Variables the emulator exports that are secret: shown redacted, never whole (see ``redact_secret``).
SECRET_VARIABLES: Final = (_E.MI_HELPERS_OPERATOR_CLIENT_SECRET,)

#: The one list of "variables that point a client somewhere": remove them all and a process talks to the
#: default endpoints (on Azure, IMDS and ARM; elsewhere, an emulator it starts itself).
CLIENT_REDIRECT_VARIABLES: Final = (
    *EMULATOR_POINTER_VARIABLES,
    *MANAGED_IDENTITY_VARIABLES,
    *PROXY_VARIABLES,
    _E.MI_HELPERS_STORAGE_TOKEN_RESOURCE,
)

#: Variables that make DefaultAzureCredential pick another credential or identity (EnvironmentCredential,
#: workload identity, the user-assigned identity of AZURE_CLIENT_ID). They do not redirect
#: ManagedIdentityCredential, so they are not in CLIENT_REDIRECT_VARIABLES; a child process that must
#: behave like a freshly set-up machine drops them too.
CREDENTIAL_CHOICE_VARIABLES: Final = (
    _E.AZURE_CLIENT_ID,
    _E.AZURE_TENANT_ID,
    _E.AZURE_CLIENT_SECRET,
    _E.AZURE_AUTHORITY_HOST,
    _E.AZURE_TOKEN_CREDENTIALS,
)

#: What NO_PROXY must always contain so loopback traffic (the emulator) never goes through a proxy.
LOOPBACK_NO_PROXY: Final = ("127.0.0.1", "localhost")
