"""The process environment as the helpers change it: variables set for a block, and a ledger of exports.

azure-identity, MSAL and requests read their redirection variables (``AZURE_POD_IDENTITY_AUTHORITY_HOST``,
``REQUESTS_CA_BUNDLE``, ``NO_PROXY``…) from ``os.environ`` at request time, so pointing them at the emulator
means exporting variables into this process. :class:`ExportLedger` remembers what each exported variable
was before, so the user's own values can always be shown (:meth:`ExportLedger.original`) and given back.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from mi_helpers.constants import NO_PROXY_VARIABLES

__all__ = ["ExportLedger", "patched_environ", "replace_environ", "restored_environ"]


def _apply(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextlib.contextmanager
def patched_environ(changes: Mapping[str, str | None]) -> Iterator[None]:
    """Set (``None``: unset) environment variables for the duration of a block, then restore them.

    This is how a lesson or an error-lab run plays a differently configured client machine without leaking
    that configuration afterwards.
    """
    saved = {key: os.environ.get(key) for key in changes}
    try:
        _apply(changes)
        yield
    finally:
        _apply(saved)


def replace_environ(env: Mapping[str, str]) -> None:
    """Make ``os.environ`` equal ``env``, touching only the variables that differ.

    (Clearing ``os.environ`` first would leave other threads without ``PATH`` & co. for a moment.)
    """
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@contextlib.contextmanager
def restored_environ() -> Iterator[None]:
    """Run a block, then put every variable back as it was before it (added ones removed)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        replace_environ(saved)


class ExportLedger:
    """The variables the helpers exported into ``os.environ``, each with the value it had before."""

    def __init__(self) -> None:
        self._before: dict[str, str | None] = {}  # variable -> its value before we exported it (None: unset)

    def export(self, env: Mapping[str, str]) -> None:
        """Make ``env`` the exported set: set its variables; give back those a previous export added."""
        for key in [k for k in self._before if k not in env]:
            _apply({key: self._before.pop(key)})
        for key, value in env.items():
            self._before.setdefault(key, os.environ.get(key))
            os.environ[key] = str(value)

    def merge_no_proxy(self, *hosts: str) -> None:
        """Add ``hosts`` to NO_PROXY and no_proxy (requests reads either), keeping the user's entries."""
        for var in NO_PROXY_VARIABLES:
            have = [h.strip() for h in os.environ.get(var, "").split(",") if h.strip()]
            self._before.setdefault(var, os.environ.get(var))
            os.environ[var] = ",".join([*have, *(h for h in hosts if h not in have)])

    def withdraw(self) -> None:
        """Give every exported variable its old value back (nothing is exported afterwards)."""
        self.export({})

    def original(self) -> dict[str, str]:
        """The environment as the user set it: exported variables shown with their old values."""
        env = dict(os.environ)
        for key, before in self._before.items():
            if before is None:
                env.pop(key, None)
            else:
                env[key] = before
        return env
