"""Hostile and odd input through real clients: never a 500, never a hang, the emulator keeps serving.

(Raw request framing is in test_transport.py, the admin API's guards in test_admin.py.)
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.emulator import ARM_RESOURCE, VM_PATH, RawImds, plain_session, still_serving
from support.world import (
    RG,
    SUB,
    SYS_PRINCIPAL,
    VM,
)

pytestmark = pytest.mark.timeout(60)


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
    still_serving(emu)


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
    still_serving(emu)


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
    still_serving(emu)


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
    still_serving(emu)
