"""The classification rules: from :class:`~.facts.Facts` (and the caller's context) to a catalogue id.

:data:`RULES` is an ordered list, most specific evidence first; the first rule that names an id wins, and
:func:`refine` then settles what text alone cannot (propagation, off-Azure, a proxy behind a non-IMDS
answer). Each text table sits next to the rule that uses it. The texts are the real clients' and services'
wording (``tests/helpers/captured/texts.json`` holds verbatim samples from public reports).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from functools import cached_property
from typing import Any

from mi_helpers.attempts import KINDS
from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.constants import Imds
from mi_helpers.diagnosis.context import DiagnosisContext, get_field
from mi_helpers.diagnosis.dataplane import data_plane_findings, data_plane_rule, refine_data_plane
from mi_helpers.diagnosis.facts import Facts
from mi_helpers.diagnosis.traps import cloud_shell, environment_traps, host_of, is_legacy_url

__all__ = ["RULES", "classify", "failing_scope", "findings"]


class Seen:
    """What every rule looks at: the facts, the context, and what follows from them (computed once)."""

    def __init__(self, facts: Facts, ctx: DiagnosisContext) -> None:
        self.facts = facts
        self.ctx = ctx

    @cached_property
    def stage(self) -> str:
        """``arm`` or ``imds`` (best guess) — decides e.g. whether a 429 is ARM's or IMDS's."""
        return _stage(self.facts, self.ctx)

    @cached_property
    def statuses(self) -> set[int]:
        return set(self.facts.statuses)

    @cached_property
    def html_body(self) -> bool:
        facts = self.facts
        return bool(facts.body and "<html" in facts.body.lower()) or "text/html" in (facts.content_type or "")


def _stage(facts: Facts, ctx: DiagnosisContext) -> str:
    if ctx.stage in ("arm", "imds"):
        return ctx.stage
    if facts.arm_code:
        return "arm"
    host = host_of(facts.url)
    if facts.url and ("/metadata/" in facts.url or host == Imds.ADDRESS or is_legacy_url(facts.url)):
        return "imds"
    if host.startswith("management.") or (ctx.arm_url and host_of(ctx.arm_url) == host and host):
        return "arm"
    if facts.has("ManagedIdentityCredential", "IMDS", "managed identity", "MSI", "Identity not found"):
        return "imds"
    if facts.has("/subscriptions/", "Microsoft.Compute", "management.azure.com"):
        return "arm"
    return "imds"


# ----------------------------------------------------------------------------------------------- rules

Rule = Callable[[Seen], "str | None"]


def _tls(s: Seen) -> str | None:
    untrusted = s.facts.has("CERTIFICATE_VERIFY_FAILED", "certificate verify failed")
    return "tls-untrusted" if untrusted or s.facts.type_is("SSLCertVerificationError") else None


_LEGACY_TEXTS = (
    f":{Imds.LEGACY_EXTENSION_PORT}",
    f"port={Imds.LEGACY_EXTENSION_PORT}",
    f"MSI@{Imds.LEGACY_EXTENSION_PORT}",
    "unknown_source",
    "Unknown Source",
    "unrecognized arguments: --msi",
    "with --username is no longer supported",
)


def _legacy(s: Seen) -> str | None:
    env = s.ctx.env()
    legacy = (
        s.facts.has(*_LEGACY_TEXTS)
        or is_legacy_url(s.facts.url)
        or (is_legacy_url(env.get(Env.MSI_ENDPOINT)) and not cloud_shell(env))
        or s.facts.oauth_error == "unknown_source"
    )
    return "legacy-extension-endpoint" if legacy else None


def _metadata_header(s: Seen) -> str | None:
    missing = s.facts.has("Required metadata header not specified", "bad_request_102")
    return "missing-metadata-header" if missing else None


def _selector(s: Seen) -> str | None:
    return "user-assigned-selector-required" if s.facts.has("Multiple user assigned identities") else None


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


def _proxy_text(s: Seen) -> str | None:
    return "proxy-intercepts-imds" if s.facts.has(*_PROXY_TEXTS) or s.facts.type_is("ProxyError") else None


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
    "NoRegisteredProviderFound": "arm-api-version-unsupported",
    "InvalidApiVersionParameter": "arm-api-version-unsupported",
    "InvalidResourceType": "arm-resource-not-found",
}
_PROPAGATION_TEXTS = (
    "observe propagation time",
    "No matches in graph database",
    "Cannot find user or service principal in graph database",
)
_NO_ACCESS_TEXTS = (
    "does not have authorization to perform action",
    *_PROPAGATION_TEXTS,
    "no subscriptions were found",
    "SubscriptionId' cannot be null",
)


def _arm(s: Seen) -> str | None:
    """ARM's own error code, its "no access" wordings, or a 429 from ARM."""
    if s.facts.has(*_NO_ACCESS_TEXTS):
        return "arm-authorization-failed"
    arm_id = _ARM_CODES.get(s.facts.arm_code or "")
    if arm_id is None and s.stage == "arm" and 429 in s.statuses:
        return "arm-throttled"
    return arm_id


