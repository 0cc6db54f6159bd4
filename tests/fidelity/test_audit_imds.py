"""IMDS and Entra as recorded and documented: token resources Entra refuses, instance metadata by api-version.

Each test names the discrepancy it closes; docs/protocol.md has the facts and their sources (#errors,
#instance-metadata, #audiences-and-clouds). They talk to a running emulator over loopback, with raw HTTP
where the wire is the point and with azure-identity where its exception is what a learner sees.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from azure.identity import CredentialUnavailableError
from support.emulator import VM_PATH, RawArm, RawImds, mi_credential, unverified_claims
from support.world import VM, VM_RESOURCE_ID

from mi_helpers.clouds import CLOUDS, SERVICES
from mi_helpers.constants import Arm, Imds
from mi_helpers.emulator.instance import INTRODUCED

pytestmark = pytest.mark.timeout(60)

CUSTOM_API = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"  # the default world's application
AADSTS500011 = (
    "AADSTS500011: The resource principal named {resource} was not found in the tenant named Emulated "
    "Tenant. This can happen if the application has not been installed by the administrator of the tenant or "
    "consented to by any user in the tenant. You might have sent your authentication request to the wrong "
    "tenant.\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"
)


# --- unknown resources: Entra's AADSTS500011, relayed by IMDS -------------------------------------------


@pytest.mark.parametrize(
    "resource",
    [
        "https://managements.azure.com",  # a typo (the real VM reply of AzureAD/...-dotnet#3979)
        Arm.SCOPE,  # a scope where IMDS wants a resource
        "https://vault.azure.net/.default",
        "7f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",  # a GUID of no application
        "https://nonexistent.example.com/",
        f"api://{CUSTOM_API}/user_impersonation",  # a scope of the custom API
        "banana",
    ],
)
def test_a_resource_entra_does_not_know_is_aadsts500011(imds: RawImds, resource: str) -> None:
    correlation = str(uuid.uuid4())
    r = imds.get(
        params={"api-version": Imds.TOKEN_API_VERSION, "resource": resource},
        headers={"x-ms-client-request-id": correlation},
    )
    assert r.status_code == 400
    body = r.json()
    assert list(body) == [
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
        "error_uri",
    ]
    assert body["error"] == "invalid_resource"
    assert body["error_codes"] == [500011]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", body["timestamp"])
    assert uuid.UUID(body["trace_id"]) and body["correlation_id"] == correlation
    assert body["error_uri"] == "https://login.microsoftonline.com/error?code=500011"
    assert body["error_description"] == AADSTS500011.format(
        resource=resource, trace=body["trace_id"], correlation=correlation, timestamp=body["timestamp"]
    )


def test_azure_identity_reports_the_typo_as_entra_words_it(emu: Any) -> None:
    with pytest.raises(CredentialUnavailableError) as info:
        mi_credential().get_token("https://managements.azure.com/.default")
    assert (
        "Token request error: (invalid_resource) AADSTS500011: The resource principal named "
        "https://managements.azure.com was not found in the tenant named Emulated Tenant." in str(info.value)
    )


def _known_resources() -> list[str]:
    found = {rid for svc in SERVICES for cloud in CLOUDS if (rid := svc.resource_id(cloud))}
    found |= {c.cli_resource for c in CLOUDS.values()} | set(Arm.AUDIENCES)
    found |= {rid.rstrip("/") for rid in found} | {rid.rstrip("/") + "/" for rid in found}
    return sorted(found)


@pytest.mark.parametrize("resource", _known_resources())
def test_every_known_first_party_audience_gets_a_token(imds: RawImds, resource: str) -> None:
    r = imds.token(resource)
    assert r.status_code == 200, r.text[:200]
    claims = unverified_claims(r.json()["access_token"])
    assert claims["aud"] == resource and claims["xms_mirid"].lower() == VM_RESOURCE_ID.lower()


@pytest.mark.parametrize(
    "resource",
    [
        "797f4846-ba00-4fd7-ba43-dac1f8f63013",  # ARM's application ID
        "https://stmitutorial.blob.core.windows.net",  # a storage account's endpoint
        "https://stmitutorial.blob.core.windows.net/",
    ],
)
def test_first_party_application_ids_and_account_endpoints_get_tokens(imds: RawImds, resource: str) -> None:
    assert imds.token(resource).status_code == 200


@pytest.mark.parametrize("resource", [CUSTOM_API, f"api://{CUSTOM_API}", f"API://{CUSTOM_API.upper()}/"])
def test_an_application_of_the_world_gets_tokens_without_xms_mirid(imds: RawImds, resource: str) -> None:
    """Entra names the managed-identity resource (``xms_mirid``) only for Microsoft's own services."""
    r = imds.token(resource)
    assert r.status_code == 200, r.text[:200]
    claims = unverified_claims(r.json()["access_token"])
    assert claims["aud"] == resource and "xms_mirid" not in claims


