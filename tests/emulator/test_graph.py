"""Microsoft Graph: service principals (managed identities among them), getByIds, and Graph's own rights.

The layer without a socket first (tokens from the backend's issuer, werkzeug test requests), then the
listener with real tokens: the operator's from azure-identity's ``ClientSecretCredential``, the VM
identity's from IMDS through ``ManagedIdentityCredential``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.emulator import ManualClock, json_of, mi_credential, wsgi_request
from support.world import (
    OPERATOR_CLIENT,
    OPERATOR_NAME,
    OPERATOR_PRINCIPAL,
    SYS_CLIENT,
    SYS_PRINCIPAL,
    TENANT,
    UAMI_DEPLOY_PRINCIPAL,
    UAMI_READER,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    VM,
    VM_RESOURCE_ID,
    uami_resource_id,
)

from mi_helpers.constants import Arm, Graph
from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.endpoints import Endpoints
from mi_helpers.emulator.graph import GRAPH_JSON, GraphLayer

WALL = 1_750_000_000.0
GRAPH = "https://127.0.0.1:8445"
DENIED = "Insufficient privileges to complete the operation."
CALLER_ID = "5e1f0c3a-0000-4000-8000-00000000c11e"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(wall=WALL)


@pytest.fixture
def backend(clock: ManualClock) -> Backend:
    return Backend("healthy", clock=clock)


@pytest.fixture
def layer(backend: Backend) -> GraphLayer:
    ep = Endpoints("http://i", "https://a", "http://x/_emulator", "", 0, "", "k", graph_url=GRAPH)
    return GraphLayer(backend, lambda: ep)


def _operator_token(
    backend: Backend, audience: str = GRAPH + "/", roles: tuple[str, ...] = ("Directory.Read.All",)
) -> str:
    return backend.issuer.issue_app_token(
        app_id=OPERATOR_CLIENT,
        object_id=OPERATOR_PRINCIPAL,
        audience=audience,
        roles=roles,
        now=backend.clock.time(),
    ).access_token


def _vm_token(backend: Backend, audience: str = GRAPH + "/") -> str:
    principal = backend.world.select_identity()
    return backend.issuer.issue(principal, audience, backend.clock.time()).access_token


def _call(
    layer: GraphLayer, path: str, token: str | None, *, method: str = "GET", body: Any = None, **query: str
) -> Any:
    headers = {"client-request-id": CALLER_ID}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    return layer.handle(
        wsgi_request(path, method=method, query=query or None, headers=headers, body=data, base_url=GRAPH)
    )


def _graph_error(r: Any, status: int, code: str, message: str) -> dict[str, Any]:
    """Graph's error envelope: code, message and an innerError naming this request."""
    body = json_of(r)
    assert r.status_code == status, body
    assert list(body) == ["error"] and list(body["error"]) == ["code", "message", "innerError"], body
    assert (body["error"]["code"], body["error"]["message"]) == (code, message), body
    inner = body["error"]["innerError"]
    assert list(inner) == ["date", "request-id", "client-request-id"]
    assert inner["request-id"] == r.headers["request-id"] and inner["client-request-id"] == CALLER_ID
    assert len(inner["date"]) == 19 and inner["date"][10] == "T", inner["date"]
    return dict(body)


def _spn_filter(name: str) -> str:
    return f"servicePrincipalNames/any(c:c eq '{name}')"


# --- service principals ---------------------------------------------------------------------------------


def test_a_managed_identity_is_a_service_principal(layer: GraphLayer, backend: Backend) -> None:
    """What `az ad sp show --id <client id>` does: the servicePrincipalNames lookup, then the object."""
    token = _operator_token(backend)
    r = _call(layer, "/v1.0/servicePrincipals", token, **{"$filter": _spn_filter(UAMI_READER_CLIENT)})
    assert r.status_code == 200 and r.headers["Content-Type"] == GRAPH_JSON
    listed = json_of(r)
    assert listed["@odata.context"] == f"{GRAPH}/v1.0/$metadata#servicePrincipals"
    (found,) = listed["value"]
    assert found["id"] == UAMI_READER_PRINCIPAL
    one = json_of(_call(layer, f"/v1.0/servicePrincipals/{found['id']}", token))
    assert one["@odata.context"] == f"{GRAPH}/v1.0/$metadata#servicePrincipals/$entity"
    assert (one["appId"], one["displayName"], one["servicePrincipalType"]) == (
        UAMI_READER_CLIENT,
        UAMI_READER,
        "ManagedIdentity",
    )
    assert one["alternativeNames"] == [
        "isExplicit=True",
        uami_resource_id(UAMI_READER).replace("resourceGroups", "resourcegroups"),
    ]
    assert one["servicePrincipalNames"][0] == UAMI_READER_CLIENT
    assert one["servicePrincipalNames"][1].startswith("https://identity.azure.net/")
    assert one["accountEnabled"] is True and one["passwordCredentials"] == []


