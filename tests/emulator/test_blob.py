"""Blob storage: the real ``BlobServiceClient``/``ContainerClient``/``BlobClient`` with
``ManagedIdentityCredential`` against the emulator, path-style as the SDK addresses ``127.0.0.1``.

Every failure of docs/protocol.md "Blob storage" is pinned with the SDK's exception, the status, the error
code and the text; the wire (x-ms-version, challenge, XML, ranges) is checked with plain requests.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.emulator import RawArm, RawImds, mi_credential, plain_session, wsgi_request
from support.world import HELLO_BLOB, STORAGE_ACCOUNT, STORAGE_SCOPE, SYS_PRINCIPAL, TENANT

from mi_helpers.constants import Arm, Storage
from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.blob import BlobLayer
from mi_helpers.emulator.endpoints import Endpoints

pytestmark = pytest.mark.timeout(60)

CHALLENGE = (
    f"Bearer authorization_uri=https://login.microsoftonline.com/{TENANT}/oauth2/authorize "
    "resource_id=https://storage.azure.com"
)
MISMATCH = "This request is not authorized to perform this operation using this permission."


def service(emu: Any, credential: Any = None) -> Any:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient(
        f"{emu.blob_url}/{STORAGE_ACCOUNT}", credential=credential or mi_credential(), retry_total=0
    )


class OneToken:
    """Hands out one pre-fetched token whatever scope is asked (code that reuses one token everywhere)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kw: Any) -> AccessToken:
        return AccessToken(self.token, 2**31)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo(self.token, 2**31)


# --- reading with the SDK ------------------------------------------------------------------------------


def test_the_sdk_lists_and_downloads(emu: Any) -> None:
    svc = service(emu)
    assert svc.account_name == STORAGE_ACCOUNT
    assert [c.name for c in svc.list_containers()] == ["data", "reports"]
    data = svc.get_container_client("data")
    assert [b.name for b in data.list_blobs()] == ["config/app.json", "hello.txt"]
    assert [b.name for b in data.walk_blobs()] == ["config/", "hello.txt"]
    assert [b.name for b in data.list_blobs(name_starts_with="config/")] == ["config/app.json"]
    downloaded = data.download_blob("hello.txt")
    assert downloaded.readall().decode() == HELLO_BLOB
    assert downloaded.properties.content_settings.content_type == "text/plain"
    assert downloaded.properties.size == len(HELLO_BLOB.encode())
    props = data.get_blob_client("config/app.json").get_blob_properties()
    assert props.blob_type == "BlockBlob" and props.etag.startswith('"0x8D')
    assert data.get_container_properties().name == "data"
    assert json.loads(data.download_blob("config/app.json").readall())["feature"] == "managed-identity"


def test_a_ranged_download_is_206(emu: Any) -> None:
    blob = service(emu).get_blob_client("data", "hello.txt")
    assert blob.download_blob(offset=6, length=4).readall() == HELLO_BLOB.encode()[6:10]
    ranged = [e for e in emu.request_log() if e["listener"] == "blob" and e["status"] == 206]
    assert ranged, "the SDK asked for a range and got 206"


def test_missing_container_and_blob(emu: Any) -> None:
    svc = service(emu)
    with pytest.raises(ResourceNotFoundError) as info:
        svc.get_blob_client("nothing", "x").download_blob()
    assert info.value.status_code == 404 and info.value.error_code == "ContainerNotFound"
    assert str(info.value).startswith("The specified container does not exist.\nRequestId:")
    with pytest.raises(ResourceNotFoundError) as info:
        svc.get_blob_client("data", "nope.txt").download_blob()
    assert info.value.error_code == "BlobNotFound"
    assert str(info.value).startswith("The specified blob does not exist.\nRequestId:")
    with pytest.raises(ResourceNotFoundError) as info:
        list(svc.get_container_client("nothing").list_blobs())
    assert info.value.error_code == "ContainerNotFound"