def test_the_emulator_s_own_service_urls_are_resources(emu: Any, imds: RawImds) -> None:
    """The CLI's Graph resource is the emulator's ARM URL (mi_helpers/launch/azure_cli.py); it gets tokens."""
    port = emu.arm_url.rsplit(":", 1)[1]
    for resource in (emu.arm_url, emu.arm_url + "/", f"https://localhost:{port}/", f"https://[::1]:{port}"):
        assert imds.token(resource).status_code == 200, resource
    for other in (f"https://127.0.0.1:{port}/.default", "https://127.0.0.1:1/", emu.imds_url + "/"):
        assert imds.token(other).status_code == 400, other


# --- instance metadata: storageProfile, fields by api-version, the VM's keys and security ---------------


def _instance(imds: RawImds, version: str) -> dict[str, Any]:
    r = imds.get(Imds.INSTANCE_PATH, params={"api-version": version})
    assert r.status_code == 200, r.text[:200]
    return dict(r.json())


def _paths(doc: Any, prefix: str = "") -> set[str]:
    out = set()
    if isinstance(doc, dict):
        for key, value in doc.items():
            here = f"{prefix}.{key}" if prefix else key
            out.add(here)
            out |= _paths(value, here)
    return out


def test_the_tutorial_s_version_has_the_storage_profile_and_nothing_newer(imds: RawImds) -> None:
    doc = _instance(imds, Imds.INSTANCE_API_VERSION)
    compute = doc["compute"]
    for newer in ("physicalZone", "host", "hostGroup", "additionalCapabilities", "platformSubFaultDomain",
                  "extendedLocation", "virtualMachineScaleSet"):  # fmt: skip
        assert newer not in compute, newer
    assert set(compute["securityProfile"]) == {"secureBootEnabled", "virtualTpmEnabled"}  # no securityType
    storage = compute["storageProfile"]
    assert set(storage) == {"dataDisks", "imageReference", "osDisk", "resourceDisk"}
    assert set(storage["imageReference"]) == {"id", "offer", "publisher", "sku", "version"}
    assert storage["osDisk"]["diskSizeGB"] == "30" and storage["osDisk"]["managedDisk"]["id"].endswith(
        storage["osDisk"]["name"]
    )


@pytest.mark.parametrize("version", ["2017-04-02", "2018-10-01", "2019-06-01", "2021-02-01", "2021-12-13",
                                     Imds.API_VERSIONS[-1]])  # fmt: skip
def test_every_field_appears_from_the_version_that_introduced_it(imds: RawImds, version: str) -> None:
    paths = _paths(_instance(imds, version))
    for path, introduced in INTRODUCED.items():
        assert (path in paths) == (introduced <= version), (path, introduced, version)


def test_instance_metadata_and_arm_describe_the_same_vm(imds: RawImds, arm: RawArm, token: str) -> None:
    compute = _instance(imds, Imds.API_VERSIONS[-1])["compute"]
    vm = arm.get(VM_PATH, token=token).json()["properties"]
    ssh = vm["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"]
    assert compute["publicKeys"] == [{"keyData": k["keyData"], "path": k["path"]} for k in ssh]
    assert compute["publicKeys"][0]["keyData"].startswith("ssh-ed25519 ")
    assert (
        compute["securityProfile"]["securityType"] == vm["securityProfile"]["securityType"] == "TrustedLaunch"
    )
    uefi = vm["securityProfile"]["uefiSettings"]
    assert compute["securityProfile"]["secureBootEnabled"] == str(uefi["secureBootEnabled"]).lower()
    assert compute["securityProfile"]["virtualTpmEnabled"] == str(uefi["vTpmEnabled"]).lower()
    os_disk = compute["storageProfile"]["osDisk"]
    assert os_disk["name"] == vm["storageProfile"]["osDisk"]["name"]
    assert os_disk["managedDisk"]["id"] == vm["storageProfile"]["osDisk"]["managedDisk"]["id"]
    assert compute["name"] == VM and compute["osProfile"]["adminUsername"] == vm["osProfile"]["adminUsername"]
