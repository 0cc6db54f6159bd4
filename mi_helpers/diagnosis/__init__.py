"""Turn a managed-identity failure into a `Diagnosis`: what happened, why, and how to fix it.

`diagnose()` reads what the real clients produce — azure-identity (sync and async) exceptions and their
``__cause__``/``__context__`` chain, azure-core ``HttpResponseError`` with ``e.error.code``, MSAL/IMDS error
dicts, and az CLI / Az PowerShell texts given as plain strings — and maps it to a stable id from the
failure-mode catalogue (:mod:`.catalogue`). Text alone cannot tell some cases apart (an identity that was just
attached vs one never attached; a role assignment that exists but has not propagated vs none at all);
for those, `context` supplies what the caller knows (attempt history, the ARM view, the environment).

`environment_traps()` lists environment settings that silently change where a managed-identity token
request goes (proxies, other identity backends, the Azure Arc agent, DefaultAzureCredential knobs).

Nothing here touches the network, and no token is ever shown whole: server texts are redacted.
"""

from __future__ import annotations

import ast
import html
import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mi_helpers.attempts import KINDS
from mi_helpers.constants import Imds
from mi_helpers.diagnosis import catalogue as fixes
from mi_helpers.redaction import redact, redact_token
from mi_helpers.validate import InputError

__all__ = [
    "DIAGNOSIS_IDS",
    "Diagnosis",
    "DiagnosisContext",
    "Trap",
    "diagnose",
    "environment_traps",
    "redact_text",
]

DIAGNOSIS_IDS: tuple[str, ...] = tuple(fixes.CATALOGUE)

_BEARER_RE = re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._~+/=-]{16,})")
_SECRET_FIELD_RE = re.compile(
    r"""(?i)(["']?(?:access_token|refresh_token|id_token|client_secret)["']?\s*[:=]\s*["']?)([^"',\s}]{8,})"""
)


def _short(secret: str) -> str:
    return redact_token(secret)


def redact_text(text: str, limit: int = 600) -> str:
    """Return `text` with every JWT, bearer value and token field shortened, cut to `limit` characters."""
    out = redact(text)
    out = _BEARER_RE.sub(lambda m: m.group(1) + _short(m.group(2)), out)
    out = _SECRET_FIELD_RE.sub(lambda m: m.group(1) + _short(m.group(2)), out)
    if len(out) > limit:
        out = out[: limit - 1] + "…"
    return out


# ----------------------------------------------------------------------------------------------- context


@dataclass(frozen=True)
class DiagnosisContext:
    """What the caller knows beyond the error itself; every field is optional.

    ``identity_attached``: ARM shows the requested identity on the VM (or it was just attached).
    ``role_assignment_exists``: a role assignment for ``principal_id`` exists at or above ``scope``;
    alternatively pass ``role_assignments`` (dicts/objects with ``principal_id`` and ``scope``).
    ``attempts``: the request history, each with ``status`` (``None`` = no HTTP answer) and optionally
    ``time`` and ``retry_after``. ``target``: ``"azure"`` or ``"emulator"`` (or a Target object).
    ``stage``: ``"imds"`` or ``"arm"`` when the caller knows which service failed.
    """

    subscription_id: str | None = None
    resource_group: str | None = None
    vm_name: str | None = None
    principal_id: str | None = None
    client_id: str | None = None
    scope: str | None = None
    resource: str | None = None
    target: str | None = None
    emulator: bool | None = None
    imds_url: str | None = None
    arm_url: str | None = None
    url: str | None = None
    stage: str | None = None
    identity_attached: bool | None = None
    role_assignment_exists: bool | None = None
    role_assignments: tuple[Any, ...] | None = None
    attempts: tuple[Any, ...] | None = None
    environ: Mapping[str, str] | None = None

    @classmethod
    def coerce(cls, value: DiagnosisContext | Mapping[str, Any] | None) -> DiagnosisContext:
        """Accept a `DiagnosisContext`, a dict with the same keys, or None."""
        if value is None:
            return cls()
        if isinstance(value, DiagnosisContext):
            return value
        if not isinstance(value, Mapping):
            raise _input_error("context", "a DiagnosisContext, a dict of its fields, or None")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise _input_error("context", f"keys among {', '.join(sorted(names))} (got {unknown[0]!r})")
        kw: dict[str, Any] = dict(value)
        target = kw.get("target")
        if target is not None and not isinstance(target, str):
            kw["target"] = getattr(target, "name", None)
            if kw.get("emulator") is None:
                kw["emulator"] = getattr(target, "emulator", None) is not None or kw["target"] == "emulator"
            kw.setdefault("imds_url", getattr(target, "imds_url", None))
            kw.setdefault("arm_url", getattr(target, "arm_url", None))
        for key in ("role_assignments", "attempts"):
            if kw.get(key) is not None:
                try:
                    kw[key] = tuple(kw[key])
                except TypeError:
                    raise _input_error(f"context.{key}", "a list (or tuple)", kw[key]) from None
        return cls(**kw)

    def as_placeholders(self) -> dict[str, object]:
        """The values `mi_helpers.diagnosis.catalogue` fills into commands."""
        return {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "vm_name": self.vm_name,
            "principal_id": self.principal_id,
            "client_id": self.client_id,
            "scope": self.scope,
            "resource": self.resource,
            "imds_url": self.imds_url if self.target == "emulator" else None,
        }

    def env(self) -> Mapping[str, str]:
        """The environment to judge (the given one, else this process's)."""
        return self.environ if self.environ is not None else os.environ

    def role_exists(self) -> bool | None:
        """Whether a role assignment covers ``principal_id`` at or above ``scope`` (None = unknown)."""
        if self.role_assignment_exists is not None:
            return self.role_assignment_exists
        if self.role_assignments is None or not self.principal_id:
            return None
        for ra in self.role_assignments:
            pid = _get(ra, "principal_id") or _get(ra, "principalId")
            ra_scope = _get(ra, "scope")
            if str(pid).lower() != self.principal_id.lower() or not ra_scope:
                continue
            if not self.scope or scope_covers(str(ra_scope), self.scope):
                return True
        return False


