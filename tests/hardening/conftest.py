"""Fixtures for the hardening tests: the embedded emulator (per module) and quiet SDK logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from support.targets import own_emulator


@pytest.fixture(scope="module")
def hardening_emulator() -> Iterator[Any]:
    """The embedded emulator in ``healthy`` for this module (its own target state), via ``use_emulator``."""
    with own_emulator("healthy") as control:
        yield control


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