#: Entra ID's "no application has this resource ID" (a typo, a delegated scope, an app of another tenant).
_UNKNOWN_RESOURCE_TEXTS = ("AADSTS500011", "AADSTS50001:", "resource principal named")

_AUDIENCE_TEXTS = (
    "wrong audience",
    "requires exactly one scope",
    "does not accept client id as a user-provided scope",
)


def _unknown_resource(s: Seen) -> str | None:
    return "token-unknown-resource" if s.facts.has(*_UNKNOWN_RESOURCE_TEXTS) else None


def _audience(s: Seen) -> str | None:
    wrong = s.facts.has(*_AUDIENCE_TEXTS) or s.facts.oauth_error == "invalid_resource"
    return "arm-wrong-audience" if wrong else None


def _expired(s: Seen) -> str | None:
    return "arm-token-expired" if s.facts.has("is earlier than current UTC time") else None


_IDENTITY_TEXTS = (
    "Identity not found",
    "has not been assigned to this resource",
    "No identity has been assigned",
    "Get Token request returned http error: 400",
)


def _identity(s: Seen) -> str | None:
    sdk_400 = s.facts.has("Status: 400 (Bad Request)") and s.facts.has("ManagedIdentityCredential")
    return "identity-not-assigned" if s.facts.has(*_IDENTITY_TEXTS) or sdk_400 else None


def _attempt_kinds(s: Seen) -> str | None:
    """What get_token recorded for its attempts (``Attempt.kind``), the last one that names a diagnosis."""
    for kind in reversed(s.facts.kinds):
        info = KINDS.get(kind)  # type: ignore[call-overload]  # foreign wrappers may carry other words
        if info is not None and info.diagnosis_id is not None:
            return str(info.diagnosis_id)
    return None


def _imds_gateway(s: Seen) -> str | None:
    """A 502/504 on the way to IMDS with an HTML body (or no IMDS error) is a proxy's answer."""
    gateway = s.stage == "imds" and bool(s.statuses & {502, 504})
    return "proxy-intercepts-imds" if gateway and (s.html_body or not s.facts.oauth_error) else None