def test_the_vms_system_identity_and_the_operator(layer: GraphLayer, backend: Backend) -> None:
    token = _operator_token(backend)
    vm = json_of(_call(layer, f"/v1.0/servicePrincipals(appId='{SYS_CLIENT}')", token))
    assert (vm["id"], vm["displayName"]) == (SYS_PRINCIPAL, VM)
    assert vm["alternativeNames"] == [
        "isExplicit=False",
        VM_RESOURCE_ID.replace("resourceGroups", "resourcegroups"),
    ]
    op = json_of(_call(layer, f"/beta/servicePrincipals/{OPERATOR_PRINCIPAL}", token))
    assert (op["appId"], op["displayName"], op["servicePrincipalType"]) == (
        OPERATOR_CLIENT,
        OPERATOR_NAME,
        "Application",
    )
    assert op["servicePrincipalNames"] == [OPERATOR_CLIENT] and op["alternativeNames"] == []
    assert op["appOwnerOrganizationId"] == TENANT


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (_spn_filter(OPERATOR_CLIENT), [OPERATOR_PRINCIPAL]),
        (_spn_filter("11111111-2222-4333-8444-555555555555"), []),
        (f"appId eq '{SYS_CLIENT}'", [SYS_PRINCIPAL]),
        ("displayName eq 'UAMI-READER'", [UAMI_READER_PRINCIPAL]),  # string comparison ignores case
        ("startswith(displayName,'uami-')", [UAMI_READER_PRINCIPAL, UAMI_DEPLOY_PRINCIPAL]),
        (
            "servicePrincipalType eq 'ManagedIdentity' and startswith(displayName,'uami-d')",
            [UAMI_DEPLOY_PRINCIPAL],
        ),
        ("displayName eq 'it''s not and there'", []),  # quotes and "and" inside a literal
    ],
)
def test_filters_az_sends(layer: GraphLayer, backend: Backend, flt: str, expected: list[str]) -> None:
    r = _call(layer, "/v1.0/servicePrincipals", _operator_token(backend), **{"$filter": flt})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert [v["id"] for v in json_of(r)["value"]] == expected


def test_the_unfiltered_list_is_every_service_principal_and_select_trims(
    layer: GraphLayer, backend: Backend
) -> None:
    token = _operator_token(backend)
    ids = [v["id"] for v in json_of(_call(layer, "/v1.0/servicePrincipals", token))["value"]]
    assert set(ids) == {OPERATOR_PRINCIPAL, SYS_PRINCIPAL, UAMI_READER_PRINCIPAL, UAMI_DEPLOY_PRINCIPAL}
    selected = json_of(
        _call(layer, "/v1.0/servicePrincipals", token, **{"$select": "appId,displayName", "$top": "1"})
    )
    assert selected["@odata.context"].endswith("#servicePrincipals(appId,displayName)")
    assert len(selected["value"]) == 1 and list(selected["value"][0]) == ["appId", "displayName"]


def test_a_disabled_system_identity_has_no_service_principal(layer: GraphLayer, backend: Backend) -> None:
    backend.set_scenario("user-assigned-only")  # the VM's system identity is off
    token = _operator_token(backend)
    r = _call(layer, f"/v1.0/servicePrincipals/{SYS_PRINCIPAL}", token)
    _graph_error(
        r,
        404,
        "Request_ResourceNotFound",
        f"Resource '{SYS_PRINCIPAL}' does not exist or one of its queried reference-property objects are not "
        "present.",
    )
    listed = json_of(
        _call(layer, "/v1.0/servicePrincipals", token, **{"$filter": f"appId eq '{SYS_CLIENT}'"})
    )
    assert listed["value"] == []