def test_contributor_without_a_data_role_is_authorization_permission_mismatch(use_scenario: Any) -> None:
    emu = use_scenario("storage-data-role-missing")
    svc = service(emu)
    # containers/read is an action: Contributor (and Reader on the group) hold it
    assert [c.name for c in svc.list_containers()] == ["data", "reports"]
    for call in (
        lambda: svc.get_blob_client("data", "hello.txt").download_blob(),
        lambda: list(svc.get_container_client("data").list_blobs()),
        lambda: svc.get_blob_client("nothing", "x").download_blob(),  # refused before the lookup
    ):
        with pytest.raises(HttpResponseError) as info:
            call()
        err = info.value
        assert err.status_code == 403 and err.error_code == "AuthorizationPermissionMismatch"
        assert str(err).startswith(MISMATCH + "\nRequestId:")
        assert "ErrorCode:AuthorizationPermissionMismatch" in str(err)


def test_owner_of_the_account_alone_cannot_read_blob_data(emu: Any) -> None:
    emu.apply_fix("remove-role-assignment", principal_id=SYS_PRINCIPAL, role="Storage Blob Data Reader")
    emu.apply_fix("add-role-assignment", principal_id=SYS_PRINCIPAL, role="Owner", scope=STORAGE_SCOPE)
    with pytest.raises(HttpResponseError) as info:
        service(emu).get_blob_client("data", "hello.txt").download_blob()
    assert info.value.error_code == "AuthorizationPermissionMismatch"
    for role in ("Storage Blob Data Contributor", "Storage Blob Data Owner"):
        emu.apply_fix("add-role-assignment", principal_id=SYS_PRINCIPAL, role=role, scope=STORAGE_SCOPE)
        assert (
            service(emu).get_blob_client("data", "hello.txt").download_blob().readall() == HELLO_BLOB.encode()
        )
        emu.apply_fix("remove-role-assignment", principal_id=SYS_PRINCIPAL, role=role)


def test_a_container_scoped_role_reads_only_that_container(emu: Any) -> None:
    emu.apply_fix("remove-role-assignment", principal_id=SYS_PRINCIPAL, role="Storage Blob Data Reader")
    scope = f"{STORAGE_SCOPE}/blobServices/default/containers/reports"
    emu.apply_fix(
        "add-role-assignment", principal_id=SYS_PRINCIPAL, role="Storage Blob Data Reader", scope=scope
    )
    svc = service(emu)
    assert [b.name for b in svc.get_container_client("reports").list_blobs()] == ["2026/summary.csv"]
    with pytest.raises(HttpResponseError) as info:
        svc.get_blob_client("data", "hello.txt").download_blob()
    assert info.value.error_code == "AuthorizationPermissionMismatch"


def test_a_grant_after_storage_data_role_missing_is_seen_after_n_requests(use_scenario: Any) -> None:
    emu = use_scenario("storage-data-role-missing", n=2)
    blob = service(emu).get_blob_client("data", "hello.txt")
    emu.apply_fix(
        "add-role-assignment",
        principal_id=SYS_PRINCIPAL,
        role="Storage Blob Data Reader",
        scope=STORAGE_SCOPE,
    )
    for _ in range(2):
        with pytest.raises(HttpResponseError) as info:
            blob.download_blob()
        assert info.value.error_code == "AuthorizationPermissionMismatch"
    assert blob.download_blob().readall() == HELLO_BLOB.encode()


def test_data_role_propagating(use_scenario: Any) -> None:
    emu = use_scenario("data-role-propagating", n=1)
    blob = service(emu).get_blob_client("data", "hello.txt")
    with pytest.raises(HttpResponseError):
        blob.download_blob()
    assert blob.download_blob().readall() == HELLO_BLOB.encode()


