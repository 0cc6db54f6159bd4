"""Back-off curves and ``Retry-After``: the pieces every retry loop of the helpers shares.

``get_token`` (with the IMDS policy of :mod:`mi_helpers.attempts`), the checklist's ARM calls and the
error lab's ``retry_until_green`` all wait with these, so a fix to Retry-After handling lands once.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["backoff", "exponential", "retry_after"]


def backoff(retry_index: int, delta: float, cap: float = 60.0) -> float:
    """IMDS's documented exponential back-off: ``delta·(2^i − 1)`` → 0, 2, 6, 14, 30 s for delta 2, ≤ cap."""
    return min(cap, delta * (2**retry_index - 1))


def exponential(retry_index: int, first: float, cap: float) -> float:
    """A doubling wait that starts at ``first``: ``first·2^i`` → 0.5, 1, 2, 4 s for first 0.5, ≤ cap."""
    return min(cap, first * 2**retry_index)


def _seconds(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return max(0.0, float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None  # an HTTP-date: neither IMDS nor ARM sends one


def _header(headers: object) -> object:
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if str(key).lower() == "retry-after":
                return value
        return None
    get = getattr(headers, "get", None)  # azure-core / requests case-insensitive header objects
    return get("Retry-After") if callable(get) else None


def retry_after(source: object) -> float | None:
    """The server's ``Retry-After`` in seconds, or None.

    ``source`` is a header mapping, a response (``.headers``), an SDK exception (``.response.headers``),
    or anything with ``attempts`` (a ``SignInError``: its last attempt that saw one).
    """
    attempts = getattr(source, "attempts", None)
    if isinstance(attempts, list):
        seen = [a.retry_after for a in attempts if getattr(a, "retry_after", None)]
        if seen:
            return _seconds(seen[-1])
    if isinstance(source, Mapping):
        return _seconds(_header(source))
    response = getattr(source, "response", None)
    headers = getattr(response if response is not None else source, "headers", None)
    return _seconds(_header(headers)) if headers is not None else None
