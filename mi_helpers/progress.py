"""One progress bar for the helpers' bounded waits: seconds used out of a budget, and what is happening.

The bar (tqdm's notebook or terminal flavour) opens only when :meth:`BudgetBar.open` is called, so a call
that simply works draws nothing; drawing problems never reach the caller (a display glitch must not break
sign-in). ``get_token`` and the error lab's ``retry_until_green`` both show their waits with it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["BudgetBar"]


class BudgetBar:
    """``label: |████      | 3.1/20 s <message>`` for a wait bounded by ``budget`` seconds."""

    def __init__(self, label: str, budget: float, *, start: float | None = None) -> None:
        self.label = label
        self.budget = budget
        self.start = time.monotonic() if start is None else start
        self.message = ""
        self._bar: Any = None
        self._failed = False
        self._lock = threading.Lock()  # a ticker thread and the caller may both draw

    @property
    def is_open(self) -> bool:
        return self._bar is not None

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def open(self) -> None:
        """Show the bar from now on (no-op when it is already open or cannot be drawn here)."""
        with self._lock:
            if self._bar is not None or self._failed:
                return
            try:
                from tqdm.auto import tqdm

                self._bar = tqdm(
                    total=round(self.budget, 1),
                    unit="s",
                    desc=self.label,
                    bar_format="{desc}: {bar}| {n:.1f}/{total:.0f} s{postfix}",
                    leave=True,
                )
            except Exception:  # no terminal, no notebook front-end: no bar, no error
                self._failed = True
            self._draw_locked()

    def say(self, message: str) -> None:
        """Set the text after the figures; redrawn at once when the bar is open."""
        self.message = message
        self.refresh()

    def refresh(self) -> None:
        """Redraw the elapsed seconds (and the message)."""
        with self._lock:
            self._draw_locked()

    def _draw_locked(self) -> None:
        bar = self._bar
        if bar is None:
            return
        try:
            bar.n = round(min(self.elapsed(), self.budget), 1)
            bar.set_postfix_str(self.message, refresh=False)
            bar.refresh()
        except Exception:  # noqa: S110 - a display glitch must never break the caller
            pass

    def close(self) -> None:
        """Draw the last state and close the bar (when it was ever opened)."""
        with self._lock:
            bar = self._bar
            if bar is None:
                return
            self._draw_locked()
            self._bar = None
        try:
            bar.close()
        except Exception:  # noqa: S110 - see _draw_locked
            pass
