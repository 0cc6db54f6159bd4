"""A scenario for one block of a lesson, on an emulator nobody else sees.

``mi-helpers lab`` runs one emulator for every kernel, so a lesson that switched *that* emulator to another
scenario would change the world of every other notebook until someone switched it back, and a lesson
stopped halfway would leave it switched. :func:`private_emulator` gives the block an emulator of its own
instead (as notebook 05's error lab has), started in the scenario and stopped when the block ends, however
it ends: normally, on an error, on an interrupt, or with the kernel. The shared emulator is never touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mi_helpers.constants import CLIENT_REDIRECT_VARIABLES
from mi_helpers.environ import patched_environ
from mi_helpers.validate import validate_scenario

if TYPE_CHECKING:
    from mi_helpers.emulator.control import EmulatorControl

__all__ = ["lesson_scenario", "private_emulator"]


@contextmanager
def private_emulator(scenario: str = "healthy", **params: Any) -> Iterator[EmulatorControl]:
    """Run the block on a new embedded emulator in ``scenario`` (``params``: the scenario's parameters).

    Inside, ``mi.target()``, ``mi.get_token()`` and the ARM helpers all use that emulator; afterwards the
    process is back on its previous target (the shared emulator of ``mi-helpers lab``, this kernel's
    embedded one, or Azure) with its environment as it was. A bad scenario name is a one-line
    ``InputError`` before anything starts.
    """
    from mi_helpers.targeting import isolated_target, use_emulator

    validate_scenario(scenario, _scenario_names())
    # isolated_target: a fresh target state (stopped and given back on exit); without the redirect variables
    # the process's new emulator is one of its own, not the shared one they point at.
    with isolated_target(), patched_environ(dict.fromkeys(CLIENT_REDIRECT_VARIABLES)):
        yield use_emulator(scenario, **params)


@contextmanager
def lesson_scenario(scenario: str, **params: Any) -> Iterator[EmulatorControl | None]:
    """On the emulator, :func:`private_emulator` in ``scenario``; on Azure, the block runs on your VM.

    For the lessons that show a world ("no system identity, two user-assigned ones"): the emulator plays
    it for the block, while a real VM is never changed (it yields None there).
    """
    from mi_helpers.targeting import target

    if not target().is_emulator:
        validate_scenario(scenario, _scenario_names())
        yield None
        return
    with private_emulator(scenario, **params) as control:
        yield control


def _scenario_names() -> list[str]:
    from mi_helpers.emulator import SCENARIOS

    return list(SCENARIOS)
