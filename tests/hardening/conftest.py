"""Fixtures for the hardening tests: the embedded emulator (per module) and quiet SDK logs."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from mi_helpers import identity as identity_mod
from mi_helpers import targeting as target_mod


def _forget_credentials() -> None:
    identity_mod.clear_credential_cache()


@pytest.fixture(scope="module")
def hardening_emulator() -> Iterator[Any]:
    """The embedded emulator in ``healthy`` for this module, started through the public ``use_emulator``."""
    saved = dict(os.environ)
    target_mod.reset_target(stop_emulator=True)
    for key in ("MI_HELPERS_EMULATOR_ADMIN", "MI_HELPERS_EMULATOR_KEY", "AZURE_POD_IDENTITY_AUTHORITY_HOST"):
        os.environ.pop(key, None)
    control = target_mod.use_emulator("healthy")
    _forget_credentials()
    yield control
    target_mod.reset_target(stop_emulator=True)
    _forget_credentials()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _quiet_sdk() -> Iterator[None]:
    """The SDK logs every failed try as a WARNING; these tests provoke hundreds of them on purpose."""
    loggers = [logging.getLogger(n) for n in ("azure", "msal")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    yield
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(level)


_LAST = "test_secret_hygiene.py::test_executed_notebooks_hold_no_token"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the executed-notebook scan to the end of the run, so it can reuse the copies that
    tests/notebooks executed (once per session) instead of executing every notebook a second time."""
    last = [i for i in items if i.nodeid.endswith(_LAST)]
    if last:
        items[:] = [i for i in items if i not in last] + last
