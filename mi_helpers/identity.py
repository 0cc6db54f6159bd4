"""Sign in with the VM's managed identity: credential factory, bounded ``get_token``, token info, claims.

The real ``azure.identity.ManagedIdentityCredential`` does the work; this module bounds the waits. Left to
itself the SDK waits 4.8 s on a refused port, 24 s on 5xx/429, 75 s on 410 and up to 20 minutes on an IMDS
that accepts but never answers. ``get_token`` instead gives every try explicit connect/read timeouts, turns
off the SDK's own retries and runs the retry loop the IMDS documentation prescribes (404, 429 honouring
``Retry-After``, 5xx, timeouts with exponential back-off 0, 2, 6, 14, 30 s; 410 polled every 2 s within
its 70 s window), never
past ``budget``, showing progress, and stopping at once on errors retrying cannot fix.

Nothing here returns, logs or raises a whole token: :class:`TokenInfo` shows a redacted form, and the raw
token is only reachable through :meth:`TokenInfo.secret`.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ClientAuthenticationError

from mi_helpers.constants import Imds
from mi_helpers.redaction import redact, redact_token
from mi_helpers.validate import InputError, validate_one_selector, validate_resource, validate_seconds

if TYPE_CHECKING:
    import pandas as pd
    from azure.identity import ManagedIdentityCredential

__all__ = [
    "RETRYABLE_STATUSES",
    "Attempt",
    "ProgressEvent",
    "SignInError",
    "TokenInfo",
    "clear_credential_cache",
    "credential",
    "decode_claims",
    "get_token",
    "redact",
    "scope_of",
    "selector_label",
    "shared_credential",
]

RETRYABLE_STATUSES = frozenset({404, 410, 429, *range(500, 600)})
IMDS_UPDATE_POLL = 2.0  # s: during that window, ask again every 2 s so the first good answer is not missed
MAX_RETRIES = 5  # the documented strategy: retry count 5 …
MAX_BACKOFF = 60.0  # … max back-off 60 s
MSAL_THROTTLE_DEFAULT = 5.0  # s MSAL replays a cached 429/5xx without Retry-After

Selector = tuple[str, str] | None


# --------------------------------------------------------------------------------------------- recording


@dataclass
class _Response:
    """What one HTTP exchange with IMDS looked like (never the token itself)."""

    url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    json_ok: bool | None = None
    error: str | None = None
    description: str | None = None


class _Recorder:
    """Collects the exchanges of the current ``get_token`` call in this thread (pipeline hooks write here)."""

    _local = threading.local()

    @classmethod
    def current(cls) -> list[_Response] | None:
        return getattr(cls._local, "log", None)

    @classmethod
    def start(cls) -> list[_Response]:
        cls._local.log = []
        return cls._local.log

    @classmethod
    def stop(cls) -> None:
        cls._local.log = None


def _on_request(pipeline_request: Any) -> None:
    log = _Recorder.current()
    if log is not None:
        log.append(_Response(url=str(pipeline_request.http_request.url)))


def _on_response(pipeline_response: Any) -> None:
    log = _Recorder.current()
    if log is None:
        return
    resp = pipeline_response.http_response
    entry = log[-1] if log and log[-1].status is None else _Response(url=str(resp.request.url))
    if entry not in log:
        log.append(entry)
    entry.status = resp.status_code
    keep = ("retry-after", "content-type", "via", "server", "x-ms-request-id")
    entry.headers = {k.lower(): v for k, v in resp.headers.items() if k.lower() in keep}
    try:
        body = json.loads(resp.text())
    except (ValueError, UnicodeDecodeError):
        entry.json_ok = False
        if resp.status_code >= 400:  # keep a readable trace of what answered instead of IMDS
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


# --------------------------------------------------------------------------------------------- credential


def selector_label(selector: Selector) -> str:
    """Human form of an identity selector: ``system-assigned identity`` or ``client_id=…``."""
    return "system-assigned identity" if selector is None else f"{selector[0]}={selector[1]}"


def _build_credential(selector: Selector, **kwargs: Any) -> ManagedIdentityCredential:
    from azure.identity import ManagedIdentityCredential

    from mi_helpers.targeting import target

    target()  # make sure the endpoint variables are exported before the SDK reads them
    kwargs.setdefault("raw_request_hook", _on_request)
    kwargs.setdefault("raw_response_hook", _on_response)
    if selector is None:
        return ManagedIdentityCredential(**kwargs)
    kind, value = selector
    if kind == "client_id":
        return ManagedIdentityCredential(client_id=value, **kwargs)
    return ManagedIdentityCredential(identity_config={kind: value}, **kwargs)


def credential(
    client_id: str | None = None,
    *,
    object_id: str | None = None,
    resource_id: str | None = None,
    connection_timeout: float = 2.0,
    read_timeout: float = 3.0,
    retry_total: int = 0,
    **kwargs: Any,
) -> ManagedIdentityCredential:
    """The real ``ManagedIdentityCredential`` for the system identity or one user-assigned identity.

    At most one selector (validated). Explicit timeouts and ``retry_total=0`` keep a broken IMDS from
    stalling an ARM call for minutes; use :func:`get_token` for a bounded, visible retry loop. Extra
    ``kwargs`` go to the credential (and its azure-core pipeline).
    """
    selector = validate_one_selector(client_id, object_id, resource_id)
    validate_seconds(connection_timeout, "connection_timeout")
    validate_seconds(read_timeout, "read_timeout")
    return _build_credential(
        selector,
        connection_timeout=connection_timeout,
        read_timeout=read_timeout,
        retry_total=retry_total,
        **kwargs,
    )


_cache_lock = threading.Lock()
_credentials: dict[tuple[Any, ...], Any] = {}


def _shared_credential(selector: Selector, connect_timeout: float, read_timeout: float) -> Any:
    """One credential per identity and target, so MSAL's token cache spares IMDS repeated requests."""
    from mi_helpers.targeting import target

    key = (target().imds_url, selector, connect_timeout, read_timeout)
    with _cache_lock:
        cred = _credentials.get(key)
        if cred is None:
            cred = _build_credential(
                selector, connection_timeout=connect_timeout, read_timeout=read_timeout, retry_total=0
            )
            _credentials[key] = cred
        return cred