@pytest.mark.parametrize(
    ("path", "query", "status", "code", "message"),
    [
        (
            "/v1.0/servicePrincipals",
            {"$filter": "tags/any(t:t eq 'x')"},
            400,
            "BadRequest",
            "Invalid filter clause",
        ),
        (
            "/v1.0/servicePrincipals",
            {"$filter": "homepage eq 'x'"},
            400,
            "Request_UnsupportedQuery",
            "Unsupported or invalid query filter clause specified for property 'homepage' of resource "
            "'ServicePrincipal'.",
        ),
        (
            "/v1.0/servicePrincipals",
            {"$expand": "owners"},
            400,
            "BadRequest",
            "Unrecognized query argument specified: 'expand'.",
        ),
        (
            "/v1.0/servicePrincipals/not-a-guid",
            {},
            400,
            "Request_BadRequest",
            "Invalid object identifier 'not-a-guid'.",
        ),
        ("/v1.0/me", {}, 400, "BadRequest", "/me request is only valid with delegated authentication flow."),
        ("/v1.0/users", {}, 400, "BadRequest", "Resource not found for the segment 'users'."),
        ("/v2.0/servicePrincipals", {}, 400, "BadRequest", "Invalid version: v2.0"),
    ],
)
def test_requests_graph_refuses(
    layer: GraphLayer,
    backend: Backend,
    path: str,
    query: dict[str, str],
    status: int,
    code: str,
    message: str,
) -> None:
    _graph_error(_call(layer, path, _operator_token(backend), **query), status, code, message)


# --- directoryObjects -------------------------------------------------------------------------------------


