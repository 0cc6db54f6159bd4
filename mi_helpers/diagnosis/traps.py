"""Environment settings that silently change where (or whether) a managed-identity token request goes.

:func:`environment_traps` runs :data:`TRAP_CHECKS` in order — proxies, other identity back ends (App
Service, Service Fabric, Azure Arc, Cloud Shell, Azure ML, the retired VM extension), workload identity,
DefaultAzureCredential's knobs, a redirected IMDS, the Arc agent on disk — each a small function from the
environment to the traps it finds (``docs/protocol.md#environment-variables``). Pure: no network.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from mi_helpers.constants import Arc, Imds
from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.redaction import redact_text, redact_token

__all__ = ["TRAP_CHECKS", "Severity", "Trap", "cloud_shell", "environment_traps", "host_of", "is_legacy_url"]

#: ``warn``: the setting changes what sign-in does; ``info``: worth knowing, harmless on its own.
Severity = Literal["warn", "info"]


@dataclass(frozen=True)
class Trap:
    """An environment setting that silently changes where (or whether) a token request goes."""

    id: str
    variables: tuple[str, ...]
    value: str
    effect: str
    fix: str
    severity: Severity = "warn"
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


# ----------------------------------------------------------------------------------------------- helpers


def host_of(url: str | None) -> str:
    """The lower-case host of ``url`` ('' when there is none or it does not parse)."""
    if not url:
        return ""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def is_legacy_url(url: str | None) -> bool:
    """The retired managed-identity VM extension's endpoint (port 50342, or ``/oauth2/token`` off IMDS)."""
    if not url:
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if port == Imds.LEGACY_EXTENSION_PORT:
        return True
    return parts.path.rstrip("/").endswith("/oauth2/token") and "/metadata/identity" not in parts.path


def cloud_shell(environ: Mapping[str, str]) -> bool:
    """Azure Cloud Shell legitimately serves MSI_ENDPOINT on localhost:50342 (MSAL's detection rule)."""
    return environ.get(Env.AZUREPS_HOST_ENVIRONMENT, "").lower().startswith("cloud-shell")


def _loopback(url: str) -> bool:
    host = host_of(url)
    return host == "localhost" or host.startswith("127.") or host == "::1"


_SECRET_VARS = {Env.IDENTITY_HEADER, Env.MSI_SECRET, Env.IDENTITY_SERVER_THUMBPRINT}


def _shown(name: str, value: str) -> str:
    if name in _SECRET_VARS:
        return redact_token(value) if len(value) > 8 else "***"
    return redact_text(value, 200)


