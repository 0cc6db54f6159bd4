"""The :class:`Emulator` facade: construction, listeners and their layout, URLs, environment, lifecycle.

Each test checks a behaviour that could break on its own: the healthy path with the real SDK, token caching,
the refused IMDS port of ``imds-unreachable`` and its re-opening, the env file, world round-trips, custom
worlds, the loopback rule (and its one exception) and the release of hung requests on ``stop()``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from support.emulator import ARM_RESOURCE, TOKEN_PATH, RawImds
from support.world import RG, SUB, SYS_PRINCIPAL, TENANT, VM

from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.emulator.control import EmulatorControl


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    from mi_helpers.emulator import Emulator

    emu = Emulator(scenario="healthy")
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def fresh(emulator: Any) -> Any:
    emulator.set_scenario("healthy")
    emulator.clear_log()
    return emulator


def _session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def _token(emu: Any, **params: str) -> requests.Response:
    query = {"api-version": "2018-02-01", "resource": ARM_RESOURCE, **params}
    with _session() as s:
        return s.get(emu.imds_url + TOKEN_PATH, params=query, headers={"Metadata": "true"}, timeout=5)


def test_healthy_sdk_round_trip(fresh: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.compute import ComputeManagementClient

    monkeypatch.setenv(Env.AZURE_POD_IDENTITY_AUTHORITY_HOST, fresh.imds_url)
    cred = ManagedIdentityCredential(retry_total=0, read_timeout=5)
    client = ComputeManagementClient(
        cred, SUB, base_url=fresh.arm_url, connection_verify=fresh.ca_bundle, retry_total=0
    )
    vm = client.virtual_machines.get(RG, VM)
    assert vm.identity.principal_id == SYS_PRINCIPAL
    listeners = {e["listener"] for e in fresh.request_log()}
    assert listeners == {"imds", "arm"}
    from mi_helpers.redaction import JWT_PATTERN

    assert not JWT_PATTERN.search(json.dumps(fresh.request_log()))
    assert any("…" in (e["authorization"] or "") for e in fresh.request_log())


def test_token_verifies_with_published_jwks(fresh: Any) -> None:
    token = _token(fresh).json()["access_token"]
    with _session() as s:
        jwks = s.get(f"{fresh.imds_url}/{TENANT}/discovery/keys", timeout=5).json()
    header = jwt.get_unverified_header(token)
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        token, jwt.PyJWK(key).key, algorithms=["RS256"], audience="https://management.azure.com/"
    )
    assert claims["oid"] == claims["sub"] == SYS_PRINCIPAL
    assert claims["iss"] == f"https://sts.windows.net/{TENANT}/"
    assert "/resourcegroups/" in claims["xms_mirid"]


def test_token_is_cached_and_expires_in_counts_down(fresh: Any) -> None:
    first, second = _token(fresh).json(), _token(fresh).json()
    assert first["access_token"] == second["access_token"]
    assert int(second["expires_in"]) <= int(first["expires_in"]) <= 86399
    assert all(isinstance(v, str) for v in first.values())
    other = _token(fresh, resource="https://storage.azure.com/").json()
    assert other["access_token"] != first["access_token"]


def test_imds_unreachable_refuses_on_the_same_port(fresh: Any) -> None:
    from mi_helpers.emulator import AdminClient

    port = int(fresh.imds_url.rsplit(":", 1)[1])
    fresh.set_scenario("imds-unreachable")
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    admin = AdminClient(fresh.admin_url, fresh.admin_key)
    assert admin.scenario == "imds-unreachable"
    admin.set_scenario("healthy")
    assert fresh.imds_url.endswith(f":{port}")
    assert _token(fresh).status_code == 200


def test_admin_guards(fresh: Any) -> None:
    url = fresh.admin_url
    with _session() as s:
        assert s.get(f"{url}/world", timeout=5).status_code == 401
        key = {"X-Emulator-Key": fresh.admin_key}
        bad = s.put(f"{url}/scenario", data=b"{not json", headers=key, timeout=5)
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_json"
        unknown = s.put(f"{url}/scenario", json={"scenario": "nope"}, headers=key, timeout=5)
        assert unknown.status_code == 400 and "healthy" in unknown.json()["allowed"]
        fix = s.post(f"{url}/fix", json={"action": "teleport"}, headers=key, timeout=5)
        assert fix.status_code == 400 and "add-role-assignment" in fix.json()["allowed"]
    assert fresh.scenario == "healthy"


def test_env_file_is_plain_key_value(fresh: Any, tmp_path: Path) -> None:
    path = fresh.write_env_file(tmp_path / "emu.env")
    lines = path.read_text().splitlines()
    parsed = dict(line.split("=", 1) for line in lines)
    assert parsed == fresh.environment()
    assert not any(line.startswith("export ") or '"' in line for line in lines)


def test_world_round_trip_and_fix(fresh: Any) -> None:
    from mi_helpers.emulator import World

    doc = fresh.world_dict()
    assert World.from_dict(doc).to_dict() == doc
    fresh.set_scenario("no-role-assignment")
    assert not [a for a in fresh.world_dict()["role_assignments"] if a["principal_id"] == SYS_PRINCIPAL]
    fresh.apply_fix(
        "add-role-assignment", principal_id=SYS_PRINCIPAL, role="Reader", scope=f"/subscriptions/{SUB}"
    )
    assert any(a["scope"] == f"/subscriptions/{SUB}" for a in fresh.world_dict()["role_assignments"])


def test_hung_request_is_released_by_stop() -> None:
    from mi_helpers.emulator import Emulator

    emu = Emulator(scenario="imds-hang").start()
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(_token(emu).status_code)
        except requests.RequestException as exc:
            outcome.append(type(exc).__name__)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(0.5)
    assert worker.is_alive(), "imds-hang answered instead of hanging"
    emu.stop()
    worker.join(10)
    assert not worker.is_alive()
    assert outcome and outcome[0] != 200


def test_keep_alive_and_pooled_connection_closed_with_listener(fresh: Any) -> None:
    port = int(fresh.imds_url.rsplit(":", 1)[1])
    request = b"GET /metadata/instance/compute/name?api-version=2021-02-01&format=text HTTP/1.1\r\n"
    request += b"Host: 127.0.0.1\r\nMetadata: true\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        answers = b""
        for i in range(2):  # two requests on one connection: the first answer must not close it
            conn.sendall(request)
            while answers.count(b"vm-mi-tutorial") < i + 1:
                chunk = conn.recv(65536)
                assert chunk, "connection closed after a keep-alive response"
                answers += chunk
        assert b"Connection: close" not in answers
        fresh.set_scenario("imds-unreachable")
        assert conn.recv(65536) == b"", "a kept-alive connection outlived the closed IMDS listener"


# --- constructing emulators: custom worlds, loopback only (and its one exception) ------------------


def test_certificates_live_outside_the_repository(emu):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    bundle = Path(emu.ca_bundle).resolve()
    assert bundle.is_file()
    assert repo not in bundle.parents, bundle


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


def test_allow_non_loopback_warns_and_points_clients_at_loopback() -> None:
    """The one switch that exposes a token issuer beyond this machine: allowed only when asked for, with a
    warning, and the URLs the emulator hands out still name loopback (no listener is opened here)."""
    from mi_helpers.emulator import Emulator

    with pytest.warns(RuntimeWarning, match="other machines can reach its IMDS and ARM") as caught:
        emu = Emulator(host="0.0.0.0", allow_non_loopback=True)
    assert caught[0].filename == __file__  # the warning points at the caller, not into the emulator
    assert not emu.running and not emu.imds_listening
    assert emu.imds_url.startswith("http://127.0.0.1:") and emu.arm_url.startswith("https://127.0.0.1:")
    assert emu.environment()[Env.AZURE_POD_IDENTITY_AUTHORITY_HOST].startswith("http://127.0.0.1:")
    with pytest.warns(RuntimeWarning):
        routable = Emulator(host="10.1.2.3", allow_non_loopback=True)
    assert routable.imds_url.startswith("http://10.1.2.3:")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_hosts_need_no_switch_and_give_no_warning(host: str) -> None:
    import warnings

    from mi_helpers.emulator import Emulator

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emu = Emulator(host=host)
    assert "127.0.0.1" in emu.imds_url or "[::1]" in emu.imds_url or "localhost" in emu.imds_url


def test_the_cli_flag_reaches_the_constructor() -> None:
    """``mi-helpers emulator --allow-non-loopback`` is the only way to the switch from the command line."""
    import argparse

    from mi_helpers.cli import emulator as cli_emulator

    parser = argparse.ArgumentParser()
    cli_emulator.register(parser.add_subparsers())
    assert parser.parse_args(["emulator"]).allow_non_loopback is False
    assert parser.parse_args(["emulator", "--allow-non-loopback", "--host", "0.0.0.0"]).allow_non_loopback


@pytest.mark.parametrize("port", [-1, 65536, True, "80"])
def test_bad_ports_are_input_errors(port: object) -> None:
    from mi_helpers.emulator import Emulator
    from mi_helpers.validate import InputError

    with pytest.raises(InputError) as info:
        Emulator(imds_port=port)
    assert info.value.field == "imds_port"


def test_both_control_surfaces_satisfy_the_protocol(fresh: Any) -> None:
    from mi_helpers.emulator import AdminClient

    client = AdminClient(fresh.admin_url, fresh.admin_key)
    assert isinstance(fresh, EmulatorControl) and isinstance(client, EmulatorControl)
    assert client.scenario_state() == fresh.scenario_state()


def test_endpoints_value_tracks_the_listeners(fresh: Any) -> None:
    ep = fresh.endpoints()
    assert (ep.imds_url, ep.arm_url, ep.admin_url) == (fresh.imds_url, fresh.arm_url, fresh.admin_url)
    assert ep.imds_listening
    fresh.set_scenario("imds-unreachable")
    assert fresh.endpoints().imds_listening is False
    assert fresh.endpoints().imds_url == ep.imds_url  # the port stays reserved
