"""One token request of ``get_token``: what the wire showed, what kind of failure it was, what comes next.

azure-identity's pipeline hooks (``raw_request_hook``/``raw_response_hook``) record every exchange of the
current call in this thread (:class:`Recorder`); :func:`classify` then turns a failed SDK call and those
exchanges into an :class:`Attempt` whose ``kind`` is one word of :data:`AttemptKind`. :data:`KINDS` says,
for each kind, what it means in a sentence, whether retrying can help, and which diagnosis it points to.
:func:`decide` is the retry policy IMDS documents (``docs/protocol.md#retries-and-throttling``) as a pure
function: given an attempt and the clock, wait how long, or give up and why.

Nothing recorded here holds a token: bodies are parsed for their ``error`` fields only, and every text kept
is redacted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from mi_helpers.constants import Imds
from mi_helpers.redaction import redact
from mi_helpers.retry import backoff, retry_after

__all__ = [
    "KINDS",
    "Attempt",
    "AttemptKind",
    "AttemptOutcome",
    "Decision",
    "Exchange",
    "GiveUpReason",
    "KindInfo",
    "Recorder",
    "RetryPolicy",
    "classify",
    "decide",
]

#: What one attempt came to. ``ok`` is the success; the others name the failure.
AttemptKind = Literal[
    "ok",
    "imds-updating",
    "not-found",
    "throttled",
    "throttle-replay",
    "server-error",
    "timeout",
    "connect-timeout",
    "identity-not-found",
    "multiple-identities",
    "bad-request",
    "connection-refused",
    "unreachable",
    "non-json",
    "proxy",
    "forbidden",
    "bad-response",
    "unexpected-status",
    "error",
]
#: What ``get_token`` decided after an attempt: done, try again, stop (retrying cannot help), or stop
#: (retrying might help, but the retries or the budget are used up).
AttemptOutcome = Literal["ok", "retry", "fatal", "gave-up"]

#: Why ``get_token`` stopped without a token.
GiveUpReason = Literal["not-retryable", "budget-exhausted", "retries-exhausted"]

#: Seconds MSAL replays a cached 429/5xx without a Retry-After (its throttle cache), before asking again.
MSAL_THROTTLE_DEFAULT = 5.0


class KindInfo(NamedTuple):
    """What an attempt kind means: one line for people, whether a retry can fix it, its diagnosis id."""

    text: str
    retryable: bool = False
    diagnosis_id: str | None = None


#: The one table of attempt kinds. ``retryable`` is about the next try of this very request (a dropped
#: SYN, ``connect-timeout``, is worth one), ``diagnosis_id`` about what a persisting failure means (for
#: ``connect-timeout``: IMDS is unreachable, which is not transient).
KINDS: dict[AttemptKind, KindInfo] = {
    "ok": KindInfo("a token"),
    "imds-updating": KindInfo(
        "410 Gone: IMDS is being updated (available again within 70 s)", True, "imds-updating"
    ),
    "not-found": KindInfo("404: the IMDS endpoint is updating", True, "imds-updating"),
    "throttled": KindInfo("429: IMDS throttled the request", True, "imds-throttled"),
    "throttle-replay": KindInfo("the SDK replayed a cached throttling error", True, "imds-throttled"),
    "server-error": KindInfo("IMDS server error", True, "imds-server-error"),
    "timeout": KindInfo("no answer within the read timeout", True, "imds-timeout"),
    "connect-timeout": KindInfo("could not connect within the connect timeout", True, "imds-unreachable"),
    "identity-not-found": KindInfo(
        "the requested identity is not assigned to this VM (400 Identity not found)",
        diagnosis_id="identity-not-assigned",
    ),
    "multiple-identities": KindInfo(
        "several user-assigned identities and no selector (400)",
        diagnosis_id="user-assigned-selector-required",
    ),
    "bad-request": KindInfo("IMDS rejected the request (400)"),
    "connection-refused": KindInfo(
        "connection refused: nothing listens at the IMDS address", diagnosis_id="imds-unreachable"
    ),
    "unreachable": KindInfo("IMDS address unreachable", diagnosis_id="imds-unreachable"),
    "non-json": KindInfo("the answer was not JSON (not IMDS?)", diagnosis_id="non-imds-response"),
    "proxy": KindInfo(
        "a proxy answered instead of IMDS (set NO_PROXY)", diagnosis_id="proxy-intercepts-imds"
    ),
    "forbidden": KindInfo("403 from the IMDS address (a proxy or container network?)"),
    "bad-response": KindInfo("IMDS answered 200 without a usable token"),
    "unexpected-status": KindInfo("unexpected HTTP status"),
    "error": KindInfo("unexpected error"),
}


@dataclass
class Attempt:
    """One token request of ``get_token``: when, what came back, and what was decided."""

    number: int
    started: float  # s since get_token started
    duration: float
    status: int | None  # HTTP status, None when no HTTP answer
    kind: AttemptKind
    error: str | None = None  # IMDS "error" field
    description: str | None = None  # IMDS "error_description" (redacted)
    retry_after: float | None = None
    outcome: AttemptOutcome = "ok"
    wait: float = 0.0  # s slept before the next attempt
    exception: str | None = None  # type name of the SDK exception
    url: str = ""

    @property
    def text(self) -> str:
        """What happened, in words (with IMDS's own error code and description when it sent them)."""
        detail = f" ({self.error}) {self.description}" if self.error or self.description else ""
        return KINDS[self.kind].text + detail

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# --------------------------------------------------------------------------------------------- recording


@dataclass
class Exchange:
    """What one HTTP exchange with IMDS looked like (never the token itself)."""

    url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    json_ok: bool | None = None
    error: str | None = None
    description: str | None = None


class Recorder:
    """Collects the exchanges of the current ``get_token`` call in this thread (pipeline hooks write here).

    Pass :meth:`on_request` and :meth:`on_response` as the credential's ``raw_request_hook`` and
    ``raw_response_hook``; they record only while a :meth:`recording` block is active in their thread.
    """

    _local = threading.local()

    @classmethod
    def _log(cls) -> list[Exchange] | None:
        return getattr(cls._local, "log", None)

    @classmethod
    def recording(cls) -> _Recording:
        """``with Recorder.recording() as log:`` — the exchanges of the block, in order."""
        return _Recording(cls)

    @classmethod
    def on_request(cls, pipeline_request: Any) -> None:
        log = cls._log()
        if log is not None:
            log.append(Exchange(url=str(pipeline_request.http_request.url)))

    @classmethod
    def on_response(cls, pipeline_response: Any) -> None:
        log = cls._log()
        if log is None:
            return
        resp = pipeline_response.http_response
        if log and log[-1].status is None:
            entry = log[-1]
        else:
            entry = Exchange(url=str(resp.request.url))
            log.append(entry)
        entry.status = resp.status_code
        keep = ("retry-after", "content-type", "via", "server", "x-ms-request-id")
        entry.headers = {k.lower(): v for k, v in resp.headers.items() if k.lower() in keep}
        _read_body(entry, resp)


class _Recording:
    def __init__(self, recorder: type[Recorder]) -> None:
        self._recorder = recorder

    def __enter__(self) -> list[Exchange]:
        log: list[Exchange] = []
        self._recorder._local.log = log
        return log

    def __exit__(self, *exc: object) -> None:
        self._recorder._local.log = None


def _read_body(entry: Exchange, resp: Any) -> None:
    """IMDS's ``error``/``error_description`` (redacted), or a readable trace of what answered instead."""
    try:
        body = json.loads(resp.text())
    except (ValueError, UnicodeDecodeError):
        entry.json_ok = False
        if resp.status_code >= 400:
            reason = str(getattr(resp, "reason", "") or "")
            try:
                text = " ".join(resp.text().split())[:200]
            except (ValueError, UnicodeDecodeError):
                text = ""
            entry.description = redact(" ".join(p for p in (reason, text) if p)) or None
        return
    entry.json_ok = isinstance(body, dict)
    if isinstance(body, dict) and resp.status_code >= 400:
        entry.error = redact(body.get("error", "")) or None
        entry.description = redact(body.get("error_description", "")) or None


# --------------------------------------------------------------------------------------------- classify


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _proxied(url: str) -> bool:
    try:
        from requests.utils import get_environ_proxies

        return bool(get_environ_proxies(url))
    except Exception:
        return False


_STATUS_KINDS: dict[int, AttemptKind] = {
    200: "bad-response",
    404: "not-found",
    410: "imds-updating",
    429: "throttled",
}


def _bad_request_kind(description: str | None) -> AttemptKind:
    desc = (description or "").lower()
    if "multiple user assigned" in desc:
        return "multiple-identities"
    if "identity not found" in desc or "not been assigned" in desc:
        return "identity-not-found"
    return "bad-request"


def kind_of_answer(last: Exchange) -> AttemptKind:
    """The kind of a failed request that got an HTTP answer (``last``)."""
    status = last.status or 0
    proxy_hint = "via" in last.headers or _proxied(last.url)
    if status == 403 and "unreachable" in (last.description or "").lower():
        return "unreachable"  # Docker Desktop's proxy: the container has no route to IMDS
    if last.json_ok is False:
        return "proxy" if proxy_hint else "non-json"
    if status == 400:
        return _bad_request_kind(last.description)
    if status == 403:
        return "proxy" if proxy_hint else "forbidden"
    if status in _STATUS_KINDS:
        return _STATUS_KINDS[status]
    if 500 <= status < 600:
        return "server-error"
    return "unexpected-status"


def kind_of_exception(exc: BaseException) -> AttemptKind:
    """The kind of a failed request that got no HTTP answer, from the exception chain's types and texts."""
    chain = list(_chain(exc))
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain).lower()
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "connection refused" in text:
        return "connection-refused"
    if names & {"ServiceResponseTimeoutError", "ReadTimeout", "ReadTimeoutError"} or "read timed out" in text:
        return "timeout"
    if names & {"ServiceRequestTimeoutError", "ConnectTimeout", "ConnectTimeoutError"}:
        return "connect-timeout"
    if names & {"ServiceRequestError", "ConnectionError", "NewConnectionError"}:
        return "unreachable"
    if "token request error:" in text:
        return "throttle-replay"  # MSAL answered from its throttle cache: no request was sent
    if any(isinstance(e, json.JSONDecodeError) for e in chain):
        return "non-json"
    return "error"