def _forget_credential(cred: Any) -> None:
    with _cache_lock:
        for key in [k for k, v in _credentials.items() if v is cred]:
            del _credentials[key]


def clear_credential_cache() -> None:
    """Forget the shared credentials (and so their MSAL token caches): the next call asks IMDS again."""
    with _cache_lock:
        _credentials.clear()


def shared_credential(
    client_id: str | None = None, *, object_id: str | None = None, resource_id: str | None = None
) -> Any:
    """The process-wide credential for an identity (used by :mod:`mi_helpers.arm` when none is passed)."""
    return _shared_credential(validate_one_selector(client_id, object_id, resource_id), 2.0, 3.0)


# --------------------------------------------------------------------------------------------- tokens

CLAIM_MEANINGS: dict[str, str] = {
    "aud": "audience: the resource this token is for (must match the service you call)",
    "iss": "issuer: the Entra ID tenant that signed the token",
    "iat": "issued at",
    "nbf": "not valid before",
    "exp": "expires at",
    "appid": "client ID of the identity (application ID)",
    "appidacr": "how the app authenticated (2 = certificate)",
    "idp": "identity provider",
    "idtyp": "identity type: app = an app-only token",
    "oid": "object (principal) ID: what role assignments refer to",
    "sub": "subject: the principal the token is about (= oid for a managed identity)",
    "tid": "tenant ID",
    "ver": "token format version",
    "xms_mirid": "resource ID of the managed identity (the VM for system-assigned, the UAMI otherwise)",
    "xms_az_rid": "resource ID of the hosting resource",
    "uti": "unique token identifier (opaque)",
    "aio": "internal (opaque)",
    "rh": "internal (opaque)",
    "roles": "app roles granted to the identity",
}
_TIME_CLAIMS = ("iat", "nbf", "exp")


