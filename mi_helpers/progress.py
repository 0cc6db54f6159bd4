"""Progress of the helpers' bounded waits: one bar, and the events ``get_token`` reports.

:class:`BudgetBar` shows seconds used out of a budget and what is happening; the bar (tqdm's notebook or
terminal flavour) opens only when :meth:`BudgetBar.open` is called, so a call that simply works draws
nothing, and drawing problems never reach the caller (a display glitch must not break sign-in).
``get_token`` (:class:`SignInProgress`, :class:`ProgressEvent`) and the error lab's ``retry_until_green``
both show their waits with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from mi_helpers.redaction import redact

__all__ = ["BudgetBar", "ProgressEvent", "ProgressKind", "SignInProgress"]

#: What a :class:`ProgressEvent` reports: a try starts, its result, a wait, success, the final failure.
ProgressKind = Literal["attempt", "result", "wait", "done", "failed"]


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


@dataclass
class ProgressEvent:
    """What the progress callback of :func:`get_token` receives."""

    kind: ProgressKind
    attempt: int
    elapsed: float
    budget: float
    message: str
    status: int | None = None
    wait: float = 0.0


class SignInProgress:
    """Reports a sign-in: a :class:`~mi_helpers.progress.BudgetBar` (only once something is slow or
    retried; a ticker keeps its seconds moving) and/or a callback receiving :class:`ProgressEvent`."""

    def __init__(self, progress: bool | Callable[[ProgressEvent], Any], budget: float, label: str) -> None:
        self.callback = progress if callable(progress) else None
        self.budget = budget
        self.t0 = time.monotonic()
        self.bar = BudgetBar(label, budget, start=self.t0) if progress is True else None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if self.bar is not None:
            self._ticker = threading.Thread(target=self._tick, name="mi-helpers-progress", daemon=True)
            self._ticker.start()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def _tick(self) -> None:
        bar = self.bar
        while bar is not None and not self._stop.wait(0.25):
            if not bar.is_open and bar.elapsed() > 1.0:
                bar.open()
            bar.refresh()

    def emit(
        self, kind: ProgressKind, attempt: int, message: str, status: int | None = None, wait: float = 0.0
    ) -> None:
        message = redact(message)
        if self.bar is not None:
            if kind in ("wait", "result") and wait > 0:
                self.bar.open()
            self.bar.say(message)
        if self.callback is not None:
            self.callback(ProgressEvent(kind, attempt, self.elapsed(), self.budget, message, status, wait))

    def __enter__(self) -> SignInProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
        if self.bar is not None:
            self.bar.close()