def _value(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _env_get(environ: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """First non-empty variable among `names` (lower-case spelling wins, like urllib/requests)."""
    for n in names:
        v = environ.get(n)
        if v and v.strip():
            return n, v.strip()
    return None


def _no_proxy_entry_matches(
    host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, entry: str
) -> bool:
    if entry == "*":
        return True
    entry_host = entry.split(":")[0] if entry.count(":") == 1 else entry
    if ip is not None and "/" in entry_host:
        try:
            return ip in ipaddress.ip_network(entry_host, strict=False)
        except ValueError:
            return False
    entry_host = entry_host.lstrip(".")
    return host == entry_host or host.endswith("." + entry_host)


def _no_proxy_matches(host: str, no_proxy: str) -> bool:
    """requests/urllib NO_PROXY semantics: ``*``, exact host, domain suffix, or CIDR for IP hosts."""
    host = host.lower().strip("[]")
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    entries = [raw.lower() for raw in no_proxy.replace(" ", "").split(",") if raw]
    return any(_no_proxy_entry_matches(host, ip, entry) for entry in entries)


def _proxy_for(url: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The proxy variable that would carry `url` (None when none applies or NO_PROXY excludes it)."""
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    host = parts.hostname or ""
    np = _env_get(environ, "no_proxy", "NO_PROXY")  # requests' order: the lower-case spelling wins
    if np and _no_proxy_matches(host, np[1]):
        return None
    return _env_get(environ, f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY")


# ----------------------------------------------------------------------------------------------- checks

_NO_PROXY_FIX = (
    f"export NO_PROXY={Imds.ADDRESS},localhost,127.0.0.1 (and no_proxy) — PowerShell: $env:NO_PROXY"
)


def _proxy_traps(env: Mapping[str, str]) -> Iterator[Trap]:
    """A proxy that would carry IMDS (or the emulator's ARM) requests: IMDS rejects proxied calls."""
    imds_base = _value(env, Env.AZURE_POD_IDENTITY_AUTHORITY_HOST) or Imds.URL
    # (trap id, URL, severity, diagnosis): the IMDS address in use matters now; the real one only on Azure.
    targets: list[tuple[str, str, Severity, str | None]] = [
        ("proxy-captures-imds", imds_base, "warn", "proxy-intercepts-imds")
    ]
    if host_of(imds_base) != Imds.ADDRESS:
        targets.append(("proxy-captures-azure-imds", f"{Imds.URL}/", "info", "proxy-intercepts-imds"))
    arm_url = _value(env, Env.MI_HELPERS_ARM_URL)
    if arm_url and _loopback(arm_url):
        targets.append(("proxy-captures-emulator-arm", arm_url, "warn", None))
    for tid, url, severity, did in targets:
        hit = _proxy_for(url, env)
        if not hit:
            continue
        what = "ARM requests" if tid.endswith("-arm") else "IMDS requests"
        yield Trap(
            id=tid,
            variables=(hit[0],),
            value=redact_text(hit[1], 200),
            effect=f"{what} to {host_of(url) or url} would go through this proxy (NO_PROXY does not "
            "exclude it); IMDS rejects proxied calls and proxies cannot reach link-local addresses.",
            fix=_NO_PROXY_FIX,
            severity=severity,
            diagnosis_id=did,
        )


def _identity_endpoint_traps(env: Mapping[str, str]) -> Iterator[Trap]:
    """IDENTITY_ENDPOINT & co.: Service Fabric, App Service, Azure Arc, or an incomplete leftover."""
    ie, ih, it = (
        _value(env, n) for n in (Env.IDENTITY_ENDPOINT, Env.IDENTITY_HEADER, Env.IDENTITY_SERVER_THUMBPRINT)
    )
    imds_ep = _value(env, Env.IMDS_ENDPOINT)
    endpoint = _shown(Env.IDENTITY_ENDPOINT, ie)
    if ie and ih and it:
        yield Trap(
            "service-fabric-identity",
            (Env.IDENTITY_ENDPOINT, Env.IDENTITY_HEADER, Env.IDENTITY_SERVER_THUMBPRINT),
            endpoint,
            "ManagedIdentityCredential uses the Service Fabric identity endpoint; IMDS is never called.",
            "unset IDENTITY_ENDPOINT IDENTITY_HEADER IDENTITY_SERVER_THUMBPRINT on a VM",
        )
    elif ie and ih:
        yield Trap(
            "app-service-identity",
            (Env.IDENTITY_ENDPOINT, Env.IDENTITY_HEADER),
            endpoint,
            "ManagedIdentityCredential uses the App Service / Functions identity endpoint; IMDS is never "
            "called.",
            "unset IDENTITY_ENDPOINT IDENTITY_HEADER on a VM",
        )
    elif ie and imds_ep:
        yield Trap(
            "arc-identity",
            (Env.IDENTITY_ENDPOINT, Env.IMDS_ENDPOINT),
            endpoint,
            "ManagedIdentityCredential uses the Azure Arc endpoint (401 challenge + key file), not IMDS.",
            "unset IDENTITY_ENDPOINT IMDS_ENDPOINT unless this is an Arc-enabled server",
        )
    elif ie or imds_ep or ih or it:
        present = ((Env.IDENTITY_ENDPOINT, ie), (Env.IDENTITY_HEADER, ih), (Env.IMDS_ENDPOINT, imds_ep))
        names = tuple(n for n, v in present if v) or (Env.IDENTITY_SERVER_THUMBPRINT,)
        yield Trap(
            "partial-identity-endpoint",
            names,
            _shown(names[0], env.get(names[0], "")),
            "an incomplete set of identity-endpoint variables: ignored today, but a leftover that will "
            "switch the backend as soon as its partner variable appears.",
            "unset " + " ".join(names),
            severity="info",
        )


def _msi_endpoint_traps(env: Mapping[str, str]) -> Iterator[Trap]:
    """MSI_ENDPOINT: Cloud Shell, Azure ML (with MSI_SECRET), or the retired VM extension."""
    msi_ep, msi_secret = _value(env, Env.MSI_ENDPOINT), _value(env, Env.MSI_SECRET)
    if not msi_ep:
        return
    legacy = is_legacy_url(msi_ep) and not cloud_shell(env)
    if legacy:
        tid = "msi-endpoint-legacy"
    else:
        tid = "msi-endpoint-azure-ml" if msi_secret else "msi-endpoint-cloud-shell"
    protocol = "the Azure ML protocol" if msi_secret else "the Cloud Shell protocol"
    prefix = "points at the retired VM-extension endpoint (port 50342 / /oauth2/token); " if legacy else ""
    yield Trap(
        tid,
        (Env.MSI_ENDPOINT, Env.MSI_SECRET) if msi_secret else (Env.MSI_ENDPOINT,),
        _shown(Env.MSI_ENDPOINT, msi_ep),
        f"{prefix}ManagedIdentityCredential uses {protocol}, not IMDS.",
        "unset MSI_ENDPOINT MSI_SECRET (left over from an old local-MSI tool or the VM extension)",
        diagnosis_id="legacy-extension-endpoint" if legacy else None,
    )


def _workload_identity_traps(env: Mapping[str, str]) -> Iterator[Trap]:
    """The three workload-identity variables together switch ManagedIdentityCredential to a token file."""
    names = (Env.AZURE_AUTHORITY_HOST, Env.AZURE_TENANT_ID, Env.AZURE_FEDERATED_TOKEN_FILE)
    values = {n: _value(env, n) for n in names}
    if all(values.values()):
        yield Trap(
            "workload-identity",
            names,
            _shown(Env.AZURE_FEDERATED_TOKEN_FILE, values[Env.AZURE_FEDERATED_TOKEN_FILE]),
            "ManagedIdentityCredential switches to workload identity (federated token file); IMDS is "
            "never called, and without a client id it raises ValueError.",
            "unset AZURE_FEDERATED_TOKEN_FILE (or AZURE_AUTHORITY_HOST) on a VM",
        )


def _default_credential_traps(env: Mapping[str, str]) -> Iterator[Trap]:
    """DefaultAzureCredential's knobs: AZURE_CLIENT_ID picks an identity, AZURE_TOKEN_CREDENTIALS a chain."""
    cid = _value(env, Env.AZURE_CLIENT_ID)
    if cid:
        yield Trap(
            "azure-client-id",
            (Env.AZURE_CLIENT_ID,),
            _shown(Env.AZURE_CLIENT_ID, cid),
            "DefaultAzureCredential asks IMDS for this user-assigned identity; ManagedIdentityCredential "
            "ignores it (so the two can sign in as different identities).",
            "pass client_id= explicitly, or unset AZURE_CLIENT_ID",
            severity="info",
        )
    atc = _value(env, Env.AZURE_TOKEN_CREDENTIALS)
    if atc:
        skips_mi = atc.lower() not in ("prod", "managedidentitycredential")
        yield Trap(
            "azure-token-credentials",
            (Env.AZURE_TOKEN_CREDENTIALS,),
            _shown(Env.AZURE_TOKEN_CREDENTIALS, atc),
            "DefaultAzureCredential skips managed identity (value selects other credentials)."
            if skips_mi
            else "DefaultAzureCredential is limited to this selection (managed identity included).",
            "unset AZURE_TOKEN_CREDENTIALS, or set it to ManagedIdentityCredential on the VM",
            severity="warn" if skips_mi else "info",
        )


def _imds_override_traps(env: Mapping[str, str]) -> Iterator[Trap]:
    """AZURE_POD_IDENTITY_AUTHORITY_HOST moves IMDS (expected with the emulator, a trap on a VM)."""
    override = _value(env, Env.AZURE_POD_IDENTITY_AUTHORITY_HOST)
    if override:
        local = _loopback(override)
        yield Trap(
            "imds-host-override",
            (Env.AZURE_POD_IDENTITY_AUTHORITY_HOST,),
            _shown(Env.AZURE_POD_IDENTITY_AUTHORITY_HOST, override),
            f"token requests go here instead of {Imds.URL}" + (" (the local emulator)." if local else "."),
            "expected with the emulator; on an Azure VM unset AZURE_POD_IDENTITY_AUTHORITY_HOST",
            severity="info" if local else "warn",
        )


#: Every check, in the order its traps are listed.
TRAP_CHECKS: tuple[Callable[[Mapping[str, str]], Iterator[Trap]], ...] = (
    _proxy_traps,
    _identity_endpoint_traps,
    _msi_endpoint_traps,
    _workload_identity_traps,
    _default_credential_traps,
    _imds_override_traps,
)


def _arc_agent_trap(arc_agent_path: str | os.PathLike[str]) -> Trap:
    return Trap(
        "arc-agent-present",
        (str(arc_agent_path),),
        "exists",
        f"MSAL treats this machine as Azure Arc and sends token requests to {Arc.ENDPOINT}, "
        "not IMDS, even without any environment variable.",
        "on an Azure VM, uninstall the Arc agent (azcmagent) — Arc is for machines outside Azure",
    )


def environment_traps(
    environ: Mapping[str, str] | None = None,
    *,
    arc_agent_path: str | os.PathLike[str] | None = Arc.AGENT_PATH,
) -> list[Trap]:
    """List environment settings that silently change managed-identity sign-in, with effect and fix.

    Reads `environ` (default: this process's environment) and checks whether the Azure Arc agent file
    exists at `arc_agent_path` (None skips that check). Pure: no network.
    """
    env = os.environ if environ is None else environ
    traps = [trap for check in TRAP_CHECKS for trap in check(env)]
    if arc_agent_path is not None and Path(arc_agent_path).exists():
        traps.append(_arc_agent_trap(arc_agent_path))
    return traps