def _input_error(fieldname: str, allowed: str, value: object = None) -> InputError:
    return InputError(fieldname, f"expected {allowed}", value)


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def scope_covers(outer: str, inner: str) -> bool:
    """True when scope `outer` is `inner` or one of its parents (segment-wise, case-insensitive)."""
    o = [s for s in outer.lower().split("/") if s]
    i = [s for s in inner.lower().split("/") if s]
    return len(o) <= len(i) and i[: len(o)] == o


# ----------------------------------------------------------------------------------------------- evidence


@dataclass
class _Facts:
    """Everything extracted from the failure, before classification."""

    texts: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    arm_code: str | None = None
    arm_message: str | None = None
    oauth_error: str | None = None
    oauth_description: str | None = None
    content_type: str | None = None
    body: str | None = None
    url: str | None = None
    attempts: list[Any] = field(default_factory=list)
    elapsed_s: float | None = None
    selector: str | None = None
    kinds: list[str] = field(default_factory=list)

    @property
    def blob(self) -> str:
        return "\n".join(self.texts)

    def has(self, *needles: str) -> bool:
        low = self.blob.lower()
        return any(n.lower() in low for n in needles)

    def type_is(self, *names: str) -> bool:
        return any(t in names for t in self.types)


_TOKEN_ERR_RE = re.compile(r"Token request error: \((?P<err>[^)]*)\) ?(?P<desc>.*)", re.S)
_ARM_CODE_RE = re.compile(r"(?:^|ERROR: )\((?P<code>[A-Za-z]+)\) |(?:^|\n)Code: (?P<code2>[A-Za-z]+)")
_UNAVAILABLE_END_RE = re.compile(r"authentication unavailable\.\s*(?:$|\n)")
_NO_RESPONSE_END_RE = re.compile(r"no response from the IMDS endpoint\.\s*(?:$|\n)")
_UNEXPECTED_RE = re.compile(r"Unexpected response \"(?P<body>\{.*\})\"", re.S)


def _walk(exc: BaseException) -> list[BaseException]:
    """The exception, its wrapped originals and its cause/context chain, without cycles."""
    seen: list[BaseException] = []
    stack = [exc]
    while stack:
        e = stack.pop(0)
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        for attr in ("original", "sdk_exception", "exception", "inner_exception", "error_exc"):
            inner = getattr(e, attr, None)
            if isinstance(inner, BaseException):
                stack.append(inner)
        stack.extend(x for x in (e.__cause__, e.__context__) if x is not None)
    return seen


def _read_response(facts: _Facts, resp: Any) -> None:
    status = getattr(resp, "status_code", None)
    if isinstance(status, int):
        facts.statuses.append(status)
    headers = getattr(resp, "headers", None) or {}
    try:
        ctype = headers.get("content-type") or headers.get("Content-Type")
    except Exception:  # pragma: no cover - exotic header objects
        ctype = None
    if ctype and not facts.content_type:
        facts.content_type = str(ctype)
    try:
        text = resp.text() if callable(getattr(resp, "text", None)) else getattr(resp, "text", None)
    except Exception:
        text = None
    if isinstance(text, str) and text and facts.body is None:
        facts.body = text
        facts.texts.append(text)
        _read_json_text(facts, text)
    req = getattr(resp, "request", None)
    url = getattr(req, "url", None)
    if isinstance(url, str) and not facts.url:
        facts.url = url


def _read_json_text(facts: _Facts, text: str) -> None:
    try:
        data = json.loads(text)
    except (ValueError, TypeError):
        return
    _read_mapping(facts, data)


def _read_mapping(facts: _Facts, data: Any) -> None:
    if not isinstance(data, Mapping):
        return
    err = data.get("error")
    if isinstance(err, Mapping):
        facts.arm_code = facts.arm_code or _str_or_none(err.get("code"))
        facts.arm_message = facts.arm_message or _str_or_none(err.get("message"))
        if err.get("message"):
            facts.texts.append(str(err["message"]))
    elif isinstance(err, str):
        facts.oauth_error = facts.oauth_error or err
        desc = data.get("error_description")
        if desc:
            facts.oauth_description = facts.oauth_description or str(desc)
            facts.texts.append(str(desc))
    status = data.get("status") or data.get("status_code")
    if isinstance(status, int):
        facts.statuses.append(status)


def _str_or_none(value: Any) -> str | None:
    return str(value) if value else None


