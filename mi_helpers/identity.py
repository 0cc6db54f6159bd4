"""Sign in with the VM's managed identity: the credential factory and a bounded, visible ``get_token``.

The real ``azure.identity.ManagedIdentityCredential`` does the work; this module bounds the waits. Left to
itself the SDK waits 4.8 s on a refused port, 24 s on 5xx/429, 75 s on 410 and up to 20 minutes on an IMDS
that accepts but never answers. ``get_token`` instead gives every try explicit connect/read timeouts, turns
off the SDK's own retries and runs the retry loop the IMDS documentation prescribes
(:func:`mi_helpers.attempts.decide`: 404, 429 honouring ``Retry-After``, 5xx, timeouts with exponential
back-off 0, 2, 6, 14, 30 s; 410 polled every 2 s within its 70 s window), never past ``budget``, showing
progress, and stopping at once on errors retrying cannot fix.

Nothing here returns, logs or raises a whole token: :class:`~mi_helpers.token_info.TokenInfo` shows a
redacted form, and the raw token is only reachable through ``TokenInfo.secret()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from azure.core.exceptions import ClientAuthenticationError

from mi_helpers.attempts import (
    KINDS,
    Attempt,
    AttemptKind,
    Decision,
    GiveUpReason,
    Recorder,
    RetryPolicy,
    classify,
    decide,
)
from mi_helpers.constants import Imds
from mi_helpers.logs import quiet_sdk_logs
from mi_helpers.progress import ProgressEvent, SignInProgress
from mi_helpers.redaction import redact
from mi_helpers.token_info import Selector, TokenInfo, decode_claims, selector_label
from mi_helpers.validate import InputError, validate_one_selector, validate_resource, validate_seconds

if TYPE_CHECKING:
    from azure.identity import ManagedIdentityCredential

__all__ = [
    "Attempt",
    "ProgressEvent",
    "SignInError",
    "TokenInfo",
    "clear_credential_cache",
    "credential",
    "decode_claims",
    "get_token",
    "requested_scope",
    "selector_label",
    "shared_credential",
]

#: The documented strategy's retry count (5) and back-off cap (60 s); get_token's defaults.
MAX_RETRIES = RetryPolicy().max_retries


# --------------------------------------------------------------------------------------------- credential


def _build_credential(selector: Selector, **kwargs: Any) -> ManagedIdentityCredential:
    from azure.identity import ManagedIdentityCredential

    from mi_helpers.targeting import target

    target()  # make sure the endpoint variables are exported before the SDK reads them
    kwargs.setdefault("raw_request_hook", Recorder.on_request)
    kwargs.setdefault("raw_response_hook", Recorder.on_response)
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


class _CredentialCache:
    """One credential per identity, target and timeouts: MSAL's token cache spares IMDS repeated requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._credentials: dict[tuple[Any, ...], Any] = {}

    @staticmethod
    def _key(selector: Selector, connect_timeout: float, read_timeout: float) -> tuple[Any, ...]:
        from mi_helpers.targeting import target

        return (target().imds_url, selector, connect_timeout, read_timeout)

    def get(self, selector: Selector, connect_timeout: float, read_timeout: float) -> Any:
        key = self._key(selector, connect_timeout, read_timeout)
        with self._lock:
            cred = self._credentials.get(key)
            if cred is None:
                cred = _build_credential(
                    selector, connection_timeout=connect_timeout, read_timeout=read_timeout, retry_total=0
                )
                self._credentials[key] = cred
            return cred

    def keep(self, cred: Any, selector: Selector, connect_timeout: float, read_timeout: float) -> None:
        key = self._key(selector, connect_timeout, read_timeout)
        with self._lock:
            self._credentials[key] = cred

    def forget(self, cred: Any) -> None:
        with self._lock:
            for key in [k for k, v in self._credentials.items() if v is cred]:
                del self._credentials[key]

    def clear(self) -> None:
        with self._lock:
            self._credentials.clear()


_shared = _CredentialCache()


def clear_credential_cache() -> None:
    """Forget the shared credentials (and so their MSAL token caches): the next call asks IMDS again."""
    _shared.clear()


def shared_credential(
    client_id: str | None = None, *, object_id: str | None = None, resource_id: str | None = None
) -> Any:
    """The process-wide credential for an identity (used by :mod:`mi_helpers.arm` when none is passed)."""
    return _shared.get(validate_one_selector(client_id, object_id, resource_id), 2.0, 3.0)


