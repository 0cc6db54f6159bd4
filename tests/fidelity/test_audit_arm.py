"""ARM as recorded and documented: api-versions per type, the ``/resources`` filter grammar and paging, ID
casing, VM bodies, and writes refused by RBAC with the action named.

Each test names the discrepancy it closes; docs/protocol.md (#azure-resource-manager and below) has the
facts and their sources. Raw HTTP where the wire is the point, the management SDKs where their exception
or pager is what a learner meets.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import HttpResponseError
from support.emulator import VM_PATH, RawArm, RawImds, arm_error, mgmt_kwargs, mi_credential
from support.world import (
    RG,
    RG_SCOPE,
    SUB,
    SYS_PRINCIPAL,
    UAMI_DEPLOY,
    UAMI_READER,
    VM,
    uami_resource_id,
)

from mi_helpers.emulator.arm.apiversions import (
    AUTHORIZATION_ROLE_ASSIGNMENTS,
    COMPUTE_VIRTUAL_MACHINES,
    PUBLIC_REGIONS,
    RESOURCES,
)

pytestmark = pytest.mark.timeout(60)

RESOURCES_PATH = f"/subscriptions/{SUB}/resources"
UAMI_PATH = f"{RG_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{UAMI_READER}"
ASSIGNMENTS = f"{RG_SCOPE}/providers/Microsoft.Authorization/roleAssignments"


def _names(r: Any) -> list[str]:
    assert r.status_code == 200, r.text[:300]
    return [item["name"] for item in r.json()["value"]]


# --- api-versions per resource type --------------------------------------------------------------------


def test_an_unknown_compute_api_version_is_no_registered_provider_found(arm: RawArm, token: str) -> None:
    r = arm.get(VM_PATH, token=token, api_version="1999-01-01")
    assert r.status_code == 400
    assert arm_error(r) == (
        "NoRegisteredProviderFound",
        "No registered resource provider found for location 'westeurope' and API version '1999-01-01' for "
        f"type 'virtualMachines'. The supported api-versions are "
        f"'{', '.join(COMPUTE_VIRTUAL_MACHINES.versions)}'. "
        f"The supported locations are '{', '.join(PUBLIC_REGIONS)}'.",
    )


def test_the_sdk_raises_the_provider_s_refusal(emu: Any) -> None:
    from azure.mgmt.compute import ComputeManagementClient

    client = ComputeManagementClient(mi_credential(), SUB, **mgmt_kwargs(emu))
    with pytest.raises(HttpResponseError) as info:
        client.virtual_machines.get(RG, VM, api_version="2017-01-01")
    assert info.value.status_code == 400 and info.value.error is not None
    assert info.value.error.code == "NoRegisteredProviderFound"
    assert "API version '2017-01-01' for type 'virtualMachines'" in info.value.error.message


def test_arm_s_own_types_refuse_with_invalid_api_version_parameter(arm: RawArm, token: str) -> None:
    r = arm.get(f"/subscriptions/{SUB}/resourcegroups/{RG}", token=token, api_version="2026-04-01")
    assert r.status_code == 400
    newest_first = ",".join(reversed(RESOURCES.versions))
    assert arm_error(r) == (
        "InvalidApiVersionParameter",
        f"The api-version '2026-04-01' is invalid. The supported versions are '{newest_first}'.",
    )
    assert newest_first.endswith("2014-04-01-preview,2014-04-01,2014-01-01,2013-03-01,2014-02-26,2014-04")


def test_a_global_type_lists_no_locations(arm: RawArm, token: str) -> None:
    r = arm.get(ASSIGNMENTS, token=token, api_version="2020-10-01")
    code, message = arm_error(r)
    assert (r.status_code, code) == (400, "NoRegisteredProviderFound")
    assert message.endswith(
        f"for type 'roleAssignments'. The supported api-versions are "
        f"'{', '.join(AUTHORIZATION_ROLE_ASSIGNMENTS.versions)}'. The supported locations are ''."
    )


@pytest.mark.parametrize(
    ("path", "version"),
    [
        (UAMI_PATH, "2023-01-31"),
        (UAMI_PATH, "2025-05-31-preview"),  # what az identity create sends
        (VM_PATH, "2024-11-01"),  # az vm identity assign's PATCH version
        (VM_PATH, "2025-04-01"),
        (f"/subscriptions/{SUB}/resourcegroups/{RG}", "2024-11-01"),
        (f"{RG_SCOPE}/providers/Microsoft.Authorization/roleDefinitions", "2022-05-01-preview"),
    ],
)
def test_the_versions_real_clients_send_are_accepted(
    arm: RawArm, token: str, path: str, version: str
) -> None:
    assert arm.get(path, token=token, api_version=version).status_code == 200


def test_an_unmodelled_type_is_invalid_resource_type(arm: RawArm, token: str) -> None:
    r = arm.get(f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachinez", token=token)
    assert r.status_code == 400
    assert arm_error(r) == (
        "InvalidResourceType",
        "The resource type 'virtualMachinez' could not be found in the namespace 'Microsoft.Compute' for api "
        "version '2026-04-01'.",
    )


# --- /resources: the documented $filter grammar and $top paging ------------------------------------------


@pytest.mark.parametrize(
    ("flt", "names"),
    [
        ("tagName eq 'purpose' and tagValue eq 'mi-tutorial'", ["vm-mi-tutorial"]),
        ("tagname eq 'PURPOSE' and tagvalue eq 'mi-tutorial'", ["vm-mi-tutorial"]),  # names: any case
        ("tagName eq 'purpose' and tagValue eq 'MI-TUTORIAL'", []),  # values: exact
        ("startswith(tagname, 'purp')", ["vm-mi-tutorial"]),
        (f"identity/principalId eq '{SYS_PRINCIPAL.upper()}'", ["vm-mi-tutorial"]),
        ("substringof('tutorial', name)", ["vm-mi-tutorial", "stmitutorial", "kv-mi-tutorial"]),
        ("substringof('agent', name) or substringof('vault', name)", ["vm-build-agent"]),
        (
            "resourceType ne 'Microsoft.Compute/virtualMachines' and substringof('mi', name)",
            ["uami-reader", "uami-deploy", "stmitutorial", "kv-mi-tutorial"],
        ),
        ("resourceGroup eq 'RG-MI-TUTORIAL' and name eq 'uami-deploy'", ["uami-deploy"]),
        ("location ne 'westeurope'", []),
        (
            "(name eq 'stmitutorial' or name eq 'kv-mi-tutorial') "
            "and resourceType eq 'Microsoft.KeyVault/vaults'",
            ["kv-mi-tutorial"],
        ),
    ],
)
def test_the_documented_filter_grammar(arm: RawArm, token: str, flt: str, names: list[str]) -> None:
    assert _names(arm.get(RESOURCES_PATH, token=token, params={"$filter": flt})) == names


def test_a_tag_filter_leaves_the_tags_out_as_documented(arm: RawArm, token: str) -> None:
    tagged = arm.get(RESOURCES_PATH, token=token, params={"$filter": "tagName eq 'purpose'"}).json()["value"]
    assert tagged and all("tags" not in item for item in tagged)
    plain = arm.get(RESOURCES_PATH, token=token, params={"$filter": f"name eq '{VM}'"}).json()["value"]
    assert plain[0]["tags"] == {"purpose": "mi-tutorial"}


@pytest.mark.parametrize("flt", ["colour eq 'blue'", "name gt 'a'", "substringof('a', location)", "name eq"])
def test_a_filter_outside_the_grammar_is_refused_in_arm_s_words(arm: RawArm, token: str, flt: str) -> None:
    r = arm.get(RESOURCES_PATH, token=token, params={"$filter": flt})
    assert r.status_code == 400
    assert arm_error(r) == (
        "InvalidFilterInQueryString",
        f"Invalid $filter '{flt}' specified in the query string.",
    )


def test_top_pages_with_next_link(arm: RawArm, token: str) -> None:
    everything = _names(arm.get(RESOURCES_PATH, token=token))
    seen, r = [], arm.get(RESOURCES_PATH, token=token, params={"$top": "2"})
    while True:
        body = r.json()
        assert len(body["value"]) <= 2
        seen += [i["name"] for i in body["value"]]
        if "nextLink" not in body:
            break
        link = urlsplit(body["nextLink"])
        assert f"{link.scheme}://{link.netloc}" == arm.base and parse_qs(link.query)["$top"] == ["2"]
        r = arm.session.get(body["nextLink"], headers={"Authorization": f"Bearer {token}"}, verify=arm.ca)
    assert seen == everything and len(everything) == 6


def test_the_sdk_pager_follows_next_link_and_filters_by_tag(emu: Any) -> None:
    from azure.mgmt.resource.resources import ResourceManagementClient

    client = ResourceManagementClient(mi_credential(), SUB, **mgmt_kwargs(emu))
    assert len(list(client.resources.list(top=1))) == 6
    pages = [e for e in emu.request_log() if e["path"].endswith("/resources")]
    assert len(pages) == 6  # one request per page of one
    tagged = list(client.resources.list(filter="tagName eq 'purpose' and tagValue eq 'mi-tutorial'"))
    assert [r.name for r in tagged] == [VM] and tagged[0].tags is None


# --- resource-ID casing -----------------------------------------------------------------------------------


def test_the_identity_provider_spells_resourcegroups_in_lower_case(arm: RawArm, token: str) -> None:
    """Microsoft.ManagedIdentity's own replies say ``resourcegroups``; ARM's ``/resources`` list does not."""
    expected = uami_resource_id(UAMI_READER).replace("/resourceGroups/", "/resourcegroups/")
    assert arm.get(UAMI_PATH, token=token).json()["id"] == expected
    listed = arm.get(f"{RG_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities", token=token)
    assert expected in [i["id"] for i in listed.json()["value"]]
    in_resources = arm.get(RESOURCES_PATH, token=token, params={"$filter": f"name eq '{UAMI_READER}'"})
    assert in_resources.json()["value"][0]["id"] == uami_resource_id(UAMI_READER)
    assert (
        expected != uami_resource_id(UAMI_READER)
        and expected.lower() == uami_resource_id(UAMI_READER).lower()
    )


def test_vm_identity_keys_keep_the_casing_used_when_attached(emu: Any, arm: RawArm, imds: RawImds) -> None:
    lower = uami_resource_id(UAMI_DEPLOY).lower()
    emu.apply_fix("attach-user-identity", resource_id=lower)
    keys = list(arm.get(VM_PATH, token=imds.access_token()).json()["identity"]["userAssignedIdentities"])
    assert keys == [uami_resource_id(UAMI_READER), lower]


# --- VM bodies as recorded ----------------------------------------------------------------------------------


def test_the_vm_carries_an_etag_that_changes_with_the_vm(emu: Any, arm: RawArm, imds: RawImds) -> None:
    first = arm.get(VM_PATH, token=imds.access_token())
    assert first.json()["etag"] == '"1"' and first.headers["ETag"] == '"1"'
    emu.apply_fix("attach-user-identity", name=UAMI_DEPLOY)
    second = arm.get(VM_PATH, token=imds.access_token())
    assert second.json()["etag"] == second.headers["ETag"] == '"2"'
    assert list(second.json())[-1] == "etag"  # Compute's order: … properties, etag


def test_the_vm_body_has_the_recorded_disk_ssh_and_security_blocks(arm: RawArm, token: str) -> None:
    props = arm.get(VM_PATH, token=token).json()["properties"]
    assert list(props)[:4] == ["hardwareProfile", "provisioningState", "vmId", "storageProfile"]
    disk = props["storageProfile"]["osDisk"]
    assert disk["name"].startswith(f"{VM}_OsDisk_1_") and len(disk["name"].rsplit("_", 1)[1]) == 32
    assert disk["managedDisk"]["id"] == f"{RG_SCOPE}/providers/Microsoft.Compute/disks/{disk['name']}"
    assert props["storageProfile"]["diskControllerType"] == "SCSI"
    linux = props["osProfile"]["linuxConfiguration"]
    assert linux["ssh"]["publicKeys"][0]["path"] == "/home/azureuser/.ssh/authorized_keys"
    assert linux["patchSettings"] == {"patchMode": "ImageDefault", "assessmentMode": "ImageDefault"}
    assert props["securityProfile"] == {
        "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
        "securityType": "TrustedLaunch",
    }


# --- writes: RBAC by action, 403 naming it ----------------------------------------------------------------

_WRITES = [
    (
        "PUT",
        f"/subscriptions/{SUB}/resourcegroups/rg-new",
        "2024-11-01",
        "Microsoft.Resources/subscriptions/resourcegroups/write",
    ),
    ("PATCH", VM_PATH, "2024-11-01", "Microsoft.Compute/virtualMachines/write"),
    (
        "DELETE",
        f"{VM_PATH}/extensions/ManagedIdentityExtensionForLinux",
        "2024-11-01",
        "Microsoft.Compute/virtualMachines/extensions/delete",
    ),
    (
        "PUT",
        f"{RG_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami-new",
        "2025-05-31-preview",
        "Microsoft.ManagedIdentity/userAssignedIdentities/write",
    ),
    ("POST", f"{VM_PATH}/restart", "2024-11-01", "Microsoft.Compute/virtualMachines/restart/action"),
]


@pytest.mark.parametrize(("method", "path", "version", "action"), _WRITES)
def test_a_reader_s_write_is_authorization_failed_naming_the_action(
    arm: RawArm, token: str, method: str, path: str, version: str, action: str
) -> None:
    r = arm.get(path, token=token, api_version=version, method=method)
    scope = path.removesuffix("/restart")
    assert r.status_code == 403
    assert arm_error(r) == (
        "AuthorizationFailed",
        f"The client '{SYS_PRINCIPAL}' with object id '{SYS_PRINCIPAL}' does not have authorization to "
        f"perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently "
        "granted, please refresh your credentials.",
    )


def test_a_role_assignment_write_mentions_abac_conditions(arm: RawArm, token: str) -> None:
    path = f"{ASSIGNMENTS}/6a1f0c9e-0000-4000-8000-000000000001"
    code, message = arm_error(arm.get(path, token=token, method="PUT"))
    assert code == "AuthorizationFailed"
    assert "does not have authorization or an ABAC condition not fulfilled to perform action " \
           "'Microsoft.Authorization/roleAssignments/write'" in message  # fmt: skip


def test_the_sdk_raises_authorization_failed_for_a_reader_s_write(emu: Any) -> None:
    from azure.mgmt.resource.resources import ResourceManagementClient

    client = ResourceManagementClient(mi_credential(), SUB, **mgmt_kwargs(emu))
    with pytest.raises(HttpResponseError) as info:
        client.resource_groups.create_or_update("rg-new", {"location": "westeurope"})
    assert info.value.status_code == 403 and info.value.error is not None
    assert info.value.error.code == "AuthorizationFailed"
    assert "'Microsoft.Resources/subscriptions/resourcegroups/write'" in info.value.error.message


@pytest.mark.parametrize(
    ("role", "vm_write", "assignment_write"),
    [
        ("Reader", 403, 403),
        ("Contributor", 400, 403),
        ("Owner", 400, 400),
        ("User Access Administrator", 403, 400),
    ],
)
def test_roles_decide_writes_by_their_actions(
    emu: Any, arm: RawArm, imds: RawImds, role: str, vm_write: int, assignment_write: int
) -> None:
    """Contributor is ``*`` minus ``Microsoft.Authorization/*/Write``; User Access Administrator is reads plus
    ``Microsoft.Authorization/*``. An allowed write passes RBAC and is then refused for its missing body
    (docs/protocol.md#arm-writes)."""
    emu.apply_fix("add-role-assignment", principal_id=SYS_PRINCIPAL, role=role, scope=RG_SCOPE)
    tok = imds.access_token()
    vm = arm.get(VM_PATH, token=tok, api_version="2024-11-01", method="PATCH")
    ra = arm.get(f"{ASSIGNMENTS}/6a1f0c9e-0000-4000-8000-000000000002", token=tok, method="PUT")
    assert (vm.status_code, ra.status_code) == (vm_write, assignment_write)
    if vm.status_code == 400:
        assert arm_error(vm)[0] == "InvalidRequestContent"