def _read_text(facts: _Facts, text: str) -> None:
    facts.texts.append(text)
    m = _TOKEN_ERR_RE.search(text)
    if m and not facts.oauth_error:
        facts.oauth_error = m.group("err").strip() or None
        facts.oauth_description = m.group("desc").strip() or None
    m2 = _UNEXPECTED_RE.search(text)
    if m2:
        body = m2.group("body")
        try:  # the async client quotes the body as a Python dict repr
            parsed = ast.literal_eval(body)
        except (ValueError, SyntaxError):
            parsed = None
        _read_mapping(facts, parsed)
    m3 = _ARM_CODE_RE.search(text)
    if m3 and not facts.arm_code:
        facts.arm_code = m3.group("code") or m3.group("code2")
    for status in re.findall(r"\b(?:Status: |http error: |HTTP/1\.[01] |status code:? )(\d{3})\b", text):
        facts.statuses.append(int(status))


def _read_exception(facts: _Facts, exc: BaseException) -> None:
    for e in _walk(exc):
        facts.types.append(type(e).__name__)
        _read_text(facts, str(e))
        status = getattr(e, "status_code", None)
        if isinstance(status, int):
            facts.statuses.append(status)
        error = getattr(e, "error", None)
        code = getattr(error, "code", None)
        if isinstance(code, str) and code and not facts.arm_code:
            facts.arm_code = code
            facts.arm_message = getattr(error, "message", None)
        resp = getattr(e, "response", None)
        if resp is not None:
            _read_response(facts, resp)
        _read_extras(facts, e)


def _read_extras(facts: _Facts, obj: Any) -> None:
    """Attributes of a SignInError-like wrapper: attempts, elapsed, url, selector, IMDS error fields."""
    attempts = _get(obj, "attempts")
    if attempts and not facts.attempts and not isinstance(attempts, (str, bytes)):
        facts.attempts = list(attempts)
        for a in facts.attempts:
            st = _get(a, "status")
            if isinstance(st, int):
                facts.statuses.append(st)
            kind = _get(a, "kind")
            if isinstance(kind, str) and kind != "ok":
                facts.kinds.append(kind)
    for name in ("elapsed_s", "elapsed"):
        val = _get(obj, name)
        if isinstance(val, (int, float)) and not isinstance(val, bool) and facts.elapsed_s is None:
            facts.elapsed_s = float(val)
    url = _get(obj, "url")
    if isinstance(url, str) and url and not facts.url:
        facts.url = url
    sel = _get(obj, "selector")
    if sel and not facts.selector:
        facts.selector = "=".join(map(str, sel)) if isinstance(sel, tuple) else str(sel)
    err, desc = _get(obj, "error_code"), _get(obj, "description")
    if not isinstance(err, str):
        err = _get(obj, "error")  # an IMDS-style dict, or an older wrapper that used ``error``
    if isinstance(err, str) and err and not facts.oauth_error:
        facts.oauth_error = err
        if isinstance(desc, str) and desc:
            facts.oauth_description = desc
            facts.texts.append(desc)


def _collect(subject: Any, ctx: DiagnosisContext) -> _Facts:
    facts = _Facts()
    if isinstance(subject, BaseException):
        _read_exception(facts, subject)
    elif isinstance(subject, str):
        _read_text(facts, subject)
    elif isinstance(subject, Mapping):
        facts.texts.append(json.dumps(subject, default=str)[:2000])
        _read_mapping(facts, subject)
        _read_extras(facts, subject)
    elif subject is not None:
        facts.types.append(type(subject).__name__)
        _read_response(facts, subject)
        _read_extras(facts, subject)
        for name in ("error", "exception", "diagnosis_source"):
            inner = getattr(subject, name, None)
            if isinstance(inner, BaseException):
                _read_exception(facts, inner)
    if ctx.attempts:  # the caller's history (e.g. several calls) wins over one exception's own attempts
        facts.attempts = list(ctx.attempts)
        facts.statuses.extend(s for s in (_get(a, "status") for a in ctx.attempts) if isinstance(s, int))
        facts.kinds = [k for k in (_get(a, "kind") for a in ctx.attempts) if isinstance(k, str) and k != "ok"]
    if ctx.url and not facts.url:
        facts.url = ctx.url
    return facts


# ------------------------------------------------------------------------------------------ classification

_ARM_CODES = {
    "AuthorizationFailed": "arm-authorization-failed",
    "LinkedAuthorizationFailed": "arm-authorization-failed",
    "InvalidAuthenticationTokenAudience": "arm-wrong-audience",
    "ExpiredAuthenticationToken": "arm-token-expired",
    "InvalidAuthenticationToken": "arm-invalid-token",
    "AuthenticationFailed": "arm-invalid-token",
    "ResourceNotFound": "arm-resource-not-found",
    "ResourceGroupNotFound": "arm-resource-group-not-found",
    "SubscriptionNotFound": "arm-subscription-not-found",
    "SubscriptionRequestsThrottled": "arm-throttled",
    "TooManyRequests": "arm-throttled",
}
_PROPAGATION_TEXTS = (
    "observe propagation time",
    "No matches in graph database",
    "Cannot find user or service principal in graph database",
)
_IDENTITY_TEXTS = (
    "Identity not found",
    "has not been assigned to this resource",
    "No identity has been assigned",
    "Get Token request returned http error: 400",
)
_AUDIENCE_TEXTS = (
    "wrong audience",
    "AADSTS500011",
    "AADSTS50001",
    "requires exactly one scope",
    "does not accept client id as a user-provided scope",
)
_PROXY_TEXTS = (
    "gateway error",
    "X-Forwarded-For",
    "Fail to directly connect with",
    "InvalidHeaderValue",
    "Unable to connect to proxy",
    "Cannot connect to proxy",
    "ProxyError",
    "Tunnel connection failed",
)
_NON_IMDS_TEXTS = (
    "Unexpected content type",
    "No MMDS token provided",
    "IMDS emits unexpected payload",
)
_UNREACHABLE_TEXTS = (
    "Connection refused",
    "Errno 111",
    "WinError 10061",
    "WinError 10051",
    "WinError 10060",
    "Network is unreachable",
    "unreachable network",
    "No route to host",
    "Failed to establish a new connection",
    "no managed identity endpoint found",
    "Failed to connect to MSI",
    "connect timeout",
    "ConnectTimeout",
)
_TIMEOUT_TEXTS = ("Read timed out", "read timeout", "ReadTimeout", "timed out")
_LEGACY_TEXTS = (
    ":50342",
    "port=50342",
    "MSI@50342",
    "unknown_source",
    "Unknown Source",
    "unrecognized arguments: --msi",
    "with --username is no longer supported",
)