# --------------------------------------------------------------------------------------------- results


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
        reason: GiveUpReason,
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
        self.reason: GiveUpReason = reason
        self.kind: AttemptKind = last.kind if last else "error"
        self.status_code = last.status if last else None
        self.status = self.status_code
        self.error_code = last.error if last else None
        self.description = last.description if last else None

    def __str__(self) -> str:
        return str(self.message)


# --------------------------------------------------------------------------------------------- get_token


def requested_scope(resource: object, cloud: str = "public") -> str:
    """The scope :func:`get_token` asks for, from whatever a learner passes as ``resource``.

    A service name (``"key vault"``) is looked up with :func:`mi_helpers.clouds.scope_for` (which knows only
    service names); a resource URI gets ``/.default`` appended verbatim, so IMDS receives it exactly as
    typed; a scope is kept as it is.
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


class _Request(NamedTuple):
    """A validated ``get_token`` call: what to ask for, as whom, where, within which limits."""

    resource: object
    scope: str
    selector: Selector
    url: str
    imds_url: str
    budget: float
    connect_timeout: float
    read_timeout: float
    credential: Any
    policy: RetryPolicy

    @property
    def who(self) -> str:
        return selector_label(self.selector)

    @property
    def label(self) -> str:
        return f"token for {self.scope.removesuffix('/.default')}"


def _validated(
    resource: object,
    selector_args: tuple[object, object, object],
    budget: object,
    connect_timeout: object,
    read_timeout: object,
    credential: Any,
    backoff: float,
    max_retries: int,
) -> _Request:
    """Every input checked before a single request is sent; raises :class:`InputError`."""
    from mi_helpers.targeting import target

    selector = validate_one_selector(*selector_args)
    if credential is not None and selector is not None:
        raise InputError("credential", "pass either credential= or client_id/object_id/resource_id, not both")
    budget_s = validate_seconds(budget, "budget")
    connect_s = validate_seconds(connect_timeout, "connect_timeout")
    read_s = validate_seconds(read_timeout, "read_timeout")
    if backoff != 0:
        validate_seconds(backoff, "backoff")
    tgt = target()
    # The ARM scope is the target's own (what the ARM clients ask for); anything else is looked up.
    scope = tgt.arm_scope if resource == "arm" else requested_scope(resource, tgt.cloud)
    return _Request(
        resource=resource,
        scope=scope,
        selector=selector,
        url=f"{tgt.imds_url}{Imds.TOKEN_PATH}",
        imds_url=tgt.imds_url,
        budget=budget_s,
        connect_timeout=connect_s,
        read_timeout=read_s,
        credential=credential,
        policy=RetryPolicy(backoff=backoff, max_retries=max_retries),
    )


def get_token(
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
    request = _validated(
        resource,
        (client_id, object_id, resource_id),
        budget,
        connect_timeout,
        read_timeout,
        credential,
        backoff,
        max_retries,
    )
    with quiet_sdk_logs(), SignInProgress(progress, request.budget, request.label) as prog:
        return _SignIn(request, prog).run()


class _SignIn:
    """The retry loop of one :func:`get_token` call, step by step."""

    def __init__(self, request: _Request, prog: SignInProgress) -> None:
        self.request = request
        self.prog = prog
        self.t0 = time.monotonic()
        self.deadline = self.t0 + request.budget
        self.attempts: list[Attempt] = []
        self.first_410: float | None = None
        self.retries = 0

    def run(self) -> TokenInfo:
        while True:
            token = self._attempt(len(self.attempts) + 1)
            if token is not None:
                return token

    def _credential_for(self, number: int, remaining: float) -> tuple[Any, bool]:
        """The credential for try ``number`` and whether it is a fresh one.

        Later tries (and a first try whose timeouts exceed the budget) get a fresh credential whose timeouts
        end with the budget; a fresh one also has no MSAL throttle cache replaying the last failure.
        """
        r = self.request
        if r.credential is not None:
            return r.credential, False
        if number > 1 or max(r.connect_timeout, r.read_timeout) > remaining:
            fresh = _build_credential(
                r.selector,
                connection_timeout=max(0.05, min(r.connect_timeout, remaining)),
                read_timeout=max(0.05, min(r.read_timeout, remaining)),
                retry_total=0,
            )
            return fresh, True
        return _shared.get(r.selector, r.connect_timeout, r.read_timeout), False

    def _attempt(self, number: int) -> TokenInfo | None:
        """One try: the token, or None after a failure worth retrying (the wait already done)."""
        r = self.request
        remaining = self.deadline - time.monotonic()
        cred, fresh = self._credential_for(number, remaining)
        self.prog.emit("attempt", number, f"attempt {number}: asking IMDS for a token ({r.who})")
        started = time.monotonic()
        failure: tuple[BaseException, Attempt] | None = None
        with Recorder.recording() as log:
            try:
                tok = cred.get_token(r.scope)
            except ValueError as exc:
                raise InputError("resource", redact(str(exc)), r.resource) from None
            except Exception as exc:
                failure = (exc, classify(exc, log))
        if failure is not None:
            self._failed(*failure, number, started, cred, fresh)
            return None
        url = log[-1].url if log else r.url
        self.attempts.append(
            Attempt(number, started - self.t0, time.monotonic() - started, 200, "ok", url=url)
        )
        if fresh and max(r.connect_timeout, r.read_timeout) <= remaining:
            # Keep the credential that worked (its token cache serves the next call) - unless its
            # timeouts were cut to fit the rest of this budget: later callers need the full ones.
            _shared.keep(cred, r.selector, r.connect_timeout, r.read_timeout)
        elapsed = time.monotonic() - self.t0
        self.prog.emit("done", number, f"got a token after {number} attempt(s) in {elapsed:.1f} s", 200)
        return TokenInfo(
            tok.token,
            tok.expires_on,
            scope=r.scope,
            selector=r.selector,
            attempts=self.attempts,
            elapsed=elapsed,
            url=url,
        )

    def _failed(
        self, exc: BaseException, att: Attempt, number: int, started: float, cred: Any, fresh: bool
    ) -> None:
        """Record a failed try, then wait for the next one or raise :class:`SignInError`."""
        att.number, att.started = number, started - self.t0
        att.duration = time.monotonic() - started
        att.url = att.url or self.request.url
        self.attempts.append(att)
        if self.request.credential is None and not fresh:
            _shared.forget(cred)  # its MSAL throttle cache would replay this failure
        if att.kind == "imds-updating" and self.first_410 is None:
            self.first_410 = att.started
        now = time.monotonic() - self.t0
        step = decide(
            att.kind,
            retry_after_s=att.retry_after,
            retries=self.retries,
            elapsed=now,
            budget=self.request.budget,
            first_410=self.first_410,
            policy=self.request.policy,
        )
        if step.give_up is not None:
            raise self._give_up(exc, att, step, now) from exc
        att.outcome, att.wait = "retry", step.delay
        msg = f"attempt {number}: {KINDS[att.kind].text}; retrying in {step.delay:.1f} s"
        self.prog.emit("result", number, msg, att.status, wait=step.delay)
        self._wait(step.delay, number)
        self.retries += 1

    def _give_up(self, exc: BaseException, att: Attempt, step: Decision, now: float) -> SignInError:
        r = self.request
        reason = step.give_up or "not-retryable"
        att.outcome = "fatal" if reason == "not-retryable" else "gave-up"
        msg = _failure_message(reason, r.who, r.scope, self.attempts, now, r.budget, att.text)
        self.prog.emit("failed", att.number, msg, att.status)
        return SignInError(
            msg,
            original=exc,
            attempts=self.attempts,
            elapsed=now,
            budget=r.budget,
            url=att.url,
            selector=r.selector,
            scope=r.scope,
            reason=reason,
        )

    def _wait(self, delay: float, number: int) -> None:
        end = time.monotonic() + delay
        while (left := end - time.monotonic()) > 0:
            self.prog.emit("wait", number, f"waiting {left:.1f} s before attempt {number + 1}", wait=left)
            time.sleep(min(0.25, left))


def _failure_message(
    reason: GiveUpReason,
    who: str,
    scope: str,
    attempts: list[Attempt],
    elapsed: float,
    budget: float,
    what: str,
) -> str:
    n = len(attempts)
    tries = f"{n} attempt{'s' if n != 1 else ''} in {elapsed:.1f} s"
    tail = {
        "not-retryable": "retrying cannot fix this",
        "budget-exhausted": f"gave up: the next retry would pass the {budget:g} s budget",
        "retries-exhausted": "gave up: retries exhausted",
    }[reason]
    return f"no token for {scope.removesuffix('/.default')} ({who}) after {tries}: {what} — {tail}"