def classify(exc: BaseException, log: list[Exchange]) -> Attempt:
    """Turn one failed SDK call (and the exchanges recorded during it) into an :class:`Attempt`."""
    answered = [r for r in log if r.status is not None]
    att = Attempt(
        number=0, started=0.0, duration=0.0, status=None, kind="error", exception=type(exc).__name__
    )
    att.url = (log[-1].url if log else "") or ""
    if answered:
        last = answered[-1]
        att.status, att.error, att.description = last.status, last.error, last.description
        att.retry_after = retry_after(last.headers)
        att.kind = kind_of_answer(last)
        return att
    att.kind = kind_of_exception(exc)
    if att.kind == "throttle-replay":
        att.retry_after = MSAL_THROTTLE_DEFAULT
    return att


# --------------------------------------------------------------------------------------------- what next

_HONOURS_RETRY_AFTER: frozenset[AttemptKind] = frozenset({"throttled", "throttle-replay", "server-error"})


class RetryPolicy(NamedTuple):
    """The documented IMDS retry strategy (``docs/protocol.md#retries-and-throttling``).

    Exponential back-off ``delta·(2^i − 1)`` (0, 2, 6, 14, 30 s for delta 2), at most ``max_backoff``, for
    ``max_retries`` retries; 5xx "safe to retry after waiting for at least 1 second"; 429 and 5xx honour
    ``Retry-After``; a 410 is polled every ``update_poll`` seconds for as long as the update window lasts
    (plus ``window_grace``), whatever ``max_retries`` says.
    """

    backoff: float = 2.0
    max_retries: int = 5
    max_backoff: float = 60.0
    server_error_floor: float = 1.0
    update_poll: float = 2.0
    update_window: float = Imds.UPDATE_WINDOW
    window_grace: float = 5.0
    #: Seconds kept free before the deadline: a retry that would start later is not worth starting.
    deadline_margin: float = 0.05


