"""ARM subset on the wire (docs/protocol.md#azure-resource-manager): raw HTTPS requests, exact codes,
messages and headers."""

from __future__ import annotations

import re

import pytest
from support.emulator import ARM_AUDIENCES, ARM_RESOURCE, READER_ROLE_ID, arm_error, plain_session
from support.world import RG, RG_SCOPE, SUB, SYS_ASSIGNMENT_SCOPES, SYS_PRINCIPAL, TENANT, VM, VM_RESOURCE_ID

pytestmark = pytest.mark.timeout(30)

VM_PATH = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{VM}"
AUDIENCE_LIST = (
    "'https://management.core.windows.net/','https://management.core.windows.net',"
    "'https://management.azure.com/','https://management.azure.com'"
)
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
def token(imds):
    return imds.access_token(ARM_RESOURCE)


# --- authentication (401) ----------------------------------------------------------------------------


def test_missing_authorization_header(arm):
    r = arm.get(VM_PATH)
    assert r.status_code == 401
    assert arm_error(r) == (
        "AuthenticationFailed",
        "Authentication failed. The 'Authorization' header is missing.",
    )
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")


@pytest.mark.parametrize("bad", ["not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_garbage_token_is_invalid(arm, bad):
    r = arm.get(VM_PATH, token=bad)
    assert r.status_code == 401
    assert arm_error(r) == ("InvalidAuthenticationToken", "The access token is invalid.")


def test_tampered_signature_is_invalid(arm, token):
    head, payload, sig = token.split(".")
    flipped = sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")
    r = arm.get(VM_PATH, token=f"{head}.{payload}.{flipped}")
    assert r.status_code == 401
    assert arm_error(r)[0] == "InvalidAuthenticationToken"


def test_wrong_audience(arm, imds):
    vault = imds.access_token("https://vault.azure.net")
    r = arm.get(VM_PATH, token=vault)
    assert r.status_code == 401
    assert arm_error(r) == (
        "InvalidAuthenticationTokenAudience",
        "The access token has been obtained for wrong audience or resource 'https://vault.azure.net'. "
        f"It should exactly match with one of the allowed audiences {AUDIENCE_LIST}.",
    )


@pytest.mark.parametrize("audience", ARM_AUDIENCES)
def test_every_arm_audience_is_accepted(arm, imds, audience):
    r = arm.get(VM_PATH, token=imds.access_token(audience))
    assert r.status_code == 200, r.text
    assert r.json()["identity"]["principalId"] == SYS_PRINCIPAL


# --- paths and parameters ----------------------------------------------------------------------------


def test_vm_get_body(arm, token):
    r = arm.get(VM_PATH, token=token)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    vm = r.json()
    assert vm["id"].lower() == VM_RESOURCE_ID.lower()
    assert vm["name"] == VM
    assert vm["type"] == "Microsoft.Compute/virtualMachines"
    assert vm["location"] == "westeurope"
    assert vm["identity"]["tenantId"] == TENANT
    assert vm["identity"]["type"] in ("SystemAssigned", "SystemAssigned, UserAssigned")


@pytest.mark.parametrize(
    "path",
    [
        VM_PATH.lower(),
        VM_PATH.upper().replace(SUB.upper(), SUB),
        f"/subscriptions/{SUB}/resourcegroups/{RG}/providers/microsoft.compute/virtualmachines/{VM}",
        f"/SUBSCRIPTIONS/{SUB.upper()}/RESOURCEGROUPS/{RG.upper()}/PROVIDERS/MICROSOFT.COMPUTE/"
        f"VIRTUALMACHINES/{VM.upper()}",
        f"//subscriptions/{SUB}//resourceGroups/{RG}/providers//Microsoft.Compute/virtualMachines/{VM}",
    ],
    ids=["lower", "upper", "cli-style", "all-upper", "double-slashes"],
)
def test_paths_are_case_insensitive(arm, token, path):
    r = arm.get(path, token=token)
    assert r.status_code == 200, r.text
    assert r.json()["identity"]["principalId"] == SYS_PRINCIPAL


def test_missing_api_version(arm, token):
    r = arm.get(VM_PATH, token=token, api_version=None)
    assert r.status_code == 400
    code, message = arm_error(r)
    assert "api-version" in message
    assert code


@pytest.mark.parametrize("version", ["2024-11-01", "2025-04-01", "2026-04-01", "2015-06-15"])
def test_compute_api_versions_are_accepted(arm, token, version):
    assert arm.get(VM_PATH, token=token, api_version=version).status_code == 200


def test_an_api_version_of_another_type_is_refused(arm, token):
    """2022-12-01 is a Microsoft.Resources version (subscriptions), not a Compute one."""
    r = arm.get(VM_PATH, token=token, api_version="2022-12-01")
    assert r.status_code == 400
    assert arm_error(r)[0] == "NoRegisteredProviderFound"


# --- not found (404) and authorization (403), in ARM's order ------------------------------------------


def test_unknown_subscription(arm, token):
    other = "0b0b0b0b-1111-4222-8333-444444444444"
    r = arm.get(VM_PATH.replace(SUB, other), token=token)
    assert r.status_code == 404
    assert arm_error(r) == ("SubscriptionNotFound", f"The subscription '{other}' could not be found.")


def test_unreadable_resource_group_is_authorization_failed(arm, token):
    path = f"/subscriptions/{SUB}/resourcegroups/rg-nope"
    r = arm.get(path, token=token, api_version="2025-04-01")
    assert r.status_code == 403
    code, message = arm_error(r)
    assert code == "AuthorizationFailed"
    expected = (
        f"The client '{SYS_PRINCIPAL}' with object id '{SYS_PRINCIPAL}' does not have "
        "authorization to perform "
        f"action 'Microsoft.Resources/subscriptions/resourceGroups/read' over scope '{path}' or the scope is "
        "invalid. If access was recently granted, please refresh your credentials."
    )
    assert message.lower() == expected.lower()
    assert message.startswith(f"The client '{SYS_PRINCIPAL}' with object id '{SYS_PRINCIPAL}' does not have")


def test_missing_resource_group_with_subscription_reader(arm, emu, token):
    emu.apply_fix(
        "add-role-assignment", principal_id=SYS_PRINCIPAL, role="Reader", scope=f"/subscriptions/{SUB}"
    )
    r = arm.get(f"/subscriptions/{SUB}/resourcegroups/rg-nope", token=token, api_version="2025-04-01")
    assert r.status_code == 404
    assert arm_error(r) == ("ResourceGroupNotFound", "Resource group 'rg-nope' could not be found.")


def test_missing_vm(arm, token):
    r = arm.get(VM_PATH.replace(VM, "vm-nope"), token=token)
    assert r.status_code == 404
    assert arm_error(r) == (
        "ResourceNotFound",
        f"The Resource 'Microsoft.Compute/virtualMachines/vm-nope' under resource group "
        f"'{RG}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


# --- subscriptions, resources, role assignments -------------------------------------------------------


def test_subscriptions_list(arm, token):
    r = arm.get("/subscriptions", token=token, api_version="2022-12-01")
    assert r.status_code == 200
    subs = r.json()["value"]
    assert len(subs) == 1
    sub = subs[0]
    assert sub["subscriptionId"] == SUB
    assert sub["id"] == f"/subscriptions/{SUB}"
    assert sub["tenantId"] == TENANT
    assert sub["displayName"] == "Emulated Subscription"
    assert sub["state"] == "Enabled"


def test_subscription_get(arm, token):
    r = arm.get(f"/subscriptions/{SUB}", token=token, api_version="2022-12-01")
    assert r.status_code == 200
    assert r.json()["subscriptionId"] == SUB


def test_resources_by_name_as_the_cli_asks(arm, imds):
    cli_token = imds.access_token("https://management.core.windows.net/")
    r = arm.get(
        f"/subscriptions/{SUB}/resources",
        token=cli_token,
        api_version="2024-11-01",
        params={"$filter": f"name eq '{VM}'", "$expand": "createdTime,changedTime,provisioningState"},
    )
    assert r.status_code == 200, r.text
    items = r.json()["value"]
    assert [i["name"] for i in items] == [VM]
    assert items[0]["identity"]["principalId"] == SYS_PRINCIPAL
    assert items[0]["type"] == "Microsoft.Compute/virtualMachines"
    assert {"createdTime", "changedTime", "provisioningState"} <= set(items[0])  # what $expand asked for


def test_resources_by_unknown_name_is_empty(arm, token):
    r = arm.get(
        f"/subscriptions/{SUB}/resources",
        token=token,
        api_version="2025-04-01",
        params={"$filter": "name eq 'x'"},
    )
    assert r.status_code == 200
    assert r.json()["value"] == []


def test_role_assignments_for_principal(arm, token):
    r = arm.get(
        f"{RG_SCOPE}/providers/Microsoft.Authorization/roleAssignments",
        token=token,
        api_version="2022-04-01",
        params={"$filter": f"principalId eq '{SYS_PRINCIPAL}'"},
    )
    assert r.status_code == 200, r.text
    mine = r.json()["value"]
    assert mine, "the system identity holds Reader on the resource group"
    props = mine[0]["properties"]
    assert props["principalId"] == SYS_PRINCIPAL
    assert props["principalType"] == "ServicePrincipal"
    assert props["scope"].lower() == RG_SCOPE.lower()
    assert props["roleDefinitionId"] == (
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{READER_ROLE_ID}"
    )
    assert mine[0]["type"] == "Microsoft.Authorization/roleAssignments"


# --- headers and discovery ----------------------------------------------------------------------------


@pytest.mark.parametrize("authorized", [True, False], ids=["200", "401"])
def test_x_ms_headers(arm, token, authorized):
    r = arm.get(VM_PATH, token=token if authorized else None)
    assert GUID.match(r.headers["x-ms-request-id"]), r.headers
    assert GUID.match(r.headers["x-ms-correlation-request-id"])
    assert re.match(r"^[A-Z0-9]+:\d{8}T\d{6}Z:[0-9a-f-]{36}$", r.headers["x-ms-routing-request-id"])
    if authorized:
        assert int(r.headers["x-ms-ratelimit-remaining-subscription-reads"]) >= 0


def test_request_ids_differ(arm, token):
    a = arm.get(VM_PATH, token=token).headers["x-ms-request-id"]
    b = arm.get(VM_PATH, token=token).headers["x-ms-request-id"]
    assert a != b


@pytest.mark.parametrize("path", ["/metadata/endpoints", "//metadata/endpoints"])
def test_metadata_endpoints(arm, emu, path):
    r = arm.get(path, api_version="2022-09-01")
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, dict)
    assert isinstance(body["name"], str) and body["name"]
    auth = body["authentication"]
    assert isinstance(auth["loginEndpoint"], str)
    assert auth["audiences"][0] in ARM_AUDIENCES
    assert set(auth["audiences"]) <= set(ARM_AUDIENCES)
    assert isinstance(body["suffixes"], dict)
    assert body["resourceManager"].rstrip("/") == emu.arm_url.rstrip("/")


def test_unknown_route_is_an_arm_error(arm, token):
    r = arm.get(f"/subscriptions/{SUB}/providers/Microsoft.Nothing/things", token=token)
    assert 400 <= r.status_code < 500
    arm_error(r)


def test_tls_only(emu, arm, token):
    """ARM speaks TLS only: a plain-HTTP request to its port is closed without any HTTP answer, and the
    listener keeps serving TLS clients afterwards (so a broken listener cannot pass for a refusal)."""
    import requests

    with plain_session() as s, pytest.raises(requests.ConnectionError):
        s.get(emu.arm_url.replace("https://", "http://") + VM_PATH, timeout=5)
    r = arm.get(VM_PATH, token=token)
    assert r.status_code == 200, r.text[:200]
    assert r.json()["identity"]["principalId"] == SYS_PRINCIPAL


def test_resources_by_group_and_name_as_the_cli_asks(arm, token):
    r = arm.get(
        f"/subscriptions/{SUB}/resources",
        token=token,
        api_version="2024-11-01",
        params={"$filter": f"resourceGroup eq '{RG}' and name eq '{VM}'"},
    )
    assert r.status_code == 200, r.text
    assert [i["name"] for i in r.json()["value"]] == [VM]


def test_resource_groups_list(arm, token):
    r = arm.get(f"/subscriptions/{SUB}/resourcegroups", token=token, api_version="2025-04-01")
    assert r.status_code == 200
    assert RG in [g["name"] for g in r.json()["value"]]


def test_reader_role_definition(arm, token):
    r = arm.get(
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions",
        token=token,
        api_version="2022-05-01-preview",
        params={"$filter": "roleName eq 'Reader'"},
    )
    assert r.status_code == 200, r.text
    (reader,) = r.json()["value"]
    assert reader["name"] == READER_ROLE_ID
    assert reader["properties"]["roleName"] == "Reader"
    assert reader["properties"]["type"] == "BuiltInRole"
    assert reader["properties"]["permissions"][0]["actions"] == ["*/read"]


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Token abc"])
def test_malformed_authorization_header(arm, header):
    r = arm.get(VM_PATH, headers={"Authorization": header})
    assert r.status_code == 401
    assert arm_error(r)[0] == "AuthenticationFailed"


def test_global_reads_header(arm, token):
    r = arm.get(VM_PATH, token=token)
    assert int(r.headers["x-ms-ratelimit-remaining-subscription-global-reads"]) >= 0


def test_vm_without_identity_omits_the_block(arm, token):
    r = arm.get(VM_PATH.replace(VM, "vm-build-agent"), token=token)
    assert r.status_code == 200
    assert "identity" not in r.json()  # ARM omits the key (docs/protocol.md#resources-and-bodies)


def test_role_assignments_cli_forms(arm, token):
    base = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments"
    # `az role assignment list --all --assignee-object-id OID`: the principal's assignments below the scope
    everywhere = arm.get(
        base, token=token, api_version="2022-04-01", params={"$filter": f"principalId eq '{SYS_PRINCIPAL}'"}
    )
    assert everywhere.status_code == 200, everywhere.text
    assert [a["properties"]["scope"].lower() for a in everywhere.json()["value"]] == [
        s.lower() for s in SYS_ASSIGNMENT_SCOPES
    ]
    # `az role assignment list` (no scope): atScope() at the subscription excludes the RG assignment
    at_scope = arm.get(base, token=token, api_version="2022-04-01", params={"$filter": "atScope()"})
    assert at_scope.status_code == 200, at_scope.text
    assert all(a["properties"]["scope"].lower() != RG_SCOPE.lower() for a in at_scope.json()["value"])
    # the API refuses atScope() with principalId eq (docs/protocol.md#role-assignments-and-definitions)
    both = arm.get(
        base,
        token=token,
        api_version="2022-04-01",
        params={"$filter": f"atScope() and principalId eq '{SYS_PRINCIPAL}'"},
    )
    assert both.status_code == 400


def test_token_is_checked_before_the_subscription(arm):
    other = "0b0b0b0b-1111-4222-8333-444444444444"
    r = arm.get(VM_PATH.replace(SUB, other), token="not-a-jwt")
    assert r.status_code == 401
    assert arm_error(r)[0] == "InvalidAuthenticationToken"


def test_connections_are_kept_alive(arm, token):
    """Like real ARM, the emulator keeps connections alive (and answers with TCP_NODELAY): a client can
    reuse its TLS connection."""
    r = arm.get(VM_PATH, token=token)
    assert r.status_code == 200
    assert r.raw.version == 11
    assert r.headers.get("Connection", "").lower() != "close"