def _imds_status(s: Seen) -> str | None:
    """IMDS's documented transient statuses (and their texts)."""
    facts, statuses = s.facts, s.statuses
    if s.stage != "imds":
        return None
    if 410 in statuses or facts.has("Status: 410", "(Gone)", "going through updates", "IMDS is updating"):
        return "imds-updating"
    if 429 in statuses or facts.has("too_many_requests", "Too Many Requests", "Throttle limit"):
        return "imds-throttled"
    if any(500 <= st < 600 for st in statuses) or facts.oauth_error in (
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


_NON_IMDS_TEXTS = (
    "Unexpected content type",
    "No MMDS token provided",
    "IMDS emits unexpected payload",
)
# azure-identity 1.27 words a non-JSON answer "ManagedIdentityCredential authentication unavailable."
_UNAVAILABLE_END_RE = re.compile(r"authentication unavailable\.\s*(?:$|\n)")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _non_imds(s: Seen) -> str | None:
    facts = s.facts
    body_not_json = facts.body is not None and not _is_json(facts.body)
    non_json = (
        facts.has(*_NON_IMDS_TEXTS)
        or facts.type_is("JSONDecodeError")
        or s.html_body
        or (body_not_json and s.stage == "imds")
        or any(_UNAVAILABLE_END_RE.search(t) for t in facts.texts)
        or (401 in s.statuses and s.stage == "imds")
    )
    return "non-imds-response" if non_json and not facts.has("unreachable") else None


_TIMEOUT_TEXTS = ("Read timed out", "read timeout", "ReadTimeout", "timed out")
_CONNECT_TIMEOUT_TEXTS = ("connect timeout", "ConnectTimeout", f"Connection to {Imds.ADDRESS} timed out")


def _read_timeout(s: Seen) -> str | None:
    facts = s.facts
    if facts.has(*_CONNECT_TIMEOUT_TEXTS):
        return None
    read = facts.type_is("ServiceResponseTimeoutError", "ReadTimeout", "ReadTimeoutError") or facts.has(
        *_TIMEOUT_TEXTS
    )
    return "imds-timeout" if read else None


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
    "unreachable",
    *_CONNECT_TIMEOUT_TEXTS,
)
# The SDK's wording for a refused or silent IMDS: "… no response from the IMDS endpoint."
_NO_RESPONSE_END_RE = re.compile(r"no response from the IMDS endpoint\.\s*(?:$|\n)")


def _unreachable(s: Seen) -> str | None:
    facts = s.facts
    unreachable = (
        facts.has(*_UNREACHABLE_TEXTS)
        or facts.type_is("ServiceRequestError", "ConnectionError", "ConnectionRefusedError", "ConnectTimeout")
        or any(_NO_RESPONSE_END_RE.search(t) for t in facts.texts)
    )
    return "imds-unreachable" if unreachable else None


_ARM_STATUSES = {404: "arm-resource-not-found", 403: "arm-authorization-failed", 401: "arm-invalid-token"}


def _arm_status(s: Seen) -> str | None:
    if s.stage != "arm":
        return None
    return next((did for status, did in _ARM_STATUSES.items() if status in s.statuses), None)


#: Most specific evidence first: the first rule that names an id wins.
RULES: tuple[Rule, ...] = (
    _tls,
    data_plane_rule,  # Key Vault / Blob storage (their texts overlap ARM's: see diagnosis/dataplane.py)
    _legacy,
    _metadata_header,
    _selector,
    _proxy_text,
    _arm,
    _unknown_resource,
    _audience,
    _expired,
    _identity,
    _attempt_kinds,
    _imds_gateway,
    _imds_status,
    _non_imds,
    _read_timeout,
    _unreachable,
    _arm_status,
)


# ----------------------------------------------------------------------------------------------- refine


def _retried_then_succeeded(facts: Facts) -> bool:
    sts = [get_field(a, "status") for a in facts.attempts]
    return len(sts) >= 2 and sts[-1] == 200 and any(s != 200 for s in sts[:-1])


def _off_azure(ctx: DiagnosisContext) -> bool:
    return ctx.target not in (None, "azure", "emulator") and not ctx.emulator


def _proxy_covers_imds(ctx: DiagnosisContext) -> bool:
    return any(t.id == "proxy-captures-imds" for t in environment_traps(ctx.env(), arc_agent_path=None))


_SCOPE_RE = re.compile(r"over scope '(?P<scope>/subscriptions/[^']+)'", re.IGNORECASE)
_GROUP_RE = re.compile(r"/resourceGroups/(?P<rg>[^/]+)", re.IGNORECASE)
_SUB_RE = re.compile(r"^/subscriptions/(?P<sub>[^/]+)", re.IGNORECASE)


def failing_scope(facts: Facts) -> str | None:
    """The scope ARM refused, as its ``AuthorizationFailed`` message names it ("… over scope '…'")."""
    m = _SCOPE_RE.search(facts.blob)
    return m.group("scope") if m else None


