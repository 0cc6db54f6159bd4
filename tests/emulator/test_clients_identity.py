"""Real token clients against the healthy emulator: azure-identity (sync, async, DAC) and msal
(docs/protocol.md#azure-identity, #msal)."""

from __future__ import annotations

import asyncio
import json
import os
import time

import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError, DefaultAzureCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from support.emulator import (
    ARM_RESOURCE,
    ARM_SCOPE,
    MI_NO_RESPONSE,
    mi_credential,
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
    uami_resource_id,
)

pytestmark = pytest.mark.timeout(30)

NOT_FOUND_SYNC = MI_NO_RESPONSE + " Token request error: (invalid_request) Identity not found"
NOT_FOUND_ASYNC = (
    "ManagedIdentityCredential authentication unavailable. The requested identity has not been assigned to "
    "this resource. Error: Unexpected response \"{'error': 'invalid_request', 'error_description': "
    "'Identity not found'}\""
)


def _token_queries(emu):
    """Query strings of the token requests in the emulator's log (as JSON text, for loose matching)."""
    return json.dumps([e for e in emu.request_log() if "oauth2/token" in json.dumps(e)])


# --- sync ManagedIdentityCredential (MSAL underneath) -------------------------------------------------


def test_sync_system_assigned(emu):
    before = int(time.time())
    token = mi_credential().get_token(ARM_SCOPE)
    claims = verify_token(emu, token.token, audience="https://management.azure.com")
    assert claims["oid"] == SYS_PRINCIPAL
    assert claims["appid"] == SYS_CLIENT
    assert claims["tid"] == TENANT
    assert before + 86000 <= token.expires_on <= int(time.time()) + 86400


@pytest.mark.parametrize(
    ("kwargs", "wire"),
    [
        ({"client_id": UAMI_READER_CLIENT}, "client_id"),
        ({"identity_config": {"object_id": UAMI_READER_PRINCIPAL}}, "object_id"),
        ({"identity_config": {"resource_id": uami_resource_id(UAMI_READER)}}, "msi_res_id"),
    ],
    ids=["client_id", "object_id", "resource_id"],
)
def test_sync_user_assigned(emu, kwargs, wire):
    token = mi_credential(**kwargs).get_token(ARM_SCOPE)
    claims = unverified_claims(token.token)
    assert claims["oid"] == UAMI_READER_PRINCIPAL
    assert claims["appid"] == UAMI_READER_CLIENT
    assert wire in _token_queries(emu)


def test_sync_credential_caches(emu):
    cred = mi_credential()
    first = cred.get_token(ARM_SCOPE)
    emu.clear_log()
    second = cred.get_token(ARM_SCOPE)
    assert second.token == first.token
    assert "oauth2/token" not in json.dumps(emu.request_log())


def test_sync_identity_not_found_message(emu):
    with pytest.raises(CredentialUnavailableError) as info:
        mi_credential(client_id=UAMI_DEPLOY_CLIENT).get_token(ARM_SCOPE)
    assert info.value.message == NOT_FOUND_SYNC


def test_sync_one_scope_only(emu):
    with pytest.raises(ValueError, match="exactly one scope"):
        mi_credential().get_token(ARM_SCOPE, "https://vault.azure.net/.default")


# --- async ManagedIdentityCredential (azure-identity's own client, aiohttp) ----------------------------


def _async_token(**kwargs):
    async def go():
        kwargs.setdefault("retry_total", 0)
        async with AsyncManagedIdentityCredential(**kwargs) as cred:
            return await cred.get_token(ARM_SCOPE)

    return asyncio.run(go())


def test_async_system_assigned(emu):
    token = _async_token()
    claims = verify_token(emu, token.token, audience="https://management.azure.com")
    assert claims["oid"] == SYS_PRINCIPAL


@pytest.mark.parametrize(
    "kwargs",
    [
        {"client_id": UAMI_READER_CLIENT},
        {"identity_config": {"object_id": UAMI_READER_PRINCIPAL}},
        {"identity_config": {"resource_id": uami_resource_id(UAMI_READER)}},
    ],
    ids=["client_id", "object_id", "resource_id"],
)
def test_async_user_assigned(emu, kwargs):
    assert unverified_claims(_async_token(**kwargs).token)["oid"] == UAMI_READER_PRINCIPAL


def test_async_identity_not_found_message(emu):
    with pytest.raises(CredentialUnavailableError) as info:
        _async_token(client_id=UAMI_DEPLOY_CLIENT)
    assert info.value.message == NOT_FOUND_ASYNC


