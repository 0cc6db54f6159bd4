"""Fixtures for the az CLI tests: the CLI itself, one emulator for the module, signed-in sessions.

The CLI is installed on first use (``scripts/ensure-azure-cli``, about a minute); ``make test`` installs
it before pytest starts. One emulator serves a whole module: each run switches it to the scenario it needs
(``set_scenario`` resets the world and re-arms the faults), and each run gets its own copy of a prepared
CLI configuration, signed in once per identity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.azcli import AzSession, ensure_az, new_session
from support.world import UAMI_READER_CLIENT

from azcli.operator import OPERATOR_LOGIN
from azcli.report import NOT_RUN, TIMINGS

_LOGIN_COMMANDS = {
    "system": "az login --identity -o none",
    "uami-reader": f"az login --identity --client-id {UAMI_READER_CLIENT} -o none",
    # the operator principal that stands in for the learner (the line a learner types in a Lab terminal)
    "operator": OPERATOR_LOGIN + " -o none",
}


@pytest.fixture(scope="session")
def az() -> Path:
    """The ``az`` of ``.venv-az`` (installed when missing)."""
    return ensure_az()


@pytest.fixture(scope="module")
def emulator() -> Iterator[object]:
    from mi_helpers.emulator import Emulator

    emu = Emulator(scenario="healthy")
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def session_for(
    az: Path, emulator: object, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], AzSession]:
    """``session_for(login)``: a prepared session signed in as ``none``, ``system``, ``uami-reader`` or
    ``operator``."""
    parent = tmp_path_factory.mktemp("az-sessions")
    made: dict[str, AzSession] = {}

    def get(login: str) -> AzSession:
        if login not in made:
            session = new_session(az, emulator, parent)
            if login != "none":
                emulator.set_scenario("healthy")  # type: ignore[attr-defined]
                result = session.run(_LOGIN_COMMANDS[login])
                TIMINGS.append((_LOGIN_COMMANDS[login], result.seconds))
                assert result.returncode == 0, result.describe()
            made[login] = session
        return made[login]

    return get


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if NOT_RUN:
        terminalreporter.section("az commands that cannot run off Azure (listed, not run)")
        for command, where, reason in NOT_RUN:
            terminalreporter.write_line(f"{command}\n    printed in {where}\n    reason: {reason}")
    if TIMINGS:
        total = sum(s for _, s in TIMINGS)
        slowest = max(TIMINGS, key=lambda t: t[1])
        terminalreporter.section("az CLI runs")
        terminalreporter.write_line(
            f"{len(TIMINGS)} az runs, {total:.1f} s in all, {total / len(TIMINGS):.2f} s each on average; "
            f"slowest {slowest[1]:.1f} s: {slowest[0][:90]}"
        )