def _unseen_group(facts: Facts, ctx: DiagnosisContext) -> str | None:
    """The refused scope's resource group, when the identity can list other groups but not that one.

    ARM answers ``403 AuthorizationFailed`` ("… or the scope is invalid") both for a group the identity holds
    no role on and for a group that does not exist: an identity cannot learn about a scope it cannot see.
    """
    visible = {g.lower() for g in ctx.visible_resource_groups or ()}
    m = _GROUP_RE.search(failing_scope(facts) or ctx.scope or "")
    if not visible or m is None:
        return None
    return m.group("rg") if m.group("rg").lower() not in visible else None


def _selected_client_id(facts: Facts, ctx: DiagnosisContext) -> str | None:
    """The client ID the failed request asked for (a ``client_id=`` selector), if it was one."""
    if facts.selector and facts.selector.startswith("client_id="):
        return facts.selector.split("=", 1)[1]
    return ctx.client_id


def _owner_of_principal(value: str | None, ctx: DiagnosisContext) -> Any:
    """The known identity whose principal (object) ID is ``value`` (and whose client ID is not), or None."""
    if not value:
        return None
    for identity in ctx.known_identities or ():
        principal, client = get_field(identity, "principal_id"), get_field(identity, "client_id")
        if str(principal or "").lower() == value.lower() and str(client or "").lower() != value.lower():
            return identity
    return None


def refine(did: str, facts: Facts, ctx: DiagnosisContext) -> str:
    """Settle what text alone cannot: propagation, off-Azure, a proxy behind a non-IMDS answer, an ID of
    the wrong kind, a scope the identity cannot see."""
    if did == "identity-not-assigned":
        if ctx.identity_attached or _retried_then_succeeded(facts):
            return "identity-propagating"
        if _owner_of_principal(_selected_client_id(facts, ctx), ctx) is not None:
            return "principal-id-as-client-id"
    if did == "arm-authorization-failed":
        if facts.has(*_PROPAGATION_TEXTS) or ctx.role_exists() or _retried_then_succeeded(facts):
            return "role-propagating"
        if _unseen_group(facts, ctx) is not None:
            return "arm-scope-not-visible"
        if ctx.stale_assignment():
            return "stale-principal-assignment"
    if did in ("imds-unreachable", "imds-timeout") and _off_azure(ctx):
        return "not-on-azure"
    if did == "non-imds-response" and _proxy_covers_imds(ctx):
        return "proxy-intercepts-imds"
    return refine_data_plane(did, facts, ctx)


def findings(did: str, facts: Facts, ctx: DiagnosisContext) -> tuple[dict[str, str], DiagnosisContext]:
    """What the context adds to a diagnosis: one ``finding`` line of evidence, and the values its commands
    need (the right client ID, the refused scope) in place of the ones the failed request used."""
    if did == "principal-id-as-client-id":
        value = _selected_client_id(facts, ctx) or ""
        owner = _owner_of_principal(value, ctx)
        name, client = get_field(owner, "name"), get_field(owner, "client_id")
        finding = f"{value} is the principal (object) ID of {name}; its client ID is {client}"
        return {"finding": finding}, dataclasses.replace(ctx, client_id=str(client), principal_id=value)
    if did == "arm-scope-not-visible":
        rg = _unseen_group(facts, ctx) or ""
        scope = failing_scope(facts) or ctx.scope or ""
        group = _GROUP_RE.search(scope)
        group_scope = scope[: group.end()] if group else scope
        seen = ", ".join(ctx.visible_resource_groups or ())
        sub = _SUB_RE.search(scope)
        finding = (
            f"the identity can see the resource group(s) {seen}; {rg!r} is not among them: "
            "a misspelt name and a missing role look the same from here"
        )
        changes: dict[str, Any] = {"scope": group_scope, "resource_group": rg}
        if sub and not ctx.subscription_id:
            changes["subscription_id"] = sub.group("sub")
        return {"finding": finding}, dataclasses.replace(ctx, **changes)
    return data_plane_findings(did, facts, ctx)


def classify(facts: Facts, ctx: DiagnosisContext) -> str:
    """The catalogue id for ``facts``: the first rule's answer, refined by what ``ctx`` knows."""
    seen = Seen(facts, ctx)
    did = next((d for d in (rule(seen) for rule in RULES) if d), "unknown")
    return refine(did, facts, ctx)