def _is_legacy_url(url: str | None) -> bool:
    if not url:
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if port == 50342:
        return True
    return parts.path.rstrip("/").endswith("/oauth2/token") and "/metadata/identity" not in parts.path


def _cloud_shell(environ: Mapping[str, str]) -> bool:
    """Azure Cloud Shell legitimately serves MSI_ENDPOINT on localhost:50342 (MSAL's detection rule)."""
    return environ.get("AZUREPS_HOST_ENVIRONMENT", "").lower().startswith("cloud-shell")


def _host_of(url: str | None) -> str:
    if not url:
        return ""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _stage(facts: _Facts, ctx: DiagnosisContext) -> str:
    """``arm`` or ``imds`` (best guess) — decides e.g. whether a 429 is ARM's or IMDS's."""
    if ctx.stage in ("arm", "imds"):
        return ctx.stage
    if facts.arm_code:
        return "arm"
    host = _host_of(facts.url)
    if facts.url and ("/metadata/" in facts.url or host == Imds.ADDRESS or _is_legacy_url(facts.url)):
        return "imds"
    if host.startswith("management.") or (ctx.arm_url and _host_of(ctx.arm_url) == host and host):
        return "arm"
    if facts.has("ManagedIdentityCredential", "IMDS", "managed identity", "MSI", "Identity not found"):
        return "imds"
    if facts.has("/subscriptions/", "Microsoft.Compute", "management.azure.com"):
        return "arm"
    return "imds"


def _proxy_covers_imds(ctx: DiagnosisContext) -> bool:
    return any(t.id == "proxy-captures-imds" for t in environment_traps(ctx.env(), arc_agent_path=None))


def _off_azure(ctx: DiagnosisContext) -> bool:
    return ctx.target not in (None, "azure", "emulator") and not ctx.emulator


def _retried_then_succeeded(facts: _Facts) -> bool:
    sts = [_get(a, "status") for a in facts.attempts]
    return len(sts) >= 2 and sts[-1] == 200 and any(s != 200 for s in sts[:-1])


def _classify(facts: _Facts, ctx: DiagnosisContext) -> str:
    """The catalogue id for `facts`, refined by what `ctx` knows."""
    return _refine(_base_id(facts, ctx), facts, ctx)


def _refine(did: str, facts: _Facts, ctx: DiagnosisContext) -> str:
    """Settle what text alone cannot: propagation, off-Azure, a proxy behind a non-IMDS answer."""
    if did == "identity-not-assigned" and (ctx.identity_attached or _retried_then_succeeded(facts)):
        return "identity-propagating"
    if did == "arm-authorization-failed" and (
        facts.has(*_PROPAGATION_TEXTS) or ctx.role_exists() or _retried_then_succeeded(facts)
    ):
        return "role-propagating"
    if did in ("imds-unreachable", "imds-timeout") and _off_azure(ctx):
        return "not-on-azure"
    if did == "non-imds-response" and _proxy_covers_imds(ctx):
        return "proxy-intercepts-imds"
    return did


