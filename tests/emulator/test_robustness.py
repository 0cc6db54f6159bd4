"""Hostile and odd input: never a 500, never a hang, the emulator keeps serving; admin API guards."""

from __future__ import annotations

import json
import re
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.emulator import ARM_RESOURCE, RawImds, plain_session, unverified_claims
from support.world import (
    RG,
    RG_SCOPE,
    SUB,
    SYS_CLIENT,
    SYS_PRINCIPAL,
    TENANT,
    UAMI_DEPLOY,
    UAMI_DEPLOY_CLIENT,
    UAMI_DEPLOY_PRINCIPAL,
    UAMI_READER,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    VM,
    uami_resource_id,
)

pytestmark = pytest.mark.timeout(60)

VM_PATH = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{VM}"
KEY_HEADER = "X-Emulator-Key"


def _still_serving(emu) -> None:
    r = RawImds(emu.imds_url).token(ARM_RESOURCE)
    assert r.status_code == 200, r.text
    assert unverified_claims(r.json()["access_token"])["oid"] == SYS_PRINCIPAL


def _raw(url: str, payload: bytes, timeout: float = 5) -> bytes:
    """Send raw bytes to a plain-HTTP listener and return what comes back (b'' if it just closes)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(payload)
        chunks = []
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail(f"no answer and no close within {timeout} s after {payload[:40]!r}")
    return b"".join(chunks)


def _status(raw: bytes) -> int | None:
    if not raw.startswith(b"HTTP/"):
        return None
    return int(raw.split(b" ", 2)[1])


# --- IMDS --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/metadata",
        "/metadata/",
        "/metadata/identity/oauth2/token/../../instance",
        "/metadata/identity/oauth2/token%2F..%2F..",
        "/..%2f..%2f..%2fetc%2fpasswd",
        "/metadata\\identity\\oauth2\\token",
        "/metadata/identity/oauth2/token;param",
        "/%00",
        "/metadata/instance/compute/%ff%fe",
        "/" + "a" * 4000,
        "/metadata/instance/" + "/".join(["compute"] * 200),
    ],
)
def test_odd_imds_paths(emu, path):
    with plain_session() as s:
        r = s.get(
            emu.imds_url + path,
            params={"api-version": "2018-02-01", "resource": ARM_RESOURCE},
            headers={"Metadata": "true"},
            timeout=5,
        )
    assert 400 <= r.status_code < 500, (path[:60], r.status_code)
    assert "access_token" not in r.text
    _still_serving(emu)


@pytest.mark.parametrize(
    "query",
    [
        "api-version",
        "=&&=&",
        "api-version=2018-02-01&resource=%FF%FE%00",
        "api-version=2018-02-01&resource=" + "x" * 6000,
        "api-version=2018-02-01&&&resource=",
        "api-version=%zz&resource=%zz",
        "api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&client_id=%00",
        "api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&object_id=" + "%27" * 50,
        "api-version=2018-02-01&api-version=2019-01-01&resource=a&resource=b&client_id=1&client_id=2",
    ],
)
def test_garbage_query(emu, query):
    with plain_session() as s:
        r = s.get(
            f"{emu.imds_url}/metadata/identity/oauth2/token?{query}", headers={"Metadata": "true"}, timeout=5
        )
    assert 400 <= r.status_code < 500, (query[:60], r.status_code, r.text[:200])
    _still_serving(emu)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    resource=st.text(max_size=40),
    selector=st.sampled_from(["client_id", "object_id", "msi_res_id", "mi_res_id", "bogus"]),
    value=st.text(max_size=40),
)
def test_fuzzed_token_queries_never_500(emu, resource, selector, value):
    with plain_session() as s:
        r = s.get(
            emu.imds_url + "/metadata/identity/oauth2/token",
            params={"api-version": "2018-02-01", "resource": resource, selector: value},
            headers={"Metadata": "true"},
            timeout=5,
        )
    assert r.status_code < 500, (resource, selector, value, r.status_code)


@pytest.mark.parametrize("size", [9000, 100_000])
def test_huge_header_is_a_4xx(emu, size):
    with plain_session() as s:
        try:
            r = s.get(
                emu.imds_url + "/metadata/identity/oauth2/token",
                params={"api-version": "2018-02-01", "resource": ARM_RESOURCE},
                headers={"Metadata": "true", "X-Big": "b" * size},
                timeout=5,
            )
            status = r.status_code
        except requests.ConnectionError:
            status = None
    if size >= 100_000:
        assert status is not None and 400 <= status < 500, status
    else:
        assert status is not None and status < 500, status
    _still_serving(emu)


def test_many_headers(emu):
    headers = {f"X-H{i}": "v" for i in range(500)}
    headers["Metadata"] = "true"
    with plain_session() as s:
        try:
            status = s.get(
                emu.imds_url + "/metadata/identity/oauth2/token",
                params={"api-version": "2018-02-01", "resource": ARM_RESOURCE},
                headers=headers,
                timeout=5,
            ).status_code
        except requests.ConnectionError:
            status = None
    assert status is None or status < 500
    _still_serving(emu)


@pytest.mark.parametrize(
    "payload",
    [
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        # the start of a TLS ClientHello on the HTTP port, then a line end so the request line is complete
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",
        b"GET /metadata/identity/oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET /metadata/identity/oauth2/token HTTP/1.1\r\nHost: x\r\nMetadata true\r\n\r\n",
    ],
    ids=["garbage", "no-target", "http-9.9", "tls-hello", "negative-length", "broken-header"],
)
def test_malformed_http(emu, payload):
    raw = _raw(emu.imds_url, payload)
    status = _status(raw)
    assert status is None or 400 <= status < 500, raw[:200]
    _still_serving(emu)


def test_half_open_connection_does_not_block_others(emu):
    parts = urlsplit(emu.imds_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as idle:
        idle.sendall(b"GET /metadata/identity/oauth2/token HTTP/1.1\r\nHost: x\r\n")  # never finished
        _still_serving(emu)


# --- ARM ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "must_fail"),
    [
        ("/", True),
        ("/subscriptions/", False),  # the list, with a trailing slash: may well succeed
        ("/subscriptions/not-a-guid", True),
        ("/subscriptions/../../etc/passwd", True),
        (f"/subscriptions/{SUB}/resourceGroups/", False),
        (f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/", True),
        (
            f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{VM}/%00",
            True,
        ),
        (f"/subscriptions/{SUB}/resourceGroups/{'r' * 3000}", True),
        ("/subscriptions/%ff%fe", True),
        ("/subscriptions/" + "/".join(["x"] * 300), True),
    ],
)
def test_odd_arm_paths(emu, arm, path, must_fail):
    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    r = arm.get(path, token=token, api_version="2026-04-01")
    assert r.status_code < 500, (path[:60], r.status_code)
    if must_fail:
        assert 400 <= r.status_code < 500, (path[:60], r.status_code)
    if r.status_code >= 400:
        assert "error" in r.json()
    assert arm.get(VM_PATH, token=token).status_code == 200


def test_arm_duplicate_and_garbage_query(emu, arm):
    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    with plain_session() as s:
        for query in (
            "api-version=2026-04-01&api-version=2020-01-01",
            "api-version=%zz",
            "%%%",
            "$filter=%27",
        ):
            r = s.get(
                f"{emu.arm_url}{VM_PATH}?{query}",
                headers={"Authorization": f"Bearer {token}"},
                verify=emu.ca_bundle,
                timeout=5,
            )
            assert r.status_code < 500, (query, r.status_code)
    assert arm.get(VM_PATH, token=token).status_code == 200


@pytest.mark.parametrize(
    "auth", ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer x y z", "Bearer " + "A" * 20000]
)
def test_arm_odd_authorization_headers(emu, arm, auth):
    r = arm.get(VM_PATH, headers={"Authorization": auth})
    assert r.status_code in (400, 401, 431), r.status_code


def test_arm_huge_header(emu, arm):
    try:
        status = arm.get(VM_PATH, headers={"X-Big": "b" * 100_000}).status_code
    except requests.ConnectionError:
        status = None
    assert status is not None and 400 <= status < 500, status
    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    assert arm.get(VM_PATH, token=token).status_code == 200


def test_plain_http_on_the_tls_port(emu, arm):
    raw = _raw(emu.arm_url.replace("https://", "http://"), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status = _status(raw)
    assert status is None or 400 <= status < 500
    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    assert arm.get(VM_PATH, token=token).status_code == 200


# --- admin API ---------------------------------------------------------------------------------------


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
    _still_serving(emu)


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
    _still_serving(emu)


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
    _still_serving(emu)
    client.clear_log()
    RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    log = client.request_log()
    assert any("oauth2/token" in json.dumps(e) for e in log)
    assert not re.search(r"[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}", json.dumps(log))


# --- bad input through the Python API: one-line InputError naming the field ----------------------------


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda e: e.set_scenario("no-such-scenario"), "scenario"),
        (lambda e: e.set_scenario("imds-updating", bogus=1), "bogus"),
        (lambda e: e.set_scenario("imds-updating", t="soon"), "t"),
        (lambda e: e.set_scenario("proxy-intercept", mode="teleport"), "mode"),
        (lambda e: e.apply_fix("format-disk"), "action"),
        (
            lambda e: e.apply_fix(
                "add-role-assignment",
                principal_id=SYS_PRINCIPAL,
                role="Overlord",
                scope=f"/subscriptions/{SUB}",
            ),
            "role",
        ),
    ],
    ids=["scenario", "param", "param-type", "choice", "fix", "role"],
)
def test_bad_input_is_a_one_line_input_error(emu, call, field):
    from mi_helpers.validate import InputError

    with pytest.raises(InputError) as info:
        call(emu)
    text = str(info.value)
    assert "\n" not in text
    assert field in text
    assert emu.scenario == "healthy"
    _still_serving(emu)


def test_certificates_live_outside_the_repository(emu):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    bundle = Path(emu.ca_bundle).resolve()
    assert bundle.is_file()
    assert repo not in bundle.parents, bundle


# --- constructing emulators: custom worlds, loopback only ---------------------------------------------


def test_custom_world_round_trip(emu, tmp_path):
    """A world file (JSON here) replaces the default world: IMDS and ARM both serve it."""
    import yaml

    from mi_helpers.emulator import Emulator

    # world_dict() is loadable again as it is
    with Emulator(world=emu.world_dict()) as same:
        assert RawImds(same.imds_url).token(ARM_RESOURCE).status_code == 200
    emu_world = emu.world_dict()
    for vm in emu_world["virtual_machines"]:
        if vm["name"] == VM:
            vm["name"] = "vm-custom"
    emu_world["host_vm"] = "vm-custom"
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(emu_world))
    with Emulator(world=str(path)) as other:
        md = RawImds(other.imds_url).get(
            "/metadata/instance/compute/name", params={"api-version": "2021-02-01", "format": "text"}
        )
        assert md.text == "vm-custom"
        urls = (other.imds_url, other.arm_url, other.admin_url)
    # stop() closed every listener
    for url in urls:
        parts = urlsplit(url)
        with pytest.raises(OSError):
            socket.create_connection((parts.hostname, parts.port), timeout=1).close()


@pytest.mark.parametrize("world", [{"tenant": 5}, {"virtual_machines": "nope"}, "/nonexistent/world.yaml"])
def test_bad_world_is_an_input_error(world):
    from mi_helpers.emulator import Emulator
    from mi_helpers.validate import InputError

    with pytest.raises(InputError) as info:
        Emulator(world=world)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.org"])
def test_non_loopback_host_is_refused(host):
    from mi_helpers.emulator import Emulator
    from mi_helpers.validate import InputError

    with pytest.raises(InputError) as info:
        Emulator(host=host)
    assert "host" in str(info.value)


# --- concurrency -------------------------------------------------------------------------------------


def test_concurrent_token_and_arm_requests(emu):
    from concurrent.futures import ThreadPoolExecutor

    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)

    def imds_call(i):
        return (
            RawImds(emu.imds_url).token(ARM_RESOURCE if i % 2 else "https://storage.azure.com/").status_code
        )

    def arm_call(_):
        with plain_session() as s:
            return s.get(
                emu.arm_url + VM_PATH,
                params={"api-version": "2026-04-01"},
                headers={"Authorization": f"Bearer {token}"},
                verify=emu.ca_bundle,
                timeout=10,
            ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        imds_codes = list(pool.map(imds_call, range(24)))
        arm_codes = list(pool.map(arm_call, range(12)))
    assert set(imds_codes) == {200}, imds_codes
    assert set(arm_codes) == {200}, arm_codes


def test_switching_scenarios_under_load_never_500(emu):
    """Requests racing with set_scenario/apply_fix get a well-formed answer of one world or the other."""
    import threading

    stop = threading.Event()
    seen: list[tuple[int, str]] = []

    def hammer():
        with plain_session() as s:
            while not stop.is_set():
                r = s.get(
                    emu.imds_url + "/metadata/identity/oauth2/token",
                    params={"api-version": "2018-02-01", "resource": ARM_RESOURCE},
                    headers={"Metadata": "true"},
                    timeout=5,
                )
                seen.append((r.status_code, "" if r.status_code == 200 else r.text))

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 5
        while len(seen) < 150 and time.monotonic() < deadline:
            for name in ("no-identity", "multiple-user-assigned", "healthy", "user-assigned-only"):
                emu.set_scenario(name)
                emu.apply_fix("enable-system-identity")
                emu.apply_fix("reset")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        emu.set_scenario("healthy")
    assert len(seen) >= 20, len(seen)
    assert {code for code, _ in seen} <= {200, 400}, {code for code, _ in seen}
    for code, text in seen:
        body = json.loads(text) if code == 400 else None
        if body is not None:
            assert body["error"] == "invalid_request", text
    _still_serving(emu)


def test_world_dict_documents_the_default_world(emu):
    """The documented default world: tenant, subscription, group, VM, every identity, the roles."""
    w = _admin(emu, "GET", "/world").json()
    assert w == emu.world_dict()
    assert w["tenant"]["id"] == TENANT
    assert [s["id"] for s in w["subscriptions"]] == [SUB]
    assert RG in [g["name"] for g in w["resource_groups"]]
    vm = next(v for v in w["virtual_machines"] if v["name"] == VM)
    assert vm["system_identity"]["principal_id"] == SYS_PRINCIPAL
    assert vm["system_identity"]["client_id"] == SYS_CLIENT
    uamis = {u["name"]: u for u in w["user_assigned_identities"]}
    for name, client, principal in (
        (UAMI_READER, UAMI_READER_CLIENT, UAMI_READER_PRINCIPAL),
        (UAMI_DEPLOY, UAMI_DEPLOY_CLIENT, UAMI_DEPLOY_PRINCIPAL),
    ):
        assert uamis[name]["client_id"] == client
        assert uamis[name]["principal_id"] == principal
        assert uamis[name]["resource_id"].lower() == uami_resource_id(name).lower()
    readers = {
        a["principal_id"]
        for a in w["role_assignments"]
        if a.get("role", a.get("role_name")) == "Reader" and a["scope"].lower() == RG_SCOPE.lower()
    }
    assert readers == {SYS_PRINCIPAL, UAMI_READER_PRINCIPAL, UAMI_DEPLOY_PRINCIPAL}


@pytest.mark.parametrize("mode", ["gateway", "forward"])
def test_proxy_relays_nothing_but_imds(emu, use_scenario, mode):
    """The fake corporate proxy is no open relay: other hosts, ARM and the admin API get its 502 page.

    (The in-process network guard would also fail this test if the proxy dialled a non-loopback host.)
    """
    emu = use_scenario("proxy-intercept", mode=mode)
    proxy = emu.scenario_environment()["HTTP_PROXY"]
    admin = urlsplit(emu.admin_url)
    targets = [
        "http://example.org/",
        emu.arm_url.replace("https://", "http://") + "/metadata/endpoints",
        f"http://{admin.hostname}:{admin.port}/_emulator/world",
    ]
    with plain_session() as s:
        for url in targets:
            r = s.get(url, proxies={"http": proxy}, headers={KEY_HEADER: emu.admin_key}, timeout=5)
            assert r.status_code == 502, (url, r.status_code)
            assert SYS_PRINCIPAL not in r.text
        raw = _raw(
            proxy, b"CONNECT management.azure.com:443 HTTP/1.1\r\nHost: management.azure.com:443\r\n\r\n"
        )
        assert _status(raw) in (400, 403, 405, 502), raw[:100]
