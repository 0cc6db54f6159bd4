"""Fixtures for the emulator tests (helpers and wire texts live in ``tests/support/emulator.py``).

One healthy :class:`~mi_helpers.emulator.Emulator` per session (starting it costs a certificate and three
listeners); every test gets it back in ``healthy`` with a clean request log, and the client environment
(``emu.environment()``) set with ``monkeypatch`` for the duration of the test only. Tests that need a fault
call ``use_scenario(name, **params)``, which switches the emulator and the client variables together; the
fixture puts the emulator back in ``healthy`` afterwards.

The shared emulator runs on a :class:`~support.emulator.ManualClock`: fault windows and throttling buckets
stand still unless a test calls ``clock.advance(seconds)``, so "the window has passed" is a statement, not
a sleep. Token times follow the real wall clock (the SDKs compare them with theirs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.emulator import CLIENT_TRAPS, EnvSwitch, ManualClock, RawArm, RawImds

from mi_helpers.constants import EnvironmentVariables as Env


@pytest.fixture(scope="session")
def session_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def emu_session(session_clock: ManualClock) -> Iterator[Any]:
    """The emulator shared by the whole session (healthy; tests put it back after switching)."""
    from mi_helpers.emulator import Emulator

    emulator = Emulator(scenario="healthy", clock=session_clock)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def clock(session_clock: ManualClock) -> ManualClock:
    """The shared emulator's clock: ``clock.advance(s)`` moves its fault windows and buckets on."""
    return session_clock


@pytest.fixture
def client_env(monkeypatch: pytest.MonkeyPatch) -> EnvSwitch:
    """The client variables of this test (restored afterwards by ``monkeypatch``)."""
    return EnvSwitch(monkeypatch)


@pytest.fixture
def emu(emu_session: Any, client_env: EnvSwitch, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The session emulator in ``healthy``, with its client environment set for this test only."""
    for key in CLIENT_TRAPS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv(Env.AZURE_TOKEN_CREDENTIALS, "ManagedIdentityCredential")
    emu_session.set_scenario("healthy")  # fresh world, default parameters, no faults
    emu_session.clear_log()
    client_env.apply(dict(emu_session.environment()))
    yield emu_session
    emu_session.set_scenario("healthy")


@pytest.fixture
def use_scenario(emu: Any, client_env: EnvSwitch) -> Callable[..., Any]:
    """``use_scenario(name, **params)``: switch the emulator and the client variables together."""

    def switch(name: str, **params: Any) -> Any:
        emu.set_scenario(name, **params)
        emu.clear_log()
        client_env.apply(dict(emu.environment()))
        return emu

    return switch


@pytest.fixture
def imds(emu: Any) -> RawImds:
    return RawImds(emu.imds_url)


@pytest.fixture
def arm(emu: Any) -> Iterator[RawArm]:
    client = RawArm(emu.arm_url, emu.ca_bundle)
    yield client
    client.close()
