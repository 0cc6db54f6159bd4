"""The ARM layer without a socket: werkzeug test requests against a Backend, checks in ARM's order."""

from __future__ import annotations

from typing import Any

import pytest
from support.emulator import VM_PATH, ManualClock, arm_error, client_api_version, json_of, wsgi_request
from support.world import (
    RG,
    RG_SCOPE,
    SUB,
    SYS_ASSIGNMENT_SCOPES,
    SYS_PRINCIPAL,
    UAMI_READER,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    uami_resource_id,
)

from mi_helpers.constants import Arm
from mi_helpers.emulator.arm import ArmLayer, canonical_path
from mi_helpers.emulator.backend import Backend

WALL = 1_750_000_000.0
BASE = "https://127.0.0.1:8443"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(wall=WALL)


@pytest.fixture
def backend(clock: ManualClock) -> Backend:
    return Backend("healthy", clock=clock)


@pytest.fixture
def layer(backend: Backend) -> ArmLayer:
    return ArmLayer(backend)


def _token(backend: Backend, resource: str = Arm.RESOURCE, **selector: str) -> str:
    key, value = next(iter(selector.items())) if selector else (None, None)
    principal = backend.world.select_identity(key, value)
    return backend.issuer.issue(principal, resource, backend.clock.time()).access_token


