"""``EmulatorControl``: what the in-process :class:`~mi_helpers.emulator.Emulator` and the
:class:`~mi_helpers.emulator.AdminClient` (the same emulator driven over HTTP from another process) share.

The helpers hold "the emulator of the current target" as an ``EmulatorControl`` and never need to know
which of the two it is; mypy checks that both really offer these members.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from mi_helpers.emulator.client import AdminClient
    from mi_helpers.emulator.server import Emulator

__all__ = ["EmulatorControl"]


@runtime_checkable
class EmulatorControl(Protocol):
    """Switch scenarios, apply fixes, read the world and the request log of a running emulator."""

    @property
    def scenario(self) -> str:
        """Name of the current scenario."""
        ...

    @property
    def params(self) -> dict[str, Any]:
        """The current scenario's resolved parameters."""
        ...

    @property
    def admin_key(self) -> str:
        """The per-run key of the admin API (``X-Emulator-Key``)."""
        ...

    @property
    def imds_url(self) -> str: ...

    @property
    def arm_url(self) -> str: ...

    @property
    def ca_bundle(self) -> str: ...

    def scenario_state(self) -> dict[str, Any]:
        """Name, description, params, active faults and client-side extras of the current scenario."""
        ...

    def set_scenario(self, name: str, **params: Any) -> dict[str, Any]:
        """Switch scenario (fresh world, faults re-armed); returns :meth:`scenario_state`."""
        ...

    def apply_fix(self, action: str, **kw: Any) -> dict[str, Any]:
        """Change the live world (or stop the faults) as a learner's fix would."""
        ...

    def world_dict(self) -> dict[str, Any]:
        """JSON-able description of the live world."""
        ...

    def request_log(self) -> list[dict[str, Any]]:
        """Recent requests, oldest first, tokens redacted."""
        ...

    def clear_log(self) -> None: ...

    def environment(self) -> dict[str, str]:
        """Every variable a client process needs to talk to this emulator."""
        ...


if TYPE_CHECKING:

    def _both_satisfy_the_protocol(emulator: Emulator, client: AdminClient) -> list[EmulatorControl]:
        """Never called: mypy proves here that both classes implement :class:`EmulatorControl`."""
        return [emulator, client]
