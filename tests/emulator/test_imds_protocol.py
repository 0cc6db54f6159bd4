"""IMDS token endpoint on the wire (docs/protocol.md#imds-token-endpoint, #access-tokens): raw HTTP requests,
exact statuses and bodies."""

from __future__ import annotations

import time

import jwt
import pytest
from support.emulator import (
    ARM_RESOURCE,
    IDENTITY_NOT_FOUND_BODY,
    TOKEN_PATH,
    TOKEN_QUERY,
    RawImds,
    unverified_claims,
    verify_token,
)
from support.world import (
    SYS_CLIENT,
    SYS_PRINCIPAL,
    TENANT,
    UAMI_DEPLOY_CLIENT,
    UAMI_READER,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    VM_RESOURCE_ID,
    uami_resource_id,
)

MISSING_HEADER_BODY = (
    b'{"error":"invalid_request","error_description":"Required metadata header not specified"}'
)
SUCCESS_FIELDS = {
    "access_token",
    "expires_in",
    "expires_on",
    "ext_expires_in",
    "not_before",
    "resource",
    "token_type",
    "client_id",
}

pytestmark = pytest.mark.timeout(30)


# --- the Metadata header comes before everything ----------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        TOKEN_QUERY,
        {},  # no api-version, no resource: the header is still the first complaint
        {"api-version": "2018-02-01", "resource": ARM_RESOURCE, "client_id": "x", "object_id": "y"},
    ],
    ids=["complete", "empty-query", "two-selectors"],
)
def test_missing_metadata_header_is_the_first_check(imds, params):
    r = imds.get(params=params, metadata=False, headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 400
    assert r.content == MISSING_HEADER_BODY
    assert r.headers["Content-Type"].startswith("application/json")
    assert "Retry-After" not in r.headers


@pytest.mark.parametrize("value", ["false", "yes", "1", "True", "TRUE", ""])
def test_metadata_header_must_be_lowercase_true(imds, value):
    r = imds.get(params=TOKEN_QUERY, metadata=False, headers={"Metadata": value})
    assert r.status_code == 400, r.text
    assert r.content == MISSING_HEADER_BODY


def test_x_forwarded_for_is_rejected(imds):
    r = imds.get(params=TOKEN_QUERY, headers={"X-Forwarded-For": "10.1.2.3"})
    assert r.status_code == 400
    assert b"access_token" not in r.content
    assert "Retry-After" not in r.headers


def test_x_forwarded_for_is_checked_before_the_identity(imds):
    params = dict(TOKEN_QUERY, client_id="00000000-0000-0000-0000-000000000000")
    r = imds.get(params=params, headers={"X-Forwarded-For": "10.1.2.3"})
    assert r.status_code == 400
    assert r.content != IDENTITY_NOT_FOUND_BODY


# --- success body ------------------------------------------------------------------------------------


def test_success_body_fields_are_all_strings(imds, emu):
    before = int(time.time())
    r = imds.token(ARM_RESOURCE)
    after = int(time.time())
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert SUCCESS_FIELDS <= set(body), sorted(body)
    assert all(isinstance(v, str) for v in body.values()), {k: type(v).__name__ for k, v in body.items()}
    assert body["token_type"] == "Bearer"
    assert body["resource"] == ARM_RESOURCE
    # client_id is present even for the system-assigned identity, and equals the token's appid
    assert body["client_id"] == SYS_CLIENT
    expires_in = int(body["expires_in"])
    assert 300 < expires_in <= 86400
    assert before + expires_in - 2 <= int(body["expires_on"]) <= after + expires_in + 2
    claims = unverified_claims(body["access_token"])
    assert int(body["expires_on"]) == claims["exp"]
    assert int(body["not_before"]) == claims["nbf"]
    assert claims["appid"] == body["client_id"]


def test_first_token_is_about_a_day_and_comes_from_the_cache_again(imds):
    """Same identity + resource: IMDS serves its cached token, expires_on stays (the count-down of
    ``expires_in`` as time passes is checked on a manual clock in test_imds.py)."""
    first = imds.token("https://storage.azure.com/").json()
    assert 86000 <= int(first["expires_in"]) <= 86400
    second = imds.token("https://storage.azure.com/").json()
    assert second["access_token"] == first["access_token"]
    assert second["expires_on"] == first["expires_on"]
    assert int(second["expires_in"]) <= int(first["expires_in"])


@pytest.mark.parametrize(
    "resource",
    ["https://management.azure.com", "https://management.azure.com/", "https://vault.azure.net"],
)
def test_resource_kept_exactly_as_sent(imds, resource):
    r = imds.token(resource)
    assert r.status_code == 200
    assert r.json()["resource"] == resource
    assert unverified_claims(r.json()["access_token"])["aud"] == resource


def test_jwt_claims_and_signature(imds, emu):
    body = imds.token(ARM_RESOURCE).json()
    claims = verify_token(emu, body["access_token"], audience=ARM_RESOURCE)
    assert claims["aud"] == ARM_RESOURCE
    assert claims["iss"] == f"https://sts.windows.net/{TENANT}/"
    assert claims["tid"] == TENANT
    assert claims["oid"] == claims["sub"] == SYS_PRINCIPAL
    assert claims["appid"] == SYS_CLIENT
    assert claims["appidacr"] == "2"
    assert claims["idtyp"] == "app"
    assert claims["ver"] == "1.0"
    assert claims["uti"]
    assert claims["xms_mirid"].lower() == VM_RESOURCE_ID.lower()
    assert "/resourcegroups/" in claims["xms_mirid"]  # lower-case, as in real MI tokens
    assert claims["idp"] == claims["iss"]
    header = jwt.get_unverified_header(body["access_token"])
    assert header["kid"] == header["x5t"]
    for name in ("iat", "nbf", "exp"):
        assert isinstance(claims[name], int), name
    assert 84600 <= claims["exp"] - claims["iat"] <= 88200  # about 24 h, as real MI tokens


def test_user_assigned_token_claims(imds, emu):
    body = imds.token(ARM_RESOURCE, client_id=UAMI_READER_CLIENT).json()
    claims = verify_token(emu, body["access_token"], audience=ARM_RESOURCE)
    assert claims["oid"] == claims["sub"] == UAMI_READER_PRINCIPAL
    assert claims["appid"] == UAMI_READER_CLIENT == body["client_id"]
    assert claims["xms_mirid"].lower() == uami_resource_id(UAMI_READER).lower()
    assert "/resourcegroups/" in claims["xms_mirid"]  # the token form uses lower-case resourcegroups


# --- selectors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "selector",
    [
        {"client_id": UAMI_READER_CLIENT},
        {"client_id": UAMI_READER_CLIENT.upper()},
        {"object_id": UAMI_READER_PRINCIPAL},
        {"object_id": UAMI_READER_PRINCIPAL.upper()},
        {"msi_res_id": uami_resource_id(UAMI_READER)},
        {"msi_res_id": uami_resource_id(UAMI_READER).upper()},
        {"msi_res_id": uami_resource_id(UAMI_READER).replace("resourceGroups", "resourcegroups")},
        {"mi_res_id": uami_resource_id(UAMI_READER)},
    ],
    ids=[
        "client_id",
        "CLIENT_ID",
        "object_id",
        "OBJECT_ID",
        "msi_res_id",
        "MSI_RES_ID",
        "rg-case",
        "mi_res_id",
    ],
)
def test_selectors_are_case_insensitive(imds, selector):
    r = imds.token(ARM_RESOURCE, **selector)
    assert r.status_code == 200, r.text
    assert unverified_claims(r.json()["access_token"])["oid"] == UAMI_READER_PRINCIPAL


