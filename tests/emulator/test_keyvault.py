"""Key Vault secrets: the real ``SecretClient`` with ``ManagedIdentityCredential`` against the emulator.

Every failure of docs/protocol.md "Key Vault" is pinned with the SDK's exception, the status, the code and
the text; the wire (challenge, headers, bodies, paging) is checked with plain requests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.emulator import RawArm, RawImds, mi_credential, plain_session, wsgi_request
from support.world import (
    KEY_VAULT,
    KEY_VAULT_SCOPE,
    OPERATOR_PRINCIPAL,
    SECRET_VALUES,
    SYS_CLIENT,
    SYS_PRINCIPAL,
    TENANT,
)

from mi_helpers.constants import Arm, KeyVault
from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.endpoints import Endpoints
from mi_helpers.emulator.keyvault import KeyVaultLayer

pytestmark = pytest.mark.timeout(60)

CHALLENGE = f'Bearer authorization="https://login.windows.net/{TENANT}", resource="https://vault.azure.net"'
CALLER = f"appid={SYS_CLIENT};oid={SYS_PRINCIPAL};iss=https://sts.windows.net/{TENANT}/"


def secret_client(emu: Any, credential: Any = None) -> Any:
    """``SecretClient`` as the helpers build it for the emulator: the one documented adjustment is
    ``verify_challenge_resource=False`` (a vault URL on 127.0.0.1 cannot end in .vault.azure.net)."""
    from azure.keyvault.secrets import SecretClient

    return SecretClient(
        emu.keyvault_url, credential or mi_credential(), verify_challenge_resource=False, retry_total=0
    )


class OneToken:
    """A credential that hands out one pre-fetched token whatever scope is asked (code that reuses the ARM
    token for every service): the real SDK then sends Key Vault a token for the wrong audience."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kw: Any) -> AccessToken:
        return AccessToken(self.token, 2**31)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self.token, 2**31)


# --- reading with the SDK --------------------------------------------------------------------------


def test_the_sdk_reads_the_current_secret_and_a_version(emu: Any) -> None:
    client = secret_client(emu)
    current = client.get_secret("db-password")
    assert current.value == SECRET_VALUES["db-password"][-1]
    assert current.name == "db-password" and len(current.properties.version) == 32
    assert current.properties.content_type == "text/plain" and current.properties.enabled is True
    assert current.properties.vault_url == emu.keyvault_url
    versions = [p.version for p in client.list_properties_of_secret_versions("db-password")]
    assert len(versions) == 2 and current.properties.version == versions[-1]
    first = client.get_secret("db-password", versions[0])
    assert first.value == SECRET_VALUES["db-password"][0]
    assert sorted(p.name for p in client.list_properties_of_secrets()) == sorted(SECRET_VALUES)
    # names are case-insensitive, as in Key Vault
    assert client.get_secret("DB-PASSWORD").value == current.value


def test_the_challenge_flow_as_the_sdk_runs_it(emu: Any) -> None:
    from azure.keyvault.secrets._shared import http_challenge_cache

    http_challenge_cache.clear()  # the SDK caches a host's challenge per process: start as a new program
    secret_client(emu).get_secret("api-key")
    log = [(e["listener"], e["status"]) for e in emu.request_log() if e["listener"] in ("imds", "keyvault")]
    assert log == [("keyvault", 401), ("imds", 200), ("keyvault", 200)]
    token_request = next(e for e in emu.request_log() if e["listener"] == "imds")
    assert token_request["query"].endswith("resource=https://vault.azure.net")


def test_without_the_adjustment_the_sdk_refuses_a_127_vault_url(emu: Any) -> None:
    from azure.keyvault.secrets import SecretClient

    client = SecretClient(emu.keyvault_url, mi_credential(), retry_total=0)
    with pytest.raises(ValueError, match="does not match the requested domain") as info:
        client.get_secret("api-key")
    assert "verify_challenge_resource=False" in str(info.value)
    assert not [e for e in emu.request_log() if e["listener"] == "imds"], "no token was requested"


