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

__all__ = ["CLOUDS", "SERVICES", "Cloud", "Service", "audiences", "cloud_info", "resource_for", "scope_for"]


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
    """One row of the audience table: resource IDs per cloud (None where no ID is documented)."""

    name: str
    aliases: tuple[str, ...]
    public: str | None
    usgov: str | None
    china: str | None
    note: str = ""

    def resource_id(self, cloud: str) -> str | None:
        return getattr(self, cloud_info(cloud).name)


_ARM_NOTE = (
    "ARM also accepts https://management.core.windows.net/ (the az CLI's audience), with or without the "
    "trailing slash"
)
SERVICES: tuple[Service, ...] = (
    Service(
        "Azure Resource Manager",
        ("arm", "management", "resource manager", "azure resource manager"),
        CLOUDS["public"].arm_scope.removesuffix(".default"),
        CLOUDS["usgov"].arm_scope.removesuffix(".default"),
        CLOUDS["china"].arm_scope.removesuffix(".default"),
        _ARM_NOTE,
    ),
    Service(
        "Key Vault",
        ("key vault", "keyvault", "kv", "vault"),
        "https://vault.azure.net",
        "https://vault.usgovcloudapi.net",
        "https://vault.azure.cn",
    ),
    Service(
        "Storage",
        ("storage", "blob", "queue", "table", "file", "files", "adls", "data lake storage"),
        "https://storage.azure.com/",
        "https://storage.azure.com/",
        "https://storage.azure.com/",
        "an account URL such as https://<account>.blob.core.windows.net also works",
    ),
    Service(
        "Azure SQL",
        ("sql", "azure sql", "sql database", "database"),
        "https://database.windows.net/",
        "https://database.usgovcloudapi.net/",
        "https://database.chinacloudapi.cn/",
    ),
    Service(
        "Microsoft Graph",
        ("graph", "microsoft graph", "msgraph"),
        "https://graph.microsoft.com",
        "https://graph.microsoft.us/",
        "https://microsoftgraph.chinacloudapi.cn",
    ),
    Service(
        "Service Bus",
        ("service bus", "servicebus", "sb"),
        "https://servicebus.azure.net",
        None,
        None,
        "US Gov: available, resource ID not listed",
    ),
    Service(
        "Event Hubs",
        ("event hubs", "eventhubs", "eventhub", "event hub", "eh"),
        "https://eventhubs.azure.net",
        None,
        None,
    ),
    Service(
        "Cosmos DB",
        ("cosmos db", "cosmosdb", "cosmos"),
        "https://cosmos.azure.com",
        None,
        None,
        "the SDK tries the account scope https://<account>.documents.azure.com first; "
        "sovereign IDs UNCONFIRMED",
    ),
    Service(
        "Container Registry",
        ("container registry", "acr", "containerregistry"),
        "https://containerregistry.azure.net",
        None,
        None,
        "token exchange itself uses the ARM audience",
    ),
    Service(
        "Azure Data Explorer",
        ("data explorer", "kusto", "adx", "azure data explorer"),
        "https://kusto.kusto.windows.net",
        None,
        None,
        "default; a cluster may advertise its own resource at <cluster>/v1/rest/auth/metadata",
    ),
    Service(
        "Data Lake (Gen1)",
        ("data lake", "datalake", "adls gen1", "adl"),
        "https://datalake.azure.net/",
        None,
        None,
    ),
    Service(
        "App Configuration",
        ("app configuration", "appconfig", "app config", "azconfig"),
        "https://azconfig.io",
        None,
        None,
    ),
    Service(
        "Log Analytics",
        ("log analytics", "loganalytics", "monitor logs", "la"),
        "https://api.loganalytics.io",
        None,
        None,
    ),
    Service(
        "Azure Database for PostgreSQL/MySQL",
        ("postgresql", "postgres", "mysql", "ossrdbms"),
        "https://ossrdbms-aad.database.windows.net",
        None,
        None,
    ),
    Service("Batch", ("batch", "azure batch"), "https://batch.core.windows.net/", None, None),
    Service(
        "Cognitive Services / Azure AI",
        ("cognitive services", "cognitiveservices", "azure ai", "ai", "openai", "azure openai"),
        "https://cognitiveservices.azure.com",
        None,
        None,
        "UNCONFIRMED: from a third-party list, not a primary source",
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


def resource_for(service: str, cloud: str = "public") -> str:
    """Resource ID (token audience) of ``service`` in ``cloud``; aliases are matched case-insensitively."""
    svc = _service(service)
    info = cloud_info(cloud)
    rid = svc.resource_id(info.name)
    if rid is None:
        raise InputError(
            "service",
            f"no resource ID is documented for {svc.name} in the {info.display_name} ({svc.note})".replace(
                " ()", ""
            ),
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
    """The audience table for one cloud as a DataFrame: service, resource_id, scope, cloud, note."""
    import pandas as pd

    info = cloud_info(cloud)
    rows = []
    for svc in SERVICES:
        rid = svc.resource_id(info.name)
        rows.append(
            {
                "service": svc.name,
                "resource_id": rid or "",
                "scope": (rid.rstrip("/") + "/.default") if rid else "",
                "cloud": info.name,
                "note": svc.note
                if rid
                else "; ".join(filter(None, ("no resource ID documented for this cloud", svc.note))),
            }
        )
    return pd.DataFrame(rows, columns=["service", "resource_id", "scope", "cloud", "note"])