@pytest.mark.parametrize(
    "selector",
    [
        {"client_id": UAMI_DEPLOY_CLIENT},  # exists in the subscription, not attached to this VM
        {"client_id": "00000000-0000-0000-0000-000000000000"},
        {"object_id": "11111111-2222-3333-4444-555555555555"},
        {"msi_res_id": uami_resource_id("uami-nope")},
        {"client_id": UAMI_READER_PRINCIPAL},  # a principal ID passed as client_id: a classic mistake
    ],
    ids=["unattached", "unknown-client", "unknown-object", "unknown-resource", "principal-as-client"],
)
def test_unknown_identity_is_identity_not_found(imds, selector):
    r = imds.token(ARM_RESOURCE, **selector)
    assert r.status_code == 400
    assert r.content == IDENTITY_NOT_FOUND_BODY
    assert len(r.content) == 68
    assert "Retry-After" not in r.headers


@pytest.mark.parametrize(
    "selectors",
    [
        {"client_id": UAMI_READER_CLIENT, "object_id": UAMI_READER_PRINCIPAL},
        {"client_id": UAMI_READER_CLIENT, "msi_res_id": uami_resource_id(UAMI_READER)},
        {"object_id": UAMI_READER_PRINCIPAL, "mi_res_id": uami_resource_id(UAMI_READER)},
    ],
    ids=["client+object", "client+msi_res_id", "object+mi_res_id"],
)
def test_two_selectors_are_rejected(imds, selectors):
    r = imds.token(ARM_RESOURCE, **selectors)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert b"access_token" not in r.content


