"""Resource IDs (token audiences) of Azure services, per cloud, and the scope to ask a managed identity for.

A token is only accepted by the service whose resource ID is its ``aud`` claim, and sovereign clouds use
different IDs. This table (``docs/protocol.md#audiences-and-clouds``, from Microsoft Learn's per-cloud
service pages) answers "what do I pass to ``get_token`` for Key Vault in Azure China?" without a web search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mi_helpers.constants import Arm
from mi_helpers.validate import InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CLOUDS",
    "SERVICES",
    "Cloud",
    "Service",
    "audiences",
    "cloud_info",
    "resource_for",
    "scope_for",
    "services_in",
]


@dataclass(frozen=True)
class Cloud:
    """Endpoints of one Azure cloud (``docs/protocol.md#audiences-and-clouds``)."""

    name: str  # short key: public | usgov | china
    display_name: str
    arm_url: str  # ARM endpoint the SDK talks to
    arm_scope: str  # what the Python mgmt SDK asks the credential (and so IMDS) for
    cli_resource: str  # the az CLI's active_directory_resource_id (its IMDS `resource`)
    login_host: str
    az_environment: str  # IMDS compute.azEnvironment

    @property
    def arm_audiences(self) -> frozenset[str]:
        """The token audiences this cloud's ARM accepts: its endpoint, the SDK's and the az CLI's resource,
        each with and without the trailing slash (for the public cloud, ``constants.Arm.AUDIENCES``)."""
        resources = (self.arm_url, self.arm_scope.removesuffix("/.default"), self.cli_resource)
        bases = {r.rstrip("/") for r in resources}
        return frozenset(base + tail for base in bases for tail in ("", "/"))


CLOUDS: dict[str, Cloud] = {
    "public": Cloud(
        "public",
        "Azure public cloud",
        Arm.URL,
        Arm.SCOPE,
        Arm.CLI_RESOURCE,
        "https://login.microsoftonline.com",
        "AzurePublicCloud",
    ),
    "usgov": Cloud(
        "usgov",
        "Azure US Government",
        "https://management.usgovcloudapi.net",
        "https://management.core.usgovcloudapi.net/.default",
        "https://management.core.usgovcloudapi.net/",
        "https://login.microsoftonline.us",
        "AzureUSGovernmentCloud",
    ),
    "china": Cloud(
        "china",
        "Azure China (21Vianet)",
        "https://management.chinacloudapi.cn",
        "https://management.chinacloudapi.cn/.default",
        "https://management.core.chinacloudapi.cn/",
        "https://login.chinacloudapi.cn",
        "AzureChinaCloud",
    ),
}

_CLOUD_ALIASES = {
    "public": "public",
    "azure": "public",
    "azurecloud": "public",
    "azurepubliccloud": "public",
    "azure_public_cloud": "public",
    "usgov": "usgov",
    "us-gov": "usgov",
    "usgovernment": "usgov",
    "azureusgovernment": "usgov",
    "azureusgovernmentcloud": "usgov",
    "azure_us_government": "usgov",
    "china": "china",
    "azurechinacloud": "china",
    "azure_china_cloud": "china",
    "mooncake": "china",
}


def cloud_info(cloud: str = "public") -> Cloud:
    """Return the :class:`Cloud` for a name or alias (public, usgov, china, an IMDS ``azEnvironment``)."""
    key = _CLOUD_ALIASES.get(str(cloud or "").strip().lower().replace(" ", ""))
    if key is None:
        raise InputError(
            "cloud",
            f"{cloud!r} is not a known cloud (one of: public, usgov, china, or an IMDS azEnvironment "
            "such as AzurePublicCloud)",
            cloud,
        )
    return CLOUDS[key]


@dataclass(frozen=True)
class Service:
    """One row of the audience table: the resource ID per cloud (None: no resource ID is documented there).

    ``note`` is a fact that holds in every cloud the service is offered in; ``source`` is where the IDs are
    documented (a Microsoft Learn page, or the Azure CLI's cloud table ``azure/cli/core/cloud.py`` for the
    sovereign IDs it carries).
    """

    name: str
    aliases: tuple[str, ...]
    public: str | None
    usgov: str | None
    china: str | None
    note: str = ""
    source: str = ""

    def resource_id(self, cloud: str) -> str | None:
        return getattr(self, cloud_info(cloud).name)

    def offered_in(self, cloud: str) -> bool:
        """True when a resource ID of this service is documented for ``cloud``."""
        return self.resource_id(cloud) is not None


_LEARN = "https://learn.microsoft.com/"
_CLI_CLOUDS = "the Azure CLI's cloud table (azure/cli/core/cloud.py)"
#: The per-cloud Storage and Cosmos DB audiences of the Azure SDK (Azure.Data.Tables, TableAudience.cs).
_SDK_AUDIENCES = _LEARN + "dotnet/api/azure.data.tables.tableaudience"
SERVICES: tuple[Service, ...] = (
    Service(
        "Azure Resource Manager",
        ("arm", "management", "resource manager", "azure resource manager"),
        CLOUDS["public"].arm_scope.removesuffix(".default"),
        CLOUDS["usgov"].arm_scope.removesuffix(".default"),
        CLOUDS["china"].arm_scope.removesuffix(".default"),
        "ARM also accepts the az CLI's audience (management.core…), with or without the trailing slash",
        "docs/protocol.md#audiences-and-clouds",
    ),
    Service(
        "Key Vault",
        ("key vault", "keyvault", "kv", "vault"),
        "https://vault.azure.net",
        "https://vault.usgovcloudapi.net",
        "https://vault.azure.cn",
        "",
        _LEARN + "azure/azure-government/compare-azure-government-global-azure",
    ),
    Service(
        "Storage",
        ("storage", "blob", "queue", "table", "file", "files", "adls", "data lake storage"),
        "https://storage.azure.com/",
        "https://storage.azure.us/",
        "https://storage.azure.cn/",
        "an account URL (https://<account>.blob.<the cloud's storage suffix>) also works",
        _LEARN + "azure/storage/blobs/authorize-access-azure-active-directory; " + _SDK_AUDIENCES,
    ),
    Service(
        "Azure SQL",
        ("sql", "azure sql", "sql database", "database"),
        "https://database.windows.net/",
        "https://database.usgovcloudapi.net/",
        "https://database.chinacloudapi.cn/",
        "",
        _LEARN + "azure/azure-sql/database/authentication-aad-overview",
    ),
    Service(
        "Microsoft Graph",
        ("graph", "microsoft graph", "msgraph"),
        "https://graph.microsoft.com",
        "https://graph.microsoft.us/",
        "https://microsoftgraph.chinacloudapi.cn",
        "",
        _LEARN + "graph/deployments",
    ),
    Service(
        "Batch",
        ("batch", "azure batch"),
        "https://batch.core.windows.net/",
        "https://batch.core.usgovcloudapi.net/",
        "https://batch.chinacloudapi.cn/",
        "",
        _LEARN + "azure/batch/batch-aad-auth; " + _CLI_CLOUDS,
    ),
    Service(
        "Log Analytics",
        ("log analytics", "loganalytics", "monitor logs", "la"),
        "https://api.loganalytics.io",
        "https://api.loganalytics.us",
        "https://api.loganalytics.azure.cn",
        "",
        _LEARN + "azure/azure-monitor/logs/api/access-api; " + _CLI_CLOUDS,
    ),
    Service(
        "Azure Database for PostgreSQL/MySQL",
        ("postgresql", "postgres", "mysql", "ossrdbms"),
        "https://ossrdbms-aad.database.windows.net",
        "https://ossrdbms-aad.database.usgovcloudapi.net",
        "https://ossrdbms-aad.database.chinacloudapi.cn",
        "",
        _LEARN + "azure/postgresql/flexible-server/how-to-connect-with-managed-identity; " + _CLI_CLOUDS,
    ),
    Service(
        "Service Bus",
        ("service bus", "servicebus", "sb"),
        "https://servicebus.azure.net",
        None,
        None,
        "",
        _LEARN + "azure/service-bus-messaging/service-bus-managed-service-identity",
    ),
    Service(
        "Event Hubs",
        ("event hubs", "eventhubs", "eventhub", "event hub", "eh"),
        "https://eventhubs.azure.net",
        None,
        None,
        "",
        _LEARN + "azure/event-hubs/authenticate-managed-identity",
    ),
    Service(
        "Cosmos DB",
        ("cosmos db", "cosmosdb", "cosmos"),
        "https://cosmos.azure.com",
        "https://cosmos.azure.us",
        "https://cosmos.azure.cn",
        "the SDK asks for the account scope https://<account>.documents.azure.com first",
        _LEARN + "azure/cosmos-db/how-to-setup-rbac; " + _SDK_AUDIENCES,
    ),
    Service(
        "Container Registry",
        ("container registry", "acr", "containerregistry"),
        "https://containerregistry.azure.net",
        None,
        None,
        "docker login exchanges an ARM token for a registry token",
        _LEARN + "azure/container-registry/container-registry-authentication-managed-identity",
    ),
    Service(
        "Azure Data Explorer",
        ("data explorer", "kusto", "adx", "azure data explorer"),
        "https://kusto.kusto.windows.net",
        None,
        None,
        "a cluster may also accept its own URL as the resource",
        _LEARN + "kusto/api/rest/authentication",
    ),
    Service(
        "Data Lake Storage Gen1",
        ("data lake", "datalake", "adls gen1", "adl"),
        "https://datalake.azure.net/",
        None,
        None,
        "Gen1 was retired in February 2024; Data Lake Storage Gen2 uses the Storage audience",
        _LEARN
        + "azure/data-lake-store/data-lake-store-service-to-service-authenticate-using-active-directory",
    ),
    Service(
        "App Configuration",
        ("app configuration", "appconfig", "app config", "azconfig"),
        "https://azconfig.io",
        None,
        None,
        "",
        _LEARN + "azure/azure-app-configuration/howto-integrate-azure-managed-service-identity",
    ),
    Service(
        "Azure AI services (Cognitive Services)",
        ("azure ai", "ai", "cognitive services", "cognitiveservices", "openai", "azure openai"),
        "https://cognitiveservices.azure.com",
        None,
        None,
        "",
        _LEARN + "azure/ai-services/authentication",
    ),
)


def _norm(name: str) -> str:
    return " ".join(name.replace("-", " ").replace("_", " ").lower().split())


_BY_ALIAS: dict[str, Service] = {}
for _svc in SERVICES:
    for _alias in (_svc.name, *_svc.aliases):
        _BY_ALIAS[_norm(_alias)] = _svc
        _BY_ALIAS[_norm(_alias).replace(" ", "")] = _svc


def _service(service: object) -> Service:
    known = ", ".join(s.aliases[0] for s in SERVICES)
    if not isinstance(service, str) or not service.strip():
        raise InputError("service", f"{service!r} is not a service name (known: {known})", service)
    svc = _BY_ALIAS.get(_norm(service)) or _BY_ALIAS.get(_norm(service).replace(" ", ""))
    if svc is None:
        raise InputError("service", f"{service!r} is not a known service (known: {known})", service)
    return svc


def services_in(cloud: str = "public") -> tuple[Service, ...]:
    """The services with a documented resource ID in ``cloud`` (what a form may offer for that cloud)."""
    info = cloud_info(cloud)
    return tuple(s for s in SERVICES if s.offered_in(info.name))


def resource_for(service: str, cloud: str = "public") -> str:
    """Resource ID (token audience) of ``service`` in ``cloud``; aliases are matched case-insensitively."""
    svc = _service(service)
    info = cloud_info(cloud)
    rid = svc.resource_id(info.name)
    if rid is None:
        offered = ", ".join(s.aliases[0] for s in services_in(info.name))
        raise InputError(
            "service",
            f"{svc.name} has no documented resource ID in the {info.display_name} "
            f"(documented there: {offered})",
            service,
        )
    return rid


def scope_for(service: str, cloud: str = "public") -> str:
    """The scope to ask a credential for: the service's resource ID + ``/.default``.

    ``scope_for("key vault")`` → ``https://vault.azure.net/.default``. A trailing slash on the resource ID is
    dropped first, so the scope is the form Azure SDKs use (``https://storage.azure.com/.default``).
    """
    return resource_for(service, cloud).rstrip("/") + "/.default"


def audiences(cloud: str = "public") -> pd.DataFrame:
    """The audience table of one cloud: service, resource_id, scope, note; only the services whose resource
    ID is documented in that cloud (:func:`services_in`)."""
    import pandas as pd

    rows = []
    for svc in services_in(cloud):
        rid = svc.resource_id(cloud) or ""
        rows.append(
            {
                "service": svc.name,
                "resource_id": rid,
                "scope": rid.rstrip("/") + "/.default",
                "note": svc.note,
            }
        )
    return pd.DataFrame(rows, columns=["service", "resource_id", "scope", "note"])
