"""The error-handling lab: break a managed-identity setup on purpose, diagnose it, fix it, retry until green.

:class:`ErrorLab` owns a private :class:`~mi_helpers.emulator.Emulator` started in this process (never the
real IMDS, even on an Azure VM, and never the shared emulator of ``mi-helpers lab``), switches it to one
scenario at a time and runs *the program*: the source article's script in Python (sign in with the managed
identity, then read the VM from ARM with azure-mgmt-compute). Each run keeps the raw SDK error text and its
:class:`~mi_helpers.diagnosis.Diagnosis`. ``apply_fix`` applies what the diagnosis recommends, on the emulator
(:class:`EmulatorFix`: grant a role, bring IMDS back) or on the client (:class:`ClientFix`: name the identity,
drop a stale variable, bypass a proxy); for transient failures the fix is to retry with back-off
(:class:`RetryFix`), which ``retry_until_green`` does while reporting progress. ``walk`` does all of that
for a list of scenarios and returns one summary row per scenario.

Scenario parameters are small (N = 2 requests, T ≈ 1.5 s, read timeouts of 1 s) so the whole walk runs in
well under a minute. The client-side environment of a scenario (``MSI_ENDPOINT``, ``HTTP_PROXY``…) is set
only while the program runs and restored afterwards.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mi_helpers.constants import (
    LOOPBACK_NO_PROXY,
    MANAGED_IDENTITY_VARIABLES,
    NO_PROXY_VARIABLES,
    PROXY_VARIABLES,
    Arm,
)
from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.environ import patched_environ
from mi_helpers.logs import quiet_sdk_logs
from mi_helpers.notebook.arm_fixes import ARM_ACTIONS, OperatorFixes
from mi_helpers.notebook.display import DiagnosisCard, ErrorText, error_text
from mi_helpers.notebook.error_lab_scenarios import (
    ERROR_LAB_SCENARIOS,
    ClientFix,
    EmulatorFix,
    ErrorLabScenario,
    RetryFix,
)
from mi_helpers.notebook.lessons import FixedScopeCredential
from mi_helpers.progress import BudgetBar
from mi_helpers.redaction import redact
from mi_helpers.retry import exponential, retry_after
from mi_helpers.validate import InputError
from mi_helpers.world_view import WorldView

if TYPE_CHECKING:
    import pandas as pd

    from mi_helpers.diagnosis import Diagnosis
    from mi_helpers.emulator.server import Emulator

__all__ = [
    "ERROR_LAB_SCENARIOS",
    "ClientFix",
    "EmulatorFix",
    "ErrorLab",
    "ErrorLabRun",
    "ErrorLabScenario",
    "ErrorLabStage",
    "RetryFix",
]

# Variables that switch azure-identity away from IMDS (or through a proxy). Outside the scenario that sets
# them they are removed while the program runs, so the learner's own environment cannot change the lesson.
# (The emulator's own pointers come from the lab's emulator; this process's MI_HELPERS_* stay as they are.)
_CLIENT_TRAPS = (*MANAGED_IDENTITY_VARIABLES, *PROXY_VARIABLES)

#: Where the program failed: signing in (IMDS) or reading the VM (ARM).
ErrorLabStage = Literal["imds", "arm"]
#: ``progress(fraction, message)`` of :meth:`ErrorLab.retry_until_green`.
Progress = Callable[[float, str], Any]


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class ErrorLabRun:
    """What one run of the program showed: success, or the raw error text and its diagnosis."""

    scenario: str
    ok: bool
    summary: str
    stage: ErrorLabStage | None = None  # where it failed (None: it did not)
    error: BaseException | None = field(default=None, repr=False)
    error_text: str = ""
    diagnosis: Diagnosis | None = field(default=None, repr=False)
    tries: int = 1
    seconds: float = 0.0

    @property
    def diagnosis_id(self) -> str | None:
        return None if self.diagnosis is None else self.diagnosis.id

    @property
    def error_display(self) -> ErrorText:
        return ErrorText(self.error_text)

    def __str__(self) -> str:
        if self.ok:
            return f"✓ {self.summary}"
        parts = [str(self.error_display)]
        if self.diagnosis is not None:
            parts.append(str(DiagnosisCard(self.diagnosis)))
        return "\n\n".join(parts)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html

        if self.ok:
            return f'<div class="mi-ok"><strong>✓ OK</strong> — {html.escape(self.summary)}</div>'
        parts = [self.error_display._repr_html_()]
        if self.diagnosis is not None:
            parts.append(DiagnosisCard(self.diagnosis)._repr_html_())
        return "".join(parts)


# --------------------------------------------------------------------------------------------------
# The lab
# --------------------------------------------------------------------------------------------------


#: Per data-plane program, the built-in roles whose data actions let it read (docs/protocol.md, "Key Vault",
#: "Blob storage").
_DATA_READ_ROLES = {
    "read-blob": frozenset(
        {"Storage Blob Data Reader", "Storage Blob Data Contributor", "Storage Blob Data Owner"}
    ),
    "read-secret": frozenset(
        {"Key Vault Secrets User", "Key Vault Secrets Officer", "Key Vault Administrator"}
    ),
}


@dataclass
class _Client:
    """How the program is configured (what client-side fixes change)."""

    client_id: str | None = None
    drop: tuple[str, ...] = ()
    no_proxy_extra: tuple[str, ...] = ()
    token_requests: int = 1
    arm_reads: int = 1
    scope: str = Arm.SCOPE  # what the program asks IMDS for (a wrong one is the wrong-audience lesson)
    trust_ca: bool = False  # REQUESTS_CA_BUNDLE set to the emulator's bundle (the tls-untrusted fix)


class ErrorLab:
    """Scenarios on a private embedded emulator: run, diagnose, apply the fix, retry until green.

    ``budget`` bounds each ``retry_until_green`` (seconds); ``read_timeout`` bounds every IMDS read, so a
    hanging IMDS costs one second. Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self, *, budget: float = 8.0, read_timeout: float = 1.0, emulator: Emulator | None = None
    ) -> None:
        from mi_helpers.emulator import SCENARIOS, Emulator

        self.scenarios: tuple[ErrorLabScenario, ...] = tuple(
            s for s in ERROR_LAB_SCENARIOS if s.emulator_scenario in SCENARIOS
        )
        self.budget = budget
        self.read_timeout = read_timeout
        self._owns = emulator is None
        self.emulator: Emulator = emulator if emulator is not None else Emulator(scenario="healthy")
        if self._owns:
            self.emulator.start()
            # stopped with the lab, or at the latest when the kernel exits
            self._finalizer = weakref.finalize(self, self.emulator.stop)
        #: "Apply the fix" as the operator would do it, through ARM (on Azure: you, signed in with az login).
        self.operator = OperatorFixes(self.emulator)
        self.current: ErrorLabScenario = self.scenarios[0]
        self.client = _Client()
        self.select(self.current.name)

    # ---------------------------------------------------------------- set-up and teardown
    def close(self) -> None:
        """Stop the lab's emulator (when the lab started it)."""
        if self._owns:
            self._finalizer()
            self._owns = False

    def __enter__(self) -> ErrorLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        """One paragraph saying where the lab runs (always its own emulator, never the real VM)."""
        emu = self.emulator
        return (
            "This lab runs on its own local emulator, embedded in this kernel (never on the real VM): "
            f"IMDS {emu.imds_url}, ARM {emu.arm_url}. {len(self.scenarios)} scenarios."
        )

    def catalogue(self) -> pd.DataFrame:
        """The scenarios as a DataFrame: scenario, title, what you will see, what the fix does."""
        import pandas as pd

        rows = [
            {
                "scenario": s.name,
                "title": s.title,
                "what happens": f"{s.lesson} {s.time_note}".strip(),
                "the fix": s.fix_text,
            }
            for s in self.scenarios
        ]
        return pd.DataFrame(rows, columns=["scenario", "title", "what happens", "the fix"])

    def _scenario(self, name: str) -> ErrorLabScenario:
        for s in self.scenarios:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.scenarios)
        raise InputError("scenario", f"{name!r} is not a lab scenario (one of: {known})", name)

    def select(self, name: str) -> ErrorLabScenario:
        """Switch the emulator to ``name`` (its fault armed again) and reset the program's configuration."""
        scenario = self._scenario(name)
        self.emulator.set_scenario(scenario.emulator_scenario, **scenario.params)
        self.current = scenario
        self.client = _Client(
            token_requests=scenario.token_requests,
            arm_reads=scenario.arm_reads,
            scope=scenario.asked_scope or Arm.SCOPE,
        )
        return scenario

    def _world(self) -> WorldView:
        return WorldView(self.emulator.world_dict())

    def _host(self, world: WorldView | None = None) -> dict[str, Any]:
        host = (world or self._world()).host
        if host is None:  # the lab's own emulator always has one; say so rather than fail on None later
            raise RuntimeError("the error lab's emulator world has no host VM")
        return host

    # ---------------------------------------------------------------- the client environment
    def _client_environment(self) -> dict[str, str | None]:
        """Variable → value (None = unset) while the program runs: the emulator's, minus fixed traps."""
        env: dict[str, str | None] = dict.fromkeys(_CLIENT_TRAPS)
        for key, value in dict(self.emulator.environment()).items():
            if not key.startswith("MI_HELPERS_"):
                env[key] = str(value)
        for key in self.client.drop:
            env[key] = None
        if self.client.trust_ca:
            env[Env.REQUESTS_CA_BUNDLE] = self.emulator.ca_bundle
        if self.client.no_proxy_extra:
            for var in NO_PROXY_VARIABLES:
                have = [h for h in (env.get(var) or "").split(",") if h]
                env[var] = ",".join([*have, *(h for h in self.client.no_proxy_extra if h not in have)])
        return env

    @contextmanager
    def _environment(self) -> Iterator[dict[str, str]]:
        with patched_environ(self._client_environment()):
            yield dict(os.environ)

    # ---------------------------------------------------------------- the program
    def _sign_in(self) -> tuple[Any, str | None]:
        """The program's first half: a token from IMDS (a new credential per request: no token reuse)."""
        from mi_helpers.identity import credential as make_credential
        from mi_helpers.token_info import decode_claims

        kwargs: dict[str, Any] = {"connection_timeout": 1.0, "read_timeout": self.read_timeout}
        if self.client.client_id:
            kwargs["client_id"] = self.client.client_id
        scope = self.client.scope
        cred: Any = make_credential(**kwargs)
        token = cred.get_token(scope)  # the SDK itself, one try: its own error text
        for _ in range(self.client.token_requests - 1):
            cred = make_credential(**kwargs)
            token = cred.get_token(scope)
        if scope != Arm.SCOPE:  # the mistake of the lesson: hand that token to the ARM client
            cred = FixedScopeCredential(cred, scope)
        return cred, decode_claims(token.token).get("oid")

    def _read_vm(self, cred: Any, host: Mapping[str, Any]) -> Any:
        """The program's second half: the VM from ARM with azure-mgmt-compute, as that identity."""
        from mi_helpers.arm import compute_client

        # The CA bundle is the program's own (REQUESTS_CA_BUNDLE of its environment), as for any client.
        client = compute_client(
            host["subscription_id"],
            credential=cred,
            base_url=self.emulator.arm_url,
            credential_scopes=[Arm.SCOPE],
            connection_verify=os.environ.get(Env.REQUESTS_CA_BUNDLE) or True,
            retry_total=0,
        )
        with client:
            vm = client.virtual_machines.get(host["resource_group"], host["name"])
            for _ in range(self.client.arm_reads - 1):
                vm = client.virtual_machines.get(host["resource_group"], host["name"])
        return vm

    def _read_data(self, cred: Any) -> str:
        """The data-plane programs' second half: a blob or a secret, real SDK client, as the identity.

        The lab's own emulator's endpoints and the program's own CA bundle (as for the VM read); the vault is
        always the emulator's here, so ``verify_challenge_resource=False`` always (docs/protocol.md, "Key
        Vault"). The secret is reported redacted.
        """
        from azure.storage.blob import BlobClient

        from mi_helpers.dataplane import secret_client
        from mi_helpers.redaction import redact_secret

        urls = self.emulator.endpoints().data_plane_environment()
        kwargs: dict[str, Any] = {
            "connection_verify": os.environ.get(Env.REQUESTS_CA_BUNDLE) or True,
            "retry_total": 0,
            "read_timeout": 5,
        }
        if self.current.program == "read-blob":
            account = self.emulator.world_dict()["data_plane"]["storage_accounts"][0]["name"]
            endpoint = f"{urls[Env.MI_HELPERS_BLOB_URL].rstrip('/')}/{account}/"
            with BlobClient(endpoint, "data", "hello.txt", credential=cred, **kwargs) as blob:
                size = len(blob.download_blob().readall())
            return f"downloaded blob data/hello.txt from {account} ({size} bytes)"
        vault = urls[Env.MI_HELPERS_KEYVAULT_URL]
        with secret_client(vault, credential=cred, verify_challenge_resource=False, **kwargs) as client:
            value = client.get_secret("db-password").value or ""
        return f"read secret db-password from the vault (value {redact_secret(value)})"

    def attempt(self) -> ErrorLabRun:
        """Run the program once, no retries; keep the raw error and its diagnosis."""
        from mi_helpers.targeting import target

        target()  # settle the process's own target before this lab changes the environment
        t0 = time.monotonic()
        host = self._host()
        failure: tuple[BaseException, ErrorLabStage, dict[str, str]] | None = None
        with self._environment() as env, quiet_sdk_logs():
            stage: ErrorLabStage = "imds"
            try:
                cred, oid = self._sign_in()
                stage = "arm"
                if self.current.program != "read-vm":
                    done = self._read_data(cred)
                else:
                    vm = self._read_vm(cred, host)
            except InputError:
                raise
            except Exception as exc:  # the lesson: keep the SDK's own error and explain it
                failure = (exc, stage, env)
        if failure is not None:
            return self._failed_run(*failure, seconds=time.monotonic() - t0)
        if self.current.program != "read-vm":
            summary = f"signed in (token oid {oid}) and {done}"
            return ErrorLabRun(self.current.name, True, summary, seconds=time.monotonic() - t0)
        principal = getattr(getattr(vm, "identity", None), "principal_id", None)
        who = f"client_id={self.client.client_id}" if self.client.client_id else "no selector"
        summary = f"signed in ({who}, token oid {oid}) and read VM {vm.name} from ARM"
        summary += (
            f" (its system-assigned principal ID: {principal})"
            if principal
            else " (it has no system-assigned identity)"
        )
        return ErrorLabRun(self.current.name, True, summary, seconds=time.monotonic() - t0)

    def _failed_run(
        self, exc: BaseException, stage: ErrorLabStage, environ: dict[str, str], seconds: float
    ) -> ErrorLabRun:
        from mi_helpers.diagnosis import diagnose

        diagnosis = diagnose(exc, context=self._context(stage, environ))
        original = getattr(exc, "original", None)
        shown = original if isinstance(original, BaseException) else exc
        return ErrorLabRun(
            scenario=self.current.name,
            ok=False,
            summary=redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__,
            stage=stage,
            error=exc,
            error_text=error_text(shown),
            diagnosis=diagnosis,
            seconds=seconds,
        )

    def _context(self, stage: ErrorLabStage, environ: dict[str, str]) -> dict[str, Any]:
        """What the lab knows beyond the error: the world as the portal shows it, where the program was."""
        world = self._world()
        host = self._host(world)
        principal = world.principal(self.client.client_id)
        return {
            "target": "emulator",
            "emulator": True,
            "imds_url": self.emulator.imds_url,
            "arm_url": self.emulator.arm_url,
            "subscription_id": host["subscription_id"],
            "resource_group": host["resource_group"],
            "vm_name": host["name"],
            "principal_id": principal,
            "client_id": self.client.client_id,
            # the scope the card grants at is the one "Apply the fix" grants at: the VM's resource group
            "scope": world.resource_group_scope,
            "stage": stage,
            "identity_attached": principal is not None,
            "role_assignments": self._relevant_assignments(world),
            "environ": environ,
        }

    def _relevant_assignments(self, world: WorldView) -> list[dict[str, Any]]:
        """The assignments that could let the program do what it does: every one for the VM read; for a
        data-plane read only the data roles that grant it (Contributor on the account does not, so it must
        not make the 403 look like a data role still propagating)."""
        roles = _DATA_READ_ROLES.get(self.current.program)
        if roles is None:
            return list(world.role_assignments)
        return [a for a in world.role_assignments if a.get("role") in roles]

    def run(self, name: str | None = None) -> ErrorLabRun:
        """Run the program in scenario ``name`` (selected afresh) or in the current state."""
        if name is not None:
            self.select(name)
        return self.attempt()

    # ---------------------------------------------------------------- fixing
    def apply_fix(self) -> str:
        """Apply the current scenario's fix; returns what was done, in one line."""
        s = self.current
        if isinstance(s.fix, EmulatorFix):
            return self._apply_emulator_fix(s.fix, s.fix_text)
        if isinstance(s.fix, ClientFix):
            return self._apply_client_fix(s.fix, s.fix_text)
        return s.fix_text  # RetryFix: the fix is retry_until_green itself

    def _apply_emulator_fix(self, fix: EmulatorFix, text: str) -> str:
        """An ARM-expressible fix is carried out as the operator, through the same ARM call as the card's
        command (:mod:`mi_helpers.notebook.arm_fixes`); only the emulator's own controls (stopping its
        scripted faults) go through its admin API, as ARM has no call for them."""
        params = dict(fix.params)
        if fix.action == "add-role-assignment":
            world = self._world()
            params.setdefault("principal_id", world.principal(self.client.client_id))
            params.setdefault("scope", world.resource_group_scope)
        if fix.action in ARM_ACTIONS:
            return f"{text} — as the operator, through ARM: {self.operator.apply(fix.action, **params)}"
        done = self.emulator.apply_fix(fix.action, **params)
        message = done.get("message") if isinstance(done, dict) else done
        return f"{text} — emulator: {message}" if message else text

    def _apply_client_fix(self, fix: ClientFix, text: str) -> str:
        if fix.change == "select-identity":
            attached = self._world().attached_user_assigned()
            uami = attached[0] if attached else None
            if uami is None:
                return "no user-assigned identity is attached: nothing to select"
            self.client.client_id = str(uami["client_id"])
            return f"{text} (client_id={uami['client_id']}, {uami['name']})"
        if fix.change == "drop-legacy-endpoint":
            self.client.drop = (*self.client.drop, Env.MSI_ENDPOINT, Env.MSI_SECRET)
        elif fix.change == "bypass-proxy":
            self.client.no_proxy_extra = LOOPBACK_NO_PROXY
        elif fix.change == "share-credential":
            self.client.token_requests = 1
        elif fix.change == "read-once":
            self.client.arm_reads = 1
        elif fix.change == "ask-arm-audience":
            self.client.scope = Arm.SCOPE
        elif fix.change == "trust-emulator-ca":
            self.client.trust_ca = True
        return text

    def retry_until_green(
        self, progress: Progress | bool | None = True, budget: float | None = None
    ) -> ErrorLabRun:
        """Run the program again, retrying transient failures with back-off until it succeeds or ``budget``.

        ``progress(fraction, message)`` is called before each try and while waiting; ``True`` shows a tqdm
        bar (not for a first try that works), ``None``/``False`` nothing. The returned run carries the number
        of tries.
        """
        limit = self.budget if budget is None else float(budget)
        report = _Reporter(progress, limit)
        try:
            return self._retry_loop(report, limit)
        finally:
            report.close()

    def _retry_loop(self, report: _Reporter, limit: float) -> ErrorLabRun:
        tries = 0
        while True:
            tries += 1
            report(f"try {tries}")
            result = self.attempt()
            result.tries = tries
            if result.ok:
                report(f"✓ green after {tries} tr{'y' if tries == 1 else 'ies'}", done=True)
                result.seconds = report.elapsed()
                return result
            delay = self._delay(result, tries)
            if not self._retryable(result) or report.elapsed() + delay > limit:
                report(f"✗ still failing: {result.diagnosis_id}", done=True)
                result.seconds = report.elapsed()
                return result
            report(f"{result.diagnosis_id}: retrying in {delay:.1f} s")
            report.wait(delay)

    def _retryable(self, result: ErrorLabRun) -> bool:
        from mi_helpers.diagnosis.catalogue import recipe

        return self.current.transient or (
            result.diagnosis_id is not None and recipe(result.diagnosis_id).transient
        )

    @staticmethod
    def _delay(result: ErrorLabRun, tries: int) -> float:
        """Back-off 0.5, 1, 2 … s (at most 4), at least the server's Retry-After."""
        return max(exponential(tries - 1, 0.5, 4.0), retry_after(result.error) or 0.0)

    # ---------------------------------------------------------------- everything at once
    def walk(
        self, names: Sequence[str] | None = None, progress: Progress | bool | None = False
    ) -> pd.DataFrame:
        """For each scenario: run, record error and diagnosis, apply the fix, retry until green.

        Returns a DataFrame with one row per scenario: scenario, error seen (first line of the raw text),
        diagnosis id, fix, fixed (bool), tries, seconds.
        """
        import pandas as pd

        if isinstance(names, str):
            names = [names]
        chosen = [self._scenario(n) for n in (names or [s.name for s in self.scenarios])]
        rows = [self._walk_one(s, progress) for s in chosen]
        self.select(self.scenarios[0].name)
        columns = ["scenario", "error seen", "diagnosis id", "fix", "fixed", "tries", "seconds"]
        return pd.DataFrame(rows, columns=columns)

    def _walk_one(self, s: ErrorLabScenario, progress: Progress | bool | None) -> dict[str, Any]:
        t0 = time.monotonic()
        first = self.run(s.name)
        self.apply_fix()
        final = self.retry_until_green(progress=progress)
        seen = first.error_text.splitlines()[0] if not first.ok else "(no error)"
        return {
            "scenario": s.name,
            "error seen": seen if len(seen) <= 140 else seen[:139] + "…",
            "diagnosis id": first.diagnosis_id or "",
            "fix": s.fix_text,
            "fixed": bool(final.ok and not first.ok),
            "tries": final.tries,
            "seconds": round(time.monotonic() - t0, 2),
        }


class _Reporter:
    """Progress of ``retry_until_green``: the caller's ``progress(fraction, message)``, or the shared
    :class:`~mi_helpers.progress.BudgetBar` (opened at the first retry: a first try that works shows none)."""

    def __init__(self, progress: Progress | bool | None, budget: float) -> None:
        self.budget = budget
        self.callback = progress if callable(progress) else None
        self.bar = BudgetBar("retrying", budget) if progress is True else None
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def __call__(self, message: str, *, done: bool = False) -> None:
        fraction = min(1.0 if done else 0.99, self.elapsed() / self.budget)
        if message.startswith("✓ green"):
            fraction = 1.0
        if self.callback is not None:
            self.callback(fraction, message)
        if self.bar is not None:
            if not (message.startswith("try 1") or message.startswith("✓ green after 1 ")):
                self.bar.open()  # no bar for a first try that simply works
            self.bar.say(message)

    def wait(self, delay: float) -> None:
        end = time.monotonic() + delay
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(0.2, left))
            if self.callback is not None:
                self.callback(min(0.99, self.elapsed() / self.budget), "")
            if self.bar is not None:
                self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