def decode_claims(token: str) -> dict[str, Any]:
    """Decode a JWT's payload **without verifying it** (for display); {} when it is not a JWT."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return dict(claims) if isinstance(claims, dict) else {}


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


class TokenInfo:
    """An access token and what it says, safe to print: the token itself shows only as ``eyJ0eXAi…(N chars)``.

    ``secret()`` returns the raw token for code that must send it; nothing else exposes it.
    """

    def __init__(
        self,
        token: str,
        expires_on: int,
        *,
        scope: str = "",
        selector: Selector = None,
        attempts: list[Attempt] | None = None,
        elapsed: float = 0.0,
        url: str = "",
    ) -> None:
        self.__token = token
        self.expires_on: datetime = _utc(expires_on)
        self.scope = scope
        self.selector = selector
        self.attempts: list[Attempt] = list(attempts or [])
        self.elapsed = elapsed
        self.url = url

    @functools.cached_property
    def claims(self) -> dict[str, Any]:
        """The token's claims, decoded (not verified) on first use: a cached token costs no decoding."""
        return decode_claims(self.__token)

    def secret(self) -> str:
        """The raw access token. Send it; never print or log it."""
        return self.__token

    @property
    def redacted(self) -> str:
        return redact_token(self.__token)

    @property
    def expires_in(self) -> int:
        """Seconds until expiry (negative once expired)."""
        return int(self.expires_on.timestamp() - time.time())

    @property
    def audience(self) -> str:
        aud = self.claims.get("aud")
        if isinstance(aud, str) and aud:
            return aud
        return self.scope.removesuffix("/.default")

    @property
    def principal_id(self) -> str | None:
        return self.claims.get("oid")

    @property
    def client_id(self) -> str | None:
        return self.claims.get("appid") or self.claims.get("azp")

    @property
    def tenant_id(self) -> str | None:
        return self.claims.get("tid")

    @property
    def mi_resource_id(self) -> str | None:
        return self.claims.get("xms_mirid")

    def claims_table(self) -> pd.DataFrame:
        """The claims as a DataFrame (claim, value, meaning); times shown in UTC next to their epoch value."""
        import pandas as pd

        rows = []
        for name, value in self.claims.items():
            shown = value
            if name in _TIME_CLAIMS and isinstance(value, (int, float)):
                shown = f"{int(value)} ({_utc(value):%Y-%m-%d %H:%M:%S} UTC)"
            rows.append({"claim": name, "value": redact(shown), "meaning": CLAIM_MEANINGS.get(name, "")})
        return pd.DataFrame(rows, columns=["claim", "value", "meaning"])

    def summary(self) -> dict[str, Any]:
        """JSON-able facts about the token (what ``mi-helpers token --json`` prints)."""
        return {
            "token": self.redacted,
            "audience": self.audience,
            "expires_on": self.expires_on.isoformat(),
            "expires_in": self.expires_in,
            "principal_id": self.principal_id,
            "client_id": self.client_id,
            "tenant_id": self.tenant_id,
            "mi_resource_id": self.mi_resource_id,
            "identity": selector_label(self.selector),
            "attempts": len(self.attempts),
            "elapsed": round(self.elapsed, 3),
            "claims": {k: redact(v) if isinstance(v, str) else v for k, v in self.claims.items()},
        }

    def __repr__(self) -> str:
        return (
            f"TokenInfo(token={self.redacted}, audience={self.audience!r}, "
            f"principal_id={self.principal_id!r}, client_id={self.client_id!r}, "
            f"expires_on={self.expires_on.isoformat()!r})"
        )

    __str__ = __repr__

    def _repr_html_(self) -> str:
        import html

        facts = (
            ("token", self.redacted),
            ("audience (aud)", self.audience),
            ("principal id (oid)", self.principal_id),
            ("client id (appid)", self.client_id),
            ("tenant (tid)", self.tenant_id),
            ("identity resource (xms_mirid)", self.mi_resource_id),
            ("expires", f"{self.expires_on:%Y-%m-%d %H:%M:%S} UTC (in {self.expires_in} s)"),
            ("attempts", f"{len(self.attempts)} in {self.elapsed:.2f} s"),
        )
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td><code>{html.escape(redact(v))}</code></td></tr>"
            for k, v in facts
        )
        return f"<table>{rows}</table>"

    def __reduce__(self) -> Any:
        raise TypeError("TokenInfo holds a secret and cannot be pickled")


# --------------------------------------------------------------------------------------------- attempts


