"""IMDS instance metadata, identity info and versions (docs/protocol.md#instance-metadata)."""

from __future__ import annotations

from typing import Any

import pytest
from support.world import RG, SUB, TENANT, VM, VM_ID, VM_RESOURCE_ID

from mi_helpers.constants import Imds

INSTANCE = Imds.INSTANCE_PATH
Q = {"api-version": Imds.INSTANCE_API_VERSION}

pytestmark = pytest.mark.timeout(30)


def _primitives(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _primitives(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _primitives(v, f"{path}[{i}]")]
    return [(path, node)]


def test_instance_metadata_describes_the_vm(imds):
    r = imds.get(INSTANCE, params=Q)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert {"compute", "network"} <= set(body)
    compute = body["compute"]
    assert compute["name"] == VM
    assert compute["subscriptionId"] == SUB
    assert compute["resourceGroupName"] == RG
    assert compute["vmId"] == VM_ID
    assert compute["location"] == "westeurope"
    assert compute["vmSize"] == "Standard_D2s_v5"
    assert compute["osType"] == "Linux"
    assert compute["resourceId"].lower() == VM_RESOURCE_ID.lower()
    assert compute["azEnvironment"].lower() == "azurepubliccloud"
    assert isinstance(body["network"]["interface"], list) and body["network"]["interface"]


def test_instance_metadata_primitives_are_strings(imds):
    body = imds.get(INSTANCE, params=Q).json()
    wrong = [(p, v) for p, v in _primitives(body) if not isinstance(v, str)]
    assert not wrong, wrong


def test_instance_metadata_needs_the_header(imds):
    r = imds.get(INSTANCE, params=Q, metadata=False)
    assert r.status_code == 400
    assert "error" in r.json()
    assert "metadata header" in r.text.lower()


def test_compute_category(imds):
    r = imds.get(INSTANCE + "/compute", params=Q)
    assert r.status_code == 200
    assert r.json()["vmId"] == VM_ID


def test_leaf_with_format_text_is_the_bare_value(imds):
    r = imds.get(INSTANCE + "/compute/vmId", params={**Q, "format": "text"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text == VM_ID


def test_leaf_name_with_format_text(imds):
    r = imds.get(INSTANCE + "/compute/name", params={**Q, "format": "text"})
    assert r.status_code == 200
    assert r.text == VM


def test_leaf_as_json_is_rejected(imds):
    r = imds.get(INSTANCE + "/compute/vmId", params={**Q, "format": "json"})
    assert r.status_code == 400


def test_instance_metadata_needs_api_version(imds):
    r = imds.get(INSTANCE)
    assert r.status_code == 400
    body = r.json()
    assert "api-version" in body["error"]
    assert isinstance(body.get("newest-versions"), list) and body["newest-versions"]


def test_unknown_element_is_404(imds):
    r = imds.get(INSTANCE + "/compute/doesNotExist", params={**Q, "format": "text"})
    assert r.status_code == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_instance_metadata_only_get(imds, method):
    assert imds.get(INSTANCE, params=Q, method=method).status_code == 405


def test_identity_info_gives_the_tenant(imds):
    r = imds.get("/metadata/identity/info", params={"api-version": "2018-02-01"})
    assert r.status_code == 200
    assert r.json() == {"tenantId": TENANT}


def test_versions_need_no_api_version(imds):
    r = imds.get("/metadata/versions")
    assert r.status_code == 200
    versions = r.json()["apiVersions"]
    assert "2018-02-01" in versions and "2021-02-01" in versions


def test_unknown_metadata_category_is_404(imds):
    r = imds.get("/metadata/nothing-here", params=Q)
    assert r.status_code == 404
