"""The fault engine: scripted misbehaviour per target, counted in requests or seconds on an injected clock.

Faults are scripted per *target*:

* ``imds``       every ``/metadata/…`` request on the IMDS listener, before any validation (hang, latency,
                 a foreign server's HTML, Docker Desktop's 403);
* ``imds-token`` token requests that passed IMDS's own checks (410, 429, 500, ``Identity not found``);
* ``arm``        authenticated ARM requests (latency, 429 throttling);
* ``arm-rbac``   ARM's RBAC decision (``role-propagating`` denies while its window lasts).

Windows of time and counts start at the **first matching request**, not when the scenario is switched on, so
a client always gets the whole window: ``n`` requests or ``t`` seconds, whichever ends first (``None`` =
unbounded). Seconds are read from the engine's clock (:func:`time.monotonic` unless a test injects another),
so a test steps time instead of sleeping through it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Fault", "FaultEngine", "FaultKind", "FaultTarget", "TokenBucket", "Window"]

FaultTarget = Literal["imds", "imds-token", "arm", "arm-rbac"]
FaultKind = Literal["reply", "hang", "latency", "throttle", "deny"]


@dataclass
class Window:
    """Fires for the first ``n`` matching requests or ``t`` s after the first one (``None``: no bound)."""

    n: int | None = None
    t: float | None = None
    first: float | None = None
    count: int = 0

    def take(self, now: float) -> bool:
        """Count one matching request at ``now`` (seconds); True while the window still fires."""
        if self.first is None:
            self.first = now
        if self.n is not None and self.count >= self.n:
            return False
        if self.t is not None and now - self.first >= self.t:
            return False
        self.count += 1
        return True


@dataclass
class TokenBucket:
    """``capacity`` requests at once, refilled at ``rate`` per second (ARM and IMDS throttling)."""

    capacity: float
    rate: float
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float) -> bool:
        """Spend one token at ``now`` (seconds): True if there was one, False when throttled."""
        if self.tokens < 0:
            self.tokens, self.stamp = self.capacity, now
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def remaining(self) -> int:
        """Whole tokens left (what ARM's ``x-ms-ratelimit-remaining-*`` headers report)."""
        return max(0, int(self.tokens if self.tokens >= 0 else self.capacity))


@dataclass
class Fault:
    """One scripted misbehaviour at a target.

    ``kind``: ``reply`` (answer ``status``/``body``), ``hang`` (accept, never answer), ``latency`` (sleep
    ``seconds`` then continue), ``throttle`` (``reply`` whenever ``bucket`` is empty), ``deny`` (RBAC says
    no).
    """

    target: FaultTarget
    kind: FaultKind
    status: int = 0
    body: Any = None
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    window: Window = field(default_factory=Window)
    seconds: float = 0.0
    bucket: TokenBucket | None = None
    label: str = ""
    reason: str = ""  # HTTP reason phrase, when the status line itself carries the message
    #: Only this principal's requests match (object ID; None: everyone's). A role assignment created through
    #: ARM in ``role-propagating`` scripts such a fault for its principal (docs/protocol.md#arm-writes).
    principal: str | None = None


class FaultEngine:
    """Evaluates the active faults of a scenario, thread-safely; ``release`` frees hung requests.

    ``clock`` gives the seconds windows and buckets are measured in (monotonic by default).
    """

    def __init__(
        self, faults: list[Fault] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self.clock = clock
        self.faults: list[Fault] = list(faults or [])
        self.released = threading.Event()

    def replace(self, faults: list[Fault]) -> None:
        """Switch to a new fault list; requests hung by the old one are released."""
        old = self.released
        with self._lock:
            self.faults = list(faults)
            self.released = threading.Event()
        old.set()

    def clear(self) -> None:
        self.replace([])

    def release(self) -> None:
        self.released.set()

    def add(self, fault: Fault) -> None:
        """Start one more fault next to the scenario's (until the next :meth:`replace`)."""
        with self._lock:
            self.faults.append(fault)

    def check(
        self, target: FaultTarget, now: float | None = None, *, principal: str | None = None
    ) -> Fault | None:
        """The terminal fault for this request at ``target`` (sleeping through latency faults first).

        ``principal`` is the caller's object ID: a fault for one principal matches only its requests.
        """
        t = self.clock() if now is None else now
        delay = 0.0
        hit: Fault | None = None
        who = (principal or "").lower()
        with self._lock:
            for f in self.faults:
                if f.target != target or (f.principal is not None and f.principal.lower() != who):
                    continue
                if f.kind == "latency":
                    if f.window.take(t):
                        delay += f.seconds
                elif f.kind == "throttle":
                    assert f.bucket is not None
                    if not f.bucket.take(t):
                        hit = f
                        break
                elif f.window.take(t):
                    hit = f
                    break
        if delay > 0:
            self.released.wait(delay)  # real seconds: latency is what a client measures
        return hit

    def describe(self) -> list[dict[str, Any]]:
        """The active faults as the admin API shows them; ``started`` is the epoch time the window opened."""
        with self._lock:
            now, wall = self.clock(), time.time()
            return [
                {
                    "target": f.target,
                    "kind": f.kind,
                    "label": f.label,
                    "status": f.status or None,
                    "n": f.window.n,
                    "t": f.window.t,
                    "fired": f.window.count,
                    "started": None if f.window.first is None else wall - (now - f.window.first),
                }
                for f in self.faults
            ]
