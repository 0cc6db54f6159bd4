"""The api-versions ARM accepts per resource type, and how it refuses the others.

Every route of the emulated ARM belongs to one resource type; a request with an api-version that type does not
have is refused before it reaches the provider (docs/protocol.md#request-checks-and-their-order):

* a resource provider's type (Compute, ManagedIdentity, Authorization) answers 400
  ``NoRegisteredProviderFound`` "No registered resource provider found for location '<loc>' and API version
  '<v>' for type '<type>'. The supported api-versions are '<oldest>, …, <newest>'. The supported locations
  are '<loc>, …'." (real bodies in MicrosoftDocs/azure-docs#62621, #82469, Azure/azure-cli#28496);
* ARM's own types (subscriptions, resource groups, the ``/resources`` lists) answer 400
  ``InvalidApiVersionParameter`` "The api-version '<v>' is invalid. The supported versions are
  '<newest>,…'." (Azure/azure-cli#28038, pulumi/pulumi-azure-native#3637).

The lists are assembled, not copied from a live provider registration: the versions real refusals listed,
the versions of the OpenAPI specs (Azure/azure-rest-api-specs), and every version the clients this project
pins send (azure-mgmt-* in ``.venv``, the Azure CLI in ``.venv-az``);
``tests/fidelity/test_api_versions.py`` scans those clients and fails when one sends a version missing here.
"""

from __future__ import annotations

from dataclasses import dataclass

from mi_helpers.emulator.errors import ArmError, arm_invalid_api_version, arm_no_registered_provider

__all__ = [
    "AUTHORIZATION_ROLE_ASSIGNMENTS",
    "AUTHORIZATION_ROLE_DEFINITIONS",
    "COMPUTE_VIRTUAL_MACHINES",
    "MSI_USER_ASSIGNED_IDENTITIES",
    "RESOURCES",
    "TypeVersions",
]

#: The public regions Compute's refusal listed in 2020 (MicrosoftDocs/azure-docs#62621), in its order.
PUBLIC_REGIONS: tuple[str, ...] = (
    "eastus", "eastus2", "westus", "centralus", "northcentralus", "southcentralus", "northeurope",
    "westeurope", "eastasia", "southeastasia", "japaneast", "japanwest", "australiaeast",
    "australiasoutheast", "australiacentral", "brazilsouth", "southindia", "centralindia", "westindia",
    "canadacentral", "canadaeast", "westus2", "westcentralus", "uksouth", "ukwest", "koreacentral",
    "koreasouth", "francecentral", "southafricanorth", "uaenorth", "switzerlandnorth", "germanywestcentral",
    "norwayeast",
)  # fmt: skip


@dataclass(frozen=True)
class TypeVersions:
    """One resource type's api-versions (oldest first) and the style of its refusal."""

    namespace: str
    #: The type as the refusal names it (``virtualMachines``, ``roleAssignments``; ``resourceGroups``).
    type: str
    versions: tuple[str, ...]
    #: ``provider``: NoRegisteredProviderFound with ``locations``; ``core``: InvalidApiVersionParameter.
    style: str = "provider"
    #: The regions a provider refusal lists ('' for global types such as role assignments).
    locations: tuple[str, ...] = ()

    def accepts(self, version: str) -> bool:
        return version in self.versions

    def refusal(self, version: str, location: str) -> ArmError:
        """The 400 ARM answers for ``version`` (``location``: where the request's resource group lives)."""
        if self.style == "core":
            return arm_invalid_api_version(version, tuple(reversed(self.versions)))
        return arm_no_registered_provider(location, version, self.type, self.versions, self.locations)

    def check(self, version: str, location: str) -> None:
        """Raise the refusal unless ``version`` is one of this type's."""
        if version not in self.versions:
            raise self.refusal(version, location)