def test_get_by_ids_as_az_role_assignment_list_sends_it(layer: GraphLayer, backend: Backend) -> None:
    body = {
        "ids": [SYS_PRINCIPAL, "11111111-2222-4333-8444-555555555555", UAMI_READER_PRINCIPAL],
        "types": ["user", "group", "servicePrincipal", "directoryObjectPartnerReference"],
    }
    r = _call(layer, "/v1.0/directoryObjects/getByIds", _operator_token(backend), method="POST", body=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    doc = json_of(r)
    assert doc["@odata.context"] == f"{GRAPH}/v1.0/$metadata#directoryObjects"
    assert [(v["@odata.type"], v["id"]) for v in doc["value"]] == [
        ("#microsoft.graph.servicePrincipal", SYS_PRINCIPAL),
        ("#microsoft.graph.servicePrincipal", UAMI_READER_PRINCIPAL),
    ]
    assert doc["value"][0]["servicePrincipalNames"][0] == SYS_CLIENT  # what az shows as principalName
    only_users = _call(
        layer,
        "/v1.0/directoryObjects/getByIds",
        _operator_token(backend),
        method="POST",
        body={**body, "types": ["user"]},
    )
    assert json_of(only_users)["value"] == []
    one = json_of(_call(layer, f"/v1.0/directoryObjects/{OPERATOR_PRINCIPAL}", _operator_token(backend)))
    assert one["@odata.type"] == "#microsoft.graph.servicePrincipal" and one["appId"] == OPERATOR_CLIENT


@pytest.mark.parametrize(
    "body", ["", "not json", {"ids": "x"}, {"ids": []}, {"ids": [1]}, {"ids": ["a"], "types": "user"}]
)
def test_get_by_ids_refuses_a_malformed_body(layer: GraphLayer, backend: Backend, body: Any) -> None:
    r = _call(layer, "/v1.0/directoryObjects/getByIds", _operator_token(backend), method="POST", body=body)
    assert r.status_code == 400 and json_of(r)["error"]["code"] in ("BadRequest", "Request_BadRequest")


# --- authentication and authorization ---------------------------------------------------------------------


def test_the_vm_identity_without_directory_permissions_gets_graphs_403(
    layer: GraphLayer, backend: Backend
) -> None:
    token = _vm_token(backend)
    r = _call(layer, "/v1.0/servicePrincipals", token, **{"$filter": _spn_filter(UAMI_READER_CLIENT)})
    _graph_error(r, 403, "Authorization_RequestDenied", DENIED)
    r = _call(layer, "/v1.0/directoryObjects/getByIds", token, method="POST", body={"ids": [SYS_PRINCIPAL]})
    _graph_error(r, 403, "Authorization_RequestDenied", DENIED)


def test_application_read_all_reads_service_principals_but_not_every_directory_object(
    layer: GraphLayer, backend: Backend
) -> None:
    token = _operator_token(backend, roles=("Application.Read.All",))
    assert _call(layer, f"/v1.0/servicePrincipals/{SYS_PRINCIPAL}", token).status_code == 200
    r = _call(layer, "/v1.0/directoryObjects/getByIds", token, method="POST", body={"ids": [SYS_PRINCIPAL]})
    _graph_error(r, 403, "Authorization_RequestDenied", DENIED)


@pytest.mark.parametrize("audience", [Graph.URL, Graph.URL + "/", Graph.APP_ID, GRAPH, GRAPH + "/"])
def test_graph_accepts_its_url_its_app_id_and_its_own_base_url(
    layer: GraphLayer, backend: Backend, audience: str
) -> None:
    assert (
        _call(
            layer, f"/v1.0/servicePrincipals/{OPERATOR_PRINCIPAL}", _operator_token(backend, audience)
        ).status_code
        == 200
    )


def test_tokens_graph_refuses(layer: GraphLayer, backend: Backend, clock: ManualClock) -> None:
    path = f"/v1.0/servicePrincipals/{OPERATOR_PRINCIPAL}"
    _graph_error(_call(layer, path, None), 401, "InvalidAuthenticationToken", "Access token is empty.")
    _graph_error(
        _call(layer, path, "not-a-jwt"), 401, "InvalidAuthenticationToken", "Access token validation failure."
    )
    arm = _operator_token(backend, Arm.RESOURCE)
    _graph_error(
        _call(layer, path, arm),
        401,
        "InvalidAuthenticationToken",
        "Access token validation failure. Invalid audience.",
    )
    token = _operator_token(backend)
    clock.advance(backend.issuer.lifetime + 1)
    _graph_error(
        _call(layer, path, token),
        401,
        "InvalidAuthenticationToken",
        "Lifetime validation failed, the token is expired.",
    )


def test_a_write_method_is_refused(layer: GraphLayer, backend: Backend) -> None:
    r = _call(
        layer, f"/v1.0/servicePrincipals/{OPERATOR_PRINCIPAL}", _operator_token(backend), method="DELETE"
    )
    assert r.status_code == 405 and json_of(r)["error"]["code"] == "Request_BadRequest"


# --- over the listener, with real credentials -------------------------------------------------------------


def _graph_get(emu: Any, path: str, token: str, **params: str) -> requests.Response:
    with requests.Session() as s:
        s.trust_env = False
        return s.get(
            emu.graph_url + path,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            verify=emu.ca_bundle,
            timeout=10,
        )


def test_the_operator_reads_and_the_vm_identity_is_denied_over_https(emu: Any) -> None:
    from azure.identity import ClientSecretCredential

    env = emu.environment()
    operator = ClientSecretCredential(
        env[Env.MI_HELPERS_TENANT_ID],
        env[Env.MI_HELPERS_OPERATOR_CLIENT_ID],
        env[Env.MI_HELPERS_OPERATOR_CLIENT_SECRET],
        authority=env[Env.MI_HELPERS_ENTRA_URL],
        disable_instance_discovery=True,
    )
    token = operator.get_token(f"{Graph.URL}/.default").token
    r = _graph_get(emu, "/v1.0/servicePrincipals", token, **{"$filter": _spn_filter(SYS_CLIENT)})
    assert r.status_code == 200, r.text
    assert [v["servicePrincipalType"] for v in r.json()["value"]] == ["ManagedIdentity"]
    vm_token = mi_credential().get_token(env[Env.MI_HELPERS_GRAPH_URL] + "/.default").token
    denied = _graph_get(emu, "/v1.0/servicePrincipals", vm_token)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "Authorization_RequestDenied"
    assert [e["status"] for e in emu.request_log() if e["listener"] == "graph"] == [200, 403]


# --- nothing a client sends makes it answer 5xx ------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(
        st.sampled_from(
            ["v1.0", "beta", "servicePrincipals", "directoryObjects", "getByIds", SYS_PRINCIPAL, "x", "me"]
        ),
        max_size=4,
    ),
    method=st.sampled_from(["GET", "POST", "DELETE", "HEAD"]),
    query=st.dictionaries(
        st.sampled_from(["$filter", "$select", "$top", "$x", "y"]), st.text(max_size=40), max_size=3
    ),
    body=st.one_of(
        st.none(),
        st.text(max_size=60),
        st.builds(lambda ids: json.dumps({"ids": ids}), st.lists(st.text(max_size=8), max_size=3)),
    ),
)
def test_any_request_gets_an_answer_below_500(
    layer: GraphLayer,
    backend: Backend,
    parts: list[str],
    method: str,
    query: dict[str, str],
    body: str | None,
) -> None:
    r = _call(layer, "/" + "/".join(parts), _operator_token(backend), method=method, body=body, **query)
    assert r.status_code < 500