def _base_id(facts: _Facts, ctx: DiagnosisContext) -> str:  # noqa: C901
    """An ordered rule list: most specific evidence first."""
    stage = _stage(facts, ctx)
    statuses = set(facts.statuses)

    if facts.has("CERTIFICATE_VERIFY_FAILED", "certificate verify failed") or facts.type_is(
        "SSLCertVerificationError"
    ):
        return "tls-untrusted"
    if (
        facts.has(*_LEGACY_TEXTS)
        or _is_legacy_url(facts.url)
        or (_is_legacy_url(ctx.env().get("MSI_ENDPOINT")) and not _cloud_shell(ctx.env()))
        or facts.oauth_error == "unknown_source"
    ):
        return "legacy-extension-endpoint"
    if facts.has("Required metadata header not specified", "bad_request_102"):
        return "missing-metadata-header"
    if facts.has("Multiple user assigned identities"):
        return "user-assigned-selector-required"
    if facts.has(*_PROXY_TEXTS) or facts.type_is("ProxyError"):
        return "proxy-intercepts-imds"

    arm_id = _ARM_CODES.get(facts.arm_code or "")
    if facts.has("does not have authorization to perform action", *_PROPAGATION_TEXTS) or facts.has(
        "no subscriptions were found", "SubscriptionId' cannot be null"
    ):
        arm_id = "arm-authorization-failed"
    if arm_id is None and stage == "arm" and 429 in statuses:
        arm_id = "arm-throttled"
    if arm_id:
        return arm_id
    if facts.has(*_AUDIENCE_TEXTS) or facts.oauth_error == "invalid_resource":
        return "arm-wrong-audience"
    if facts.has("is earlier than current UTC time"):
        return "arm-token-expired"
    if facts.has(*_IDENTITY_TEXTS) or (
        facts.has("Status: 400 (Bad Request)") and facts.has("ManagedIdentityCredential")
    ):
        return "identity-not-assigned"

    for kind in reversed(facts.kinds):  # what get_token recorded for its attempts (Attempt.kind)
        known = KINDS.get(kind)  # type: ignore[call-overload]
        if known is not None and known.diagnosis_id is not None:
            return known.diagnosis_id

    html_body = bool(facts.body and "<html" in facts.body.lower()) or "text/html" in (
        facts.content_type or ""
    )
    if stage == "imds" and statuses & {502, 504} and (html_body or not facts.oauth_error):
        return "proxy-intercepts-imds"
    if stage == "imds":
        imds_id = _imds_status_id(facts, statuses)
        if imds_id:
            return imds_id

    body_not_json = facts.body is not None and not _is_json(facts.body)
    non_json = (
        facts.has(*_NON_IMDS_TEXTS)
        or facts.type_is("JSONDecodeError")
        or html_body
        or (body_not_json and stage == "imds")
        or any(_UNAVAILABLE_END_RE.search(t) for t in facts.texts)
        or (401 in statuses and stage == "imds")
    )
    if non_json and not facts.has("unreachable"):
        return "non-imds-response"

    connect_timeout = facts.has(
        "connect timeout", "ConnectTimeout", "Connection to 169.254.169.254 timed out"
    )
    read_timeout = facts.type_is("ServiceResponseTimeoutError", "ReadTimeout", "ReadTimeoutError") or (
        facts.has(*_TIMEOUT_TEXTS) and not connect_timeout
    )
    if read_timeout and not connect_timeout:
        return "imds-timeout"
    unreachable = (
        facts.has(*_UNREACHABLE_TEXTS, "unreachable")
        or connect_timeout
        or facts.type_is("ServiceRequestError", "ConnectionError", "ConnectionRefusedError", "ConnectTimeout")
        or any(_NO_RESPONSE_END_RE.search(t) for t in facts.texts)
    )
    if unreachable:
        return "imds-unreachable"

    if stage == "arm":
        if 404 in statuses:
            return "arm-resource-not-found"
        if 403 in statuses:
            return "arm-authorization-failed"
        if 401 in statuses:
            return "arm-invalid-token"
    return "unknown"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _imds_status_id(facts: _Facts, statuses: set[int]) -> str | None:
    """IMDS's documented transient statuses (and their texts)."""
    if 410 in statuses or facts.has("Status: 410", "(Gone)", "going through updates", "IMDS is updating"):
        return "imds-updating"
    if 429 in statuses or facts.has("too_many_requests", "Too Many Requests", "Throttle limit"):
        return "imds-throttled"
    if any(500 <= s < 600 for s in statuses) or facts.oauth_error in (
        "server_error",
        "service_unavailable",
        "unknown",
    ):
        return "imds-server-error"
    if facts.has("Failed to retrieve token from the Active directory"):
        return "imds-server-error"
    if 404 in statuses and not facts.oauth_error:
        return "imds-updating"
    return None


# ------------------------------------------------------------------------------------------------ result