def test_a_wrong_audience_token_is_invalid_authentication_info(emu: Any) -> None:
    """The SDK follows the 401's challenge once; a credential that returns the ARM token again fails."""
    arm_token = RawImds(emu.imds_url).access_token(Arm.RESOURCE)
    with pytest.raises(ClientAuthenticationError) as info:
        service(emu, OneToken(arm_token)).get_blob_client("data", "hello.txt").download_blob()
    err = info.value
    assert err.status_code == 401 and err.error_code == "InvalidAuthenticationInfo"
    assert "authenticationerrordetail:Audience validation failed. Audience did not match." in str(err)
    assert err.response.headers["WWW-Authenticate"] == CHALLENGE
    statuses = [e["status"] for e in emu.request_log() if e["listener"] == "blob"]
    assert statuses == [401, 401], "one retry after the challenge"


def test_the_sdk_heals_a_wrong_audience_through_the_challenge(emu: Any) -> None:
    """``audience=`` of ARM: 401 + challenge, then the SDK asks IMDS for Storage and succeeds, as on Azure."""
    from azure.storage.blob import BlobClient

    blob = BlobClient(
        f"{emu.blob_url}/{STORAGE_ACCOUNT}",
        "data",
        "hello.txt",
        credential=mi_credential(),
        audience="https://management.azure.com",
        retry_total=0,
    )
    assert blob.download_blob().readall() == HELLO_BLOB.encode()
    assert [e["status"] for e in emu.request_log() if e["listener"] == "blob"][:2] == [401, 206]


# --- the wire -----------------------------------------------------------------------------------------


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with plain_session() as s:
        yield s


def _errors(r: requests.Response) -> dict[str, str]:
    root = ET.fromstring(r.content)
    return {child.tag: child.text or "" for child in root}


def test_x_ms_version_and_authentication_on_the_wire(emu: Any, http: requests.Session) -> None:
    token = RawImds(emu.imds_url).access_token(Storage.RESOURCE)
    url = f"{emu.blob_url}/{STORAGE_ACCOUNT}/data/hello.txt"
    ok = http.get(
        url, headers={"Authorization": f"Bearer {token}", "x-ms-version": "2026-10-06"}, verify=emu.ca_bundle
    )
    assert ok.status_code == 200 and ok.text == HELLO_BLOB
    assert ok.headers["x-ms-version"] == "2026-10-06" and ok.headers["Server"].startswith(
        "Windows-Azure-Blob/1.0"
    )
    assert ok.headers["x-ms-blob-type"] == "BlockBlob" and ok.headers["Content-MD5"]
    none = http.get(url, headers={"Authorization": f"Bearer {token}"}, verify=emu.ca_bundle)
    assert none.status_code == 403 and none.headers["x-ms-error-code"] == "AuthenticationFailed"
    assert _errors(none)["AuthenticationErrorDetail"] == "Unversioned authenticated access is not allowed."
    old = http.get(
        url, headers={"Authorization": f"Bearer {token}", "x-ms-version": "2015-02-21"}, verify=emu.ca_bundle
    )
    assert old.status_code == 403
    assert (
        _errors(old)["AuthenticationErrorDetail"]
        == "Authentication scheme Bearer is not supported in this version."
    )
    bad = http.get(
        url, headers={"Authorization": f"Bearer {token}", "x-ms-version": "2099-01-01"}, verify=emu.ca_bundle
    )
    assert bad.status_code == 400 and _errors(bad)["Code"] == "InvalidHeaderValue"
    assert _errors(bad)["HeaderName"] == "x-ms-version"
    anonymous = http.get(url, headers={"x-ms-version": "2026-10-06"}, verify=emu.ca_bundle)
    assert (
        anonymous.status_code == 401 and anonymous.headers["x-ms-error-code"] == "NoAuthenticationInformation"
    )
    assert anonymous.headers["WWW-Authenticate"] == CHALLENGE
    arm = RawImds(emu.imds_url).access_token(Arm.RESOURCE)
    wrong = http.get(
        url, headers={"Authorization": f"Bearer {arm}", "x-ms-version": "2026-10-06"}, verify=emu.ca_bundle
    )
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == CHALLENGE
    assert _errors(wrong)["Code"] == "InvalidAuthenticationInfo"
    assert _errors(wrong)["Message"].startswith(
        "Server failed to authenticate the request. Please refer to the information in the www-authenticate "
        "header.\nRequestId:"
    )
    assert (
        _errors(wrong)["AuthenticationErrorDetail"] == "Audience validation failed. Audience did not match."
    )
    put = http.put(
        url,
        data=b"x",
        headers={"Authorization": f"Bearer {token}", "x-ms-version": "2026-10-06"},
        verify=emu.ca_bundle,
    )
    assert put.status_code == 405 and put.headers["x-ms-error-code"] == "UnsupportedHttpVerb"