@dataclass
class Attempt:
    """One token request of :func:`get_token`: when, what came back, and what was decided."""

    number: int
    started: float  # s since get_token started
    duration: float
    status: int | None  # HTTP status, None when no HTTP answer
    kind: str  # ok | imds-updating | not-found | throttled | server-error | timeout | connect-timeout |
    # identity-not-found | multiple-identities | bad-request | connection-refused | unreachable |
    # non-json | proxy | forbidden | bad-response | throttle-replay | unexpected-status | error
    error: str | None = None  # IMDS "error" field
    description: str | None = None  # IMDS "error_description" (redacted)
    retry_after: float | None = None
    outcome: str = "ok"  # ok | retry | fatal | gave-up
    wait: float = 0.0  # s slept before the next attempt
    exception: str | None = None  # type name of the SDK exception
    url: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class ProgressEvent:
    """What the progress callback of :func:`get_token` receives."""

    kind: str  # attempt | result | wait | done | failed
    attempt: int
    elapsed: float
    budget: float
    message: str
    status: int | None = None
    wait: float = 0.0


class SignInError(ClientAuthenticationError):
    """``get_token`` could not get a token; carries everything needed to explain why.

    A ``ClientAuthenticationError`` (the SDK's base for sign-in failures, and the parent of its
    ``CredentialUnavailableError``), so ``except ClientAuthenticationError`` still catches it. Attributes:
    ``original`` (the last SDK exception), ``attempts`` (list of :class:`Attempt`), ``elapsed``, ``budget``,
    ``url`` (the token URL used), ``selector`` (None or ``(kind, value)``), ``scope``, ``kind`` (the last
    attempt's classification), ``reason`` (``not-retryable`` | ``budget-exhausted`` | ``retries-exhausted``),
    ``status``, ``error_code`` (IMDS ``error``), ``description`` (IMDS ``error_description``).
    """

    def __init__(
        self,
        message: str,
        *,
        original: BaseException | None,
        attempts: list[Attempt],
        elapsed: float,
        budget: float,
        url: str,
        selector: Selector,
        scope: str,
        reason: str,
    ) -> None:
        super().__init__(message=redact(message))
        last = attempts[-1] if attempts else None
        self.original = original
        self.attempts = attempts
        self.elapsed = elapsed
        self.budget = budget
        self.url = url
        self.selector = selector
        self.scope = scope
        self.reason = reason
        self.kind = last.kind if last else "error"
        self.status_code = last.status if last else None
        self.status = self.status_code
        self.error_code = last.error if last else None
        self.description = last.description if last else None

    def __str__(self) -> str:
        return str(self.message)


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


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


_KIND_TEXT = {
    "imds-updating": "410 Gone: IMDS is being updated (available again within 70 s)",
    "not-found": "404: the IMDS endpoint is updating",
    "throttled": "429: IMDS throttled the request",
    "server-error": "IMDS server error",
    "timeout": "no answer within the read timeout",
    "connect-timeout": "could not connect within the connect timeout",
    "identity-not-found": "the requested identity is not assigned to this VM (400 Identity not found)",
    "multiple-identities": "several user-assigned identities and no selector (400)",
    "bad-request": "IMDS rejected the request (400)",
    "connection-refused": "connection refused: nothing listens at the IMDS address",
    "unreachable": "IMDS address unreachable",
    "non-json": "the answer was not JSON (not IMDS?)",
    "proxy": "a proxy answered instead of IMDS (set NO_PROXY)",
    "forbidden": "403 from the IMDS address (a proxy or container network?)",
    "bad-response": "IMDS answered 200 without a usable token",
    "throttle-replay": "the SDK replayed a cached throttling error",
    "unexpected-status": "unexpected HTTP status",
    "error": "unexpected error",
}