# --- DefaultAzureCredential (AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential: no probe, MI only) ----


def test_dac_system_assigned(emu):
    token = DefaultAzureCredential(retry_total=0).get_token(ARM_SCOPE)
    assert unverified_claims(token.token)["oid"] == SYS_PRINCIPAL


def test_dac_managed_identity_client_id(emu):
    token = DefaultAzureCredential(managed_identity_client_id=UAMI_READER_CLIENT, retry_total=0).get_token(
        ARM_SCOPE
    )
    assert unverified_claims(token.token)["oid"] == UAMI_READER_PRINCIPAL


def test_dac_failure_lists_the_managed_identity_line(emu):
    cred = DefaultAzureCredential(managed_identity_client_id=UAMI_DEPLOY_CLIENT, retry_total=0)
    with pytest.raises(ClientAuthenticationError) as info:
        cred.get_token(ARM_SCOPE)
    assert type(info.value) is ClientAuthenticationError
    message = info.value.message
    assert message.startswith(
        "DefaultAzureCredential failed to retrieve a token from the included credentials."
    )
    assert "\n\tManagedIdentityCredential: " + NOT_FOUND_SYNC + "\n" in message


# --- msal standalone (what the az CLI does) -----------------------------------------------------------


def _msal(identity):
    return msal.ManagedIdentityClient(identity, http_client=requests.Session())


def test_msal_system_assigned(emu):
    client = _msal(msal.SystemAssignedManagedIdentity())
    result = client.acquire_token_for_client(resource=ARM_RESOURCE)
    assert "error" not in result, result.get("error_description")
    assert result["token_type"] == "Bearer"
    assert result["token_source"] == "identity_provider"
    assert isinstance(result["expires_in"], int) and 86000 <= result["expires_in"] <= 86400
    assert unverified_claims(result["access_token"])["oid"] == SYS_PRINCIPAL
    again = client.acquire_token_for_client(resource=ARM_RESOURCE)
    assert again["token_source"] == "cache"
    assert again["access_token"] == result["access_token"]


def test_msal_cli_resource(emu):
    result = _msal(msal.SystemAssignedManagedIdentity()).acquire_token_for_client(
        resource="https://management.core.windows.net/"
    )
    claims = unverified_claims(result["access_token"])
    assert claims["aud"] == "https://management.core.windows.net/"
    assert claims["tid"] == TENANT  # the az CLI reads tid from the unverified token


@pytest.mark.parametrize(
    "identity",
    [
        msal.UserAssignedManagedIdentity(client_id=UAMI_READER_CLIENT),
        msal.UserAssignedManagedIdentity(object_id=UAMI_READER_PRINCIPAL),
        msal.UserAssignedManagedIdentity(resource_id=uami_resource_id(UAMI_READER)),
    ],
    ids=["client_id", "object_id", "resource_id"],
)
def test_msal_user_assigned(emu, identity):
    result = _msal(identity).acquire_token_for_client(resource=ARM_RESOURCE)
    assert unverified_claims(result["access_token"])["oid"] == UAMI_READER_PRINCIPAL


def test_msal_error_dict(emu):
    result = _msal(msal.UserAssignedManagedIdentity(client_id=UAMI_DEPLOY_CLIENT)).acquire_token_for_client(
        resource=ARM_RESOURCE
    )
    assert "access_token" not in result
    assert result["error"] == "invalid_request"
    assert result["error_description"] == "Identity not found"


# --- the DefaultAzureCredential / ChainedTokenCredential probe (docs/protocol.md#azure-identity) -------


def test_chain_probe_reads_the_missing_header_400_as_up(emu, monkeypatch):
    """The probe omits Metadata on purpose; IMDS's 400 for that tells the SDK the endpoint is there.

    The probe only runs when AZURE_POD_IDENTITY_AUTHORITY_HOST is unset at construction time, so the
    credential is built first and the variable set afterwards (docs/protocol.md#environment-variables).
    """
    from azure.identity import ChainedTokenCredential

    host = os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"]
    monkeypatch.delenv("AZURE_POD_IDENTITY_AUTHORITY_HOST")
    chain = ChainedTokenCredential(mi_credential())
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", host)
    emu.clear_log()
    token = chain.get_token(ARM_SCOPE)
    assert unverified_claims(token.token)["oid"] == SYS_PRINCIPAL
    seen = [(e["metadata_header"], e["status"]) for e in emu.request_log() if "oauth2/token" in e["path"]]
    assert seen == [(None, 400), ("true", 200)]
