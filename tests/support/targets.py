"""Target state for tests: this process on an emulator of its own, isolated from every other test.

Built on :func:`mi_helpers.targeting.isolated_target` (a block run as a new process would: no target chosen,
no emulator started; afterwards the previous state and every environment variable come back), so no test
reaches into the module's private state.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mi_helpers.constants import EMULATOR_POINTER_VARIABLES
from mi_helpers.targeting import isolated_target, use_emulator

__all__ = ["isolated_target", "own_emulator"]


@contextmanager
def own_emulator(scenario: str = "healthy", **params: Any) -> Iterator[Any]:
    """An isolated target on a freshly started embedded emulator in ``scenario``; yields its control.

    Variables that describe an emulator running elsewhere (a suite started from a ``mi-helpers lab``
    terminal) are dropped for the block, so the emulator is this process's own.
    """
    with isolated_target():
        for name in EMULATOR_POINTER_VARIABLES:
            os.environ.pop(name, None)
        yield use_emulator(scenario, **params)
