"""The emulator's two time sources, injectable so tests can step time instead of sleeping.

``monotonic()`` drives everything that counts seconds (fault windows, throttling buckets); ``time()`` is the
epoch clock that goes into tokens (``iat``/``nbf``/``exp``, which real clients compare with their own clock)
and that ARM checks them against.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    """What the emulator reads the time from."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (fault windows, token buckets)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (token times, ARM's notion of "now")."""
        ...


class SystemClock:
    """The real clocks: :func:`time.monotonic` and :func:`time.time`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


SYSTEM_CLOCK = SystemClock()
