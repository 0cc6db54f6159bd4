"""Fixtures of the fidelity tests: one emulator for a module, raw clients, its client environment per test.

The tests here hold the emulator to what real Azure was recorded or documented to do (``recorded/``, the
spec models, docs/protocol.md); they talk to it over loopback with the real clients, as the learner's code
would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.emulator import CLIENT_TRAPS, RawArm, RawImds


@pytest.fixture(scope="module")
def emu_module() -> Iterator[Any]:
    from mi_helpers.emulator import Emulator

    with Emulator(scenario="healthy") as emulator:
        yield emulator


@pytest.fixture
def emu(emu_module: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The module's emulator in ``healthy`` with a clean log; its client variables set for this test."""
    for key in CLIENT_TRAPS:
        monkeypatch.delenv(key, raising=False)
    emu_module.set_scenario("healthy")
    emu_module.clear_log()
    for key, value in emu_module.environment().items():
        monkeypatch.setenv(key, value)
    yield emu_module
    emu_module.set_scenario("healthy")


@pytest.fixture
def imds(emu: Any) -> RawImds:
    return RawImds(emu.imds_url)


@pytest.fixture
def arm(emu: Any) -> Iterator[RawArm]:
    client = RawArm(emu.arm_url, emu.ca_bundle)
    yield client
    client.close()


@pytest.fixture
def token(imds: RawImds) -> str:
    """An ARM token of the VM's system-assigned identity (Reader on the resource group)."""
    return imds.access_token()
