"""Every scenario with real clients: statuses, bodies, SDK exceptions, windows and counters, fixes.

Windows and counts start at the first matching request (docs/protocol.md#failure-modes), so each test can
switch the scenario, wait for nothing, and still see the whole fault. Time windows run on the shared
emulator's manual clock: ``clock.advance(s)`` is "s seconds pass", without sleeping. Parameters are kept
small (N = 2, T = 1 s) and every SDK call uses ``retry_total=0`` and a short ``read_timeout``: nothing here
sits through the SDK's long waits.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.identity import CredentialUnavailableError
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from support.emulator import (
    ARM_RESOURCE,
    ARM_SCOPE,
    MI_NO_RESPONSE,
    MULTIPLE_UAMI_TEXT,
    RawArm,
    RawImds,
    arm_error,
    compute_client,
    mi_credential,
    plain_session,
    unverified_claims,
)
from support.world import (
    REQUIRED_SCENARIOS,
    RG,
    RG_SCOPE,
    SUB,
    SYS_PRINCIPAL,
    UAMI_DEPLOY,
    UAMI_DEPLOY_CLIENT,
    UAMI_DEPLOY_PRINCIPAL,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    VM,
    VM_RESOURCE_ID,
    uami_resource_id,
)

from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.targeting import IMDS_ADDRESS

pytestmark = pytest.mark.timeout(60)

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
VM_PATH = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{VM}"


def _env_imds() -> str:
    """The IMDS URL the client environment points at (what the SDKs use)."""
    return os.environ[Env.AZURE_POD_IDENTITY_AUTHORITY_HOST]


def _sync_token_error(**kwargs) -> CredentialUnavailableError:
    with pytest.raises(CredentialUnavailableError) as info:
        mi_credential(**kwargs).get_token(ARM_SCOPE)
    return info.value


def _sync_oid(**kwargs) -> str:
    return unverified_claims(mi_credential(**kwargs).get_token(ARM_SCOPE).token)["oid"]


def _async_error(**kwargs) -> Exception:
    async def go():
        kwargs.setdefault("retry_total", 0)
        kwargs.setdefault("read_timeout", 5)
        async with AsyncManagedIdentityCredential(**kwargs) as cred:
            await cred.get_token(ARM_SCOPE)

    with pytest.raises(CredentialUnavailableError) as info:
        asyncio.run(go())
    return info.value


# --- the catalogue -----------------------------------------------------------------------------------


def test_every_required_scenario_exists():
    from mi_helpers.emulator import SCENARIOS

    missing = REQUIRED_SCENARIOS - set(SCENARIOS)
    assert not missing, f"scenarios missing from SCENARIOS: {sorted(missing)}"


@dataclass(frozen=True)
class Fails:
    """The SDK call must raise ``exc`` (exact type); its message equals ``exact`` / starts with ``prefix``."""

    exc: type[BaseException]
    exact: str | None = None
    prefix: str | None = None

    def check(self, err: BaseException) -> None:
        assert type(err) is self.exc, (type(err), err)
        message = getattr(err, "message", None) or str(err)
        if self.exact is not None:
            assert message == self.exact
        if self.prefix is not None:
            assert message.startswith(self.prefix), message


NOT_FOUND_SYNC = MI_NO_RESPONSE + " Token request error: (invalid_request) Identity not found"
UNAVAILABLE = "ManagedIdentityCredential authentication unavailable."

# The plainest learner code per scenario: ManagedIdentityCredential() (system), then virtual_machines.get
# with TLS trust from REQUESTS_CA_BUNDLE (the environment), as the helpers do. Token column: the oid the
# token must carry, or how get_token fails. ARM column: the VM's principal id, None (VM has no system
# identity), an ARM error code, or how the call fails. A scenario without an entry fails
# test_every_scenario_has_an_expectation: the suite covers them all.
EXPECTED_PLAIN_CALL: dict[str, tuple[object, object]] = {
    "healthy": (SYS_PRINCIPAL, SYS_PRINCIPAL),
    "no-identity": (Fails(CredentialUnavailableError, exact=NOT_FOUND_SYNC), None),
    "user-assigned-only": (UAMI_READER_PRINCIPAL, None),
    "multiple-user-assigned": (
        Fails(
            CredentialUnavailableError,
            exact=MI_NO_RESPONSE + " Token request error: (invalid_request) " + MULTIPLE_UAMI_TEXT,
        ),
        None,
    ),
    "no-role-assignment": (SYS_PRINCIPAL, "AuthorizationFailed"),
    "role-propagating": (SYS_PRINCIPAL, "AuthorizationFailed"),
    "identity-propagating": (Fails(CredentialUnavailableError, exact=NOT_FOUND_SYNC), None),
    "imds-unreachable": (Fails(CredentialUnavailableError, exact=MI_NO_RESPONSE), None),
    "imds-hang": (Fails(CredentialUnavailableError, exact=MI_NO_RESPONSE), None),
    "imds-updating": (Fails(CredentialUnavailableError, prefix=MI_NO_RESPONSE), None),
    "imds-server-error": (
        Fails(
            CredentialUnavailableError,
            prefix=MI_NO_RESPONSE
            + " Token request error: (unknown) Failed to retrieve token from the Active "
            "directory. For details see logs in ",
        ),
        None,
    ),
    "imds-throttled": (SYS_PRINCIPAL, SYS_PRINCIPAL),  # the first request fits in the burst
    "arm-throttled": (SYS_PRINCIPAL, SYS_PRINCIPAL),
    "foreign-metadata-server": (Fails(CredentialUnavailableError, exact=UNAVAILABLE), None),
    "proxy-intercept": (Fails(CredentialUnavailableError, exact=UNAVAILABLE), None),
    # MSI_ENDPOINT alone selects azure-identity's Cloud Shell path, which POSTs there and does not wrap errors
    "legacy-extension-endpoint": (Fails(ServiceRequestError), None),
    "expired-token": (SYS_PRINCIPAL, "ExpiredAuthenticationToken"),
    "tls-untrusted": (SYS_PRINCIPAL, Fails(ServiceRequestError, prefix=None)),
    "docker-desktop-unreachable": (Fails(CredentialUnavailableError, exact=UNAVAILABLE), None),
    # the data-plane scenarios break Key Vault or Blob storage, not the sign-in nor ARM (test_keyvault.py,
    # test_blob.py pin their failures)
    "kv-access-policy-missing": (SYS_PRINCIPAL, SYS_PRINCIPAL),
    "kv-rbac-missing": (SYS_PRINCIPAL, SYS_PRINCIPAL),
    "storage-data-role-missing": (SYS_PRINCIPAL, SYS_PRINCIPAL),
    "data-role-propagating": (SYS_PRINCIPAL, SYS_PRINCIPAL),
    "storage-wrong-audience": (SYS_PRINCIPAL, SYS_PRINCIPAL),
}


def test_every_scenario_has_an_expectation():
    from mi_helpers.emulator import SCENARIOS

    missing = set(SCENARIOS) - set(EXPECTED_PLAIN_CALL)
    assert not missing, f"no conformance expectation for scenarios: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(EXPECTED_PLAIN_CALL))
def test_plain_client_call_per_scenario(use_scenario, name):
    from azure.mgmt.compute import ComputeManagementClient

    emu = use_scenario(name)
    token_expect, arm_expect = EXPECTED_PLAIN_CALL[name]
    cred = mi_credential(read_timeout=1)
    if isinstance(token_expect, Fails):
        with pytest.raises(Exception) as info:
            cred.get_token(ARM_SCOPE)
        token_expect.check(info.value)
        return
    assert unverified_claims(cred.get_token(ARM_SCOPE).token)["oid"] == token_expect
    client = ComputeManagementClient(cred, SUB, base_url=emu.arm_url, retry_total=0)
    if isinstance(arm_expect, Fails):
        with pytest.raises(Exception) as info:
            client.virtual_machines.get(RG, VM)
        arm_expect.check(info.value)
    elif arm_expect is None or GUID.match(arm_expect):
        vm = client.virtual_machines.get(RG, VM)
        assert (vm.identity.principal_id if vm.identity else None) == arm_expect
    else:
        with pytest.raises(HttpResponseError) as info:
            client.virtual_machines.get(RG, VM)
        assert info.value.error.code == arm_expect, str(info.value)


# --- RBAC: no role, propagation, fixes ---------------------------------------------------------------


def test_no_role_assignment(use_scenario, arm):
    emu = use_scenario("no-role-assignment")
    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    r = arm.get(VM_PATH, token=token)
    assert r.status_code == 403
    code, message = arm_error(r)
    assert code == "AuthorizationFailed"
    expected = (
        f"The client '{SYS_PRINCIPAL}' with object id '{SYS_PRINCIPAL}' does not have "
        "authorization to perform "
        f"action 'Microsoft.Compute/virtualMachines/read' over scope '{VM_PATH}' or the scope is invalid. "
        "If access was recently granted, please refresh your credentials."
    )
    assert message.lower() == expected.lower()  # the scope may be echoed in the request's casing
    # a principal without any role sees no subscription (the az CLI's "no subscriptions were found")
    subs = arm.get("/subscriptions", token=token, api_version="2022-12-01")
    assert subs.status_code == 200
    assert subs.json()["value"] == []


def test_no_role_assignment_sdk_message(use_scenario):
    emu = use_scenario("no-role-assignment")
    with pytest.raises(HttpResponseError) as info:
        compute_client(emu).virtual_machines.get(RG, VM)
    exc = info.value
    assert exc.status_code == 403
    assert type(exc) is HttpResponseError
    assert str(exc).startswith(
        f"(AuthorizationFailed) The client '{SYS_PRINCIPAL}' with object id '{SYS_PRINCIPAL}'"
    )
    assert "\nCode: AuthorizationFailed\nMessage: " in str(exc)


def test_add_role_assignment_fix(use_scenario):
    emu = use_scenario("no-role-assignment")
    emu.apply_fix("add-role-assignment", principal_id=SYS_PRINCIPAL, role="Reader", scope=VM_RESOURCE_ID)
    assert compute_client(emu).virtual_machines.get(RG, VM).identity.principal_id == SYS_PRINCIPAL


def test_role_propagating_counts_from_the_first_read(use_scenario, arm, clock):
    emu = use_scenario("role-propagating", n=2)
    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    clock.advance(60)  # the count must not start at switch time, nor end with time
    statuses = [arm.get(VM_PATH, token=token).status_code for _ in range(4)]
    assert statuses == [403, 403, 200, 200]


def test_role_propagating_sdk(use_scenario):
    emu = use_scenario("role-propagating", n=1)
    client = compute_client(emu)
    with pytest.raises(HttpResponseError) as info:
        client.virtual_machines.get(RG, VM)
    assert info.value.status_code == 403
    assert info.value.error.code == "AuthorizationFailed"
    assert client.virtual_machines.get(RG, VM).identity.principal_id == SYS_PRINCIPAL


# --- identity: propagation, several UAMIs, fixes ------------------------------------------------------


def test_identity_propagating_counts_from_the_first_request(use_scenario, clock):
    emu = use_scenario("identity-propagating", n=2)
    imds = RawImds(emu.imds_url)
    clock.advance(60)
    first = [imds.token(ARM_RESOURCE) for _ in range(2)]
    assert [r.status_code for r in first] == [400, 400]
    assert all(r.json()["error_description"] == "Identity not found" for r in first)
    assert imds.token(ARM_RESOURCE).status_code == 200


def test_identity_propagating_sdk_then_success(use_scenario):
    use_scenario("identity-propagating", n=1)
    err = _sync_token_error()
    assert err.message == MI_NO_RESPONSE + " Token request error: (invalid_request) Identity not found"
    assert _sync_oid() == SYS_PRINCIPAL


def test_multiple_user_assigned_clients(use_scenario):
    use_scenario("multiple-user-assigned")
    err = _sync_token_error()
    assert err.message == MI_NO_RESPONSE + " Token request error: (invalid_request) " + MULTIPLE_UAMI_TEXT
    assert _sync_oid(client_id=UAMI_DEPLOY_CLIENT) == UAMI_DEPLOY_PRINCIPAL
    result = msal.ManagedIdentityClient(
        msal.SystemAssignedManagedIdentity(), http_client=requests.Session()
    ).acquire_token_for_client(resource=ARM_RESOURCE)
    assert result.get("error") == "invalid_request"
    assert result.get("error_description") == MULTIPLE_UAMI_TEXT


def test_multiple_user_assigned_async(use_scenario):
    use_scenario("multiple-user-assigned")
    err = _async_error()
    assert err.message.startswith(
        "ManagedIdentityCredential authentication unavailable. The requested identity has not been assigned "
        "to this resource. Error: Unexpected response"
    )
    assert MULTIPLE_UAMI_TEXT in err.message


def test_attach_and_enable_fixes(use_scenario):
    emu = use_scenario("multiple-user-assigned")
    emu.apply_fix("enable-system-identity")
    assert _sync_oid() == SYS_PRINCIPAL
    emu.apply_fix("reset")
    _sync_token_error()  # back to the scenario's world
    emu.apply_fix("attach-user-identity", name=UAMI_DEPLOY)
    assert _sync_oid(client_id=UAMI_DEPLOY_CLIENT) == UAMI_DEPLOY_PRINCIPAL


# --- IMDS faults ------------------------------------------------------------------------------------


def test_imds_updating_410_then_ok(use_scenario):
    # A long window, ended by "it recovered" (clear-faults): the SDK call inside the window must not race a
    # short timer on a loaded machine. The window's own expiry is tested with raw requests elsewhere.
    emu = use_scenario("imds-updating", t=60)
    imds = RawImds(emu.imds_url)
    r = imds.token(ARM_RESOURCE)  # opens the window
    assert r.status_code == 410
    assert "Retry-After" not in r.headers
    err = _sync_token_error()
    assert err.message.startswith(MI_NO_RESPONSE + " Token request error: (")
    emu.apply_fix("clear-faults")
    assert imds.token(ARM_RESOURCE).status_code == 200
    assert _sync_oid() == SYS_PRINCIPAL


def test_imds_server_error_n_times(use_scenario, clock):
    emu = use_scenario("imds-server-error", n=2)
    imds = RawImds(emu.imds_url)
    clock.advance(60)
    first = imds.token(ARM_RESOURCE)
    assert first.status_code == 500
    assert "Retry-After" not in first.headers
    assert isinstance(first.json()["error"], str)
    # a fresh credential (MSAL keeps a 5xx in its throttle cache per client for 5 s)
    err = _sync_token_error()
    assert err.message.startswith(MI_NO_RESPONSE + " Token request error: (")
    assert imds.token(ARM_RESOURCE).status_code == 200
    assert _sync_oid() == SYS_PRINCIPAL


def test_imds_throttled_within_60_requests(use_scenario):
    emu = use_scenario("imds-throttled")
    imds = RawImds(emu.imds_url)
    statuses = []
    throttled = None
    with plain_session() as s:
        for _ in range(60):
            r = s.get(
                emu.imds_url + "/metadata/identity/oauth2/token",
                params={"api-version": "2018-02-01", "resource": ARM_RESOURCE},
                headers={"Metadata": "true"},
                timeout=5,
            )
            statuses.append(r.status_code)
            if r.status_code == 429:
                throttled = r
                break
    assert throttled is not None, f"no 429 within 60 back-to-back requests: {statuses}"
    assert int(throttled.headers["Retry-After"]) >= 1
    assert "access_token" not in throttled.text
    assert imds is not None


def test_imds_throttled_sdk_message(use_scenario):
    use_scenario("imds-throttled", burst=2, rate=0.001)
    for _ in range(3):
        try:
            mi_credential().get_token(ARM_SCOPE)
        except CredentialUnavailableError as exc:
            assert exc.message.startswith(MI_NO_RESPONSE)
            return
    pytest.fail("the SDK never saw the IMDS throttle (burst 2)")


def test_imds_unreachable(use_scenario, emu_session):
    healthy_url = emu_session.imds_url
    emu = use_scenario("imds-unreachable")
    host = urlsplit(_env_imds()).hostname
    port = urlsplit(_env_imds()).port
    assert host in ("127.0.0.1", "localhost")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=2).close()
    # the URL does not move: a kernel started with the old environment finds IMDS again afterwards
    assert _env_imds() == emu.imds_url == healthy_url
    err = _sync_token_error()
    assert err.message == MI_NO_RESPONSE
    # ARM and the admin API stay up on their own listeners
    assert RawArm(emu.arm_url, emu.ca_bundle).get("/metadata/endpoints").status_code == 200
    assert emu.world_dict()
    # and IMDS comes back with the next scenario
    before = _env_imds()
    emu.set_scenario("healthy")
    assert emu.environment()[Env.AZURE_POD_IDENTITY_AUTHORITY_HOST] == before
    assert _sync_oid() == SYS_PRINCIPAL


def test_imds_hang_bounded_by_read_timeout(use_scenario):
    emu = use_scenario("imds-hang")
    err = _sync_token_error(read_timeout=1)
    assert err.message == MI_NO_RESPONSE
    # while a request hangs, the emulator keeps serving ARM and admin requests
    done = threading.Event()

    def hang():
        try:
            with plain_session() as s:
                s.get(
                    _env_imds() + "/metadata/identity/oauth2/token",
                    params={"api-version": "2018-02-01", "resource": ARM_RESOURCE},
                    headers={"Metadata": "true"},
                    timeout=8,
                )
        except requests.RequestException:
            pass
        finally:
            done.set()

    t = threading.Thread(target=hang, daemon=True)
    t.start()
    assert RawArm(emu.arm_url, emu.ca_bundle).get("/metadata/endpoints").status_code == 200
    assert emu.world_dict()
    assert not done.is_set()
    # switching scenario releases the hung request long before its 8 s client timeout
    emu.set_scenario("healthy")
    assert done.wait(4)


def test_imds_hang_raw_read_timeout(use_scenario):
    emu = use_scenario("imds-hang")
    with plain_session() as s, pytest.raises(requests.ReadTimeout):
        s.get(
            emu.imds_url + "/metadata/identity/oauth2/token",
            params={"api-version": "2018-02-01", "resource": ARM_RESOURCE},
            headers={"Metadata": "true"},
            timeout=(2, 1),
        )


def test_foreign_metadata_server(use_scenario):
    emu = use_scenario("foreign-metadata-server")
    r = RawImds(_env_imds()).token(ARM_RESOURCE)
    assert r.headers["Content-Type"].startswith("text/html")
    assert "access_token" not in r.text
    err = _sync_token_error()
    assert err.message == "ManagedIdentityCredential authentication unavailable."
    aerr = _async_error()
    assert aerr.message.startswith('Unexpected content type "text/html')
    assert emu.scenario == "foreign-metadata-server"


def test_proxy_intercept(use_scenario):
    emu = use_scenario("proxy-intercept")
    extra = set(emu.environment()) ^ {
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        "REQUESTS_CA_BUNDLE",
        "MI_HELPERS_TARGET",
        "MI_HELPERS_ARM_URL",
        "MI_HELPERS_EMULATOR_ADMIN",
        "MI_HELPERS_EMULATOR_KEY",
        "NO_PROXY",
        "no_proxy",
    }
    assert {k.upper() for k in extra} & {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}, sorted(extra)
    # a client that honours the environment (requests, like the SDK) goes through the proxy
    s = requests.Session()
    r = s.get(
        _env_imds() + "/metadata/identity/oauth2/token",
        params={"api-version": "2018-02-01", "resource": ARM_RESOURCE},
        headers={"Metadata": "true"},
        timeout=5,
    )
    assert r.status_code in (400, 502, 504), r.status_code
    assert "access_token" not in r.text
    err = _sync_token_error()
    assert err.message.startswith("ManagedIdentityCredential authentication unavailable")
    # bypassing the proxy (curl --noproxy '*', NO_PROXY) reaches IMDS directly
    direct = RawImds(_env_imds()).token(ARM_RESOURCE)
    assert direct.status_code == 200


def test_expired_token(use_scenario, arm):
    emu = use_scenario("expired-token")
    body = RawImds(emu.imds_url).token(ARM_RESOURCE).json()
    assert int(body["expires_in"]) > 86000  # fresh by IMDS's clock...
    token = body["access_token"]
    r = arm.get(VM_PATH, token=token)
    assert r.status_code == 401
    code, message = arm_error(r)
    assert code == "ExpiredAuthenticationToken"
    stamp = r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} (AM|PM)"
    assert re.fullmatch(
        f"The access token expiry UTC time '{stamp}' is earlier than current UTC time '{stamp}'\\.", message
    ), message
    # ...already expired by ARM's: the expiry stamp is the token's exp, the current time lies after it
    from datetime import datetime, timezone

    expiry, current = (
        datetime.strptime(m, "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=timezone.utc)
        for m in re.findall(r"'([^']+)'", message)
    )
    assert int(expiry.timestamp()) == int(body["expires_on"])
    assert current > expiry
    with pytest.raises(ClientAuthenticationError) as info:
        compute_client(emu).virtual_machines.get(RG, VM)
    assert info.value.status_code == 401
    assert info.value.error.code == "ExpiredAuthenticationToken"


def test_arm_throttled_within_30_reads(use_scenario, arm):
    emu = use_scenario("arm-throttled")
    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    seen = []
    for _ in range(30):
        r = arm.get(VM_PATH, token=token)
        seen.append(r.status_code)
        if r.status_code == 429:
            break
    assert seen[-1] == 429, seen
    code, message = arm_error(r)
    assert code == "SubscriptionRequestsThrottled"
    retry_after = int(r.headers["Retry-After"])
    assert retry_after >= 1
    assert message == (
        f"Number of 'read' requests for subscription '{SUB}' actor '{SYS_PRINCIPAL}' exceeded. "
        "Please try again "
        f"after '{retry_after}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling"
    )


def test_arm_throttled_sdk(use_scenario):
    emu = use_scenario("arm-throttled", burst=3, rate=0.001)
    client = compute_client(emu)
    for _ in range(30):
        try:
            client.virtual_machines.get(RG, VM)
        except HttpResponseError as exc:
            assert exc.status_code == 429
            assert exc.error.code == "SubscriptionRequestsThrottled"
            assert int(exc.response.headers["Retry-After"]) >= 1
            return
    pytest.fail("no 429 within 30 reads")


def test_legacy_extension_endpoint(use_scenario):
    emu = use_scenario("legacy-extension-endpoint")
    endpoint = os.environ[Env.MSI_ENDPOINT]
    parts = urlsplit(endpoint)
    assert parts.hostname in ("127.0.0.1", "localhost")
    assert parts.path == "/oauth2/token"
    with pytest.raises(ServiceRequestError, match="Connection refused"):
        mi_credential().get_token(ARM_SCOPE)
    # MSI_ENDPOINT diverts azure-identity away from IMDS: the emulator's IMDS never saw a token request
    assert "oauth2/token" not in json.dumps([e for e in emu.request_log() if "imds" in json.dumps(e).lower()])
    # IMDS itself is healthy: the fix is to drop the variable
    assert RawImds(emu.imds_url).token(ARM_RESOURCE).status_code == 200


def test_throttle_parameters(use_scenario, arm):
    emu = use_scenario("imds-throttled", burst=3, retry_after=2, rate=0.001)
    imds = RawImds(emu.imds_url)
    statuses = [imds.token(ARM_RESOURCE) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert statuses[3].headers["Retry-After"] == "2"
    emu = use_scenario("arm-throttled", burst=2, retry_after=3, rate=0.001)
    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    reads = [arm.get(VM_PATH, token=token) for _ in range(3)]
    assert [r.status_code for r in reads] == [200, 200, 429]
    assert reads[2].headers["Retry-After"] == "3"


# --- admin log stays free of tokens ------------------------------------------------------------------


JWT_LIKE = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def test_request_log_redacts_tokens(emu, arm):
    imds = RawImds(emu.imds_url)
    token = imds.access_token(ARM_RESOURCE)
    arm.get(VM_PATH, token=token)
    compute_client(emu).virtual_machines.get(RG, VM)
    mi_credential(client_id=UAMI_READER_CLIENT).get_token(ARM_SCOPE)
    log = emu.request_log()
    assert len(log) >= 4
    text = json.dumps(log)
    assert token not in text
    assert not JWT_LIKE.search(text), JWT_LIKE.search(text).group(0)[:40]
    arm_entries = [e for e in log if e.get("listener") == "arm" and e.get("authorization")]
    assert arm_entries, "ARM requests are logged with their (redacted) Authorization header"
    for entry in arm_entries:
        assert len(entry["authorization"]) < 40, entry["authorization"][:40]


# --- scenario variants and engine controls ------------------------------------------------------------


def test_docker_desktop_reason_phrase(use_scenario):
    """Docker Desktop answers on the status line: `HTTP/1.0 403 connecting to …: … unreachable network.`

    (docs/protocol.md#failure-modes; https://github.com/Azure/azure-sdk-for-python/issues/31759). The
    message lives in the reason phrase.
    """
    emu = use_scenario("docker-desktop-unreachable")
    r = RawImds(emu.imds_url).token(ARM_RESOURCE)
    assert r.status_code == 403
    assert "access_token" not in r.text
    assert "unreachable" in r.reason, r.reason
    assert r.reason.startswith(f"connecting to {IMDS_ADDRESS}:80"), r.reason


def test_docker_desktop_sdk(use_scenario):
    use_scenario("docker-desktop-unreachable")
    assert _sync_token_error().message == UNAVAILABLE
    assert _async_error().message.startswith('Unexpected content type "text/plain')


def test_foreign_metadata_server_mmds(use_scenario):
    emu = use_scenario("foreign-metadata-server", mode="mmds")
    r = RawImds(emu.imds_url).token(ARM_RESOURCE)
    assert r.status_code == 401
    assert r.text.startswith("No MMDS token provided")
    assert _sync_token_error().message == UNAVAILABLE


def test_proxy_forward_mode_is_rejected_for_x_forwarded_for(use_scenario):
    emu = use_scenario("proxy-intercept", mode="forward")
    r = requests.get(
        _env_imds() + "/metadata/identity/oauth2/token",
        params={"api-version": "2018-02-01", "resource": ARM_RESOURCE},
        headers={"Metadata": "true"},
        timeout=5,
    )
    assert r.status_code == 400
    assert "X-Forwarded-For" in r.text
    assert _sync_token_error().message == UNAVAILABLE
    forwarded = [e for e in emu.request_log() if e.get("listener") == "imds" and e.get("status") == 400]
    assert forwarded, "the proxy forwarded the request to IMDS"


def test_scenario_environment_holds_only_the_extras(emu, use_scenario):
    assert emu.scenario_environment() == {}
    base = emu.environment()
    use_scenario("legacy-extension-endpoint")
    extras = emu.scenario_environment()
    assert set(extras) == {"MSI_ENDPOINT"}
    assert {k: v for k, v in emu.environment().items() if base.get(k) != v} == extras


def test_clear_faults_keeps_the_world(use_scenario):
    emu = use_scenario("imds-server-error", n=100)
    imds = RawImds(emu.imds_url)
    assert imds.token(ARM_RESOURCE).status_code == 500
    emu.apply_fix("clear-faults")
    assert imds.token(ARM_RESOURCE).status_code == 200
    emu = use_scenario("no-role-assignment")
    emu.apply_fix("clear-faults")  # a world edit is not a fault: still no role
    token = imds.access_token(ARM_RESOURCE)
    assert RawArm(emu.arm_url, emu.ca_bundle).get(VM_PATH, token=token).status_code == 403


def test_time_window_starts_at_the_first_request(use_scenario, clock):
    emu = use_scenario("identity-propagating", t=0.5)
    imds = RawImds(emu.imds_url)
    clock.advance(0.7)
    assert imds.token(ARM_RESOURCE).status_code == 400  # the window opens now, not at the switch
    clock.advance(0.4)
    assert imds.token(ARM_RESOURCE).status_code == 400  # still inside it
    clock.advance(0.2)
    assert imds.token(ARM_RESOURCE).status_code == 200


def test_user_assigned_only_vm_identity(use_scenario):
    emu = use_scenario("user-assigned-only")
    vm = compute_client(emu).virtual_machines.get(RG, VM)
    assert vm.identity.principal_id is None
    assert str(vm.identity.type) in ("UserAssigned", "ResourceIdentityType.USER_ASSIGNED")
    assert _sync_oid() == UAMI_READER_PRINCIPAL


def test_no_identity_fix(use_scenario):
    emu = use_scenario("no-identity")
    assert _sync_token_error().message == NOT_FOUND_SYNC
    emu.apply_fix("enable-system-identity")
    assert _sync_oid() == SYS_PRINCIPAL
    assert compute_client(emu).virtual_machines.get(RG, VM).identity.principal_id == SYS_PRINCIPAL


def test_set_scenario_resets_the_world_and_rearms_faults(use_scenario, arm):
    emu = use_scenario("role-propagating", n=1)
    assert emu.params["n"] == 1
    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    assert [arm.get(VM_PATH, token=token).status_code for _ in range(2)] == [403, 200]
    use_scenario("role-propagating", n=1)
    assert [arm.get(VM_PATH, token=token).status_code for _ in range(2)] == [403, 200]
    emu = use_scenario("healthy")
    emu.apply_fix("disable-system-identity")
    use_scenario("healthy")
    assert _sync_oid() == SYS_PRINCIPAL


def test_remove_role_assignment_and_detach_fixes(use_scenario, arm):
    emu = use_scenario("healthy")
    emu.apply_fix("remove-role-assignment", principal_id=SYS_PRINCIPAL, role="Reader", scope=RG_SCOPE)
    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    assert arm.get(VM_PATH, token=token).status_code == 403
    emu.apply_fix("detach-user-identity", name="uami-reader")
    assert RawImds(emu.imds_url).token(ARM_RESOURCE, client_id=UAMI_READER_CLIENT).status_code == 400
    emu.apply_fix("attach-user-identity", resource_id=uami_resource_id(UAMI_DEPLOY))
    assert _sync_oid(client_id=UAMI_DEPLOY_CLIENT) == UAMI_DEPLOY_PRINCIPAL


def test_imds_unreachable_also_for_pooled_connections(emu, use_scenario):
    """A kernel's credential keeps its connection alive; switching to imds-unreachable must cut it too."""
    import http.client

    parts = urlsplit(emu.imds_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    query = (
        "/metadata/identity/oauth2/token?api-version=2018-02-01"
        "&resource=https%3A%2F%2Fmanagement.azure.com%2F"
    )
    conn.request("GET", query, headers={"Metadata": "true"})
    first = conn.getresponse()
    first.read()
    assert first.status == 200
    use_scenario("imds-unreachable")
    try:
        conn.request("GET", query, headers={"Metadata": "true"})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException):
        status = None
    finally:
        conn.close()
    assert status is None, f"a pooled connection still reached IMDS ({status}) in imds-unreachable"


# --- the raw IMDS answer per scenario (curl's view, no proxy) -----------------------------------------

NOT_FOUND_BODY = {"error": "invalid_request", "error_description": "Identity not found"}
RAW_IMDS: dict[str, tuple[object, str | None, object]] = {
    # scenario: (status or exception, content-type prefix, body check: dict equality, str prefix, or None)
    "healthy": (200, "application/json", None),
    "no-identity": (400, "application/json", NOT_FOUND_BODY),
    "user-assigned-only": (200, "application/json", None),
    "multiple-user-assigned": (
        400,
        "application/json",
        {"error": "invalid_request", "error_description": MULTIPLE_UAMI_TEXT},
    ),
    "no-role-assignment": (200, "application/json", None),
    "role-propagating": (200, "application/json", None),
    "identity-propagating": (400, "application/json", NOT_FOUND_BODY),
    "imds-unreachable": (requests.ConnectionError, None, None),
    "imds-hang": (requests.ReadTimeout, None, None),
    "imds-updating": (410, "application/json", None),
    "imds-throttled": (200, "application/json", None),
    "imds-server-error": (500, "application/json", None),
    "foreign-metadata-server": (200, "text/html", "<!DOCTYPE html>"),
    "proxy-intercept": (200, "application/json", None),  # without the proxy, IMDS itself is fine
    "legacy-extension-endpoint": (200, "application/json", None),
    "expired-token": (200, "application/json", None),
    "arm-throttled": (200, "application/json", None),
    "tls-untrusted": (200, "application/json", None),
    "docker-desktop-unreachable": (403, "text/plain", None),
    "kv-access-policy-missing": (200, "application/json", None),
    "kv-rbac-missing": (200, "application/json", None),
    "storage-data-role-missing": (200, "application/json", None),
    "data-role-propagating": (200, "application/json", None),
    "storage-wrong-audience": (200, "application/json", None),
}


def test_raw_table_covers_every_scenario():
    from mi_helpers.emulator import SCENARIOS

    assert set(SCENARIOS) - set(RAW_IMDS) == set()


@pytest.mark.parametrize("name", sorted(RAW_IMDS))
def test_raw_imds_per_scenario(use_scenario, name):
    emu = use_scenario(name)
    status, ctype, body = RAW_IMDS[name]
    url = _env_imds() if name != "proxy-intercept" else emu.imds_url
    with plain_session() as s:
        call = lambda: s.get(  # noqa: E731
            url + "/metadata/identity/oauth2/token",
            params={"api-version": "2018-02-01", "resource": ARM_RESOURCE},
            headers={"Metadata": "true"},
            timeout=(2, 1),
        )
        if isinstance(status, type):
            with pytest.raises(status):
                call()
            return
        r = call()
    assert r.status_code == status, r.text[:200]
    assert r.headers["Content-Type"].startswith(ctype)
    if status == 200 and ctype == "application/json":
        assert unverified_claims(r.json()["access_token"])["tid"]
    if isinstance(body, dict):
        assert r.json() == body
    elif isinstance(body, str):
        assert r.text.startswith(body)
    assert "Retry-After" not in r.headers  # only a throttled answer carries one


@pytest.mark.parametrize("name", sorted(EXPECTED_PLAIN_CALL))
def test_default_azure_credential_per_scenario(use_scenario, name):
    """DefaultAzureCredential (MI only, via AZURE_TOKEN_CREDENTIALS) reports the MI line of the sync table."""
    from azure.identity import DefaultAzureCredential

    use_scenario(name)
    token_expect, _ = EXPECTED_PLAIN_CALL[name]
    cred = DefaultAzureCredential(retry_total=0, read_timeout=1)
    if not isinstance(token_expect, Fails):
        assert unverified_claims(cred.get_token(ARM_SCOPE).token)["oid"] == token_expect
        return
    with pytest.raises(ClientAuthenticationError) as info:
        cred.get_token(ARM_SCOPE)
    assert type(info.value) is ClientAuthenticationError
    message = info.value.message
    assert message.startswith(
        "DefaultAzureCredential failed to retrieve a token from the included credentials."
    )
    line = next(ln for ln in message.splitlines() if ln.startswith("\tManagedIdentityCredential: "))
    detail = line.split(": ", 1)[1]
    if token_expect.exact is not None:
        assert detail == token_expect.exact
    if token_expect.prefix is not None:
        assert detail.startswith(token_expect.prefix)


def test_only_matching_requests_open_windows_and_count(use_scenario, arm, clock):
    """Instance metadata does not consume a token fault; unauthenticated discovery does not consume RBAC's."""
    emu = use_scenario("imds-server-error", n=1)
    imds = RawImds(emu.imds_url)
    assert imds.get("/metadata/instance", params={"api-version": "2021-02-01"}).status_code == 200
    assert imds.token(ARM_RESOURCE).status_code == 500
    assert imds.token(ARM_RESOURCE).status_code == 200

    emu = use_scenario("identity-propagating", t=0.5)
    assert imds.get("/metadata/instance", params={"api-version": "2021-02-01"}).status_code == 200
    clock.advance(0.7)
    assert imds.token(ARM_RESOURCE).status_code == 400  # the first *token* request opens the window

    emu = use_scenario("role-propagating", n=1)
    token = imds.access_token(ARM_RESOURCE)
    assert arm.get("/metadata/endpoints").status_code == 200
    assert [arm.get(VM_PATH, token=token).status_code for _ in range(2)] == [403, 200]