def _classify(exc: BaseException, log: list[_Response]) -> Attempt:  # noqa: C901
    """Turn one failed SDK call (and the exchanges recorded during it) into an :class:`Attempt`."""
    answered = [r for r in log if r.status is not None]
    last = answered[-1] if answered else None
    att = Attempt(
        number=0, started=0.0, duration=0.0, status=None, kind="error", exception=type(exc).__name__
    )
    att.url = (log[-1].url if log else "") or ""
    if last is not None:
        att.status = last.status
        att.error, att.description = last.error, last.description
        att.retry_after = _retry_after(last.headers)
        status = last.status or 0
        proxy_hint = "via" in last.headers or _proxied(last.url)
        if status == 403 and "unreachable" in (last.description or "").lower():
            att.kind = "unreachable"  # Docker Desktop's proxy: the container has no route to IMDS
        elif last.json_ok is False:
            att.kind = "proxy" if proxy_hint else "non-json"
        elif status == 200:
            att.kind = "bad-response"
        elif status == 400:
            desc = (last.description or "").lower()
            if "multiple user assigned" in desc:
                att.kind = "multiple-identities"
            elif "identity not found" in desc or "not been assigned" in desc:
                att.kind = "identity-not-found"
            else:
                att.kind = "bad-request"
        elif status == 403:
            att.kind = "proxy" if proxy_hint else "forbidden"
        elif status == 404:
            att.kind = "not-found"
        elif status == 410:
            att.kind = "imds-updating"
        elif status == 429:
            att.kind = "throttled"
        elif 500 <= status < 600:
            att.kind = "server-error"
        else:
            att.kind = "unexpected-status"
        return att
    names = {type(e).__name__ for e in _chain(exc)}
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if any(isinstance(e, ConnectionRefusedError) for e in _chain(exc)) or "connection refused" in text:
        att.kind = "connection-refused"
    elif (
        names & {"ServiceResponseTimeoutError", "ReadTimeout", "ReadTimeoutError"} or "read timed out" in text
    ):
        att.kind = "timeout"
    elif names & {"ServiceRequestTimeoutError", "ConnectTimeout", "ConnectTimeoutError"}:
        att.kind = "connect-timeout"
    elif names & {"ServiceRequestError", "ConnectionError", "NewConnectionError"}:
        att.kind = "unreachable"
    elif "token request error:" in text:
        att.kind = "throttle-replay"  # MSAL answered from its throttle cache: no request was sent
        att.retry_after = MSAL_THROTTLE_DEFAULT
    elif any(isinstance(e, json.JSONDecodeError) for e in _chain(exc)):
        att.kind = "non-json"
    return att


_RETRYABLE_KINDS = frozenset(
    {
        "imds-updating",
        "not-found",
        "throttled",
        "throttle-replay",
        "server-error",
        "timeout",
        "connect-timeout",
    }
)


# --------------------------------------------------------------------------------------------- progress


class _Progress:
    """Shows a tqdm bar (only once something is slow or retried) and/or calls a callback."""

    def __init__(self, progress: bool | Callable[[ProgressEvent], Any], budget: float, label: str) -> None:
        self.callback = progress if callable(progress) else None
        self.show_bar = progress is True
        self.budget = budget
        self.label = label
        self.bar: Any = None
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._text = label
        self._lock = threading.Lock()  # the ticker thread and the caller both draw
        if self.show_bar:
            self._ticker = threading.Thread(target=self._tick, name="mi-helpers-progress", daemon=True)
            self._ticker.start()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            if self.bar is None and self.elapsed() > 1.0:
                self._open()
            self._refresh()

    def _open(self) -> None:
        with self._lock:
            self._open_locked()

    def _open_locked(self) -> None:
        if self.bar is not None or not self.show_bar:
            return
        try:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=round(self.budget, 1),
                unit="s",
                desc=self.label,
                bar_format="{desc}: {bar}| {n:.1f}/{total:.0f} s{postfix}",
                leave=True,
            )
        except Exception:
            self.show_bar = False

    def _refresh(self) -> None:
        with self._lock:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        bar = self.bar
        if bar is not None:
            try:
                bar.n = round(min(self.elapsed(), self.budget), 1)
                bar.set_postfix_str(self._text, refresh=False)
                bar.refresh()
            except Exception:  # noqa: S110 - a display glitch must never break sign-in
                pass

    def emit(
        self, kind: str, attempt: int, message: str, status: int | None = None, wait: float = 0.0
    ) -> None:
        message = redact(message)
        self._text = message
        if kind in ("wait", "result") and wait > 0:
            self._open()
        self._refresh()
        if self.callback is not None:
            self.callback(ProgressEvent(kind, attempt, self.elapsed(), self.budget, message, status, wait))

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
        with self._lock:
            if self.bar is not None:
                self._refresh_locked()
                self.bar.close()


class _QuietRetries(logging.Filter):
    """Drops the SDK's per-try ``get_token failed`` WARNINGs in the thread running :func:`get_token`.

    Only installed when nobody configured logging for ``azure`` (the records would reach Python's
    last-resort handler and print on stderr between progress updates); get_token reports failures itself.
    """

    LOGGERS = ("azure.identity._internal.msal_managed_identity_client", "azure.identity._internal.decorators")

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.loggers = [logging.getLogger(n) for n in self.LOGGERS]

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.thread == self.thread
            and record.levelno == logging.WARNING
            and "get_token failed" in record.getMessage()
        )

    def __enter__(self) -> _QuietRetries:
        if not logging.getLogger("azure").hasHandlers():
            for logger in self.loggers:
                logger.addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger in self.loggers:
            logger.removeFilter(self)


