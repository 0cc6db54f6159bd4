"""The error lab's exercises: which emulator scenario, what it teaches, and what "Apply the fix" does.

Data, kept apart from :class:`~mi_helpers.notebook.error_lab.ErrorLab` so that adding an exercise is one
entry here. A fix is one of three small types: an :class:`EmulatorFix` (change the live world as an
administrator would), a :class:`ClientFix` (change the program or its environment) or a :class:`RetryFix`
(nothing to change: wait and retry).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ERROR_LAB_SCENARIOS",
    "ClientChange",
    "ClientFix",
    "EmulatorFix",
    "ErrorLabScenario",
    "Fix",
    "RetryFix",
]


@dataclass(frozen=True)
class EmulatorFix:
    """Change the live world as an administrator would: an emulator fix action and its parameters."""

    action: str
    params: Mapping[str, Any] = field(default_factory=dict)


#: The changes a :class:`ClientFix` makes to the program or its environment.
ClientChange = Literal[
    "select-identity",
    "drop-legacy-endpoint",
    "bypass-proxy",
    "share-credential",
    "read-once",
    "ask-arm-audience",
    "trust-emulator-ca",
]


@dataclass(frozen=True)
class ClientFix:
    """Change the program or its environment (name the identity, drop a stale variable, …)."""

    change: ClientChange


@dataclass(frozen=True)
class RetryFix:
    """Nothing to change: wait and retry with back-off (:meth:`ErrorLab.retry_until_green` does it)."""


Fix = EmulatorFix | ClientFix | RetryFix


@dataclass(frozen=True)
class ErrorLabScenario:
    """One error-lab exercise: which emulator scenario, what it teaches, and what "Apply the fix" does.

    ``emulator`` is the emulator scenario it runs in (default: ``name``; a client-side mistake runs in a
    healthy world). ``asked_scope`` is what the program asks IMDS for (default: ARM's scope).
    ``time_note`` says how the emulator shortens a real wait, e.g. "(time compressed: 70 s → 1.5 s)".
    ``program`` is what runs after sign-in (the VM read from ARM by default).
    """

    name: str
    title: str
    lesson: str
    fix_text: str
    fix: Fix
    params: dict[str, Any] = field(default_factory=dict)
    token_requests: int = 1  # fresh credentials per run (the throttling lesson needs a burst)
    arm_reads: int = 1  # VM reads per run
    transient: bool = False  # retrying is (part of) the fix
    emulator: str = ""
    asked_scope: str = ""
    time_note: str = ""
    #: What the program does after signing in: read the VM from ARM, or (the data-plane exercises) download
    #: a blob from Blob storage or read a secret from Key Vault with the real SDK client.
    program: Literal["read-vm", "read-blob", "read-secret"] = "read-vm"

    @property
    def emulator_scenario(self) -> str:
        return self.emulator or self.name


ERROR_LAB_SCENARIOS: tuple[ErrorLabScenario, ...] = (
    ErrorLabScenario(
        "no-identity",
        "No managed identity (the source article's first check)",
        "The VM's system-assigned identity is switched off: IMDS answers 400 'Identity not found'.",
        "switch the system-assigned identity on (VM → Identity → System assigned → Status: On)",
        EmulatorFix("enable-system-identity"),
    ),
    ErrorLabScenario(
        "no-role-assignment",
        "Token OK, but no role",
        "The identity signs in, but holds no role on the VM: ARM answers 403 AuthorizationFailed.",
        "grant Reader on the resource group to the identity's principal ID (role assignment)",
        EmulatorFix("add-role-assignment", {"role": "Reader"}),
    ),
    ErrorLabScenario(
        "role-propagating",
        "Role just granted",
        "A role was granted a moment ago: ARM still answers 403 for a short while (propagation).",
        "wait and retry with back-off: the assignment becomes effective",
        RetryFix(),
        params={"n": 2},
        transient=True,
        time_note="(time compressed: minutes → 2 tries)",
    ),
    ErrorLabScenario(
        "storage-data-role-missing",
        "A role, but not a data role (Blob storage)",
        "The program downloads a blob. The identity is Contributor on the storage account, which holds no "
        "data actions: Storage answers 403 AuthorizationPermissionMismatch.",
        "grant Storage Blob Data Reader to the identity's principal ID, then retry while it propagates",
        EmulatorFix("add-role-assignment", {"role": "Storage Blob Data Reader"}),
        params={"n": 2},
        program="read-blob",
        time_note="(time compressed: minutes of propagation → 2 tries)",
    ),
    ErrorLabScenario(
        "kv-rbac-missing",
        "No Key Vault data role",
        "The program reads a secret. The vault uses Azure RBAC and the identity holds no Key Vault data "
        "role: 403 ForbiddenByRbac.",
        "grant Key Vault Secrets User to the identity's principal ID, then retry while it propagates",
        EmulatorFix("add-role-assignment", {"role": "Key Vault Secrets User"}),
        params={"n": 2},
        program="read-secret",
        time_note="(time compressed: minutes of propagation → 2 tries)",
    ),
    ErrorLabScenario(
        "multiple-user-assigned",
        "Several user-assigned identities",
        "No system identity and two user-assigned ones: a request without client_id cannot be answered.",
        "name the identity: pass the client ID of uami-reader to ManagedIdentityCredential",
        ClientFix("select-identity"),
    ),
    ErrorLabScenario(
        "identity-propagating",
        "Identity just enabled",
        "The identity was switched on a moment ago: IMDS answers 'Identity not found' for a few requests.",
        "wait and retry with back-off: the identity reaches IMDS",
        RetryFix(),
        params={"n": 2},
        transient=True,
        time_note="(time compressed: a minute or more → 2 tries)",
    ),
    ErrorLabScenario(
        "imds-unreachable",
        "Unable to connect (source article)",
        "Nothing answers at the token endpoint: off Azure, in a container, or IMDS blocked.",
        "make the endpoint reachable (on a VM: run there, with the identity on; here: IMDS listens again)",
        EmulatorFix("clear-faults"),
    ),
    ErrorLabScenario(
        "legacy-extension-endpoint",
        "Old VM extension on port 50342 (source article)",
        "MSI_ENDPOINT points at the retired managed identity VM extension (localhost:50342).",
        "remove MSI_ENDPOINT so the SDK asks IMDS (and uninstall the extension)",
        ClientFix("drop-legacy-endpoint"),
    ),
    ErrorLabScenario(
        "imds-hang",
        "IMDS accepts but never answers",
        "The connection opens but no answer comes: without a read timeout the SDK waits 300 s per try.",
        "IMDS answers again (on a VM: check its health); and always bound the wait with a read timeout",
        EmulatorFix("clear-faults"),
        time_note="(time compressed: 300 s per try → 1 s)",
    ),
    ErrorLabScenario(
        "imds-updating",
        "IMDS is being updated (410)",
        "IMDS answers 410 Gone while it is updated; it is back within 70 seconds.",
        "retry with back-off for up to 70 s",
        RetryFix(),
        params={"t": 1.5},
        transient=True,
        time_note="(time compressed: 70 s → 1.5 s)",
    ),
    ErrorLabScenario(
        "imds-server-error",
        "IMDS server error (500)",
        "IMDS cannot reach Entra ID for a moment and answers 500.",
        "retry with back-off (wait at least 1 s)",
        RetryFix(),
        params={"n": 2},
        transient=True,
    ),
    ErrorLabScenario(
        "imds-throttled",
        "Too many token requests (429)",
        "Each request builds a new credential, so tokens are never reused: IMDS throttles with 429.",
        "share one credential (its cache answers later calls) and back off honouring Retry-After",
        ClientFix("share-credential"),
        params={"burst": 2, "rate": 2.0, "retry_after": 1},
        token_requests=3,
        transient=True,
    ),
    ErrorLabScenario(
        "arm-throttled",
        "Too many ARM reads (429)",
        "A polling loop reads the VM over and over: ARM throttles with 429 SubscriptionRequestsThrottled.",
        "read less often and honour Retry-After",
        ClientFix("read-once"),
        params={"burst": 2, "rate": 2.0, "retry_after": 1},
        arm_reads=3,
        transient=True,
    ),
    ErrorLabScenario(
        "foreign-metadata-server",
        "Not Azure's metadata server",
        "Something else answers at the metadata address with an HTML page instead of a token.",
        "talk to the real IMDS (on Azure only IMDS answers at 169.254.169.254; here: IMDS answers again)",
        EmulatorFix("clear-faults"),
    ),
    ErrorLabScenario(
        "proxy-intercept",
        "A proxy intercepts IMDS",
        "HTTP_PROXY is set and NO_PROXY does not cover the metadata address: the proxy answers 502.",
        "bypass the proxy for IMDS: add its address to NO_PROXY (169.254.169.254 on a VM)",
        ClientFix("bypass-proxy"),
    ),
    ErrorLabScenario(
        "expired-token",
        "Clock skew: token already expired",
        "ARM's clock runs two days ahead: a fresh token looks expired (401 ExpiredAuthenticationToken).",
        "synchronise the clock (NTP); here: the emulator's clocks agree again",
        EmulatorFix("clear-faults"),
    ),
    ErrorLabScenario(
        "wrong-audience",
        "A token for the wrong service",
        "The program asks for a Storage token and sends it to ARM: 401 InvalidAuthenticationTokenAudience.",
        "ask for ARM's scope (https://management.azure.com/.default) for ARM calls",
        ClientFix("ask-arm-audience"),
        emulator="healthy",
        asked_scope="https://storage.azure.com/.default",
    ),
    ErrorLabScenario(
        "tls-untrusted",
        "The TLS certificate is not trusted",
        "REQUESTS_CA_BUNDLE holds the public roots only: the client cannot verify ARM's certificate.",
        "trust the right CA: point REQUESTS_CA_BUNDLE at a bundle with it (here: the emulator's bundle)",
        ClientFix("trust-emulator-ca"),
    ),
)
