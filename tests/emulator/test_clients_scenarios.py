"""The async azure-identity credential and standalone msal (the az CLI's client) in every scenario.

`test_scenarios.py` runs the sync credential and azure-mgmt-compute per scenario; this module adds the two
other token clients, whose error surfaces differ (docs/protocol.md#azure-identity, #msal). Each table must
name every scenario.
"""

from __future__ import annotations

import asyncio
import json

import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.identity import CredentialUnavailableError
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from support.emulator import ARM_RESOURCE, ARM_SCOPE, MI_NO_RESPONSE, MULTIPLE_UAMI_TEXT, unverified_claims
from support.world import SYS_PRINCIPAL, UAMI_READER_PRINCIPAL

pytestmark = pytest.mark.timeout(30)

ASSIGNED = (
    "ManagedIdentityCredential authentication unavailable. The requested identity has not been assigned to "
    "this resource. Error: Unexpected response "
)
NOT_FOUND = ASSIGNED + "\"{'error': 'invalid_request', 'error_description': 'Identity not found'}\""

# scenario -> oid of the token, or (exception type, exact message or None, prefix or None)
ASYNC_EXPECTED: dict[str, object] = {
    "healthy": SYS_PRINCIPAL,
    "no-identity": (CredentialUnavailableError, NOT_FOUND, None),
    "user-assigned-only": UAMI_READER_PRINCIPAL,
    "multiple-user-assigned": (
        CredentialUnavailableError,
        ASSIGNED + f"\"{{'error': 'invalid_request', 'error_description': '{MULTIPLE_UAMI_TEXT}'}}\"",
        None,
    ),
    "no-role-assignment": SYS_PRINCIPAL,
    "role-propagating": SYS_PRINCIPAL,
    "identity-propagating": (CredentialUnavailableError, NOT_FOUND, None),
    "imds-unreachable": (CredentialUnavailableError, MI_NO_RESPONSE, None),
    "imds-hang": (CredentialUnavailableError, MI_NO_RESPONSE, None),
    # the async client raises ClientAuthenticationError for any status but 400
    # (docs/protocol.md#azure-identity)
    "imds-updating": (ClientAuthenticationError, None, 'Unexpected response "{'),
    "imds-server-error": (ClientAuthenticationError, None, "Unexpected response \"{'error': 'unknown'"),
    "imds-throttled": SYS_PRINCIPAL,
    "arm-throttled": SYS_PRINCIPAL,
    "foreign-metadata-server": (CredentialUnavailableError, None, 'Unexpected content type "text/html'),
    "proxy-intercept": (CredentialUnavailableError, None, 'Unexpected content type "text/html'),
    "legacy-extension-endpoint": (ServiceRequestError, None, None),
    "expired-token": SYS_PRINCIPAL,
    "tls-untrusted": SYS_PRINCIPAL,
    "docker-desktop-unreachable": (CredentialUnavailableError, None, 'Unexpected content type "text/plain'),
    # the data-plane scenarios leave the sign-in alone
    "kv-access-policy-missing": SYS_PRINCIPAL,
    "kv-rbac-missing": SYS_PRINCIPAL,
    "storage-data-role-missing": SYS_PRINCIPAL,
    "data-role-propagating": SYS_PRINCIPAL,
    "storage-wrong-audience": SYS_PRINCIPAL,
}

# scenario -> oid, ("error", error, description prefix) for MSAL's error dict, or an exception type.
# MSAL ignores MSI_ENDPOINT without MSI_SECRET, so the legacy variable does not divert it from IMDS.
MSAL_EXPECTED: dict[str, object] = {
    "healthy": SYS_PRINCIPAL,
    "no-identity": ("error", "invalid_request", "Identity not found"),
    "user-assigned-only": UAMI_READER_PRINCIPAL,
    "multiple-user-assigned": ("error", "invalid_request", MULTIPLE_UAMI_TEXT),
    "no-role-assignment": SYS_PRINCIPAL,
    "role-propagating": SYS_PRINCIPAL,
    "identity-propagating": ("error", "invalid_request", "Identity not found"),
    "imds-unreachable": requests.ConnectionError,
    "imds-hang": requests.ReadTimeout,
    "imds-updating": ("error", None, None),
    "imds-server-error": ("error", "unknown", "Failed to retrieve token from the Active directory."),
    "imds-throttled": SYS_PRINCIPAL,
    "arm-throttled": SYS_PRINCIPAL,
    "foreign-metadata-server": json.JSONDecodeError,
    "proxy-intercept": json.JSONDecodeError,
    "legacy-extension-endpoint": SYS_PRINCIPAL,
    "expired-token": SYS_PRINCIPAL,
    "tls-untrusted": SYS_PRINCIPAL,
    "docker-desktop-unreachable": json.JSONDecodeError,
    "kv-access-policy-missing": SYS_PRINCIPAL,
    "kv-rbac-missing": SYS_PRINCIPAL,
    "storage-data-role-missing": SYS_PRINCIPAL,
    "data-role-propagating": SYS_PRINCIPAL,
    "storage-wrong-audience": SYS_PRINCIPAL,
}


class _BoundedSession(requests.Session):
    """requests.Session with a default timeout: MSAL has none of its own (a silent IMDS hangs forever)."""

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", 2)
        return super().request(*args, **kwargs)


def test_tables_cover_every_scenario():
    from mi_helpers.emulator import SCENARIOS

    assert set(SCENARIOS) - set(ASYNC_EXPECTED) == set()
    assert set(SCENARIOS) - set(MSAL_EXPECTED) == set()


@pytest.mark.parametrize("name", sorted(ASYNC_EXPECTED))
def test_async_credential_per_scenario(use_scenario, name):
    use_scenario(name)
    expected = ASYNC_EXPECTED[name]

    async def go():
        async with AsyncManagedIdentityCredential(retry_total=0, read_timeout=1) as cred:
            return await cred.get_token(ARM_SCOPE)

    if isinstance(expected, str):
        assert unverified_claims(asyncio.run(go()).token)["oid"] == expected
        return
    exc_type, exact, prefix = expected
    with pytest.raises(Exception) as info:
        asyncio.run(go())
    assert type(info.value) is exc_type, (type(info.value), str(info.value)[:300])
    message = getattr(info.value, "message", None) or str(info.value)
    if exact is not None:
        assert message == exact
    if prefix is not None:
        assert message.startswith(prefix), message


@pytest.mark.parametrize("name", sorted(MSAL_EXPECTED))
def test_msal_per_scenario(use_scenario, name):
    use_scenario(name)
    expected = MSAL_EXPECTED[name]
    client = msal.ManagedIdentityClient(msal.SystemAssignedManagedIdentity(), http_client=_BoundedSession())
    if isinstance(expected, type):
        with pytest.raises(expected):
            client.acquire_token_for_client(resource=ARM_RESOURCE)
        return
    result = client.acquire_token_for_client(resource=ARM_RESOURCE)
    if isinstance(expected, str):
        assert "error" not in result, result
        assert unverified_claims(result["access_token"])["oid"] == expected
        return
    _, error, description = expected
    assert "access_token" not in result
    assert isinstance(result.get("error"), str)
    if error is not None:
        assert result["error"] == error
    if description is not None:
        assert result["error_description"].startswith(description)
