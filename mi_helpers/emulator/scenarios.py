"""Named scenarios: a world edit, faults, a listener layout and client-side environment, as data.

Each scenario models one failure seen in the field (docs/protocol.md#failure-modes); ``failure_kind`` says
which part of the sign-in fails. The faults it scripts run in :class:`~mi_helpers.emulator.faults.FaultEngine`
(windows of ``n`` requests or ``t`` seconds that start at the first matching request). Giving only one of
``n``/``t`` when overriding a scenario drops the other default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import certifi

from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.constants import Imds
from mi_helpers.emulator.faults import Fault, TokenBucket, Window
from mi_helpers.emulator.world import World
from mi_helpers.validate import InputError

__all__ = [
    "COMMON_DEFAULTS",
    "FAILURE_KINDS",
    "SCENARIOS",
    "FailureKind",
    "Scenario",
    "build_faults",
    "build_world",
    "get_scenario",
    "new_assignment_faults",
    "resolve_params",
]

COMMON_DEFAULTS: dict[str, Any] = {"token_lifetime": 86399, "imds_latency": 0.0, "arm_latency": 0.0}
#: Which part of the sign-in a scenario breaks: nothing (``none``); the choice or existence of the
#: identity (``identity``); the role assignment ARM checks (``authorization``); reaching IMDS at all
#: (``network``); a service that recovers if the client waits and retries (``transient``); the token as ARM
#: reads it (``token``); trust in ARM's TLS certificate (``tls``).
FailureKind = Literal["none", "identity", "authorization", "network", "transient", "token", "tls"]
FAILURE_KINDS: tuple[FailureKind, ...] = (
    "none",
    "identity",
    "authorization",
    "network",
    "transient",
    "token",
    "tls",
)
COMMON_HELP = {
    "token_lifetime": "lifetime of issued tokens in seconds (expires_in of a fresh token)",
    "imds_latency": "seconds IMDS waits before answering any /metadata request",
    "arm_latency": "seconds ARM waits before answering an authenticated request",
}


EnvBuilder = Callable[[dict[str, str], dict[str, Any]], dict[str, str]]
FaultBuilder = Callable[[dict[str, Any]], list[Fault]]
WorldEdit = Callable[[World, dict[str, Any]], None]


@dataclass(frozen=True)
class Scenario:
    """A named situation: world edit, faults, listener layout and client-side environment extras."""

    name: str
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    params_help: dict[str, str] = field(default_factory=dict)
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    edit: WorldEdit | None = None
    faults: FaultBuilder | None = None
    imds_listening: bool = True
    proxy: bool = False
    legacy_port: bool = False
    client_env: EnvBuilder | None = None
    arm_clock_skew: str | None = None  # name of the param holding ARM's clock offset in seconds
    failure_kind: FailureKind = "none"

    def to_dict(self) -> dict[str, Any]:
        params = {**COMMON_DEFAULTS, **self.defaults}
        return {
            "name": self.name,
            "description": self.description,
            "params": params,
            "params_help": {**COMMON_HELP, **self.params_help},
            "choices": {k: list(v) for k, v in self.choices.items()},
            "imds_listening": self.imds_listening,
            "failure_kind": self.failure_kind,
        }


# --------------------------------------------------------------------------------------------- world edits
def _host_principals(w: World) -> set[str]:
    vm = w.host_vm
    ids = {u.principal_id.lower() for u in w.identities}
    if vm.system_identity is not None:
        ids.add(vm.system_identity.principal_id.lower())
    return ids


def _no_identity(w: World, p: dict[str, Any]) -> None:
    w.disable_system_identity()
    w.host_vm.user_assigned = []


def _user_assigned_only(w: World, p: dict[str, Any]) -> None:
    w.disable_system_identity()
    vm = w.host_vm
    vm.user_assigned = vm.user_assigned[:1] or [w.identities[0].resource_id]


def _multiple_user_assigned(w: World, p: dict[str, Any]) -> None:
    w.disable_system_identity()
    vm = w.host_vm
    vm.user_assigned = [u.resource_id for u in w.identities[:2]]


def _no_role_assignment(w: World, p: dict[str, Any]) -> None:
    ids = _host_principals(w)
    w.role_assignments = [a for a in w.role_assignments if a.principal_id.lower() not in ids]


# --------------------------------------------------------------------------------------------- fault builders
def _window(p: dict[str, Any]) -> Window:
    n, t = p.get("n"), p.get("t")
    return Window(None if n is None else int(n), None if t is None else float(t))


def _imds_server_error(p: dict[str, Any]) -> list[Fault]:
    body = {
        "error": "unknown",
        "error_description": "Failed to retrieve token from the Active directory. For details see logs in "
        "C:\\WindowsAzure\\Logs\\Plugins\\Microsoft.Identity.Azure.IMDS\\imds.log",
    }
    return [Fault("imds-token", "reply", 500, body, window=_window(p), label="imds-server-error")]


def _imds_updating(p: dict[str, Any]) -> list[Fault]:
    body = {
        "error": "service_unavailable",
        "error_description": "IMDS is going through updates and will be available in a maximum of 70 seconds",
    }
    return [Fault("imds-token", "reply", 410, body, window=_window(p), label="imds-updating")]


def _imds_throttled(p: dict[str, Any]) -> list[Fault]:
    body = {"error": "too_many_requests", "error_description": "IMDS Throttle limit reached"}
    return [
        Fault(
            "imds-token",
            "throttle",
            429,
            body,
            headers={"Retry-After": str(int(p["retry_after"]))},
            bucket=TokenBucket(float(p["burst"]), float(p["rate"])),
            label="imds-throttled",
        )
    ]


def _identity_propagating(p: dict[str, Any]) -> list[Fault]:
    body = {"error": "invalid_request", "error_description": "Identity not found"}
    return [Fault("imds-token", "reply", 400, body, window=_window(p), label="identity-propagating")]


def _role_propagating(p: dict[str, Any]) -> list[Fault]:
    return [Fault("arm-rbac", "deny", window=_window(p), label="role-propagating")]


def _imds_hang(p: dict[str, Any]) -> list[Fault]:
    return [Fault("imds", "hang", label="imds-hang")]


_FOREIGN_HTML = (
    "<!DOCTYPE html>\n<html><head><title>Instance metadata</title></head>\n<body><h1>Metadata service</h1>\n"
    "<p>This is not the Azure Instance Metadata Service.</p></body></html>\n"
)
GATEWAY_HTML = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><h1>Bad Gateway</h1>\n"
    "<p>The request failed due to a gateway error.</p><hr><address>corporate-proxy</address></body></html>\n"
)


def _foreign(p: dict[str, Any]) -> list[Fault]:
    if p.get("mode") == "mmds":
        return [
            Fault(
                "imds",
                "reply",
                401,
                "No MMDS token provided. Use `X-metadata-token` header to specify the session token.",
                content_type="text/plain; charset=utf-8",
                label="foreign-metadata-server",
            )
        ]
    return [
        Fault(
            "imds",
            "reply",
            200,
            _FOREIGN_HTML,
            content_type="text/html; charset=UTF-8",
            label="foreign-metadata-server",
        )
    ]


def _docker_desktop(p: dict[str, Any]) -> list[Fault]:
    # Docker Desktop's proxy puts the message in the status line (HTTP/1.0 403 connecting to …) and the body.
    text = (
        f"connecting to {Imds.ADDRESS}:80: connecting to {Imds.ADDRESS}:80: dial tcp {Imds.ADDRESS}:80: "
        "connect: network is unreachable"
    )
    return [
        Fault(
            "imds",
            "reply",
            403,
            text,
            content_type="text/plain; charset=utf-8",
            label="docker-desktop-unreachable",
            reason=text,
        )
    ]


def _arm_throttled(p: dict[str, Any]) -> list[Fault]:
    return [
        Fault(
            "arm",
            "throttle",
            429,
            None,
            headers={"Retry-After": str(int(p["retry_after"]))},
            bucket=TokenBucket(float(p["burst"]), float(p["rate"])),
            label="arm-throttled",
        )
    ]


def _latency_faults(p: dict[str, Any]) -> list[Fault]:
    out = []
    if float(p.get("imds_latency") or 0) > 0:
        out.append(Fault("imds", "latency", seconds=float(p["imds_latency"]), label="imds-latency"))
    if float(p.get("arm_latency") or 0) > 0:
        out.append(Fault("arm", "latency", seconds=float(p["arm_latency"]), label="arm-latency"))
    return out


# --------------------------------------------------------------------------------------------- client env
def _proxy_env(ctx: dict[str, str], p: dict[str, Any]) -> dict[str, str]:
    # IMDS is served on 127.0.0.1 and NO_PROXY names only "localhost": token requests go through the proxy,
    # while the admin URL is given as localhost (bypassed) and ARM is HTTPS (HTTP_PROXY does not apply).
    admin = ctx["admin_url"].replace("://127.0.0.1:", "://localhost:")
    return {
        Env.HTTP_PROXY: ctx["proxy_url"],
        Env.HTTP_PROXY.lower(): ctx["proxy_url"],
        Env.NO_PROXY: "localhost",
        Env.NO_PROXY.lower(): "localhost",
        Env.MI_HELPERS_EMULATOR_ADMIN: admin,
    }


def _legacy_env(ctx: dict[str, str], p: dict[str, Any]) -> dict[str, str]:
    return {Env.MSI_ENDPOINT: f"http://localhost:{ctx['legacy_port']}/oauth2/token"}


def _tls_untrusted_env(ctx: dict[str, str], p: dict[str, Any]) -> dict[str, str]:
    return {Env.REQUESTS_CA_BUNDLE: certifi.where()}


_N_HELP = {"n": "number of matching requests that fail", "t": "seconds the failure lasts after the first one"}
_BUCKET_HELP = {
    "burst": "requests allowed back to back before throttling starts",
    "rate": "requests per second refilled",
    "retry_after": "value of the Retry-After header (seconds)",
}

_ALL = [
    Scenario(
        "healthy",
        "Everything works: system-assigned identity with Reader on the resource group.",
        failure_kind="none",
    ),
    Scenario(
        "no-identity",
        "The VM has no managed identity: IMDS answers 400 'Identity not found'.",
        edit=_no_identity,
        failure_kind="identity",
    ),
    Scenario(
        "user-assigned-only",
        "No system-assigned identity, exactly one user-assigned (uami-reader): IMDS uses it for a plain "
        "request.",
        edit=_user_assigned_only,
        failure_kind="identity",
    ),
    Scenario(
        "multiple-user-assigned",
        "Two user-assigned identities and no system-assigned: a request without client_id gets 400 "
        "'Multiple user "
        "assigned identities exist…'.",
        edit=_multiple_user_assigned,
        failure_kind="identity",
    ),
    Scenario(
        "no-role-assignment",
        "Token works but the identity has no role: ARM answers 403 AuthorizationFailed, no subscriptions "
        "listed.",
        edit=_no_role_assignment,
        failure_kind="authorization",
    ),
    Scenario(
        "role-propagating",
        "A role was just granted: ARM answers 403 AuthorizationFailed for the first n requests "
        "(or t seconds).",
        defaults={"n": 2, "t": None},
        params_help=_N_HELP,
        faults=_role_propagating,
        failure_kind="authorization",
    ),
    Scenario(
        "identity-propagating",
        "The identity was just enabled: IMDS answers 'Identity not found' for the first n token "
        "requests (or t seconds).",
        defaults={"n": 2, "t": None},
        params_help=_N_HELP,
        faults=_identity_propagating,
        failure_kind="identity",
    ),
    Scenario(
        "imds-unreachable",
        "Not on Azure / IMDS blocked: nothing listens on the IMDS port (connection refused); ARM and "
        "admin stay up.",
        imds_listening=False,
        failure_kind="network",
    ),
    Scenario(
        "imds-hang",
        "IMDS accepts connections but never answers (pass read_timeout= or wait 300 s per try).",
        faults=_imds_hang,
        failure_kind="network",
    ),
    Scenario(
        "imds-updating",
        "IMDS is being updated: token requests get 410 for t seconds after the first one.",
        defaults={"n": None, "t": 3.0},
        params_help=_N_HELP,
        faults=_imds_updating,
        failure_kind="transient",
    ),
    Scenario(
        "imds-throttled",
        "Too many token requests: IMDS answers 429 with Retry-After once the burst is used up.",
        defaults={"burst": 10, "rate": 5.0, "retry_after": 1},
        params_help=_BUCKET_HELP,
        faults=_imds_throttled,
        failure_kind="transient",
    ),
    Scenario(
        "imds-server-error",
        "IMDS cannot reach Entra ID: 500 'Failed to retrieve token from the Active directory' for n "
        "requests.",
        defaults={"n": 2, "t": None},
        params_help=_N_HELP,
        faults=_imds_server_error,
        failure_kind="transient",
    ),
    Scenario(
        "foreign-metadata-server",
        "Another cloud's metadata server answers: HTML 200 (mode=html) or 401 'No MMDS token provided' "
        "(mode=mmds).",
        defaults={"mode": "html"},
        params_help={"mode": "html: an HTML page with status 200; mmds: Firecracker's 401 text"},
        choices={"mode": ("html", "mmds")},
        faults=_foreign,
        failure_kind="network",
    ),
    Scenario(
        "proxy-intercept",
        "HTTP_PROXY without NO_PROXY for IMDS: a corporate proxy answers 502 (mode=gateway) or forwards with "
        "X-Forwarded-For, which IMDS rejects (mode=forward).",
        defaults={"mode": "gateway"},
        params_help={"mode": "gateway: 502 HTML; forward: relay to IMDS adding X-Forwarded-For"},
        choices={"mode": ("gateway", "forward")},
        proxy=True,
        client_env=_proxy_env,
        failure_kind="network",
    ),
    Scenario(
        "legacy-extension-endpoint",
        "An old script sets MSI_ENDPOINT to the retired VM-extension endpoint "
        f"(localhost:{Imds.LEGACY_EXTENSION_PORT}): nothing listens there.",
        legacy_port=True,
        client_env=_legacy_env,
        failure_kind="network",
    ),
    Scenario(
        "expired-token",
        "ARM's clock runs ahead of IMDS's: a fresh token is already expired for ARM "
        "(401 ExpiredAuthenticationToken).",
        defaults={"skew": 172800},
        params_help={"skew": "seconds ARM's clock runs ahead"},
        arm_clock_skew="skew",
        failure_kind="token",
    ),
    Scenario(
        "arm-throttled",
        "Too many ARM reads: 429 SubscriptionRequestsThrottled with Retry-After once the burst is used up.",
        defaults={"burst": 10, "rate": 1.0, "retry_after": 1},
        params_help=_BUCKET_HELP,
        faults=_arm_throttled,
        failure_kind="transient",
    ),
    Scenario(
        "tls-untrusted",
        "The client does not trust the emulator's CA: REQUESTS_CA_BUNDLE points at certifi only "
        "(TLS errors on ARM).",
        client_env=_tls_untrusted_env,
        failure_kind="tls",
    ),
    Scenario(
        "docker-desktop-unreachable",
        "Inside a Docker Desktop container: IMDS traffic gets a 403 whose text says the host is unreachable.",
        faults=_docker_desktop,
        failure_kind="network",
    ),
]


# --------------------------------------------------------------------------------------------- data planes
# Key Vault and Blob storage (docs/protocol.md, "Key Vault", "Blob storage"; the rules in dataplane.py). In
# the "-missing" scenarios a data role granted later (the learner's fix) takes ``n`` data-plane requests to
# be seen, as a fresh role assignment takes a while to propagate on Azure.
_KV_DATA_ROLES = {"Key Vault Secrets User", "Key Vault Secrets Officer", "Key Vault Administrator"}
_BLOB_DATA_ROLES = {"Storage Blob Data Reader", "Storage Blob Data Contributor", "Storage Blob Data Owner"}
_DATA_N_HELP = {"n": "data-plane requests a freshly granted data role is not yet seen by"}


def _drop_data_roles(w: World, roles: set[str], p: dict[str, Any]) -> None:
    ids = _host_principals(w)
    w.role_assignments = [
        a for a in w.role_assignments if not (a.principal_id.lower() in ids and a.role in roles)
    ]
    dp = w.data_plane
    dp.propagation_n = None if p.get("n") is None else int(p["n"])
    dp.settled = {a.id for a in w.role_assignments}


def _kv_access_policy_missing(w: World, p: dict[str, Any]) -> None:
    ids = _host_principals(w)
    for vault in w.data_plane.vaults:
        vault.rbac = False
        vault.access_policies = [a for a in vault.access_policies if a.object_id.lower() not in ids]


def _kv_rbac_missing(w: World, p: dict[str, Any]) -> None:
    _drop_data_roles(w, _KV_DATA_ROLES, p)


def _storage_data_role_missing(w: World, p: dict[str, Any]) -> None:
    _drop_data_roles(w, _BLOB_DATA_ROLES, p)
    vm = w.host_vm
    if vm.system_identity is not None:  # "I gave it Contributor on the account": no data actions
        for account in w.data_plane.accounts:
            w.add_role_assignment(vm.system_identity.principal_id, "Contributor", account.resource_id)
    w.data_plane.settled = {a.id for a in w.role_assignments}


def _data_role_propagating(w: World, p: dict[str, Any]) -> None:
    dp = w.data_plane
    dp.propagation_n = None if p.get("n") is None else int(p["n"])
    dp.unsettle(w, _host_principals(w), _KV_DATA_ROLES | _BLOB_DATA_ROLES)


def _storage_wrong_audience_env(ctx: dict[str, str], p: dict[str, Any]) -> dict[str, str]:
    return {Env.MI_HELPERS_STORAGE_TOKEN_RESOURCE: str(p["resource"])}


_ALL.extend(
    [
        Scenario(
            "kv-access-policy-missing",
            "The key vault uses access policies and none names the VM's identity: reading a secret gets 403 "
            "Forbidden 'does not have secrets get permission on key vault …' (AccessDenied).",
            edit=_kv_access_policy_missing,
            failure_kind="authorization",
        ),
        Scenario(
            "kv-rbac-missing",
            "The key vault uses Azure RBAC and the VM's identity holds no Key Vault data role: 403 "
            "ForbiddenByRbac naming the missing data action; a role granted later takes n requests to be "
            "seen.",
            defaults={"n": 2},
            params_help=_DATA_N_HELP,
            edit=_kv_rbac_missing,
            failure_kind="authorization",
        ),
        Scenario(
            "storage-data-role-missing",
            "The VM's identity is Contributor on the storage account but holds no Storage Blob Data role: it "
            "lists containers, reading a blob gets 403 AuthorizationPermissionMismatch; a role granted later "
            "takes n requests to be seen.",
            defaults={"n": 2},
            params_help=_DATA_N_HELP,
            edit=_storage_data_role_missing,
            failure_kind="authorization",
        ),
        Scenario(
            "data-role-propagating",
            "The VM's Key Vault and Storage data roles were just granted: the first n data-plane requests "
            "that need them get 403, then they work.",
            defaults={"n": 2},
            params_help=_DATA_N_HELP,
            edit=_data_role_propagating,
            failure_kind="authorization",
        ),
        Scenario(
            "storage-wrong-audience",
            "The program sends Blob storage a token for another audience (ARM's): 401 "
            "InvalidAuthenticationInfo 'Audience validation failed' with a WWW-Authenticate challenge.",
            defaults={"resource": "https://management.azure.com/"},
            params_help={"resource": "the audience the program's storage token is for"},
            choices={"resource": ("https://management.azure.com/", "https://vault.azure.net")},
            client_env=_storage_wrong_audience_env,
            failure_kind="token",
        ),
    ]
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in _ALL}


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name`` or an :class:`InputError` listing the allowed names."""
    s = SCENARIOS.get(str(name).strip()) if isinstance(name, str) else None
    if s is None:
        raise InputError("scenario", f"unknown scenario {name!r} (allowed: {', '.join(SCENARIOS)})", name)
    return s