# --- malformed requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        [("api-version", "2018-02-01"), ("api-version", "2018-02-01"), ("resource", ARM_RESOURCE)],
        [("api-version", "2018-02-01"), ("resource", ARM_RESOURCE), ("resource", ARM_RESOURCE)],
        [("api-version", "2018-02-01"), ("resource", ARM_RESOURCE), ("client_id", UAMI_READER_CLIENT)] * 2,
    ],
    ids=["api-version", "resource", "client_id"],
)
def test_duplicate_query_parameters_are_rejected(imds, query):
    r = imds.get(params=query)
    assert r.status_code == 400
    assert b"access_token" not in r.content


@pytest.mark.parametrize("version", [None, "banana", ""])
def test_api_version_missing_or_invalid(imds, version):
    params = {"resource": ARM_RESOURCE}
    if version is not None:
        params["api-version"] = version
    r = imds.get(params=params)
    assert r.status_code == 400
    assert "api-version" in r.json()["error"]


def test_resource_missing(imds):
    r = imds.get(params={"api-version": "2018-02-01"})
    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_request",
        "error_description": "Required query variable 'resource' is missing",
    }


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get_is_allowed(imds, method):
    r = imds.get(params=TOKEN_QUERY, method=method)
    assert r.status_code == 405


def test_token_path_is_exact(imds):
    r = imds.get(TOKEN_PATH + "/extra", params=TOKEN_QUERY)
    assert r.status_code == 404
    assert b"access_token" not in r.content


def test_token_needs_api_version_2018_02_01_or_later(imds):
    r = imds.get(params={"api-version": "2017-12-01", "resource": ARM_RESOURCE})
    assert r.status_code == 400
    assert "api-version" in r.json()["error"]


@pytest.mark.parametrize(
    "extra",
    [{"bypass_cache": "true"}, {"authority": f"https://login.microsoftonline.com/{TENANT}"}],
    ids=["bypass_cache", "authority"],
)
def test_optional_swagger_parameters_are_accepted(imds, extra):
    r = imds.get(params={**TOKEN_QUERY, **extra})
    assert r.status_code == 200, r.text
    assert unverified_claims(r.json()["access_token"])["oid"] == SYS_PRINCIPAL


@pytest.mark.parametrize(
    ("selector", "value", "echo"),
    [
        ("object_id", UAMI_READER_PRINCIPAL, UAMI_READER_PRINCIPAL),
        ("msi_res_id", uami_resource_id(UAMI_READER), uami_resource_id(UAMI_READER)),
    ],
)
def test_selector_is_echoed_as_in_the_swagger(imds, selector, value, echo):
    body = imds.token(ARM_RESOURCE, **{selector: value}).json()
    assert body[selector].lower() == echo.lower()
    assert body["client_id"] == UAMI_READER_CLIENT


def test_short_token_lifetime_scenario_parameter(use_scenario):
    emu = use_scenario("healthy", token_lifetime=200)
    body = RawImds(emu.imds_url).token("https://management.core.windows.net/").json()
    assert 190 <= int(body["expires_in"]) <= 200
    claims = unverified_claims(body["access_token"])
    assert claims["exp"] - claims["iat"] == 200


def test_imds_response_headers(imds):
    for r in (imds.token(ARM_RESOURCE), imds.get(params=TOKEN_QUERY, metadata=False)):
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
        assert r.headers["Server"].startswith("IMDS/")


def test_delegated_scope_as_resource_is_invalid_resource(imds):
    """A managed identity cannot ask for a delegated scope of a custom API (docs/protocol.md#failure-modes).

    Entra answers AADSTS500011 ("The resource principal named api://<id>/my-scope was not found"), which IMDS
    relays as 400 ``invalid_resource`` (docs/protocol.md#errors) -- even though the API itself (the default
    world's ``mi-tutorial-api``) gets tokens.
    """
    api = "api://0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
    assert imds.token(api).status_code == 200
    r = imds.token(api + "/my-scope")
    assert r.status_code == 400, r.text[:120]
    body = r.json()
    assert body["error"] == "invalid_resource"
    assert body["error_description"].startswith(f"AADSTS500011: The resource principal named {api}/my-scope ")
    assert "access_token" not in body


def test_non_uri_resource_is_invalid_resource(imds):
    r = imds.token("banana")
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "invalid_resource"
    assert body["error_description"].startswith("AADSTS500011: The resource principal named banana ")
    assert "found in the tenant named Emulated Tenant." in body["error_description"]