# --------------------------------------------------------------------------------------------- get_token


def scope_of(resource: object, cloud: str = "public") -> str:
    """The scope to request for ``resource``: a service name (``"arm"``, ``"key vault"``), a resource URI or
    a scope. A resource URI gets ``/.default`` appended verbatim, so IMDS receives it exactly as typed.
    """
    if isinstance(resource, str) and resource.strip() and not any(c in resource for c in ":/."):
        from mi_helpers.clouds import SERVICES, scope_for

        try:
            return scope_for(resource, cloud)
        except InputError as exc:
            if "no resource ID is documented" in str(exc):
                raise InputError("resource", str(exc).removeprefix("service: "), resource) from None
            known = ", ".join(s.aliases[0] for s in SERVICES)
            raise InputError(
                "resource",
                f"{resource!r} is neither a known service ({known}) nor a URI with a scheme (https://… or api://…)",
                resource,
            ) from None
    text = validate_resource(resource)
    return text if text.endswith("/.default") else f"{text}/.default"


def _backoff(retry_index: int, delta: float) -> float:
    """The documented exponential back-off: delta·(2^i − 1) → 0, 2, 6, 14, 30 s for delta 2, at most 60 s."""
    return min(MAX_BACKOFF, delta * (2**retry_index - 1))


def get_token(  # noqa: C901
    resource: str = "arm",
    *,
    client_id: str | None = None,
    object_id: str | None = None,
    resource_id: str | None = None,
    budget: float = 20.0,
    connect_timeout: float = 2.0,
    read_timeout: float = 3.0,
    progress: bool | Callable[[ProgressEvent], Any] = True,
    credential: Any = None,
    backoff: float = 2.0,
    max_retries: int = MAX_RETRIES,
) -> TokenInfo:
    """Get a managed-identity token for ``resource`` within ``budget`` seconds, or raise :class:`SignInError`.

    ``resource``: a service name (see :func:`mi_helpers.clouds.audiences`), a resource URI or a scope.
    One selector at most (``client_id``/``object_id``/``resource_id``), or a ready ``credential``.
    ``progress``: True for a progress bar (shown only once something is slow), False for none, or a
    callable receiving :class:`ProgressEvent`. ``backoff`` is the back-off delta in seconds (documented:
    2 s); ``max_retries`` bounds retries other than 410s, which are polled every 2 s for up to IMDS's
    documented 70 s window (budget permitting).
    """
    from mi_helpers.targeting import target

    selector = validate_one_selector(client_id, object_id, resource_id)
    if credential is not None and selector is not None:
        raise InputError("credential", "pass either credential= or client_id/object_id/resource_id, not both")
    budget = validate_seconds(budget, "budget")
    connect_timeout = validate_seconds(connect_timeout, "connect_timeout")
    read_timeout = validate_seconds(read_timeout, "read_timeout")
    if backoff != 0:
        validate_seconds(backoff, "backoff")
    tgt = target()
    scope = scope_of(resource, tgt.cloud)
    url = f"{tgt.imds_url}{Imds.TOKEN_PATH}"
    who = selector_label(selector)
    prog = _Progress(progress, budget, f"token for {scope.removesuffix('/.default')}")
    t0 = time.monotonic()
    deadline = t0 + budget
    attempts: list[Attempt] = []
    first_410: float | None = None
    retries = 0
    quiet = _QuietRetries().__enter__()
    try:
        while True:
            number = len(attempts) + 1
            remaining = deadline - time.monotonic()
            # Later tries (and a first try whose timeouts exceed the budget) get a fresh credential whose
            # timeouts end with the budget; a fresh one also has no MSAL throttle cache replaying the failure.
            fresh = credential is None and (number > 1 or max(connect_timeout, read_timeout) > remaining)
            if credential is not None:
                cred = credential
            elif fresh:
                cred = _build_credential(
                    selector,
                    connection_timeout=max(0.05, min(connect_timeout, remaining)),
                    read_timeout=max(0.05, min(read_timeout, remaining)),
                    retry_total=0,
                )
            else:
                cred = _shared_credential(selector, connect_timeout, read_timeout)
            prog.emit("attempt", number, f"attempt {number}: asking IMDS for a token ({who})")
            started = time.monotonic()
            log = _Recorder.start()
            try:
                tok = cred.get_token(scope)
            except ValueError as exc:
                raise InputError("resource", redact(str(exc)), resource) from None
            except Exception as exc:
                att = _classify(exc, log)
                att.number, att.started = number, started - t0
                att.duration = time.monotonic() - started
                att.url = att.url or url
                attempts.append(att)
                if credential is None and not fresh:
                    _forget_credential(cred)  # its MSAL throttle cache would replay this failure
                retryable = att.kind in _RETRYABLE_KINDS
                now = time.monotonic()
                if att.kind == "imds-updating" and first_410 is None:
                    first_410 = att.started
                delay = _backoff(retries, backoff)
                if att.kind == "imds-updating":
                    delay = min(delay, IMDS_UPDATE_POLL)  # a 410 ends within a known window: poll
                if att.kind == "server-error":
                    delay = max(delay, 1.0)  # "safe to retry after waiting for at least 1 second"
                if att.retry_after is not None and att.kind in (
                    "throttled",
                    "throttle-replay",
                    "server-error",
                ):
                    delay = max(delay, att.retry_after)
                reason = ""
                if not retryable:
                    reason = "not-retryable"
                elif att.kind == "imds-updating" and first_410 is not None:
                    if now - t0 + delay > first_410 + Imds.UPDATE_WINDOW + 5:
                        reason = "retries-exhausted"
                elif retries >= max_retries:
                    reason = "retries-exhausted"
                if not reason and now + delay + 0.05 >= deadline:
                    reason = "budget-exhausted"
                what = _KIND_TEXT.get(att.kind, att.kind)
                detail = f" ({att.error}) {att.description}" if att.error or att.description else ""
                if reason:
                    att.outcome = "fatal" if reason == "not-retryable" else "gave-up"
                    msg = _failure_message(reason, who, scope, attempts, now - t0, budget, what + detail)
                    prog.emit("failed", number, msg, att.status)
                    raise SignInError(
                        msg,
                        original=exc,
                        attempts=attempts,
                        elapsed=now - t0,
                        budget=budget,
                        url=att.url,
                        selector=selector,
                        scope=scope,
                        reason=reason,
                    ) from exc
                att.outcome, att.wait = "retry", delay
                prog.emit(
                    "result",
                    number,
                    f"attempt {number}: {what}; retrying in {delay:.1f} s",
                    att.status,
                    wait=delay,
                )
                _sleep(delay, prog, number)
                retries += 1
                continue
            finally:
                _Recorder.stop()
            att = Attempt(number, started - t0, time.monotonic() - started, 200, "ok", url=_url_of(log, url))
            attempts.append(att)
            if fresh and max(connect_timeout, read_timeout) <= remaining:
                # Keep the credential that worked (its token cache serves the next call) - unless its
                # timeouts were cut to fit the rest of this budget: later callers need the full ones.
                with _cache_lock:
                    _credentials[(tgt.imds_url, selector, connect_timeout, read_timeout)] = cred
            elapsed = time.monotonic() - t0
            prog.emit("done", number, f"got a token after {number} attempt(s) in {elapsed:.1f} s", 200)
            return TokenInfo(
                tok.token,
                tok.expires_on,
                scope=scope,
                selector=selector,
                attempts=attempts,
                elapsed=elapsed,
                url=att.url,
            )
    finally:
        quiet.__exit__()
        prog.close()


def _url_of(log: list[_Response], default: str) -> str:
    return log[-1].url if log else default


def _sleep(delay: float, prog: _Progress, number: int) -> None:
    end = time.monotonic() + delay
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        prog.emit("wait", number, f"waiting {left:.1f} s before attempt {number + 1}", wait=left)
        time.sleep(min(0.25, left))


def _failure_message(
    reason: str, who: str, scope: str, attempts: list[Attempt], elapsed: float, budget: float, what: str
) -> str:
    n = len(attempts)
    tries = f"{n} attempt{'s' if n != 1 else ''} in {elapsed:.1f} s"
    tail = {
        "not-retryable": "retrying cannot fix this",
        "budget-exhausted": f"gave up: the next retry would pass the {budget:g} s budget",
        "retries-exhausted": "gave up: retries exhausted",
    }[reason]
    return f"no token for {scope.removesuffix('/.default')} ({who}) after {tries}: {what} — {tail}"
