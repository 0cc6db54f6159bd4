"""Fixtures for the hardening tests: the embedded emulator (per module), a JWT scanner, quiet SDK logs."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from mi_helpers import identity as identity_mod
from mi_helpers import targeting as target_mod

sys.modules.setdefault("hardening_suite", sys.modules[__name__])

# Three base64url segments, the first two long enough to be a JSON header/payload, the third possibly
# empty (unsigned tokens). Stricter than "starts with eyJ": any JWT, whatever its header looks like.
_SEGMENTS = re.compile(r"[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*")


def _json_object(segment: str) -> bool:
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(value, dict)


def whole_jwts(text: str) -> list[str]:
    """Every whole JWT in ``text`` (header and payload decode to JSON objects), shown by 12 characters."""
    found = []
    for m in _SEGMENTS.finditer(text):
        head, payload = m.group(0).split(".")[:2]
        if _json_object(head) and _json_object(payload):
            found.append(m.group(0)[:12] + "…")
    return found


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