@dataclass(frozen=True)
class Diagnosis:
    """A named failure mode with its cause, the evidence seen, and ordered fix steps and commands."""

    id: str
    title: str
    cause: str
    evidence: dict[str, Any]
    fix: tuple[str, ...]
    commands: dict[str, str]
    docs: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (every text already redacted)."""
        return {
            "id": self.id,
            "title": self.title,
            "cause": self.cause,
            "evidence": dict(self.evidence),
            "fix": list(self.fix),
            "commands": dict(self.commands),
            "docs": self.docs,
        }

    def _evidence_lines(self) -> list[str]:
        labels = {
            "status": "HTTP status",
            "error_code": "Error code",
            "server_text": "Server said",
            "exception": "Exception",
            "url": "URL",
            "attempts": "Attempts",
            "elapsed_s": "Elapsed (s)",
            "selector": "Identity selector",
            "environment": "Environment",
        }
        out = []
        for key, label in labels.items():
            val = self.evidence.get(key)
            if val in (None, "", [], {}):
                continue
            if key == "attempts" and isinstance(val, list):
                val = _attempts_text(val)
            out.append(f"{label}: {val}")
        return out

    def __str__(self) -> str:
        lines = [f"Diagnosis [{self.id}]: {self.title}", f"Cause: {self.cause}"]
        ev = self._evidence_lines()
        if ev:
            lines.append("Evidence:")
            lines.extend(f"  - {e}" for e in ev)
        lines.append("Fix:")
        lines.extend(f"  {i}. {step}" for i, step in enumerate(self.fix, 1))
        for key, label in (("portal", "Portal"), ("az", "az / shell"), ("powershell", "PowerShell")):
            if self.commands.get(key):
                lines.append(f"{label}:")
                lines.extend(f"    {c}" for c in self.commands[key].splitlines())
        lines.append(f"Docs: {self.docs}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Diagnosis(id={self.id!r}, title={self.title!r})"

    def _repr_html_(self) -> str:
        e = html.escape
        ev = "".join(f"<li>{e(x)}</li>" for x in self._evidence_lines())
        steps = "".join(f"<li>{e(s)}</li>" for s in self.fix)
        cmds = "".join(
            f"<p><strong>{e(label)}:</strong></p><pre style='white-space:pre-wrap;margin:0 0 0.5em 1em'>"
            f"{e(self.commands[key])}</pre>"
            for key, label in (("portal", "Portal"), ("az", "az / shell"), ("powershell", "PowerShell"))
            if self.commands.get(key)
        )
        return (
            "<div class='mi-diagnosis' role='note' style='border:1px solid #b00;border-left:6px solid #b00;"
            "padding:0.5em 1em;margin:0.5em 0'>"
            f"<p><strong>Diagnosis:</strong> {e(self.title)} <code>[{e(self.id)}]</code></p>"
            f"<p><strong>Cause:</strong> {e(self.cause)}</p>"
            + (f"<p><strong>Evidence:</strong></p><ul>{ev}</ul>" if ev else "")
            + f"<p><strong>Fix:</strong></p><ol>{steps}</ol>"
            f"{cmds}"
            f"<p><strong>Docs:</strong> <a href='{e(self.docs)}' target='_blank' rel='noopener'>"
            f"{e(self.docs)}</a></p></div>"
        )


def _attempts_summary(attempts: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for a in attempts:
        item = {
            "status": _get(a, "status"),
            "kind": _get(a, "kind"),
            "time": _get(a, "time") if _get(a, "time") is not None else _get(a, "started"),
            "retry_after": _get(a, "retry_after"),
        }
        if isinstance(item["time"], float):
            item["time"] = round(item["time"], 3)
        out.append({k: v for k, v in item.items() if v is not None} or {"status": None})
    return out[:20]


def _attempts_text(attempts: list[dict[str, Any]]) -> str:
    """``400 identity-not-found @0.0 s → 200 @0.6 s`` (status ``-`` = no HTTP answer)."""
    parts = []
    for a in attempts:
        text = str(a.get("status") if a.get("status") is not None else "-")
        if a.get("kind") and a.get("kind") != "ok":
            text += f" {a['kind']}"
        if isinstance(a.get("time"), (int, float)):
            text += f" @{a['time']:.1f} s"
        if a.get("retry_after") is not None:
            text += f" (Retry-After {a['retry_after']})"
        parts.append(text)
    return " → ".join(parts)


def _evidence(facts: _Facts, subject: Any) -> dict[str, Any]:
    status = next((s for s in reversed(facts.statuses) if s != 200), None)
    code = facts.arm_code or facts.oauth_error
    server = facts.arm_message or facts.oauth_description or facts.body
    if not server and facts.texts:
        server = facts.texts[0]
    ev: dict[str, Any] = {
        "status": status,
        "error_code": code,
        "server_text": redact_text(server.strip()) if server else None,
        "exception": " ← ".join(facts.types[:4])
        if facts.types and isinstance(subject, BaseException)
        else None,
        "url": redact_text(facts.url, 300) if facts.url else None,
        "attempts": _attempts_summary(facts.attempts) if facts.attempts else None,
        "elapsed_s": round(facts.elapsed_s, 3) if facts.elapsed_s is not None else None,
        "selector": redact_text(facts.selector, 200) if facts.selector else None,
    }
    return {k: v for k, v in ev.items() if v is not None}


def diagnose(
    exc_or_result: BaseException | str | Mapping[str, Any] | Any,
    *,
    context: DiagnosisContext | Mapping[str, Any] | None = None,
) -> Diagnosis:
    """Name the failure in `exc_or_result` and say how to fix it.

    Accepts an exception (its cause chain is read too), an az CLI / PowerShell / SDK message string, an
    IMDS/MSAL error dict or ARM error envelope, or a response-like object with ``status_code``. `context`
    (a `DiagnosisContext` or a dict of its fields) fills the commands with real names and settles what
    text alone cannot (propagation, off-Azure, proxies).
    """
    if isinstance(exc_or_result, Diagnosis):
        return exc_or_result
    ctx = DiagnosisContext.coerce(context)
    facts = _collect(exc_or_result, ctx)
    did = _classify(facts, ctx)
    recipe = fixes.recipe(did)
    return Diagnosis(
        id=did,
        title=recipe.title,
        cause=recipe.cause,
        evidence=_evidence(facts, exc_or_result),
        fix=recipe.fix,
        commands=recipe.commands(fixes.Placeholders.from_context(ctx.as_placeholders())),
        docs=recipe.docs,
    )


def diagnosis_for(
    diagnosis_id: str, *, context: Any = None, evidence: Mapping[str, Any] | None = None
) -> Diagnosis:
    """Build the `Diagnosis` for a known id directly (used by the doctor for findings without an error)."""
    if diagnosis_id not in fixes.CATALOGUE:
        raise _input_error("diagnosis_id", "one of " + ", ".join(DIAGNOSIS_IDS))
    ctx = DiagnosisContext.coerce(context)
    recipe = fixes.recipe(diagnosis_id)
    ev = {k: (redact_text(v) if isinstance(v, str) else v) for k, v in (evidence or {}).items()}
    return Diagnosis(
        id=diagnosis_id,
        title=recipe.title,
        cause=recipe.cause,
        evidence=ev,
        fix=recipe.fix,
        commands=recipe.commands(fixes.Placeholders.from_context(ctx.as_placeholders())),
        docs=recipe.docs,
    )


# ------------------------------------------------------------------------------------- environment traps


@dataclass(frozen=True)
class Trap:
    """An environment setting that silently changes where (or whether) a token request goes."""

    id: str
    variables: tuple[str, ...]
    value: str
    effect: str
    fix: str
    severity: str = "warn"  # "warn": changes behaviour; "info": worth knowing
    diagnosis_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "id": self.id,
            "variables": list(self.variables),
            "value": self.value,
            "effect": self.effect,
            "fix": self.fix,
            "severity": self.severity,
            "diagnosis_id": self.diagnosis_id,
        }

    def __str__(self) -> str:
        return f"[{self.severity}] {', '.join(self.variables)}={self.value}: {self.effect} Fix: {self.fix}"


_SECRET_VARS = {"IDENTITY_HEADER", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT"}


def _shown(name: str, value: str) -> str:
    if name in _SECRET_VARS:
        return _short(value) if len(value) > 8 else "***"
    return redact_text(value, 200)


def _env_get(environ: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """First non-empty variable among `names` (lower-case spelling wins, like urllib/requests)."""
    for n in names:
        v = environ.get(n)
        if v and v.strip():
            return n, v.strip()
    return None


def _no_proxy_matches(host: str, no_proxy: str) -> bool:
    """requests/urllib NO_PROXY semantics: ``*``, exact host, domain suffix, or CIDR for IP hosts."""
    host = host.lower().strip("[]")
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for raw in no_proxy.replace(" ", "").split(","):
        entry = raw.lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_host = entry.split(":")[0] if entry.count(":") == 1 else entry
        if ip is not None and "/" in entry_host:
            try:
                if ip in ipaddress.ip_network(entry_host, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry_host = entry_host.lstrip(".")
        if host == entry_host or host.endswith("." + entry_host):
            return True
    return False


def _proxy_for(url: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The proxy variable that would carry `url` (None when none applies or NO_PROXY excludes it)."""
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    host = parts.hostname or ""
    np = _env_get(environ, "no_proxy", "NO_PROXY")
    if np and _no_proxy_matches(host, np[1]):
        return None
    return _env_get(environ, f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY")


def _loopback(url: str) -> bool:
    host = _host_of(url)
    return host in ("localhost",) or host.startswith("127.") or host == "::1"


def environment_traps(  # noqa: C901
    environ: Mapping[str, str] | None = None,
    *,
    arc_agent_path: str | os.PathLike[str] | None = "/opt/azcmagent/bin/himds",
) -> list[Trap]:
    """List environment settings that silently change managed-identity sign-in, with effect and fix.

    Reads `environ` (default: this process's environment) and checks whether the Azure Arc agent file
    exists at `arc_agent_path` (None skips that check). Pure: no network.
    """
    env = os.environ if environ is None else environ
    traps: list[Trap] = []
    no_proxy_fix = (
        "export NO_PROXY=169.254.169.254,localhost,127.0.0.1 (and no_proxy) — PowerShell: $env:NO_PROXY"
    )

    imds_base = (env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST") or "").strip() or f"http://{Imds.ADDRESS}"
    # (trap id, URL, severity, diagnosis): the IMDS address in use matters now; the real one only on Azure.
    targets: list[tuple[str, str, str, str | None]] = [
        ("proxy-captures-imds", imds_base, "warn", "proxy-intercepts-imds")
    ]
    if _host_of(imds_base) != Imds.ADDRESS:
        targets.append(
            ("proxy-captures-azure-imds", f"http://{Imds.ADDRESS}/", "info", "proxy-intercepts-imds")
        )
    arm_url = (env.get("MI_HELPERS_ARM_URL") or "").strip()
    if arm_url and _loopback(arm_url):
        targets.append(("proxy-captures-emulator-arm", arm_url, "warn", None))
    for tid, url, severity, did in targets:
        hit = _proxy_for(url, env)
        if not hit:
            continue
        what = "ARM requests" if tid.endswith("-arm") else "IMDS requests"
        traps.append(
            Trap(
                id=tid,
                variables=(hit[0],),
                value=redact_text(hit[1], 200),
                effect=f"{what} to {_host_of(url) or url} would go through this proxy (NO_PROXY does not "
                "exclude it); IMDS rejects proxied calls and proxies cannot reach link-local addresses.",
                fix=no_proxy_fix,
                severity=severity,
                diagnosis_id=did,
            )
        )

    ie, ih, it = (
        env.get(n, "").strip() for n in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT")
    )
    imds_ep = env.get("IMDS_ENDPOINT", "").strip()
    if ie and ih and it:
        traps.append(
            Trap(
                "service-fabric-identity",
                ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT"),
                _shown("IDENTITY_ENDPOINT", ie),
                "ManagedIdentityCredential uses the Service Fabric identity endpoint; IMDS is never called.",
                "unset IDENTITY_ENDPOINT IDENTITY_HEADER IDENTITY_SERVER_THUMBPRINT on a VM",
            )
        )
    elif ie and ih:
        traps.append(
            Trap(
                "app-service-identity",
                ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"),
                _shown("IDENTITY_ENDPOINT", ie),
                "ManagedIdentityCredential uses the App Service / Functions identity endpoint; IMDS is never "
                "called.",
                "unset IDENTITY_ENDPOINT IDENTITY_HEADER on a VM",
            )
        )
    elif ie and imds_ep:
        traps.append(
            Trap(
                "arc-identity",
                ("IDENTITY_ENDPOINT", "IMDS_ENDPOINT"),
                _shown("IDENTITY_ENDPOINT", ie),
                "ManagedIdentityCredential uses the Azure Arc endpoint (401 challenge + key file), not IMDS.",
                "unset IDENTITY_ENDPOINT IMDS_ENDPOINT unless this is an Arc-enabled server",
            )
        )
    elif ie or imds_ep or ih or it:
        names = tuple(
            n
            for n, v in (("IDENTITY_ENDPOINT", ie), ("IDENTITY_HEADER", ih), ("IMDS_ENDPOINT", imds_ep))
            if v
        ) or ("IDENTITY_SERVER_THUMBPRINT",)
        traps.append(
            Trap(
                "partial-identity-endpoint",
                names,
                _shown(names[0], env.get(names[0], "")),
                "an incomplete set of identity-endpoint variables: ignored today, but a leftover that will "
                "switch the backend as soon as its partner variable appears.",
                "unset " + " ".join(names),
                severity="info",
            )
        )

    msi_ep, msi_secret = env.get("MSI_ENDPOINT", "").strip(), env.get("MSI_SECRET", "").strip()
    if msi_ep:
        legacy = _is_legacy_url(msi_ep) and not _cloud_shell(env)
        traps.append(
            Trap(
                "msi-endpoint-legacy"
                if legacy
                else ("msi-endpoint-azure-ml" if msi_secret else "msi-endpoint-cloud-shell"),
                ("MSI_ENDPOINT", "MSI_SECRET") if msi_secret else ("MSI_ENDPOINT",),
                _shown("MSI_ENDPOINT", msi_ep),
                (
                    "points at the retired VM-extension endpoint (port 50342 / /oauth2/token); "
                    if legacy
                    else ""
                )
                + (
                    "ManagedIdentityCredential uses the Azure ML protocol, not IMDS."
                    if msi_secret
                    else "ManagedIdentityCredential uses the Cloud Shell protocol, not IMDS."
                ),
                "unset MSI_ENDPOINT MSI_SECRET (left over from an old local-MSI tool or the VM extension)",
                diagnosis_id="legacy-extension-endpoint" if legacy else None,
            )
        )

    wi = {
        n: env.get(n, "").strip()
        for n in ("AZURE_AUTHORITY_HOST", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE")
    }
    if all(wi.values()):
        traps.append(
            Trap(
                "workload-identity",
                tuple(wi),
                _shown("AZURE_FEDERATED_TOKEN_FILE", wi["AZURE_FEDERATED_TOKEN_FILE"]),
                "ManagedIdentityCredential switches to workload identity (federated token file); IMDS is "
                "never called, and without a client id it raises ValueError.",
                "unset AZURE_FEDERATED_TOKEN_FILE (or AZURE_AUTHORITY_HOST) on a VM",
            )
        )

    cid = env.get("AZURE_CLIENT_ID", "").strip()
    if cid:
        traps.append(
            Trap(
                "azure-client-id",
                ("AZURE_CLIENT_ID",),
                _shown("AZURE_CLIENT_ID", cid),
                "DefaultAzureCredential asks IMDS for this user-assigned identity; ManagedIdentityCredential "
                "ignores it (so the two can sign in as different identities).",
                "pass client_id= explicitly, or unset AZURE_CLIENT_ID",
                severity="info",
            )
        )

    atc = env.get("AZURE_TOKEN_CREDENTIALS", "").strip()
    if atc:
        skips_mi = atc.lower() not in ("prod", "managedidentitycredential")
        traps.append(
            Trap(
                "azure-token-credentials",
                ("AZURE_TOKEN_CREDENTIALS",),
                _shown("AZURE_TOKEN_CREDENTIALS", atc),
                (
                    "DefaultAzureCredential skips managed identity (value selects other credentials)."
                    if skips_mi
                    else "DefaultAzureCredential is limited to this selection (managed identity included)."
                ),
                "unset AZURE_TOKEN_CREDENTIALS, or set it to ManagedIdentityCredential on the VM",
                severity="warn" if skips_mi else "info",
            )
        )

    override = (env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST") or "").strip()
    if override:
        local = _loopback(override)
        traps.append(
            Trap(
                "imds-host-override",
                ("AZURE_POD_IDENTITY_AUTHORITY_HOST",),
                _shown("AZURE_POD_IDENTITY_AUTHORITY_HOST", override),
                "token requests go here instead of http://169.254.169.254"
                + (" (the local emulator)." if local else "."),
                "expected with the emulator; on an Azure VM unset AZURE_POD_IDENTITY_AUTHORITY_HOST",
                severity="info" if local else "warn",
            )
        )

    if arc_agent_path is not None and Path(arc_agent_path).exists():
        traps.append(
            Trap(
                "arc-agent-present",
                (str(arc_agent_path),),
                "exists",
                "MSAL treats this machine as Azure Arc and sends token requests to http://localhost:40342, "
                "not IMDS, even without any environment variable.",
                "on an Azure VM, uninstall the Arc agent (azcmagent) — Arc is for machines outside Azure",
            )
        )
    return traps