def test_unknown_secret_is_secret_not_found(emu: Any) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        secret_client(emu).get_secret("no-such-secret")
    err = info.value
    assert err.status_code == 404 and err.error is not None and err.error.code == "SecretNotFound"
    assert err.error.message == (
        "A secret with (name/id) no-such-secret was not found in this key vault. If you recently deleted "
        "this secret you may be able to recover it using the correct recovery command. For help resolving "
        "this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
    )
    with pytest.raises(ResourceNotFoundError):
        secret_client(emu).get_secret("api-key", "0" * 32)


def test_rbac_vault_without_a_data_role_is_forbidden_by_rbac(use_scenario: Any) -> None:
    emu = use_scenario("kv-rbac-missing")
    with pytest.raises(HttpResponseError) as info:
        secret_client(emu).get_secret("db-password")
    err = info.value
    assert err.status_code == 403 and err.error is not None and err.error.code == "Forbidden"
    body = err.response.json()["error"]
    assert body["innererror"] == {"code": "ForbiddenByRbac"}
    scope = f"{KEY_VAULT_SCOPE}/secrets/db-password".lower()
    assert body["message"] == (
        "Caller is not authorized to perform action on resource.\r\n"
        "If role assignments, deny assignments or role definitions were changed recently, please observe "
        "propagation time.\r\n"
        f"Caller: {CALLER}\r\n"
        "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\n"
        f"Resource: '{scope}'\r\n"
        "Assignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\n"
        f"Vault: {KEY_VAULT};location=westeurope\r\n"
    )
    with pytest.raises(HttpResponseError) as listing:
        list(secret_client(emu).list_properties_of_secrets())
    assert "Action: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action'" in str(listing.value)


def test_owner_alone_cannot_read_a_secret_in_an_rbac_vault(emu: Any) -> None:
    """The operator is Owner of the subscription (actions *, no dataActions): RBAC mode refuses it."""
    emu.apply_fix("remove-role-assignment", principal_id=SYS_PRINCIPAL, role="Key Vault Secrets User")
    with pytest.raises(HttpResponseError) as info:
        secret_client(emu).get_secret("db-password")
    assert info.value.status_code == 403
    emu.apply_fix("add-role-assignment", principal_id=SYS_PRINCIPAL, role="Owner", scope=KEY_VAULT_SCOPE)
    with pytest.raises(HttpResponseError):
        secret_client(emu).get_secret("db-password")
    for role in ("Key Vault Secrets Officer", "Key Vault Administrator"):
        emu.apply_fix("add-role-assignment", principal_id=SYS_PRINCIPAL, role=role, scope=KEY_VAULT_SCOPE)
        assert secret_client(emu).get_secret("db-password").value == SECRET_VALUES["db-password"][-1]
        emu.apply_fix("remove-role-assignment", principal_id=SYS_PRINCIPAL, role=role)


def test_key_vault_reader_lists_but_cannot_read_values(emu: Any) -> None:
    emu.apply_fix("remove-role-assignment", principal_id=SYS_PRINCIPAL, role="Key Vault Secrets User")
    emu.apply_fix(
        "add-role-assignment", principal_id=SYS_PRINCIPAL, role="Key Vault Reader", scope=KEY_VAULT_SCOPE
    )
    client = secret_client(emu)
    assert sorted(p.name for p in client.list_properties_of_secrets()) == sorted(SECRET_VALUES)
    with pytest.raises(HttpResponseError) as info:
        client.get_secret("api-key")
    assert info.value.status_code == 403