class Decision(NamedTuple):
    """After a failed attempt: wait ``delay`` seconds and try again, or give up (``give_up`` says why)."""

    delay: float
    give_up: GiveUpReason | None = None


def _delay(kind: AttemptKind, retry_after_s: float | None, retries: int, policy: RetryPolicy) -> float:
    delay = backoff(retries, policy.backoff, policy.max_backoff)
    if kind == "imds-updating":
        delay = min(delay, policy.update_poll)  # a 410 ends within a known window: poll it
    if kind == "server-error":
        delay = max(delay, policy.server_error_floor)
    if retry_after_s is not None and kind in _HONOURS_RETRY_AFTER:
        delay = max(delay, retry_after_s)
    return delay


def decide(
    kind: AttemptKind,
    *,
    retry_after_s: float | None,
    retries: int,
    elapsed: float,
    budget: float,
    first_410: float | None,
    policy: RetryPolicy,
) -> Decision:
    """What to do after a failed attempt of ``kind``: a pure function of the attempt and the clock.

    ``retries`` counts the retries made so far, ``elapsed`` the seconds since the call started, ``budget``
    its total seconds, ``first_410`` when (in ``elapsed`` seconds) the first 410 of the call came, if any.
    """
    delay = _delay(kind, retry_after_s, retries, policy)
    if not KINDS[kind].retryable:
        return Decision(delay, "not-retryable")
    if kind == "imds-updating" and first_410 is not None:
        if elapsed + delay > first_410 + policy.update_window + policy.window_grace:
            return Decision(delay, "retries-exhausted")
    elif retries >= policy.max_retries:
        return Decision(delay, "retries-exhausted")
    if elapsed + delay + policy.deadline_margin >= budget:
        return Decision(delay, "budget-exhausted")
    return Decision(delay)