_COMPUTE = (
    "2015-05-01-preview", "2015-06-15", "2016-03-30", "2016-04-30-preview", "2016-08-30", "2017-03-30",
    "2017-12-01", "2018-04-01", "2018-06-01", "2018-10-01", "2019-03-01", "2019-07-01", "2019-12-01",
    "2020-06-01", "2020-12-01", "2021-03-01", "2021-04-01", "2021-07-01", "2021-11-01", "2022-03-01",
    "2022-08-01", "2022-11-01", "2023-03-01", "2023-07-01", "2023-09-01", "2024-03-01", "2024-07-01",
    "2024-11-01", "2025-04-01", "2025-11-01", "2026-04-01",
)  # fmt: skip
_MSI = (
    "2015-08-31-preview", "2018-11-30", "2021-09-30-preview", "2022-01-31-preview", "2023-01-31",
    "2024-11-30", "2025-01-31-preview", "2025-05-31-preview", "2026-04-30",
)  # fmt: skip
_ROLE_ASSIGNMENTS = (
    "2014-04-01-preview", "2014-07-01-preview", "2014-10-01-preview", "2015-05-01-preview", "2015-06-01",
    "2015-07-01", "2016-07-01", "2017-05-01", "2017-09-01", "2017-10-01-preview", "2018-01-01-preview",
    "2018-07-01", "2018-09-01-preview", "2018-12-01-preview", "2019-04-01-preview", "2020-03-01-preview",
    "2020-04-01-preview", "2020-08-01-preview", "2020-10-01-preview", "2021-04-01-preview",
    "2022-01-01-preview", "2022-04-01",
)  # fmt: skip
_ROLE_DEFINITIONS = (
    "2014-04-01-preview", "2014-07-01-preview", "2014-10-01-preview", "2015-05-01-preview", "2015-06-01",
    "2015-07-01", "2016-07-01", "2017-05-01", "2017-09-01", "2018-01-01-preview", "2018-07-01",
    "2022-04-01", "2022-05-01-preview",
)  # fmt: skip
#: ARM's own types: one list, newest first as its InvalidApiVersionParameter texts show (odd tail included).
_RESOURCES_NEWEST_FIRST = (
    "2025-04-01", "2025-03-01", "2025-01-01", "2024-11-01", "2024-08-01", "2024-07-01",
    "2024-06-01-preview", "2024-03-01", "2023-07-01", "2023-07-01-preview", "2023-03-01-preview",
    "2022-12-01", "2022-11-01-preview", "2022-09-01", "2022-06-01", "2022-05-01", "2022-03-01-preview",
    "2022-01-01", "2021-04-01", "2021-01-01", "2020-10-01", "2020-09-01", "2020-08-01", "2020-07-01",
    "2020-06-01", "2020-05-01", "2020-01-01", "2019-11-01", "2019-10-01", "2019-09-01", "2019-08-01",
    "2019-07-01", "2019-06-01", "2019-05-10", "2019-05-01", "2019-03-01", "2018-11-01", "2018-09-01",
    "2018-08-01", "2018-07-01", "2018-06-01", "2018-05-01", "2018-02-01", "2018-01-01", "2017-12-01",
    "2017-08-01", "2017-06-01", "2017-05-10", "2017-05-01", "2017-03-01", "2016-09-01", "2016-07-01",
    "2016-06-01", "2016-02-01", "2015-11-01", "2015-01-01", "2014-04-01-preview", "2014-04-01",
    "2014-01-01", "2013-03-01", "2014-02-26", "2014-04",
)  # fmt: skip

COMPUTE_VIRTUAL_MACHINES = TypeVersions(
    "Microsoft.Compute", "virtualMachines", _COMPUTE, locations=PUBLIC_REGIONS
)
MSI_USER_ASSIGNED_IDENTITIES = TypeVersions(
    "Microsoft.ManagedIdentity", "userAssignedIdentities", _MSI, locations=PUBLIC_REGIONS
)
AUTHORIZATION_ROLE_ASSIGNMENTS = TypeVersions("Microsoft.Authorization", "roleAssignments", _ROLE_ASSIGNMENTS)
AUTHORIZATION_ROLE_DEFINITIONS = TypeVersions("Microsoft.Authorization", "roleDefinitions", _ROLE_DEFINITIONS)
RESOURCES = TypeVersions(
    "Microsoft.Resources", "resourceGroups", tuple(reversed(_RESOURCES_NEWEST_FIRST)), style="core"
)
