"""``GET /metadata/endpoints``: the cloud metadata document clients read before signing in.

Unauthenticated, as in Azure (docs/protocol.md#cloud-metadata); ``resourceManager`` points back at the
emulator so a client that discovers its endpoints from here stays on loopback.
"""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from mi_helpers.constants import Arm
from mi_helpers.emulator.arm.call import arm_json
from mi_helpers.emulator.errors import ArmError

__all__ = ["PATH", "endpoints"]

PATH = "/metadata/endpoints"


def endpoints(request: Request) -> Response:
    """The metadata document, with this emulator's ARM as ``resourceManager`` and ``portal``."""
    if request.method not in ("GET", "HEAD"):
        raise ArmError(405, "MethodNotAllowed", "Only GET is supported on /metadata/endpoints.")
    base = f"https://{request.host}/"
    return arm_json(
        {
            "name": "AzureEmulator",
            "resourceManager": base,
            "portal": base,
            "gallery": "https://gallery.azure.com/",
            "graph": "https://graph.windows.net/",
            "graphAudience": "https://graph.windows.net/",
            "microsoftGraphResourceId": "https://graph.microsoft.com/",
            "batch": "https://batch.core.windows.net/",
            "sqlManagement": "https://management.core.windows.net:8443/",
            "vmImageAliasDoc": "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/master/arm-compute/quickstart-templates/aliases.json",
            "authentication": {
                "loginEndpoint": "https://login.microsoftonline.com/",
                "audiences": [Arm.CLI_RESOURCE, Arm.RESOURCE],
                "tenant": "common",
                "identityProvider": "AAD",
            },
            "suffixes": {
                "acrLoginServer": "azurecr.io",
                "keyVaultDns": "vault.azure.net",
                "sqlServerHostname": "database.windows.net",
                "storage": "core.windows.net",
            },
        }
    )
