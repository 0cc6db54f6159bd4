"""The admin API and the token-verification documents: socket-free through the layer, then over HTTP."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
import requests
from support.emulator import (
    ARM_RESOURCE,
    RawImds,
    json_of,
    plain_session,
    still_serving,
    wsgi_request,
)
from support.world import (
    SYS_PRINCIPAL,
    TENANT,
    UAMI_READER_CLIENT,
)

from mi_helpers.emulator.admin import ADMIN_PATHS, AdminLayer
from mi_helpers.emulator.backend import FIX_ACTIONS, Backend
from mi_helpers.emulator.client import AdminApiError
from mi_helpers.emulator.endpoints import Endpoints

pytestmark = pytest.mark.timeout(60)

KEY_HEADER = "X-Emulator-Key"
KEY = "test-admin-key-0123456789"


@pytest.fixture
def backend() -> Backend:
    return Backend("healthy")


@pytest.fixture
def layer(backend: Backend) -> AdminLayer:
    endpoints = Endpoints(
        imds_url="http://127.0.0.1:1",
        arm_url="https://127.0.0.1:2",
        admin_url="http://127.0.0.1:3/_emulator",
        proxy_url="http://127.0.0.1:4",
        legacy_port=50342,
        ca_bundle="/tmp/ca.pem",
        admin_key=KEY,
        imds_listening=True,
    )
    return AdminLayer(backend, lambda: endpoints)


def _call(layer: AdminLayer, method: str, path: str, body: object = None, **kw: object) -> object:
    headers = {KEY_HEADER: KEY, **kw.pop("headers", {})}
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    return layer.handle(wsgi_request("/_emulator" + path, method=method, headers=headers, body=data, **kw))


# --- socket-free ----------------------------------------------------------------------------------


def test_only_loopback_peers_and_the_key_are_admitted(layer: AdminLayer) -> None:
    far = _call(layer, "GET", "/world", remote_addr="203.0.113.7")
    assert far.status_code == 403 and json_of(far)["error"] == "forbidden"
    wrong = _call(layer, "GET", "/world", headers={KEY_HEADER: "nope"})
    assert wrong.status_code == 401 and "MI_HELPERS_EMULATOR_KEY" in json_of(wrong)["message"]
    assert _call(layer, "GET", "/world", remote_addr="::1").status_code == 200


def test_scenario_switch_and_fix_through_the_layer(layer: AdminLayer, backend: Backend) -> None:
    r = _call(layer, "PUT", "/scenario", {"scenario": "imds-server-error", "params": {"n": 3}})
    state = json_of(r)
    assert state["scenario"] == "imds-server-error" and state["params"]["n"] == 3
    assert backend.scenario == "imds-server-error"
    fix = json_of(_call(layer, "POST", "/fix", {"action": "clear-faults"}))
    assert fix["action"] == "clear-faults" and backend.faults_cleared
    bad = _call(layer, "POST", "/fix", {"action": "reset", "n": "1"})
    assert bad.status_code == 400 and json_of(bad)["error"] == "invalid_input"


def test_unknown_names_list_what_is_allowed(layer: AdminLayer) -> None:
    scenario = json_of(_call(layer, "PUT", "/scenario", {"scenario": "nope"}))
    assert "healthy" in scenario["allowed"]
    fix = json_of(_call(layer, "POST", "/fix", {"action": "teleport"}))
    assert fix["allowed"] == list(FIX_ACTIONS)
    route = _call(layer, "GET", "/nowhere")
    assert route.status_code == 404 and json_of(route)["allowed"] == list(ADMIN_PATHS)
    method = _call(layer, "DELETE", "/world")
    assert method.status_code == 405 and json_of(method)["error"] == "method_not_allowed"


def test_discovery_documents_need_no_key(layer: AdminLayer, backend: Backend) -> None:
    jwks = layer.handle(wsgi_request(f"/{TENANT}/discovery/keys", remote_addr="203.0.113.7"))
    assert jwks.status_code == 200 and json_of(jwks) == backend.jwks()
    meta = json_of(layer.handle(wsgi_request("/common/v2.0/.well-known/openid-configuration")))
    assert meta["jwks_uri"] == f"http://127.0.0.1/{TENANT}/discovery/keys"
    other = layer.handle(wsgi_request("/00000000-0000-0000-0000-000000000000/discovery/keys"))
    assert other.status_code == 404


def test_health_and_environment_come_from_the_endpoints(layer: AdminLayer, backend: Backend) -> None:
    health = json_of(_call(layer, "GET", "/health"))
    assert health["imds_url"] == "http://127.0.0.1:1" and health["scenario"] == "healthy"
    backend.set_scenario("tls-untrusted")
    env = json_of(_call(layer, "GET", "/environment"))
    assert env["MI_HELPERS_EMULATOR_KEY"] == KEY
    assert env["REQUESTS_CA_BUNDLE"] != "/tmp/ca.pem"  # the scenario's extra overrides the trust


def test_requests_log_and_its_alias(layer: AdminLayer, backend: Backend) -> None:
    backend.record({"path": "/x"})
    assert json_of(_call(layer, "GET", "/log"))["requests"] == [{"path": "/x"}]
    assert json_of(_call(layer, "DELETE", "/requests")) == {"cleared": True}
    assert backend.request_log() == []


def test_admin_client_errors_keep_status_and_body(emu) -> None:
    from mi_helpers.emulator import AdminClient

    client = AdminClient(emu.admin_url, "wrong-key")
    with pytest.raises(AdminApiError) as info:
        client.world_dict()
    assert info.value.status == 401 and info.value.body["error"] == "unauthorized"
    assert "wrong-key" not in str(info.value)


# --- over HTTP ------------------------------------------------------------------------------------


def _admin(emu, method: str, path: str, key: str | None = "ok", **kw) -> requests.Response:
    headers = dict(kw.pop("headers", {}))
    if key == "ok":
        headers[KEY_HEADER] = emu.admin_key
    elif key is not None:
        headers[KEY_HEADER] = key
    with plain_session() as s:
        return s.request(method, emu.admin_url + path, headers=headers, timeout=5, **kw)


def test_admin_is_loopback(emu):
    assert urlsplit(emu.admin_url).hostname in ("127.0.0.1", "localhost", "::1")
    assert urlsplit(emu.admin_url).path.rstrip("/").endswith("/_emulator")
    assert len(emu.admin_key) >= 16


@pytest.mark.parametrize("key", [None, "", "wrong-key"], ids=["no-key", "empty", "wrong"])
@pytest.mark.parametrize(("method", "path"), [("GET", "/world"), ("GET", "/log"), ("POST", "/scenario")])
def test_admin_needs_the_key(emu, key, method, path):
    kw = {"json": {"name": "imds-unreachable"}} if method == "POST" else {}
    r = _admin(emu, method, path, key=key, **kw)
    assert r.status_code == 401, (method, path, r.status_code)
    assert emu.scenario == "healthy"


def test_admin_world_with_key(emu):
    r = _admin(emu, "GET", "/world")
    assert r.status_code == 200
    assert SYS_PRINCIPAL in json.dumps(r.json())


@pytest.mark.parametrize(
    "body", [b"{not json", b"", b"[]", b'"healthy"', b"\xff\xfe", b'{"name": 42}', b'{"params": {}}']
)
def test_admin_bad_json_is_400(emu, body):
    r = _admin(emu, "POST", "/scenario", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, (body, r.status_code)
    assert emu.scenario == "healthy"
    still_serving(emu)


def test_admin_unknown_scenario_lists_names(emu):
    from mi_helpers.emulator import SCENARIOS

    r = _admin(emu, "POST", "/scenario", json={"name": "no-such-scenario"})
    assert r.status_code == 400
    text = r.text
    for name in SCENARIOS:
        assert name in text, name
    assert emu.scenario == "healthy"


def test_admin_unknown_fix_is_400(emu):
    r = _admin(emu, "POST", "/fix", json={"action": "format-disk"})
    assert r.status_code == 400
    assert "add-role-assignment" in r.text


def test_admin_switches_scenario(emu):
    r = _admin(emu, "POST", "/scenario", json={"name": "no-role-assignment"})
    assert r.status_code == 200, r.text
    assert emu.scenario == "no-role-assignment"


def test_admin_client_from_env(emu):
    from mi_helpers.emulator import AdminClient

    client = AdminClient.from_env()
    assert client.scenario == "healthy"
    client.set_scenario("multiple-user-assigned")
    assert emu.scenario == "multiple-user-assigned"
    assert RawImds(emu.imds_url).token(ARM_RESOURCE).status_code == 400
    client.set_scenario("healthy")
    still_serving(emu)


def test_admin_log_has_no_secrets(emu):
    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    r = _admin(emu, "GET", "/log")
    assert r.status_code == 200
    assert token not in r.text
    assert emu.admin_key not in r.text


def test_admin_client_has_the_emulator_methods(emu):
    from mi_helpers.emulator import AdminClient

    client = AdminClient(emu.admin_url, emu.admin_key)
    assert client.environment() == emu.environment()
    assert client.world_dict() == emu.world_dict()
    client.apply_fix("disable-system-identity")
    assert RawImds(emu.imds_url).token(ARM_RESOURCE).json()["client_id"] == UAMI_READER_CLIENT  # the one UAMI
    assert client.world_dict() == emu.world_dict()
    client.apply_fix("reset")
    still_serving(emu)
    client.clear_log()
    RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    log = client.request_log()
    assert any("oauth2/token" in json.dumps(e) for e in log)
    assert not re.search(r"[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}", json.dumps(log))