def test_an_account_scoped_audience_is_accepted(emu: Any, http: requests.Session) -> None:
    token = RawImds(emu.imds_url).access_token(f"https://{STORAGE_ACCOUNT}.blob.core.windows.net")
    r = http.get(
        f"{emu.blob_url}/{STORAGE_ACCOUNT}/?comp=list",
        headers={"Authorization": f"Bearer {token}", "x-ms-version": "2026-10-06"},
        verify=emu.ca_bundle,
    )
    assert r.status_code == 200 and b"<Name>data</Name>" in r.content


def test_arm_names_the_blob_endpoint(emu: Any) -> None:
    token = RawImds(emu.imds_url).access_token()
    arm = RawArm(emu.arm_url, emu.ca_bundle)
    try:
        r = arm.get(STORAGE_SCOPE, token=token, api_version="2025-01-01")
    finally:
        arm.close()
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["kind"] == "StorageV2" and body["sku"] == {"name": "Standard_LRS", "tier": "Standard"}
    assert body["properties"]["primaryEndpoints"]["blob"] == f"{emu.blob_url}/{STORAGE_ACCOUNT}/"
    from azure.storage.blob import BlobServiceClient

    svc = BlobServiceClient(body["properties"]["primaryEndpoints"]["blob"], credential=mi_credential())
    assert svc.account_name == STORAGE_ACCOUNT and [c.name for c in svc.list_containers()] == [
        "data",
        "reports",
    ]


# --- nothing a client sends makes it answer 5xx ----------------------------------------------------


@pytest.fixture(scope="module")
def layer_and_token() -> tuple[BlobLayer, str]:
    backend = Backend("healthy")
    layer = BlobLayer(backend, lambda: Endpoints("", "", "", "", 0, ""))
    return layer, backend.issuer.issue(backend.world.select_identity(), Storage.RESOURCE).access_token


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(
        st.sampled_from([STORAGE_ACCOUNT, "data", "hello.txt", "config", "", "x", "$root"]), max_size=4
    ),
    method=st.sampled_from(["GET", "HEAD", "PUT", "DELETE"]),
    query=st.dictionaries(
        st.sampled_from(["comp", "restype", "prefix", "delimiter", "maxresults", "marker"]),
        st.one_of(st.sampled_from(["list", "container", "service", "0", "2", "/"]), st.text(max_size=12)),
        max_size=4,
    ),
    version=st.sampled_from(["2026-10-06", "2015-02-21", None, "garbage"]),
    rng=st.sampled_from([None, "bytes=0-3", "bytes=100-", "bytes=5-2", "lines=1", "bytes=0-"]),
    auth=st.sampled_from(["token", "none", "garbage", "SharedKey a:b"]),
)
def test_any_request_gets_an_answer_below_500(
    layer_and_token: tuple[BlobLayer, str],
    parts: list[str],
    method: str,
    query: dict[str, str],
    version: str | None,
    rng: str | None,
    auth: str,
) -> None:
    layer, token = layer_and_token
    headers = {"token": f"Bearer {token}", "garbage": "Bearer a.b.c", "none": None}.get(auth, auth)
    h = {k: v for k, v in {"Authorization": headers, "x-ms-version": version, "x-ms-range": rng}.items() if v}
    r = layer.handle(wsgi_request("/" + "/".join(parts), method=method, headers=h, query=query))
    assert r.status_code < 500
