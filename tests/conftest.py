"""Suite-wide fixtures: the network guard (in this process and in every child process), target isolation."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

GUARD_DIR = Path(__file__).parent / "guard"
sys.path.insert(0, str(GUARD_DIR))
import netguard  # noqa: E402

sys.path.pop(0)


@pytest.fixture(scope="session", autouse=True)
def _network_guard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Refuse non-loopback connections here and in child processes (via sitecustomize on PYTHONPATH)."""
    log = tmp_path_factory.mktemp("netguard") / "violations.log"
    log.touch()
    os.environ["MI_HELPERS_GUARD_LOG"] = str(log)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(GUARD_DIR), os.environ.get("PYTHONPATH", "")) if p
    )
    os.environ.setdefault("MI_HELPERS_TARGET", "emulator")
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    netguard.install()
    yield log


@pytest.fixture(autouse=True)
def _no_network_escape(_network_guard: Path) -> Iterator[None]:
    """Fail the test if it (or any process it started) tried to reach a non-loopback address."""
    before = _network_guard.stat().st_size
    yield
    with open(_network_guard, encoding="utf-8") as fh:
        fh.seek(before)
        added = fh.read()
    if added.strip():
        pytest.fail("network guard: non-loopback connection attempted:\n" + added[:4000], pytrace=False)


@pytest.fixture
def isolated_target() -> Iterator[None]:
    """The test runs as a new process would: no target chosen, no emulator started, nothing exported;
    afterwards the emulator it started is stopped and the previous target state and environment are back."""
    from support.targets import isolated_target as isolated

    with isolated():
        yield


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the browser tests last: Playwright's sync API keeps an asyncio loop running in this thread for
    the whole browser session, which would break later tests that call ``asyncio.run``."""
    browser = [i for i in items if i.get_closest_marker("browser")]
    if browser:
        items[:] = [i for i in items if not i.get_closest_marker("browser")] + browser
