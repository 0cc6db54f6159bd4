"""What the az tests report at the end of a run (filled by the tests, printed by ``conftest.py``)."""

from __future__ import annotations

#: Per-run figures: (command, seconds).
TIMINGS: list[tuple[str, float]] = []
#: Commands listed instead of run: (command, where printed, reason).
NOT_RUN: list[tuple[str, str, str]] = []
