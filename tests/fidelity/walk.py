"""A walk over every route of the emulator: real HTTP requests, the bodies they return, and their schema.

Each :class:`Probe` is one request a real client makes (the api-versions are the ones the pinned SDKs and
the Azure CLI send), in a scenario, signed in as one of the world's identities. :func:`run_walk` starts an
emulator, sends them all over loopback and returns what came back; the conformance tests check each body
against the spec-generated SDK model of its route (``spec.py``) or the documented IMDS schema
(``imds_schema.py``), and that every ARM route was walked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests
from support.emulator import RawArm, RawImds, client_api_version
from support.world import (
    KEY_VAULT,
    OTHER_VM,
    RG,
    STORAGE_ACCOUNT,
    SUB,
    SYS_PRINCIPAL,
    UAMI_READER,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    VM,
    uami_resource_id,
)

from mi_helpers.constants import Arm, Imds, Roles

__all__ = ["ARM_PROBES", "IMDS_PROBES", "Probe", "Result", "run_walk"]

_RG = f"/subscriptions/{SUB}/resourceGroups/{RG}"
_COMPUTE = f"{_RG}/providers/Microsoft.Compute/virtualMachines"
_AUTH = "providers/Microsoft.Authorization"
_CLI_EXPAND = {"$expand": "createdTime,changedTime,provisioningState"}


@dataclass(frozen=True)
class Probe:
    """One request of the walk. ``identity`` selects the signed-in identity (IMDS selector); ``fix`` is a
    fix action applied first (``("add-role-assignment", {...})``); ``status`` is the expected status."""

    label: str
    path: str
    status: int = 200
    params: dict[str, str] = field(default_factory=dict)
    api_version: str | None = "auto"
    scenario: str = "healthy"
    identity: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    token: str = "valid"  # valid | none | storage (a token for another audience)
    fix: tuple[str, tuple[tuple[str, str], ...]] | None = None


@dataclass
class Result:
    """What a probe got back."""

    probe: Probe
    status: int
    body: Any
    headers: dict[str, str]


def _p(label: str, path: str, **kw: Any) -> Probe:
    return Probe(label, path, **kw)


_OWNER_FIX = ("add-role-assignment", (("principal_id", SYS_PRINCIPAL), ("role", "Owner"), ("scope", _RG)))
_SUB_READER_FIX = (
    "add-role-assignment",
    (("principal_id", SYS_PRINCIPAL), ("role", "Reader"), ("scope", f"/subscriptions/{SUB}")),
)

ARM_PROBES: tuple[Probe, ...] = (
    # Microsoft.Resources
    _p("subscriptions list", "/subscriptions", api_version="2022-12-01"),
    _p("subscription get", f"/subscriptions/{SUB}", api_version="2022-12-01"),
    _p("resource groups list", f"/subscriptions/{SUB}/resourcegroups"),
    _p("resource group get", f"/subscriptions/{SUB}/resourcegroups/{RG}"),
    _p("resources list (az resource list)", f"/subscriptions/{SUB}/resources", params=_CLI_EXPAND),
    _p(
        "resources by name",
        f"/subscriptions/{SUB}/resources",
        params={**_CLI_EXPAND, "$filter": f"name eq '{VM}'"},
    ),
    _p(
        "resources by tag",
        f"/subscriptions/{SUB}/resources",
        params={**_CLI_EXPAND, "$filter": "tagname eq 'purpose' and tagvalue eq 'mi-tutorial'"},
    ),
    _p("resources page of one", f"/subscriptions/{SUB}/resources", params={"$top": "1"}),
    _p("resources in a group", f"{_RG}/resources"),
    _p(
        "storage account get",
        f"{_RG}/providers/Microsoft.Storage/storageAccounts/{STORAGE_ACCOUNT}",
        api_version="2025-01-01",
    ),
    _p("key vault get", f"{_RG}/providers/Microsoft.KeyVault/vaults/{KEY_VAULT}", api_version="2024-11-01"),
    _p(
        "storage accounts in the subscription",
        f"/subscriptions/{SUB}/providers/Microsoft.Storage/storageAccounts",
        api_version="2025-01-01",
        fix=_SUB_READER_FIX,
    ),
    _p(
        "storage accounts in a group",
        f"{_RG}/providers/Microsoft.Storage/storageAccounts",
        api_version="2025-01-01",
    ),
    # Microsoft.Compute
    _p("VM get (system + user-assigned)", f"{_COMPUTE}/{VM}"),
    _p(
        "VM get (several user-assigned)",
        f"{_COMPUTE}/{VM}",
        scenario="multiple-user-assigned",
        identity=(("client_id", UAMI_READER_CLIENT),),
    ),
    _p("VM get (no identity)", f"{_COMPUTE}/{OTHER_VM}"),
    _p("VM get (az vm show)", f"{_COMPUTE}/{VM}", api_version="2024-11-01"),
    _p("VMs in a group", _COMPUTE),
    _p(
        "VMs in the subscription",
        f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines",
        fix=_SUB_READER_FIX,
    ),
    # Microsoft.ManagedIdentity
    _p("identity get", f"{_RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{UAMI_READER}"),
    _p(
        "identity get (2023-01-31)",
        f"{_RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{UAMI_READER}",
        api_version="2023-01-31",
    ),
    _p("identities in a group", f"{_RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"),
    _p(
        "identities in the subscription",
        f"/subscriptions/{SUB}/providers/Microsoft.ManagedIdentity/userAssignedIdentities",
        fix=_SUB_READER_FIX,
    ),
    # Microsoft.Authorization
    _p(
        "role assignments of a principal",
        f"/subscriptions/{SUB}/{_AUTH}/roleAssignments",
        params={"$filter": f"principalId eq '{SYS_PRINCIPAL}'"},
    ),
    _p("role assignments at a group", f"{_RG}/{_AUTH}/roleAssignments", params={"$filter": "atScope()"}),
    _p("role assignments at a VM", f"{_COMPUTE}/{VM}/{_AUTH}/roleAssignments"),
    _p("role assignments of the tenant", f"/{_AUTH}/roleAssignments", status=403),
    _p("role assignment get", f"{_RG}/{_AUTH}/roleAssignments/<assignment>"),
    _p("role assignment get (VM scope)", f"{_COMPUTE}/{VM}/{_AUTH}/roleAssignments/<assignment>", status=404),
    _p(
        "role definitions by name",
        f"/subscriptions/{SUB}/{_AUTH}/roleDefinitions",
        params={"$filter": "roleName eq 'Reader'"},
        api_version="2022-05-01-preview",
    ),
    _p("role definitions at a group", f"{_RG}/{_AUTH}/roleDefinitions"),
    _p("role definitions of the tenant", f"/{_AUTH}/roleDefinitions"),
    _p("role definition get", f"/subscriptions/{SUB}/{_AUTH}/roleDefinitions/{Roles.READER}"),
    _p("role definition get (tenant)", f"/{_AUTH}/roleDefinitions/{Roles.OWNER}"),
    _p("role definition get (group)", f"{_RG}/{_AUTH}/roleDefinitions/{Roles.CONTRIBUTOR}"),
    # errors
    _p("missing VM", f"{_COMPUTE}/vm-nope", status=404),
    _p(
        "missing resource group",
        f"/subscriptions/{SUB}/resourcegroups/rg-nope",
        status=404,
        fix=_SUB_READER_FIX,
    ),
    _p("unreadable resource group", f"/subscriptions/{SUB}/resourcegroups/rg-nope", status=403),
    _p(
        "unknown subscription",
        "/subscriptions/0b0b0b0b-1111-4222-8333-444444444444",
        status=404,
        api_version="2022-12-01",
    ),
    _p("unknown api-version (Compute)", f"{_COMPUTE}/{VM}", status=400, api_version="1999-01-01"),
    _p(
        "unknown api-version (Resources)",
        f"/subscriptions/{SUB}/resourcegroups/{RG}",
        status=400,
        api_version="1999-01-01",
    ),
    _p("missing api-version", f"{_COMPUTE}/{VM}", status=400, api_version=None),
    _p(
        "unknown resource type",
        f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachinesx",
        status=400,
    ),
    _p("bad filter", f"/subscriptions/{SUB}/resources", status=400, params={"$filter": "colour eq 'blue'"}),
    _p("missing Authorization", f"{_COMPUTE}/{VM}", status=401, token="none"),
    _p("token for another audience", f"{_COMPUTE}/{VM}", status=401, token="storage"),
    _p("no role anywhere", f"{_COMPUTE}/{VM}", status=403, scenario="no-role-assignment"),
    _p(
        "missing role assignment",
        f"{_RG}/{_AUTH}/roleAssignments/6a1f0c9e-0000-4000-8000-000000000000",
        status=404,
    ),
    _p(
        "missing role definition",
        f"/subscriptions/{SUB}/{_AUTH}/roleDefinitions/6a1f0c9e-0000-4000-8000-000000000000",
        status=404,
    ),
    _p("write as a Reader", f"{_COMPUTE}/{VM}", status=403, method="PATCH", api_version="2024-11-01"),
    _p(
        "write without a body as an Owner",  # allowed, then refused for the body (protocol.md#arm-writes)
        f"{_COMPUTE}/{VM}",
        status=400,
        method="PATCH",
        api_version="2024-11-01",
        fix=_OWNER_FIX,
    ),
    _p(
        "operation status of an unknown operation",  # the route a write's poller reads
        f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/westeurope/operations/"
        "6a1f0c9e-0000-4000-8000-000000000003",
        status=404,
        api_version="2024-11-01",
    ),
    _p(
        "role assignment write as a Reader",
        f"{_RG}/{_AUTH}/roleAssignments/6a1f0c9e-0000-4000-8000-000000000001",
        status=403,
        method="PUT",
    ),
)

_MI = f"{_RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{UAMI_READER}"
_TOKEN = Imds.TOKEN_PATH
_INSTANCE = Imds.INSTANCE_PATH

IMDS_PROBES: tuple[Probe, ...] = (
    _p("token (system)", _TOKEN, params={"resource": Arm.RESOURCE}),
    _p("token (CLI audience)", _TOKEN, params={"resource": Arm.CLI_RESOURCE}),
    _p("token (client_id)", _TOKEN, params={"resource": Arm.RESOURCE, "client_id": UAMI_READER_CLIENT}),
    _p("token (object_id)", _TOKEN, params={"resource": Arm.RESOURCE, "object_id": UAMI_READER_PRINCIPAL}),
    _p(
        "token (msi_res_id)",
        _TOKEN,
        params={"resource": Arm.RESOURCE, "msi_res_id": uami_resource_id(UAMI_READER)},
    ),
    _p("token (custom API)", _TOKEN, params={"resource": "api://0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"}),
    _p("token for a typo", _TOKEN, status=400, params={"resource": "https://managements.azure.com"}),
    _p("token for a scope", _TOKEN, status=400, params={"resource": Arm.SCOPE}),
    _p(
        "token, unknown identity",
        _TOKEN,
        status=400,
        params={"resource": Arm.RESOURCE, "client_id": "00000000-0000-4000-8000-000000000000"},
    ),
    _p(
        "token, several identities",
        _TOKEN,
        status=400,
        params={"resource": Arm.RESOURCE},
        scenario="multiple-user-assigned",
    ),
    _p("token without resource", _TOKEN, status=400),
    _p("token without Metadata", _TOKEN, status=400, params={"resource": Arm.RESOURCE}, token="none"),
    _p(
        "token, bad api-version",
        _TOKEN,
        status=400,
        params={"resource": Arm.RESOURCE},
        api_version="2017-01-01",
    ),
    _p("identity info", Imds.INFO_PATH),
    _p("versions", Imds.VERSIONS_PATH, api_version=None),
    _p("instance (tutorial's 2021-02-01)", _INSTANCE, api_version=Imds.INSTANCE_API_VERSION),
    _p("instance (newest)", _INSTANCE, api_version=Imds.API_VERSIONS[-1]),
    _p("instance (2017-04-02)", _INSTANCE, api_version="2017-04-02"),
    _p("instance (2019-06-01)", _INSTANCE, api_version="2019-06-01"),
    _p("instance compute", _INSTANCE + "/compute", api_version=Imds.INSTANCE_API_VERSION),
    _p("instance network", _INSTANCE + "/network", api_version=Imds.INSTANCE_API_VERSION),
    _p("instance storage profile", _INSTANCE + "/compute/storageProfile", api_version=Imds.API_VERSIONS[-1]),
    _p(
        "instance without Metadata",
        _INSTANCE,
        status=400,
        api_version=Imds.INSTANCE_API_VERSION,
        token="none",
    ),
    _p("instance without api-version", _INSTANCE, status=400, api_version=None),
    _p(
        "instance unknown element",
        _INSTANCE + "/compute/nothing",
        status=404,
        api_version=Imds.INSTANCE_API_VERSION,
    ),
)

# A role assignment name is a GUID the world derives; the walk finds it with the first probe that lists one.
_ASSIGNMENT = "<assignment>"


def _imds_request(imds: RawImds, probe: Probe) -> requests.Response:
    params = dict(probe.params)
    if probe.api_version == "auto":
        params["api-version"] = Imds.TOKEN_API_VERSION
    elif probe.api_version is not None:
        params["api-version"] = probe.api_version
    return imds.get(probe.path, params=params, metadata=probe.token != "none", method=probe.method)


def _arm_token(imds: RawImds, probe: Probe) -> str | None:
    if probe.token == "none":
        return None
    resource = "https://storage.azure.com/" if probe.token == "storage" else Arm.RESOURCE
    return imds.access_token(resource, **dict(probe.identity))


def run_walk(emulator: Any, probes: tuple[Probe, ...], listener: str) -> list[Result]:
    """Send ``probes`` to ``emulator`` (scenario and fix applied per probe), return what came back."""
    imds = RawImds(emulator.imds_url)
    arm = RawArm(emulator.arm_url, emulator.ca_bundle)
    assignment = ""
    results = []
    try:
        for probe in probes:
            emulator.set_scenario(probe.scenario)
            if probe.fix is not None:
                emulator.apply_fix(probe.fix[0], **dict(probe.fix[1]))
            if listener == "imds":
                r = _imds_request(imds, probe)
            else:
                path = probe.path.replace(_ASSIGNMENT, assignment)
                version = client_api_version(path) if probe.api_version == "auto" else probe.api_version
                r = arm.get(
                    path,
                    token=_arm_token(imds, probe),
                    api_version=version,
                    params=probe.params,
                    method=probe.method,
                )
            body = r.json() if r.content else None
            if not assignment and isinstance(body, dict) and "roleAssignments" in probe.path:
                first = (body.get("value") or [{}])[0]
                assignment = first.get("name", "")
            results.append(Result(probe, r.status_code, body, dict(r.headers)))
    finally:
        arm.close()
        emulator.set_scenario("healthy")
    return results
