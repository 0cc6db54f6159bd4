"""``GET /metadata/endpoints``: the cloud metadata document clients read before signing in.

Unauthenticated, as in Azure (docs/protocol.md#cloud-metadata); ``resourceManager`` points back at the
emulator so a client that discovers its endpoints from here stays on loopback.
"""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from mi_helpers.constants import Arm
from mi_helpers.emulator.arm.call import arm_json
from mi_helpers.emulator.endpoints import Endpoints
from mi_helpers.emulator.errors import ArmError

__all__ = ["PATH", "endpoints"]

PATH = "/metadata/endpoints"


def endpoints(request: Request, urls: Endpoints | None = None) -> Response:
    """The metadata document, with this emulator's ARM as ``resourceManager`` and ``portal``, and its own
    Entra ID (``loginEndpoint``) and Microsoft Graph (``microsoftGraphResourceId``) when it serves them, so
    ``az cloud register --endpoint-resource-manager`` alone sets up a cloud that never leaves loopback."""
    if request.method not in ("GET", "HEAD"):
        raise ArmError(405, "MethodNotAllowed", "Only GET is supported on /metadata/endpoints.")
    base = f"https://{request.host}/"
    login = (
        f"{urls.entra_url.rstrip('/')}/" if urls and urls.entra_url else "https://login.microsoftonline.com/"
    )
    graph = f"{urls.graph_url.rstrip('/')}/" if urls and urls.graph_url else "https://graph.microsoft.com/"
    return arm_json(
        {
            "name": "AzureEmulator",
            "resourceManager": base,
            "portal": base,
            "gallery": "https://gallery.azure.com/",
            "graph": "https://graph.windows.net/",
            "graphAudience": "https://graph.windows.net/",
            "microsoftGraphResourceId": graph,
            "batch": "https://batch.core.windows.net/",
            "sqlManagement": "https://management.core.windows.net:8443/",
            "vmImageAliasDoc": "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/master/arm-compute/quickstart-templates/aliases.json",
            "authentication": {
                "loginEndpoint": login,
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