def _get(layer: ArmLayer, path: str, token: str | None = None, **query: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    query.setdefault("api-version", client_api_version(path))
    return layer.handle(wsgi_request(path, query=query, headers=headers, base_url=BASE))


def test_vm_get_and_the_headers_every_reply_carries(layer: ArmLayer, backend: Backend) -> None:
    r = _get(layer, VM_PATH, _token(backend))
    assert r.status_code == 200, r.get_data(as_text=True)
    vm = json_of(r)
    assert list(vm)[:5] == ["name", "id", "type", "location", "tags"]
    assert vm["identity"]["principalId"] == SYS_PRINCIPAL
    reads = int(r.headers["x-ms-ratelimit-remaining-subscription-reads"])
    again = _get(layer, VM_PATH, _token(backend))
    assert int(again.headers["x-ms-ratelimit-remaining-subscription-reads"]) == reads - 1 < 250
    refused = _get(layer, VM_PATH)  # no token: an error still carries the request ids
    assert refused.status_code == 401 and "x-ms-request-id" in refused.headers
    assert "x-ms-ratelimit-remaining-subscription-reads" not in refused.headers


def test_api_version_is_checked_before_the_token(layer: ArmLayer) -> None:
    r = layer.handle(wsgi_request(VM_PATH, headers={"Authorization": "Bearer not-a-jwt"}, base_url=BASE))
    assert r.status_code == 400 and arm_error(r)[0] == "MissingApiVersionParameter"


@pytest.mark.parametrize(
    ("auth", "code"),
    [
        (None, "AuthenticationFailed"),
        ("Basic dXNlcjpwYXNz", "AuthenticationFailed"),
        ("Bearer not-a-jwt", "InvalidAuthenticationToken"),
    ],
)
def test_authentication_failures(layer: ArmLayer, auth: str | None, code: str) -> None:
    headers = {"Authorization": auth} if auth else {}
    r = layer.handle(wsgi_request(VM_PATH, query={"api-version": "1"}, headers=headers, base_url=BASE))
    assert r.status_code == 401 and arm_error(r)[0] == code
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_audience_names_the_four_allowed_ones(layer: ArmLayer, backend: Backend) -> None:
    code, message = arm_error(_get(layer, VM_PATH, _token(backend, "https://vault.azure.net")))
    assert code == "InvalidAuthenticationTokenAudience"
    assert all(f"'{aud}'" in message for aud in Arm.AUDIENCES)


def test_expired_token_by_arm_s_skewed_clock(layer: ArmLayer, backend: Backend, clock: ManualClock) -> None:
    token = _token(backend)
    backend.set_scenario("expired-token", skew=90_000)  # a day and a bit ahead
    code, message = arm_error(_get(layer, VM_PATH, token))
    assert code == "ExpiredAuthenticationToken" and "is earlier than current UTC time" in message
    backend.apply_fix("clear-faults")
    assert _get(layer, VM_PATH, token).status_code == 200
    clock.advance(86_400)  # the token's own lifetime runs out on the same clock
    assert arm_error(_get(layer, VM_PATH, token))[0] == "ExpiredAuthenticationToken"


def test_role_propagating_denies_once_per_request(layer: ArmLayer, backend: Backend) -> None:
    backend.set_scenario("role-propagating", n=2)
    token = _token(backend)
    statuses = [_get(layer, VM_PATH, token).status_code for _ in range(3)]
    assert statuses == [403, 403, 200]


def test_arm_throttle_refills_with_the_clock(layer: ArmLayer, backend: Backend, clock: ManualClock) -> None:
    backend.set_scenario("arm-throttled", burst=2, rate=1.0, retry_after=7)
    token = _token(backend)
    statuses = [_get(layer, VM_PATH, token).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    throttled = _get(layer, VM_PATH, token)
    assert throttled.headers["Retry-After"] == "7"
    assert arm_error(throttled)[0] == "SubscriptionRequestsThrottled"
    clock.advance(1.0)
    assert _get(layer, VM_PATH, token).status_code == 200


def test_typed_kinds_share_their_routes(layer: ArmLayer, backend: Backend) -> None:
    token = _token(backend)
    uami = json_of(_get(layer, uami_resource_id(UAMI_READER), token))
    assert uami["properties"]["clientId"] == UAMI_READER_CLIENT
    listed = json_of(
        _get(layer, f"{RG_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities", token)
    )
    assert UAMI_READER in [u["name"] for u in listed["value"]]
    missing = _get(layer, VM_PATH.replace("vm-mi-tutorial", "vm-nope"), token)
    assert missing.status_code == 404 and arm_error(missing)[0] == "ResourceNotFound"


def test_subscription_wide_lists_are_rbac_filtered(layer: ArmLayer, backend: Backend) -> None:
    token = _token(backend, client_id=UAMI_READER_CLIENT)  # Reader on the resource group only
    names = [r["name"] for r in json_of(_get(layer, f"/subscriptions/{SUB}/resources", token))["value"]]
    assert "vm-mi-tutorial" in names
    backend.apply_fix("remove-role-assignment", principal_id=UAMI_READER_PRINCIPAL)
    r = _get(layer, f"/subscriptions/{SUB}/resources", token)
    assert r.status_code == 403 and arm_error(r)[0] == "AuthorizationFailed"
    subs = json_of(_get(layer, "/subscriptions", token))
    assert subs["value"] == [] and subs["count"]["value"] == 0


def test_role_assignments_at_a_scope(layer: ArmLayer, backend: Backend) -> None:
    token = _token(backend)
    r = _get(
        layer,
        f"{RG_SCOPE}/providers/Microsoft.Authorization/roleAssignments",
        token,
        **{"$filter": f"principalId eq '{SYS_PRINCIPAL}'"},
    )
    # at the group: its own assignment there and those below it (the vault's and the account's data roles)
    scopes = [a["properties"]["scope"].lower() for a in json_of(r)["value"]]
    assert scopes == [s.lower() for s in SYS_ASSIGNMENT_SCOPES]
    bad = _get(layer, f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments", token,
               **{"$filter": "nonsense"})  # fmt: skip
    assert bad.status_code == 400 and arm_error(bad)[0] == "InvalidFilterInQueryString"


def test_unknown_types_and_writes_get_arm_errors(layer: ArmLayer, backend: Backend) -> None:
    token = _token(backend)
    unknown = _get(layer, f"/subscriptions/{SUB}/providers/Microsoft.Nothing/x", token)
    assert unknown.status_code == 400 and arm_error(unknown)[0] == "InvalidResourceType"
    off_arm = _get(layer, "/nothing/here", token)
    assert off_arm.status_code == 404 and arm_error(off_arm)[0] == "NotFound"
    put = layer.handle(
        wsgi_request(
            VM_PATH,
            method="PUT",
            query={"api-version": "2024-11-01"},
            headers={"Authorization": f"Bearer {token}"},
            base_url=BASE,
        )
    )
    code, message = arm_error(put)
    assert put.status_code == 403 and code == "AuthorizationFailed"  # the VM's identity is a Reader
    assert "'Microsoft.Compute/virtualMachines/write'" in message
    head = layer.handle(
        wsgi_request(
            f"/subscriptions/{SUB}/resourceGroups/rg-nope",
            method="HEAD",
            query={"api-version": "2025-04-01"},
            headers={"Authorization": f"Bearer {token}"},
            base_url=BASE,
        )
    )
    assert head.status_code == 403  # RBAC comes before the existence of the group


def test_cloud_metadata_points_back_at_the_emulator(layer: ArmLayer) -> None:
    r = layer.handle(wsgi_request("/metadata/endpoints", query={"api-version": "2022-09-01"}, base_url=BASE))
    body = json_of(r)
    assert body["resourceManager"] == BASE + "/"
    assert body["authentication"]["audiences"] == [Arm.CLI_RESOURCE, Arm.RESOURCE]


def test_canonical_path() -> None:
    assert canonical_path(f"//SUBSCRIPTIONS/{SUB}//ResourceGroups/{RG}/Providers/MICROSOFT.COMPUTE/") == (
        f"/subscriptions/{SUB}/resourcegroups/{RG}/providers/microsoft.compute"
    )
    assert (
        canonical_path("/subscriptions/x/resourceGroups/MyGroup") == "/subscriptions/x/resourcegroups/MyGroup"
    )
