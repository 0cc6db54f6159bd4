"""curl as a learner types it on a VM (docs/protocol.md#request, #instance-metadata), against IMDS and ARM."""

from __future__ import annotations

import json

import pytest
from support.emulator import run_curl, unverified_claims
from support.world import RG, SUB, SYS_CLIENT, SYS_PRINCIPAL, VM, VM_ID

pytestmark = pytest.mark.timeout(60)

DOC_QUERY = "api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"
VM_PATH = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{VM}"


def _split(out: str) -> tuple[int, str]:
    """Body and status from `curl -w '\\n%{http_code}'` output."""
    body, _, code = out.rpartition("\n")
    return int(code), body


def test_documented_token_request(emu):
    p = run_curl("-H", "Metadata:true", f"{emu.imds_url}/metadata/identity/oauth2/token?{DOC_QUERY}")
    assert p.returncode == 0, p.stderr
    body = json.loads(p.stdout)
    assert body["resource"] == "https://management.azure.com/"
    assert body["client_id"] == SYS_CLIENT
    assert all(isinstance(v, str) for v in body.values())
    assert unverified_claims(body["access_token"])["oid"] == SYS_PRINCIPAL


def test_without_metadata_header(emu):
    p = run_curl("-w", "\n%{http_code}", f"{emu.imds_url}/metadata/identity/oauth2/token?{DOC_QUERY}")
    status, body = _split(p.stdout)
    assert status == 400
    assert json.loads(body) == {
        "error": "invalid_request",
        "error_description": "Required metadata header not specified",
    }


def test_with_x_forwarded_for(emu):
    p = run_curl(
        "-w",
        "\n%{http_code}",
        "-H",
        "Metadata:true",
        "-H",
        "X-Forwarded-For: 198.51.100.7",
        f"{emu.imds_url}/metadata/identity/oauth2/token?{DOC_QUERY}",
    )
    status, body = _split(p.stdout)
    assert status == 400
    assert "access_token" not in body


def test_post_is_405(emu):
    p = run_curl(
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "-H",
        "Metadata:true",
        f"{emu.imds_url}/metadata/identity/oauth2/token?{DOC_QUERY}",
    )
    status, _ = _split(p.stdout)
    assert status == 405


def test_instance_metadata(emu):
    p = run_curl("-H", "Metadata:true", f"{emu.imds_url}/metadata/instance?api-version=2021-02-01")
    assert p.returncode == 0, p.stderr
    compute = json.loads(p.stdout)["compute"]
    assert compute["name"] == VM
    assert compute["subscriptionId"] == SUB


def test_instance_metadata_text_leaf(emu):
    p = run_curl(
        "-H",
        "Metadata:true",
        f"{emu.imds_url}/metadata/instance/compute/vmId?api-version=2021-02-01&format=text",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == VM_ID


def test_arm_with_cacert(emu, imds):
    token = imds.access_token("https://management.azure.com/")
    p = run_curl(
        "--cacert",
        emu.ca_bundle,
        "-H",
        f"Authorization: Bearer {token}",
        f"{emu.arm_url}{VM_PATH}?api-version=2026-04-01",
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["identity"]["principalId"] == SYS_PRINCIPAL


def test_arm_on_localhost_name(emu, imds):
    """The server certificate also names localhost (SAN), as the architecture promises."""
    token = imds.access_token("https://management.azure.com/")
    url = emu.arm_url.replace("127.0.0.1", "localhost")
    p = run_curl(
        "--cacert",
        emu.ca_bundle,
        "-H",
        f"Authorization: Bearer {token}",
        f"{url}{VM_PATH}?api-version=2026-04-01",
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["name"] == VM


def test_arm_without_ca_fails_verification(emu):
    import certifi

    p = run_curl("--cacert", certifi.where(), f"{emu.arm_url}/metadata/endpoints")
    assert p.returncode == 60, (p.returncode, p.stderr)  # curl: peer certificate cannot be authenticated


def test_arm_without_token(emu):
    p = run_curl(
        "-w", "\n%{http_code}", "--cacert", emu.ca_bundle, f"{emu.arm_url}{VM_PATH}?api-version=2026-04-01"
    )
    status, body = _split(p.stdout)
    assert status == 401
    assert json.loads(body)["error"]["code"] == "AuthenticationFailed"