def test_access_policy_vault_without_a_policy_does_not_have_secrets_get_permission(use_scenario: Any) -> None:
    emu = use_scenario("kv-access-policy-missing")
    with pytest.raises(HttpResponseError) as info:
        secret_client(emu).get_secret("db-password")
    err = info.value
    assert err.status_code == 403 and err.error is not None and err.error.code == "Forbidden"
    body = err.response.json()["error"]
    assert body["innererror"] == {"code": "AccessDenied"}
    assert body["message"] == (
        f"The user, group or application '{CALLER}' does not have secrets get permission on key vault "
        f"'{KEY_VAULT};location=westeurope'. For help resolving this issue, please see "
        "https://go.microsoft.com/fwlink/?linkid=2125287"
    )
    # role assignments do not count in access-policy mode: the Secrets User role is still assigned
    roles = [a["role"] for a in emu.world_dict()["role_assignments"] if a["principal_id"] == SYS_PRINCIPAL]
    assert "Key Vault Secrets User" in roles
    with pytest.raises(HttpResponseError) as listing:
        list(secret_client(emu).list_properties_of_secrets())
    assert "does not have secrets list permission" in str(listing.value)


def test_the_operator_s_access_policy_lets_it_read(use_scenario: Any) -> None:
    """In access-policy mode the policy decides: the operator's policy (get, list) lets its token read."""
    emu = use_scenario("kv-access-policy-missing")
    token = emu.issuer.issue_app_token(
        app_id=emu.endpoints().operator_client_id, object_id=OPERATOR_PRINCIPAL, audience=KeyVault.RESOURCE
    ).access_token
    assert secret_client(emu, OneToken(token)).get_secret("api-key").value == SECRET_VALUES["api-key"][0]


def test_a_freshly_granted_role_propagates_after_n_requests(use_scenario: Any) -> None:
    emu = use_scenario("data-role-propagating", n=2)
    client = secret_client(emu)
    for _ in range(2):
        with pytest.raises(HttpResponseError) as info:
            client.get_secret("api-key")
        assert "ForbiddenByRbac" in str(info.value.response.json())
    assert client.get_secret("api-key").value == SECRET_VALUES["api-key"][0]


def test_a_grant_after_kv_rbac_missing_is_seen_after_n_requests(use_scenario: Any) -> None:
    emu = use_scenario("kv-rbac-missing", n=1)
    client = secret_client(emu)
    with pytest.raises(HttpResponseError):
        client.get_secret("api-key")
    emu.apply_fix(
        "add-role-assignment",
        principal_id=SYS_PRINCIPAL,
        role="Key Vault Secrets User",
        scope=KEY_VAULT_SCOPE,
    )
    with pytest.raises(HttpResponseError):
        client.get_secret("api-key")  # still propagating
    assert client.get_secret("api-key").value == SECRET_VALUES["api-key"][0]


def test_wrong_audience_is_akv10022(emu: Any) -> None:
    arm_token = RawImds(emu.imds_url).access_token(Arm.RESOURCE)  # aud https://management.azure.com/
    with pytest.raises(ClientAuthenticationError) as info:
        secret_client(emu, OneToken(arm_token)).get_secret("api-key")
    err = info.value
    assert err.status_code == 401 and err.error is not None and err.error.code == "Unauthorized"
    assert err.error.message == (
        "AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://management.azure.com/."
    )
    assert err.response.headers["WWW-Authenticate"] == CHALLENGE


# --- the wire ----------------------------------------------------------------------------------------


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with plain_session() as s:
        yield s


def test_an_unauthenticated_request_gets_akv10000_and_the_challenge(emu: Any, http: requests.Session) -> None:
    r = http.get(f"{emu.keyvault_url}/secrets/api-key/", params={"api-version": "7.4"}, verify=emu.ca_bundle)
    assert r.status_code == 401
    assert r.json() == {
        "error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}
    }
    assert r.headers["WWW-Authenticate"] == CHALLENGE
    for name in ("x-ms-request-id", "x-ms-keyvault-region", "x-ms-keyvault-service-version"):
        assert r.headers[name]
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"


