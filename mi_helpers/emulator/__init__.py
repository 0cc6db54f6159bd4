"""The local Azure emulator: IMDS over HTTP and an ARM subset over HTTPS on loopback, driven by scenarios.

Importing this package is cheap; the server machinery loads on first use of :class:`Emulator`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["SCENARIOS", "AdminClient", "Emulator", "World"]

if TYPE_CHECKING:
    from mi_helpers.emulator.client import AdminClient
    from mi_helpers.emulator.scenarios import SCENARIOS
    from mi_helpers.emulator.server import Emulator
    from mi_helpers.emulator.world import World

_WHERE = {
    "Emulator": "mi_helpers.emulator.server",
    "AdminClient": "mi_helpers.emulator.client",
    "SCENARIOS": "mi_helpers.emulator.scenarios",
    "World": "mi_helpers.emulator.world",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mi_helpers.emulator' has no attribute {name!r}")