_NULLABLE = {"n", "t"}  # window bounds: None means "no bound"
_RANGES: dict[str, tuple[float, float]] = {
    "token_lifetime": (1, 31_536_000),
    "retry_after": (0, 3600),
    "imds_latency": (0, 3600),
    "arm_latency": (0, 3600),
    "skew": (-315_360_000, 315_360_000),
    "n": (0, 1_000_000),
    "t": (0, 86_400),
    "burst": (1, 1_000_000),
    "rate": (0, 1_000_000),
}


def _coerce(key: str, value: Any, choices: tuple[str, ...] | None) -> Any:
    """Check one parameter value (strings from ``--set`` are parsed); InputError names what is allowed."""
    if choices:
        v = value.strip() if isinstance(value, str) else value
        if v not in choices:
            raise InputError(key, f"{value!r} is not allowed (allowed: {', '.join(choices)})", value)
        return v
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("", "none", "null"):
            value = None
        else:
            try:
                value = int(text)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    raise InputError(
                        key, f"{text!r} is not a number (give seconds or a count)", value
                    ) from None
    if value is None:
        if key in _NULLABLE:
            return None
        raise InputError(key, "needs a number", value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(key, f"{value!r} is not a number", value)
    lo, hi = _RANGES.get(key, (0, 1e9))
    if not lo <= value <= hi:
        raise InputError(key, f"{value!r} is out of range (allowed: {lo:.0f} to {hi:.0f})", value)
    return value


def resolve_params(scenario: Scenario, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Scenario defaults + common defaults, with ``overrides`` checked (names, types, choices) and applied."""
    params = {**COMMON_DEFAULTS, **scenario.defaults}
    ov = dict(overrides or {})
    unknown = [k for k in ov if k not in params]
    if unknown:
        raise InputError(
            unknown[0],
            f"unknown parameter for scenario {scenario.name!r} (allowed: {', '.join(sorted(params))})",
            ov[unknown[0]],
        )
    if ("n" in ov) != ("t" in ov) and "n" in params and "t" in params:
        params["n" if "t" in ov else "t"] = None
    for k, v in ov.items():
        params[k] = _coerce(k, v, scenario.choices.get(k))
    return params


def build_faults(scenario: Scenario, params: dict[str, Any]) -> list[Fault]:
    """The fault list for a scenario run with ``params``."""
    faults = _latency_faults(params)
    if scenario.faults is not None:
        faults.extend(scenario.faults(params))
    return faults


def build_world(scenario: Scenario, base: World, params: dict[str, Any]) -> World:
    """A fresh copy of ``base`` with the scenario's edit applied."""
    w = base.copy()
    if scenario.edit is not None:
        with w.lock:
            scenario.edit(w, params)
    return w


# --------------------------------------------------------------------------------------------- ARM writes
def new_assignment_faults(scenario: Scenario, params: dict[str, Any], principal_id: str) -> list[Fault]:
    """What a role assignment created through ARM starts in ``scenario`` (docs/protocol.md#arm-writes).

    In ``role-propagating`` a new assignment takes the scenario's window to be honoured: ARM's RBAC denies its
    principal for the next ``n`` of its requests (or ``t`` seconds from the first one). Elsewhere it applies
    at once.
    """
    if scenario.faults is not _role_propagating:
        return []
    return [
        Fault("arm-rbac", "deny", window=_window(params), label="role-propagating", principal=principal_id)
    ]