def test_bodies_and_paging_on_the_wire(emu: Any, http: requests.Session) -> None:
    token = RawImds(emu.imds_url).access_token(KeyVault.RESOURCE)
    auth = {"Authorization": f"Bearer {token}"}
    base = emu.keyvault_url
    got = http.get(
        f"{base}/secrets/db-password", params={"api-version": "7.4"}, headers=auth, verify=emu.ca_bundle
    )
    body = got.json()
    assert list(body) == ["value", "contentType", "id", "attributes", "tags"]
    assert body["id"].startswith(f"{base}/secrets/db-password/")
    assert body["attributes"]["recoveryLevel"] == "Recoverable+Purgeable"
    page = http.get(
        f"{base}/secrets",
        params={"api-version": "2026-04-01", "maxresults": "1"},
        headers=auth,
        verify=emu.ca_bundle,
    ).json()
    assert len(page["value"]) == 1 and "value" not in page["value"][0] and page["nextLink"]
    rest = http.get(page["nextLink"], headers=auth, verify=emu.ca_bundle).json()
    assert len(rest["value"]) == 1 and rest["nextLink"] is None
    bad = http.get(f"{base}/secrets", params={"api-version": "1.0"}, headers=auth, verify=emu.ca_bundle)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadParameter"
    put = http.put(
        f"{base}/secrets/x", params={"api-version": "7.4"}, headers=auth, json={}, verify=emu.ca_bundle
    )
    assert put.status_code == 405


def test_arm_names_the_vault_uri_and_mode(emu: Any) -> None:
    token = RawImds(emu.imds_url).access_token()
    arm = RawArm(emu.arm_url, emu.ca_bundle)
    try:
        r = arm.get(KEY_VAULT_SCOPE, token=token, api_version="2026-02-01")
    finally:
        arm.close()
    assert r.status_code == 200, r.text[:300]
    props = r.json()["properties"]
    assert props["vaultUri"] == emu.keyvault_url + "/"
    assert props["enableRbacAuthorization"] is True and props["tenantId"] == TENANT
    assert props["accessPolicies"][0]["objectId"] == OPERATOR_PRINCIPAL


def test_the_secret_value_never_reaches_the_request_log(emu: Any) -> None:
    secret_client(emu).get_secret("db-password")
    log = json.dumps(emu.request_log())
    assert all(v not in log for values in SECRET_VALUES.values() for v in values)


# --- nothing a client sends makes it answer 5xx ----------------------------------------------------


@pytest.fixture(scope="module")
def layer_and_token() -> tuple[KeyVaultLayer, str]:
    backend = Backend("healthy")
    layer = KeyVaultLayer(backend, lambda: Endpoints("", "", "", "", 0, ""))
    principal = backend.world.select_identity()
    return layer, backend.issuer.issue(principal, KeyVault.RESOURCE).access_token


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(
        st.sampled_from(["secrets", "api-key", "db-password", "versions", "", "x" * 40, "%00"]), max_size=4
    ),
    method=st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "POST"]),
    query=st.dictionaries(
        st.sampled_from(["api-version", "maxresults", "$skiptoken", "x"]),
        st.one_of(st.sampled_from(["7.4", "2026-04-01", "0", "26", "-1"]), st.text(max_size=20)),
        max_size=3,
    ),
    auth=st.sampled_from(["token", "none", "garbage"]),
)
def test_any_request_gets_an_answer_below_500(
    layer_and_token: tuple[KeyVaultLayer, str],
    parts: list[str],
    method: str,
    query: dict[str, str],
    auth: str,
) -> None:
    layer, token = layer_and_token
    headers = {
        "token": {"Authorization": f"Bearer {token}"},
        "none": {},
        "garbage": {"Authorization": "Bearer x.y.z"},
    }
    r = layer.handle(wsgi_request("/" + "/".join(parts), method=method, headers=headers[auth], query=query))
    assert r.status_code < 500
