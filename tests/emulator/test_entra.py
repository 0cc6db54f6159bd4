"""Entra ID: the operator principal, discovery, the v1/v2 client-credentials token endpoints and their errors.

First the layer without a socket (werkzeug test requests against a Backend), then the real clients over
loopback HTTPS: azure-identity's ``ClientSecretCredential`` (sync and async) and MSAL, with a management SDK
reading the VM as the operator. Last, the operator's per-run secret: exported for a terminal, never shown.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.emulator import (
    VM_PATH,
    ManualClock,
    arm_error,
    json_of,
    unverified_claims,
    verify_token,
    wsgi_request,
)
from support.timing import SLACK, wait_until
from support.world import (
    OPERATOR_CLIENT,
    OPERATOR_NAME,
    OPERATOR_PRINCIPAL,
    RG,
    SUB,
    SUB_SCOPE,
    SYS_CLIENT,
    TENANT,
    VM,
)

from mi_helpers.constants import Arm, Graph
from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.emulator.arm import ArmLayer
from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.endpoints import Endpoints
from mi_helpers.emulator.entra import APP_TOKEN_LIFETIME, EntraLayer
from mi_helpers.validate import InputError

WALL = 1_750_000_000.0
BASE = "https://127.0.0.1:8444"
GRAPH = "https://127.0.0.1:8445"
CP1 = json.dumps({"access_token": {"xms_cc": {"values": ["CP1"]}}})
ENVELOPE = {
    "error",
    "error_description",
    "error_codes",
    "timestamp",
    "trace_id",
    "correlation_id",
    "error_uri",
}
_DESCRIPTION_TAIL = re.compile(
    r"\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\n"
    r"Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$"
)


@pytest.fixture
def backend() -> Backend:
    return Backend("healthy", clock=ManualClock(wall=WALL))


@pytest.fixture
def layer(backend: Backend) -> EntraLayer:
    ep = Endpoints(
        "http://127.0.0.1:1", "https://127.0.0.1:2", "http://127.0.0.1:3/_emulator", "", 0, "", "k"
    )
    ep = Endpoints(**{**ep.__dict__, "entra_url": BASE, "graph_url": GRAPH})
    return EntraLayer(backend, lambda: ep)


def _secret(backend: Backend) -> str:
    creds = backend.operator_credentials()
    assert creds is not None and creds[0] == OPERATOR_CLIENT
    return creds[1]


def _post(layer: EntraLayer, path: str, form: dict[str, str], headers: dict[str, str] | None = None) -> Any:
    hdrs = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    return layer.handle(
        wsgi_request(path, method="POST", body=urlencode(form).encode(), headers=hdrs, base_url=BASE)
    )


def _v2(
    backend: Backend, scope: str = "https://management.azure.com/.default", **extra: str
) -> dict[str, str]:
    form = {
        "client_id": OPERATOR_CLIENT,
        "grant_type": "client_credentials",
        "client_info": "1",
        "client_secret": _secret(backend),
        "scope": scope,
    }
    form.update(extra)
    return {k: v for k, v in form.items() if v != "<drop>"}


def _entra_error(r: Any, status: int, error: str, code: int, text: str) -> dict[str, Any]:
    """Assert Entra's error envelope and return the body."""
    body = json_of(r)
    assert r.status_code == status, body
    assert set(body) == ENVELOPE, body
    assert body["error"] == error and body["error_codes"] == [code], body
    assert body["error_description"].startswith(f"AADSTS{code}: {text}"), body["error_description"]
    assert _DESCRIPTION_TAIL.search(body["error_description"]), body["error_description"]
    assert body["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"
    assert f"Trace ID: {body['trace_id']}\r\n" in body["error_description"]
    assert r.headers["x-ms-request-id"] == body["trace_id"]
    return dict(body)


# --- the operator in the world ----------------------------------------------------------------------------


def test_the_default_world_has_the_operator_as_owner_of_the_subscription(backend: Backend) -> None:
    world = backend.world_dict()
    assert world["operator"] == OPERATOR_NAME
    (sp,) = [p for p in world["service_principals"] if p["display_name"] == OPERATOR_NAME]
    assert (sp["app_id"], sp["object_id"]) == (OPERATOR_CLIENT, OPERATOR_PRINCIPAL)
    assert sp["graph_app_roles"] == [Graph.DIRECTORY_READ_ALL]
    owner = [a for a in world["role_assignments"] if a["principal_id"] == OPERATOR_PRINCIPAL]
    assert [(a["role"], a["scope"]) for a in owner] == [("Owner", SUB_SCOPE)]
    text = json.dumps(world).lower()
    assert backend.operator_credentials()[1].lower() not in text  # type: ignore[index]
    assert "client_secret" not in text


def test_the_secret_is_new_per_run_and_survives_scenario_switches(backend: Backend) -> None:
    first = _secret(backend)
    assert re.fullmatch(r"[A-Za-z0-9]{3}8Q~[A-Za-z0-9_.~-]{34}", first), "shaped like an Entra secret"
    backend.set_scenario("no-role-assignment")
    assert _secret(backend) == first
    assert _secret(Backend("healthy")) != first
    assert backend.world.assignments_for(OPERATOR_PRINCIPAL), "no-role-assignment keeps the operator's role"


# --- discovery ------------------------------------------------------------------------------------------


def test_v2_openid_configuration_is_what_msal_reads(layer: EntraLayer) -> None:
    r = layer.handle(wsgi_request(f"/{TENANT}/v2.0/.well-known/openid-configuration", base_url=BASE))
    assert r.status_code == 200 and r.headers["Cache-Control"] == "max-age=86400, private"
    doc = json_of(r)
    assert doc["token_endpoint"] == f"{BASE}/{TENANT}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{BASE}/{TENANT}/oauth2/v2.0/authorize"
    assert doc["issuer"] == f"{BASE}/{TENANT}/v2.0"
    assert doc["jwks_uri"] == f"{BASE}/{TENANT}/discovery/v2.0/keys"
    assert doc["msgraph_host"] == GRAPH.removeprefix("https://")
    assert "client_secret_post" in doc["token_endpoint_auth_methods_supported"]


def test_v1_openid_configuration_names_the_v1_issuer_and_token_endpoint(layer: EntraLayer) -> None:
    doc = json_of(layer.handle(wsgi_request(f"/{TENANT}/.well-known/openid-configuration", base_url=BASE)))
    assert doc["issuer"] == f"https://sts.windows.net/{TENANT}/"
    assert doc["token_endpoint"] == f"{BASE}/{TENANT}/oauth2/token"
    assert doc["jwks_uri"] == f"{BASE}/common/discovery/keys"


@pytest.mark.parametrize("alias", ["organizations", "common"])
def test_tenant_aliases_have_a_v2_configuration(layer: EntraLayer, alias: str) -> None:
    """``az logout`` reads ``organizations``; the issuer keeps Entra's ``{tenantid}`` placeholder."""
    doc = json_of(
        layer.handle(wsgi_request(f"/{alias}/v2.0/.well-known/openid-configuration", base_url=BASE))
    )
    assert doc["token_endpoint"] == f"{BASE}/{alias}/oauth2/v2.0/token"
    assert doc["issuer"] == f"{BASE}/{{tenantid}}/v2.0"


@pytest.mark.parametrize(
    "path",
    [
        "/11111111-2222-4333-8444-555555555555/v2.0/.well-known/openid-configuration",
        # v1 knows no "organizations" (panva/openid-client#175)
        "/organizations/.well-known/openid-configuration",
        "/contoso.example/discovery/keys",
    ],
)
def test_unknown_tenant_is_aadsts90002(layer: EntraLayer, path: str) -> None:
    r = layer.handle(
        wsgi_request(
            path, base_url=BASE, headers={"client-request-id": "c0ffee00-0000-4000-8000-000000000001"}
        )
    )
    tenant = path.split("/")[1]
    body = _entra_error(r, 400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found. Check to make sure")
    assert body["correlation_id"] == "c0ffee00-0000-4000-8000-000000000001"


def test_keys_are_the_one_key_set_that_signs_every_token(layer: EntraLayer, backend: Backend) -> None:
    for path in (f"/{TENANT}/discovery/v2.0/keys", "/common/discovery/keys"):
        r = layer.handle(wsgi_request(path, base_url=BASE))
        assert r.status_code == 200 and json_of(r) == backend.jwks()


# --- tokens ---------------------------------------------------------------------------------------------


def test_v2_token_for_arm_has_an_app_tokens_claims(layer: EntraLayer, backend: Backend) -> None:
    r = _post(layer, f"/{TENANT}/oauth2/v2.0/token", _v2(backend))
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Cache-Control"] == "no-store, no-cache" and r.headers["Pragma"] == "no-cache"
    body = json_of(r)
    assert list(body) == ["token_type", "expires_in", "ext_expires_in", "access_token"]
    assert (
        body["token_type"] == "Bearer" and body["expires_in"] == body["ext_expires_in"] == APP_TOKEN_LIFETIME
    )
    claims = unverified_claims(body["access_token"])
    assert claims["aud"] == "https://management.azure.com"  # the scope minus "/.default"
    assert claims["iss"] == claims["idp"] == f"https://sts.windows.net/{TENANT}/"
    assert (claims["appid"], claims["oid"], claims["sub"], claims["tid"]) == (
        OPERATOR_CLIENT,
        OPERATOR_PRINCIPAL,
        OPERATOR_PRINCIPAL,
        TENANT,
    )
    assert (claims["appidacr"], claims["idtyp"], claims["ver"]) == ("1", "app", "1.0")
    assert "roles" not in claims and "xms_mirid" not in claims
    assert claims["exp"] - claims["iat"] == APP_TOKEN_LIFETIME and claims["iat"] == int(WALL)


def test_a_cae_capable_client_gets_the_long_lifetime(layer: EntraLayer, backend: Backend) -> None:
    """az declares CP1 (claims xms_cc): such clients get long-lived tokens."""
    form = _v2(backend, "https://management.core.windows.net//.default", claims=CP1)
    body = json_of(_post(layer, f"/{TENANT}/oauth2/v2.0/token", form))
    assert body["expires_in"] == backend.issuer.lifetime > APP_TOKEN_LIFETIME
    assert unverified_claims(body["access_token"])["aud"] == Arm.CLI_RESOURCE


@pytest.mark.parametrize("scope", [f"{Graph.URL}/.default", f"{GRAPH}//.default", f"{Graph.APP_ID}/.default"])
def test_a_graph_token_carries_the_operators_graph_permissions(
    layer: EntraLayer, backend: Backend, scope: str
) -> None:
    body = json_of(_post(layer, f"/{TENANT}/oauth2/v2.0/token", _v2(backend, scope)))
    claims = unverified_claims(body["access_token"])
    assert claims["roles"] == [Graph.DIRECTORY_READ_ALL]
    assert claims["aud"] == scope.removesuffix("/.default")


def test_v1_token_endpoint_takes_resource_and_answers_strings(layer: EntraLayer, backend: Backend) -> None:
    form = _v2(backend, scope="<drop>", resource="https://management.azure.com/")
    r = _post(layer, f"/{TENANT}/oauth2/token", form)
    assert r.status_code == 200, r.get_data(as_text=True)
    body = json_of(r)
    assert list(body) == [
        "token_type",
        "expires_in",
        "ext_expires_in",
        "expires_on",
        "not_before",
        "resource",
        "access_token",
    ]
    assert all(isinstance(v, str) for v in body.values())
    assert body["resource"] == "https://management.azure.com/"
    claims = unverified_claims(body["access_token"])
    assert claims["aud"] == "https://management.azure.com/" and str(claims["exp"]) == body["expires_on"]


def test_client_secret_basic_authenticates_too(layer: EntraLayer, backend: Backend) -> None:
    basic = base64.b64encode(f"{OPERATOR_CLIENT}:{_secret(backend)}".encode()).decode()
    form = {"grant_type": "client_credentials", "scope": "https://management.azure.com/.default"}
    r = _post(layer, f"/{TENANT}/oauth2/v2.0/token", form, {"Authorization": f"Basic {basic}"})
    assert r.status_code == 200, r.get_data(as_text=True)


def test_the_operators_token_reads_through_arm_and_a_graph_token_does_not(
    layer: EntraLayer, backend: Backend
) -> None:
    arm = ArmLayer(backend)

    def vm_read(scope: str) -> Any:
        token = json_of(_post(layer, f"/{TENANT}/oauth2/v2.0/token", _v2(backend, scope)))["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        return arm.handle(
            wsgi_request(VM_PATH, query={"api-version": "2024-07-01"}, headers=headers, base_url=BASE)
        )

    r = vm_read("https://management.azure.com/.default")
    assert r.status_code == 200 and json_of(r)["name"] == VM
    refused = vm_read(f"{Graph.URL}/.default")
    assert refused.status_code == 401 and arm_error(refused)[0] == "InvalidAuthenticationTokenAudience"


@pytest.mark.parametrize(
    ("change", "status", "error", "code", "text"),
    [
        (
            {"client_secret": "not-the-secret"},
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided.",
        ),
        ({"client_id": SYS_CLIENT}, 401, "invalid_client", 7000215, "Invalid client secret provided."),
        (
            {"client_id": "11111111-2222-4333-8444-555555555555"},
            400,
            "unauthorized_client",
            700016,
            "Application with identifier '11111111-2222-4333-8444-555555555555' was not found in the "
            f"directory '{TENANT}'.",
        ),
        (
            {"client_secret": "<drop>"},
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ),
        (
            {"grant_type": "<drop>"},
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        ),
        (
            {"grant_type": "password"},
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type 'password'.",
        ),
        (
            {"client_id": "<drop>"},
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        ),
        (
            {"scope": "<drop>"},
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        ),
        (
            {"scope": "<drop>", "resource": Arm.RESOURCE},
            400,
            "invalid_request",
            901002,
            "The 'resource' request parameter is not supported.",
        ),
        (
            {"scope": "https://management.azure.com/user_impersonation"},
            400,
            "invalid_scope",
            1002012,
            "The provided value for scope https://management.azure.com/user_impersonation is not valid. "
            "Client credential flows must have a scope value with /.default suffixed",
        ),
        (
            {"scope": f"{Arm.SCOPE} {Graph.URL}/.default"},
            400,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.",
        ),
        (
            {"scope": "https://management.azure.co/.default"},
            400,
            "invalid_resource",
            500011,
            "The resource principal named https://management.azure.co was not found in the tenant named "
            f"{TENANT}.",
        ),
    ],
)
def test_token_errors_have_entras_codes_texts_and_statuses(
    layer: EntraLayer, backend: Backend, change: dict[str, str], status: int, error: str, code: int, text: str
) -> None:
    r = _post(
        layer,
        f"/{TENANT}/oauth2/v2.0/token",
        _v2(backend, **change),
        {"client-request-id": "1" * 8 + "-1111-4111-8111-" + "1" * 12},
    )
    body = _entra_error(r, status, error, code, text)
    assert body["correlation_id"] == "11111111-1111-4111-8111-111111111111"
    assert _secret(backend) not in r.get_data(as_text=True)


def test_token_endpoint_refusals_before_the_body(layer: EntraLayer, backend: Backend) -> None:
    preflight = layer.handle(wsgi_request(f"/{TENANT}/oauth2/v2.0/token", method="OPTIONS", base_url=BASE))
    assert preflight.status_code == 200 and preflight.headers["Allow"] == "POST, OPTIONS"
    r = layer.handle(wsgi_request(f"/{TENANT}/oauth2/v2.0/token", base_url=BASE))
    _entra_error(
        r, 400, "invalid_request", 900561, "The endpoint only accepts POST, OPTIONS requests. Received a GET"
    )
    r = _post(layer, "/common/oauth2/v2.0/token", _v2(backend))
    _entra_error(
        r, 400, "invalid_request", 9001023, "The grant type is not supported over the /common or /consumers"
    )
    r = _post(layer, "/11111111-2222-4333-8444-555555555555/oauth2/token", _v2(backend))
    _entra_error(r, 400, "invalid_tenant", 90002, "Tenant '11111111-2222-4333-8444-555555555555' not found.")
    r = _post(layer, f"/{TENANT}/oauth2/v2.0/token", _v2(backend, scope="<drop>"))
    _entra_error(
        r, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."
    )
    r = _post(layer, f"/{TENANT}/oauth2/token", _v2(backend))  # v1 wants resource=
    _entra_error(
        r,
        400,
        "invalid_request",
        900144,
        "The request body must contain the following parameter: 'resource'.",
    )


def test_unserved_paths_get_a_plain_404(layer: EntraLayer) -> None:
    r = layer.handle(wsgi_request(f"/{TENANT}/oauth2/v2.0/authorize", base_url=BASE))
    assert r.status_code == 404 and "client-credentials" in r.get_data(as_text=True)


def test_a_world_without_an_operator_exports_no_operator() -> None:
    from mi_helpers.emulator.world import World

    data = World.default().to_dict()
    data["operator"] = ""
    backend = Backend("healthy", world=data)
    assert backend.operator_credentials() is None
    ep = Endpoints(
        "http://i", "https://a", "http://x/_emulator", "", 0, "", "k", tenant_id=TENANT, entra_url=BASE
    )
    env = ep.environment()
    assert Env.MI_HELPERS_OPERATOR_CLIENT_ID not in env and Env.MI_HELPERS_OPERATOR_CLIENT_SECRET not in env
    assert env[Env.MI_HELPERS_TENANT_ID] == TENANT
    data["operator"] = "nobody"
    with pytest.raises(InputError, match=r"^world\.operator: "):
        Backend("healthy", world=data)


# --- real clients over loopback -----------------------------------------------------------------------------


def _operator(emu: Any) -> tuple[str, str, str, str]:
    env = emu.environment()
    return (
        env[Env.MI_HELPERS_TENANT_ID],
        env[Env.MI_HELPERS_OPERATOR_CLIENT_ID],
        env[Env.MI_HELPERS_OPERATOR_CLIENT_SECRET],
        env[Env.MI_HELPERS_ENTRA_URL],
    )


def _credential(emu: Any, secret: str | None = None, *, aio: bool = False) -> Any:
    if aio:
        from azure.identity.aio import ClientSecretCredential as Credential
    else:
        from azure.identity import ClientSecretCredential as Credential  # type: ignore[assignment]
    tenant, client_id, real_secret, authority = _operator(emu)
    # aiohttp does not read REQUESTS_CA_BUNDLE: the async transport is given the bundle.
    extra = {"connection_verify": emu.ca_bundle} if aio else {}
    return Credential(
        tenant,
        client_id,
        secret or real_secret,
        authority=authority,
        disable_instance_discovery=True,
        **extra,
    )


def test_environment_names_entra_graph_tenant_and_operator(emu: Any) -> None:
    env = emu.environment()
    assert env[Env.MI_HELPERS_ENTRA_URL] == emu.entra_url and emu.entra_url.startswith("https://127.0.0.1:")
    assert env[Env.MI_HELPERS_GRAPH_URL] == emu.graph_url and emu.graph_url.startswith("https://127.0.0.1:")
    assert len({emu.entra_url, emu.graph_url, emu.arm_url}) == 3, "three listeners, three hosts"
    assert (env[Env.MI_HELPERS_TENANT_ID], env[Env.MI_HELPERS_OPERATOR_CLIENT_ID]) == (
        TENANT,
        OPERATOR_CLIENT,
    )
    for name in (Env.AZURE_CLIENT_ID, Env.AZURE_CLIENT_SECRET, Env.AZURE_TENANT_ID):
        assert name not in env, f"{name} would change what DefaultAzureCredential does in every kernel"


def test_client_secret_credential_reads_the_vm_as_the_operator(emu: Any) -> None:
    from azure.mgmt.compute import ComputeManagementClient

    credential = _credential(emu)
    token = credential.get_token(Arm.SCOPE)
    claims = verify_token(emu, token.token, "https://management.azure.com")
    assert (claims["oid"], claims["appid"], claims["appidacr"]) == (OPERATOR_PRINCIPAL, OPERATOR_CLIENT, "1")
    client = ComputeManagementClient(credential, SUB, base_url=emu.arm_url, connection_verify=emu.ca_bundle)
    vm = client.virtual_machines.get(RG, VM)
    assert vm.name == VM
    seen = [(e["listener"], e["method"], e["path"].split("/")[-1]) for e in emu.request_log()]
    assert seen[:2] == [("entra", "GET", "openid-configuration"), ("entra", "POST", "token")], seen
    assert ("arm", "GET", VM) in seen
    assert {e["client"] for e in emu.request_log()} == {"127.0.0.1"}


def test_a_wrong_secret_is_aadsts7000215_in_the_sdk_exception(emu: Any) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    with pytest.raises(ClientAuthenticationError) as err:
        _credential(emu, "abc8Q~wrong-secret-wrong-secret-wrong-sec").get_token(Arm.SCOPE)
    assert "AADSTS7000215: Invalid client secret provided." in str(err.value)
    assert _operator(emu)[2] not in str(err.value)


def test_async_client_secret_credential_signs_in(emu: Any) -> None:
    import asyncio

    async def run() -> str:
        async with _credential(emu, aio=True) as credential:
            return str((await credential.get_token(Arm.SCOPE)).token)

    assert unverified_claims(asyncio.run(run()))["oid"] == OPERATOR_PRINCIPAL


def test_msal_confidential_client_without_instance_discovery(emu: Any) -> None:
    import msal

    tenant, client_id, secret, authority = _operator(emu)

    def app(credential: str, tenant_id: str = tenant) -> Any:
        return msal.ConfidentialClientApplication(
            client_id,
            client_credential=credential,
            authority=f"{authority}/{tenant_id}",
            instance_discovery=False,
        )

    result = app(secret).acquire_token_for_client([f"{Graph.URL}/.default"])
    assert result.get("token_type") == "Bearer", {k: v for k, v in result.items() if k != "access_token"}
    assert unverified_claims(result["access_token"])["roles"] == [Graph.DIRECTORY_READ_ALL]
    refused = app("wrong").acquire_token_for_client([Arm.SCOPE])
    assert refused["error"] == "invalid_client" and refused["error_codes"] == [7000215]
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        app(secret, "11111111-2222-4333-8444-555555555555")


def test_a_secret_in_a_query_string_never_reaches_the_request_log(emu: Any) -> None:
    tenant, client_id, secret, authority = _operator(emu)
    with requests.Session() as s:
        s.trust_env = False
        r = s.post(
            f"{authority}/{tenant}/oauth2/v2.0/token",
            params={"client_secret": secret},
            data={"grant_type": "client_credentials", "client_id": client_id, "scope": Arm.SCOPE},
            verify=emu.ca_bundle,
            timeout=10,
        )
    assert r.status_code == 401  # Entra reads the secret from the body only
    log = json.dumps(emu.request_log(), ensure_ascii=False)
    assert secret not in log
    assert secret[:3] + "…(40 chars)" in log


# --- the secret is a secret -------------------------------------------------------------------------------


def test_the_secret_is_in_no_repr_world_dump_or_admin_reply(emu: Any) -> None:
    from mi_helpers.emulator import AdminClient

    secret = _operator(emu)[2]
    shown = [
        repr(emu),
        repr(emu.endpoints()),
        repr(emu.backend),
        repr(emu.backend.secrets),
        str(emu.endpoints()),
    ]
    shown.append(json.dumps(emu.world_dict()))
    admin = AdminClient(emu.admin_url, emu.admin_key)
    shown += [json.dumps(admin.world_dict()), json.dumps(admin.health()), repr(admin)]
    shown.append(json.dumps(admin.request_log()))
    assert not [s for s in shown if secret in s]
    assert admin.environment()[Env.MI_HELPERS_OPERATOR_CLIENT_SECRET] == secret, "a terminal needs it"


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("mi-helpers")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mi_helpers.cli"]


@pytest.mark.timeout(90)
def test_mi_helpers_emulator_never_prints_the_secret_yet_its_exports_carry_it(tmp_path: Path) -> None:
    """The export lines read the secret from a private file: a shell gets the value, the screen never."""
    env_file = tmp_path / "emulator.env"
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    child = {
        k: v for k, v in os.environ.items() if not k.startswith("MI_HELPERS_") or k == "MI_HELPERS_GUARD_LOG"
    }
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(
            [*_cli(), "emulator", "--env-file", str(env_file)], stdout=o, stderr=e, env=child
        )
    try:
        wait_until(
            lambda: env_file.exists() and "export NO_PROXY" in out.read_text(),
            timeout=30 + SLACK,
            what="exports",
        )
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        secret = values[Env.MI_HELPERS_OPERATOR_CLIENT_SECRET]
        printed = out.read_text() + err.read_text()
        assert secret not in printed
        assert f"export {Env.MI_HELPERS_OPERATOR_CLIENT_ID}={OPERATOR_CLIENT}" in printed
        shell = subprocess.run(
            ["bash", "-c", f'{printed}\nprintf %s "${Env.MI_HELPERS_OPERATOR_CLIENT_SECRET}"'],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert shell.stdout == secret, shell.stderr
    finally:
        proc.terminate()
        proc.wait(10)


# --- nothing a client sends makes it answer 5xx ------------------------------------------------------------

_segments = st.sampled_from(
    [TENANT, "common", "organizations", "x", "", "v2.0", "oauth2", "token", ".well-known"]
)
_fields = st.dictionaries(
    st.sampled_from(["grant_type", "client_id", "client_secret", "scope", "resource", "claims", "x"]),
    st.text(max_size=40),
    max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(_segments, max_size=5),
    method=st.sampled_from(["GET", "POST", "PUT", "HEAD", "OPTIONS"]),
    form=_fields,
    content_type=st.sampled_from(
        ["application/x-www-form-urlencoded", "multipart/form-data", "text/plain", ""]
    ),
    basic=st.from_regex(r"[ -~]{0,30}", fullmatch=True),
)
def test_any_request_gets_an_answer_below_500(
    layer: EntraLayer, parts: list[str], method: str, form: dict[str, str], content_type: str, basic: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    if basic:
        headers["Authorization"] = "Basic " + basic
    request = wsgi_request(
        "/" + "/".join(parts), method=method, body=urlencode(form).encode(), headers=headers, base_url=BASE
    )
    assert layer.handle(request).status_code < 500


# ------------------------------------------------------------------ one directory for IMDS, Entra and ARM
def test_the_vm_identity_gets_a_graph_token_and_then_graphs_own_403(emu: Any) -> None:
    """az asks IMDS for a token whose resource is its cloud's Graph base URL: the emulator's Graph listener
    is a known resource, so the VM identity gets a token and Graph itself refuses (no AADSTS500011)."""
    token = requests.get(
        f"{emu.imds_url}/metadata/identity/oauth2/token",
        params={"api-version": "2018-02-01", "resource": emu.graph_url + "/"},
        headers={"Metadata": "true"},
        timeout=10,
    )
    assert token.status_code == 200, token.text
    r = requests.get(
        f"{emu.graph_url}/v1.0/servicePrincipals",
        headers={"Authorization": "Bearer " + token.json()["access_token"]},
        verify=emu.ca_bundle,
        timeout=10,
    )
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "Authorization_RequestDenied"


def test_the_operator_gets_a_token_for_an_application_the_world_declares(emu: Any) -> None:
    """Entra resolves a resource through the same tenant directory IMDS uses: the world's applications."""
    app = next(a for a in emu.world_dict()["applications"] if a["name"] == "mi-tutorial-api")
    token = _credential(emu).get_token(f"api://{app['app_id']}/.default")
    assert unverified_claims(token.token)["aud"] == f"api://{app['app_id']}"
    with pytest.raises(Exception, match="AADSTS500011"):
        _credential(emu).get_token("api://00000000-1111-2222-3333-444444444444/.default")


def test_cloud_metadata_names_the_emulators_own_entra_and_graph(emu: Any) -> None:
    """`az cloud register --endpoint-resource-manager` alone must set up a cloud that stays on loopback."""
    r = requests.get(
        f"{emu.arm_url}/metadata/endpoints",
        params={"api-version": "2022-09-01"},
        verify=emu.ca_bundle,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["authentication"]["loginEndpoint"] == emu.entra_url + "/"
    assert body["microsoftGraphResourceId"] == emu.graph_url + "/"
