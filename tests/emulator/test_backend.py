"""The backend without any socket: scenario switching, the fix-action table, layout, ARM's clock, the log."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from support.emulator import ManualClock
from support.world import SYS_PRINCIPAL, UAMI_DEPLOY, UAMI_DEPLOY_PRINCIPAL

from mi_helpers.emulator.backend import FIX_ACTIONS, Backend, Layout
from mi_helpers.emulator.endpoints import Endpoints
from mi_helpers.validate import InputError

WALL = 1_750_000_000.0
ENDPOINTS = Endpoints(
    imds_url="http://127.0.0.1:1",
    arm_url="https://127.0.0.1:2",
    admin_url="http://127.0.0.1:3/_emulator",
    proxy_url="http://127.0.0.1:4",
    legacy_port=50342,
    ca_bundle="/tmp/ca.pem",
    admin_key="k" * 24,
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(wall=WALL)


@pytest.fixture
def backend(clock: ManualClock) -> Backend:
    return Backend("healthy", clock=clock)


def test_set_scenario_builds_a_fresh_world_and_rearms_faults(backend: Backend) -> None:
    backend.apply_fix("disable-system-identity")
    backend.set_scenario("identity-propagating", n=1)
    assert backend.world.host_vm.has_system_identity  # a fresh copy of the base world
    assert [f["label"] for f in backend.engine.describe()] == ["identity-propagating"]
    assert backend.engine.check("imds-token") is not None
    assert backend.engine.check("imds-token") is None  # n=1
    backend.set_scenario("identity-propagating", n=1)
    assert backend.engine.check("imds-token") is not None  # armed again


def test_set_scenario_empties_the_token_cache(backend: Backend) -> None:
    principal = backend.world.select_identity()
    first = backend.issuer.issue(principal, "https://management.azure.com/", WALL)
    assert backend.issuer.issue(principal, "https://management.azure.com/", WALL).from_cache
    backend.set_scenario("healthy", token_lifetime=600)
    again = backend.issuer.issue(principal, "https://management.azure.com/", WALL)
    assert not again.from_cache and again.access_token != first.access_token
    assert again.exp - again.iat == 600


def test_layout_follows_the_scenario_and_hooks_hear_every_change(backend: Backend) -> None:
    seen: list[Layout] = []
    backend.on_layout(seen.append)
    backend.set_scenario("imds-unreachable")
    backend.set_scenario("proxy-intercept")
    backend.set_scenario("legacy-extension-endpoint")
    assert seen == [
        Layout(imds_listening=False, proxy=False, legacy_port=False),
        Layout(imds_listening=True, proxy=True, legacy_port=False),
        Layout(imds_listening=True, proxy=False, legacy_port=True),
    ]


def test_clear_faults_brings_imds_back_and_keeps_the_world(backend: Backend) -> None:
    backend.set_scenario("imds-unreachable")
    assert backend.layout().imds_listening is False
    result = backend.apply_fix("clear-faults")
    assert result["message"] == "stopped every fault (the world is unchanged)"
    assert backend.layout().imds_listening is True and backend.faults_cleared
    backend.set_scenario("no-role-assignment")
    backend.apply_fix("clear-faults")
    assert not backend.world.allowed(
        SYS_PRINCIPAL, "Microsoft.Compute/virtualMachines/read", backend.world.resource_group_scope()
    )


def test_reset_keeps_the_overridden_parameters(backend: Backend) -> None:
    backend.set_scenario("imds-server-error", n=5)
    backend.engine.check("imds-token")
    backend.apply_fix("reset")
    assert backend.params["n"] == 5 and backend.params["t"] is None
    assert backend.engine.describe()[0]["fired"] == 0


def test_every_fix_action_declares_its_keywords() -> None:
    assert list(FIX_ACTIONS) == [
        "enable-system-identity",
        "disable-system-identity",
        "attach-user-identity",
        "detach-user-identity",
        "add-role-assignment",
        "remove-role-assignment",
        "clear-faults",
        "reset",
    ]
    assert FIX_ACTIONS["add-role-assignment"].keywords == {"principal_id", "role", "scope"}
    assert FIX_ACTIONS["reset"].keywords == frozenset()
    assert all(a.summary for a in FIX_ACTIONS.values())


@pytest.mark.parametrize(
    ("action", "kw", "field"),
    [
        ("format-disk", {}, "action"),
        ("reset", {"n": "1"}, "n"),
        ("attach-user-identity", {"role": "Reader"}, "role"),
        ("add-role-assignment", {"principal_id": 42}, "principal_id"),
    ],
)
def test_bad_fix_arguments_are_one_line_input_errors(
    backend: Backend, action: str, kw: dict[str, Any], field: str
) -> None:
    with pytest.raises(InputError) as info:
        backend.apply_fix(action, **kw)
    assert info.value.field == field and "\n" not in str(info.value)


def test_fixes_change_the_live_world(backend: Backend) -> None:
    backend.apply_fix("attach-user-identity", name=UAMI_DEPLOY)
    assert UAMI_DEPLOY in [u.name for u in backend.world.attached_identities(backend.world.host_vm)]
    backend.apply_fix("add-role-assignment", principal_id=UAMI_DEPLOY_PRINCIPAL, role="Owner", scope="/")
    assert backend.world.allowed(
        UAMI_DEPLOY_PRINCIPAL, "Microsoft.Compute/virtualMachines/write", "/subscriptions/x"
    )
    assert backend.apply_fix("remove-role-assignment", principal_id=UAMI_DEPLOY_PRINCIPAL, role="Owner")[
        "message"
    ] == ("removed 1 role assignment(s)")


def test_arm_clock_runs_ahead_in_expired_token_until_faults_are_cleared(
    backend: Backend, clock: ManualClock
) -> None:
    assert backend.arm_now() == WALL
    backend.set_scenario("expired-token", skew=3600)
    assert backend.arm_clock_skew() == 3600
    clock.advance(10)
    assert backend.arm_now() == WALL + 10 + 3600
    backend.apply_fix("clear-faults")
    assert backend.arm_now() == WALL + 10


def test_hold_returns_when_the_scenario_changes(backend: Backend) -> None:
    backend.set_scenario("imds-hang")
    held = threading.Thread(target=backend.hold, daemon=True)
    held.start()
    held.join(0.2)
    assert held.is_alive(), "hold() returned while the hang fault was active"
    backend.set_scenario("healthy")
    held.join(5)
    assert not held.is_alive()


def test_scenario_state_and_environment_come_from_the_endpoints(backend: Backend) -> None:
    backend.set_scenario("legacy-extension-endpoint")
    state = backend.scenario_state(ENDPOINTS)
    assert state["scenario"] == "legacy-extension-endpoint"
    assert state["imds_listening"] is True
    assert state["scenario_environment"] == {"MSI_ENDPOINT": "http://localhost:50342/oauth2/token"}
    env = ENDPOINTS.environment(backend.scenario_environment(ENDPOINTS))
    assert env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] == ENDPOINTS.imds_url
    assert env["MI_HELPERS_EMULATOR_KEY"] == ENDPOINTS.admin_key
    assert env["MSI_ENDPOINT"].endswith(":50342/oauth2/token")
    assert "admin_key" not in repr(ENDPOINTS) and ENDPOINTS.admin_key not in repr(ENDPOINTS)


def test_request_log_is_bounded_and_copied(backend: Backend) -> None:
    for i in range(2005):
        backend.record({"n": i})
    log = backend.request_log()
    assert len(log) == 2000 and log[0]["n"] == 5
    log[0]["n"] = "changed"
    assert backend.request_log()[0]["n"] == 5
    backend.clear_log()
    assert backend.request_log() == []


def test_a_backend_needs_no_listener_and_refuses_unknown_scenarios() -> None:
    with pytest.raises(InputError) as info:
        Backend("no-such-scenario")
    assert info.value.field == "scenario" and "healthy" in str(info.value)
    assert repr(Backend("healthy")) == "<Backend scenario='healthy'>"
