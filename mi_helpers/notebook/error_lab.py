"""The error-handling lab: break a managed-identity setup on purpose, diagnose it, fix it, retry until green.

:class:`ErrorLab` owns a private :class:`~mi_helpers.emulator.Emulator` started in this process (never the
real IMDS, even on an Azure VM, and never the shared emulator of ``mi-helpers lab``), switches it to one
scenario at a time and runs *the program*: the source article's script in Python (sign in with the managed
identity, then read the VM from ARM with azure-mgmt-compute). Each run keeps the raw SDK error text and its
:class:`~mi_helpers.diagnosis.Diagnosis`. ``apply_fix`` applies what the diagnosis recommends, on the emulator
(grant a role, bring IMDS back) or on the client (name the identity, drop a stale variable, bypass a proxy);
for transient failures the fix is to retry with back-off, which ``retry_until_green`` does while reporting
progress. ``walk`` does all of that for a list of scenarios and returns one summary row per scenario.

Scenario parameters are small (N = 2 requests, T ≈ 1.5 s, read timeouts of 1 s) so the whole lab runs in
well under a minute. The client-side environment of a scenario (``MSI_ENDPOINT``, ``HTTP_PROXY``…) is set
only while the program runs and restored afterwards.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from mi_helpers.constants import (
    LOOPBACK_NO_PROXY,
    MANAGED_IDENTITY_VARIABLES,
    NO_PROXY_VARIABLES,
    PROXY_VARIABLES,
    Arm,
)
from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.environ import patched_environ
from mi_helpers.notebook import DiagnosisCard, ErrorText, error_text, quiet_sdk_logs, scrub
from mi_helpers.validate import InputError

__all__ = ["LAB_SCENARIOS", "ErrorLab", "LabAttempt", "LabScenario"]

# Variables that switch azure-identity away from IMDS (or through a proxy). Outside the scenario that sets
# them they are removed while the program runs, so the learner's own environment cannot change the lesson.
# (The emulator's own pointers are set from the lab's emulator; this process's MI_HELPERS_* stay as they are.)
_CLIENT_TRAPS = (*MANAGED_IDENTITY_VARIABLES, *PROXY_VARIABLES)

Progress = Callable[[float, str], Any]


@dataclass(frozen=True)
class LabScenario:
    """One lab exercise: which emulator scenario, what it teaches, and what "Apply the fix" does.

    ``fix`` is one of ``("emulator", action, kwargs)`` (an emulator fix action), ``("client", change)``
    (a change to the program or its environment: ``select-identity``, ``drop-legacy-endpoint``,
    ``bypass-proxy``, ``share-credential``, ``read-once``), ``("scenario", params)`` (the same scenario with
    other parameters, e.g. a synchronised clock) or ``("retry",)`` (wait and retry with back-off).
    """

    name: str
    title: str
    lesson: str
    fix_text: str
    fix: tuple[Any, ...]
    params: dict[str, Any] = field(default_factory=dict)
    token_requests: int = 1  # fresh credentials per run (the throttling lesson needs a burst)
    arm_reads: int = 1  # VM reads per run
    transient: bool = False  # retrying is (part of) the fix


LAB_SCENARIOS: tuple[LabScenario, ...] = (
    LabScenario(
        "no-role-assignment",
        "Token OK, but no role",
        "The identity signs in, but holds no role on the VM: ARM answers 403 AuthorizationFailed.",
        "grant Reader on the resource group to the identity's principal ID (role assignment)",
        ("emulator", "add-role-assignment", {"role": "Reader"}),
    ),
    LabScenario(
        "role-propagating",
        "Role just granted",
        "A role was granted a moment ago: ARM still answers 403 for a short while (propagation).",
        "wait and retry with back-off: the assignment becomes effective",
        ("retry",),
        params={"n": 2},
        transient=True,
    ),
    LabScenario(
        "multiple-user-assigned",
        "Several user-assigned identities",
        "No system identity and two user-assigned ones: a request without client_id cannot be answered.",
        "name the identity: pass the client ID of uami-reader to ManagedIdentityCredential",
        ("client", "select-identity"),
    ),
    LabScenario(
        "identity-propagating",
        "Identity just enabled",
        "The identity was switched on a moment ago: IMDS answers 'Identity not found' for a few requests.",
        "wait and retry with back-off: the identity reaches IMDS",
        ("retry",),
        params={"n": 2},
        transient=True,
    ),
    LabScenario(
        "imds-unreachable",
        "Unable to connect (source article)",
        "Nothing answers at the token endpoint: off Azure, in a container, or IMDS blocked.",
        "make the endpoint reachable (on a VM: run there, with the identity on; here: IMDS listens again)",
        ("emulator", "clear-faults", {}),
    ),
    LabScenario(
        "legacy-extension-endpoint",
        "Old VM extension on port 50342 (source article)",
        "MSI_ENDPOINT points at the retired managed identity VM extension (localhost:50342).",
        "remove MSI_ENDPOINT so the SDK asks IMDS (and uninstall the extension)",
        ("client", "drop-legacy-endpoint"),
    ),
    LabScenario(
        "imds-hang",
        "IMDS accepts but never answers",
        "The connection opens but no answer comes: without a read timeout the SDK waits 300 s per try.",
        "IMDS recovers (check the VM's health); always bound the wait with read_timeout=",
        ("emulator", "clear-faults", {}),
    ),
    LabScenario(
        "imds-updating",
        "IMDS is being updated (410)",
        "IMDS answers 410 Gone while it is updated; it is back within 70 seconds.",
        "retry with back-off for up to 70 s",
        ("retry",),
        params={"t": 1.5},
        transient=True,
    ),
    LabScenario(
        "imds-server-error",
        "IMDS server error (500)",
        "IMDS cannot reach Entra ID for a moment and answers 500.",
        "retry with back-off (wait at least 1 s)",
        ("retry",),
        params={"n": 2},
        transient=True,
    ),
    LabScenario(
        "imds-throttled",
        "Too many token requests (429)",
        "Each request builds a new credential, so tokens are never reused: IMDS throttles with 429.",
        "share one credential (its cache answers later calls) and back off honouring Retry-After",
        ("client", "share-credential"),
        params={"burst": 2, "rate": 2.0, "retry_after": 1},
        token_requests=3,
        transient=True,
    ),
    LabScenario(
        "arm-throttled",
        "Too many ARM reads (429)",
        "A polling loop reads the VM over and over: ARM throttles with 429 SubscriptionRequestsThrottled.",
        "read less often and honour Retry-After",
        ("client", "read-once"),
        params={"burst": 2, "rate": 2.0, "retry_after": 1},
        arm_reads=3,
        transient=True,
    ),
    LabScenario(
        "foreign-metadata-server",
        "Not Azure's metadata server",
        "Something else answers at the metadata address with an HTML page instead of a token.",
        "talk to the real IMDS (on Azure only IMDS answers at 169.254.169.254; here: IMDS answers again)",
        ("emulator", "clear-faults", {}),
    ),
    LabScenario(
        "proxy-intercept",
        "A proxy intercepts IMDS",
        "HTTP_PROXY is set and NO_PROXY does not cover the metadata address: the proxy answers 502.",
        "bypass the proxy for IMDS: add its address to NO_PROXY (169.254.169.254 on a VM)",
        ("client", "bypass-proxy"),
    ),
    LabScenario(
        "expired-token",
        "Clock skew: token already expired",
        "ARM's clock runs two days ahead: a fresh token looks expired (401 ExpiredAuthenticationToken).",
        "synchronise the clock (NTP); here: the emulator's clocks agree again",
        ("emulator", "clear-faults", {}),
    ),
)


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class LabAttempt:
    """What one run of the program showed: success, or the raw error text and its diagnosis."""

    scenario: str
    ok: bool
    summary: str
    stage: str = ""  # "imds" (sign-in) or "arm" (the VM read) where it failed
    error: BaseException | None = field(default=None, repr=False)
    error_text: str = ""
    diagnosis: Any = field(default=None, repr=False)
    tries: int = 1
    seconds: float = 0.0

    @property
    def diagnosis_id(self) -> str | None:
        return None if self.diagnosis is None else str(getattr(self.diagnosis, "id", "unknown"))

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


@dataclass
class _Client:
    """How the program is configured (what client-side fixes change)."""

    client_id: str | None = None
    drop: tuple[str, ...] = ()
    no_proxy_extra: tuple[str, ...] = ()
    token_requests: int = 1
    arm_reads: int = 1


class ErrorLab:
    """Scenarios on a private embedded emulator: run, diagnose, apply the fix, retry until green.

    ``budget`` bounds each ``retry_until_green`` (seconds); ``read_timeout`` bounds every IMDS read, so a
    hanging IMDS costs one second. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, *, budget: float = 8.0, read_timeout: float = 1.0, emulator: Any = None) -> None:
        from mi_helpers.emulator import SCENARIOS, Emulator

        self.scenarios: tuple[LabScenario, ...] = tuple(s for s in LAB_SCENARIOS if s.name in SCENARIOS)
        self.budget = budget
        self.read_timeout = read_timeout
        self._owns = emulator is None
        self.emulator = emulator if emulator is not None else Emulator(scenario="healthy")
        if self._owns:
            self.emulator.start()
            # stopped with the lab, or at the latest when the kernel exits
            self._finalizer = weakref.finalize(self, self.emulator.stop)
        self.current: LabScenario = self.scenarios[0]
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

    def catalogue(self) -> Any:
        """The scenarios as a DataFrame: scenario, title, what you will see, what the fix does."""
        import pandas as pd

        rows = [
            {"scenario": s.name, "title": s.title, "what happens": s.lesson, "the fix": s.fix_text}
            for s in self.scenarios
        ]
        return pd.DataFrame(rows, columns=["scenario", "title", "what happens", "the fix"])

    def _scenario(self, name: str) -> LabScenario:
        for s in self.scenarios:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.scenarios)
        raise InputError("scenario", f"{name!r} is not a lab scenario (one of: {known})", name)

    def select(self, name: str) -> LabScenario:
        """Switch the emulator to ``name`` (its fault armed again) and reset the program's configuration."""
        scenario = self._scenario(name)
        self.emulator.set_scenario(scenario.name, **scenario.params)
        self.current = scenario
        self.client = _Client(token_requests=scenario.token_requests, arm_reads=scenario.arm_reads)
        return scenario

    # ---------------------------------------------------------------- the world, as the program knows it
    def _world(self) -> dict[str, Any]:
        return dict(self.emulator.world_dict())

    def _host(self, world: dict[str, Any]) -> dict[str, Any]:
        name = world["host_vm"]["name"]
        return next(v for v in world["virtual_machines"] if v["name"] == name)

    def _first_user_assigned(self, world: dict[str, Any]) -> dict[str, Any] | None:
        attached = {rid.lower() for rid in self._host(world)["user_assigned"]}
        for uami in world["user_assigned_identities"]:
            if uami["resource_id"].lower() in attached:
                return dict(uami)
        return None

    def _principal(self, world: dict[str, Any]) -> str | None:
        """The principal the program signs in as (system identity, or the selected/only UAMI)."""
        host = self._host(world)
        if self.client.client_id:
            for uami in world["user_assigned_identities"]:
                if uami["client_id"].lower() == self.client.client_id.lower():
                    return str(uami["principal_id"])
            return None
        si = host.get("system_identity")
        if si and si.get("enabled"):
            return str(si["principal_id"])
        uami = self._first_user_assigned(world)
        return None if uami is None else str(uami["principal_id"])

    # ---------------------------------------------------------------- the client environment
    def _client_environment(self) -> dict[str, str | None]:
        """Variable → value (None = unset) while the program runs: the emulator's, minus fixed traps."""
        env: dict[str, str | None] = dict.fromkeys(_CLIENT_TRAPS)
        for key, value in dict(self.emulator.environment()).items():
            if not key.startswith("MI_HELPERS_"):
                env[key] = str(value)
        for key in self.client.drop:
            env[key] = None
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
    def _program(self, env_box: dict[str, Any]) -> str:
        """Sign in, then read the VM from ARM; returns a one-line success summary or raises the SDK error."""
        import mi_helpers
        from mi_helpers.identity import credential as make_credential
        from mi_helpers.identity import decode_claims

        mi_helpers.target()  # settle the process's own target before this lab changes the environment
        world = self._world()
        host = self._host(world)
        with self._environment() as env, quiet_sdk_logs():
            env_box["environ"] = env
            env_box["stage"] = "imds"
            kwargs: dict[str, Any] = {"connection_timeout": 1.0, "read_timeout": self.read_timeout}
            if self.client.client_id:
                kwargs["client_id"] = self.client.client_id
            token = None
            for _ in range(max(1, self.client.token_requests)):
                cred = make_credential(**kwargs)  # a new credential per request: no token reuse
                token = cred.get_token(Arm.SCOPE)  # the SDK itself, one try: its own error text
            assert token is not None
            oid = decode_claims(token.token).get("oid")
            env_box["stage"] = "arm"
            client = mi_helpers.compute_client(
                host["subscription_id"],
                credential=cred,
                base_url=self.emulator.arm_url,
                credential_scopes=[Arm.SCOPE],
                connection_verify=self.emulator.ca_bundle,
                retry_total=0,
            )
            with client:
                for _ in range(max(1, self.client.arm_reads)):
                    vm = client.virtual_machines.get(host["resource_group"], host["name"])
        principal = getattr(getattr(vm, "identity", None), "principal_id", None)
        who = f"client_id={self.client.client_id}" if self.client.client_id else "no selector"
        return (
            f"signed in ({who}, token oid {oid}) and read VM {vm.name} from ARM "
            f"(system principalId {principal})"
        )

    def _context(self, world: dict[str, Any], env_box: dict[str, Any]) -> dict[str, Any]:
        host = self._host(world)
        principal = self._principal(world)
        attached = principal is not None
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
            "scope": host["resource_id"],
            "stage": env_box.get("stage"),
            "identity_attached": attached,
            "role_assignments": world["role_assignments"],
            "environ": env_box.get("environ"),
        }

    def attempt(self) -> LabAttempt:
        """Run the program once, no retries; keep the raw error and its diagnosis."""
        from mi_helpers.diagnosis import diagnose

        env_box: dict[str, Any] = {}
        t0 = time.monotonic()
        try:
            summary = self._program(env_box)
        except InputError:
            raise
        except Exception as exc:  # the lesson: keep the SDK's own error and explain it
            world = self._world()
            diagnosis = diagnose(exc, context=self._context(world, env_box))
            original = getattr(exc, "original", None)
            shown = original if isinstance(original, BaseException) else exc
            return LabAttempt(
                scenario=self.current.name,
                ok=False,
                summary=scrub(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__,
                stage=str(env_box.get("stage", "")),
                error=exc,
                error_text=error_text(shown),
                diagnosis=diagnosis,
                seconds=time.monotonic() - t0,
            )
        return LabAttempt(self.current.name, True, summary, seconds=time.monotonic() - t0)

    def run(self, name: str | None = None) -> LabAttempt:
        """Run the program in scenario ``name`` (selected afresh) or in the current state."""
        if name is not None:
            self.select(name)
        return self.attempt()

    # ---------------------------------------------------------------- fixing
    def apply_fix(self) -> str:
        """Apply the current scenario's fix; returns what was done, in one line."""
        s = self.current
        kind = s.fix[0]
        if kind == "emulator":
            _, action, kwargs = s.fix
            kwargs = dict(kwargs)
            if action == "add-role-assignment":
                world = self._world()
                host = self._host(world)
                kwargs.setdefault("principal_id", self._principal(world))
                kwargs.setdefault(
                    "scope",
                    f"/subscriptions/{host['subscription_id']}/resourceGroups/{host['resource_group']}",
                )
            done = self.emulator.apply_fix(action, **kwargs)
            message = done.get("message") if isinstance(done, dict) else done
            return f"{s.fix_text} ({message})" if message else s.fix_text
        if kind == "scenario":
            self.emulator.set_scenario(s.name, **{**s.params, **s.fix[1]})
            return s.fix_text
        if kind == "client":
            change = s.fix[1]
            if change == "select-identity":
                uami = self._first_user_assigned(self._world())
                if uami is None:
                    return "no user-assigned identity is attached: nothing to select"
                self.client.client_id = str(uami["client_id"])
                return f"{s.fix_text} (client_id={uami['client_id']}, {uami['name']})"
            if change == "drop-legacy-endpoint":
                self.client.drop = (*self.client.drop, Env.MSI_ENDPOINT, Env.MSI_SECRET)
            elif change == "bypass-proxy":
                self.client.no_proxy_extra = LOOPBACK_NO_PROXY
            elif change == "share-credential":
                self.client.token_requests = 1
            elif change == "read-once":
                self.client.arm_reads = 1
            return s.fix_text
        return s.fix_text  # ("retry",): the fix is retry_until_green itself

    def retry_until_green(
        self, progress: Progress | bool | None = True, budget: float | None = None
    ) -> LabAttempt:
        """Run the program again, retrying transient failures with back-off until it succeeds or ``budget``.

        ``progress(fraction, message)`` is called before each try and while waiting; ``True`` shows a tqdm
        bar, ``None``/``False`` nothing. The returned attempt carries the number of tries.
        """
        limit = self.budget if budget is None else float(budget)
        report = _progress_reporter(progress, limit)
        t0 = time.monotonic()
        tries = 0
        try:
            while True:
                tries += 1
                report(min(0.99, (time.monotonic() - t0) / limit), f"try {tries}")
                result = self.attempt()
                result.tries = tries
                if result.ok:
                    report(1.0, f"✓ green after {tries} tr{'y' if tries == 1 else 'ies'}")
                    result.seconds = time.monotonic() - t0
                    return result
                delay = self._delay(result, tries)
                if not self._retryable(result) or time.monotonic() - t0 + delay > limit:
                    report(
                        min(1.0, (time.monotonic() - t0) / limit), f"✗ still failing: {result.diagnosis_id}"
                    )
                    result.seconds = time.monotonic() - t0
                    return result
                report(
                    min(0.99, (time.monotonic() - t0) / limit),
                    f"{result.diagnosis_id}: retrying in {delay:.1f} s",
                )
                end = time.monotonic() + delay
                while (left := end - time.monotonic()) > 0:
                    time.sleep(min(0.2, left))
                    report(min(0.99, (time.monotonic() - t0) / limit), "")
        finally:
            report(-1.0, "")  # close a bar

    _TRANSIENT_IDS = frozenset(
        {
            "identity-propagating",
            "role-propagating",
            "imds-updating",
            "imds-server-error",
            "imds-throttled",
            "arm-throttled",
            "imds-timeout",
        }
    )

    def _retryable(self, result: LabAttempt) -> bool:
        return self.current.transient or result.diagnosis_id in self._TRANSIENT_IDS

    @staticmethod
    def _delay(result: LabAttempt, tries: int) -> float:
        """Back-off 0.5, 1, 2 … s, at least the server's Retry-After."""
        delay = min(4.0, 0.5 * 2 ** (tries - 1))
        response = getattr(result.error, "response", None)
        headers = getattr(response, "headers", None) or {}
        retry_after = headers.get("Retry-After") if hasattr(headers, "get") else None
        for att in getattr(result.error, "attempts", None) or []:
            if getattr(att, "retry_after", None):
                retry_after = att.retry_after
        try:
            return max(delay, float(retry_after)) if retry_after is not None else delay
        except ValueError:
            return delay

    # ---------------------------------------------------------------- everything at once
    def walk(self, names: Sequence[str] | None = None, progress: Progress | bool | None = False) -> Any:
        """For each scenario: run, record error and diagnosis, apply the fix, retry until green.

        Returns a DataFrame with one row per scenario: scenario, error seen (first line of the raw text),
        diagnosis id, fix, fixed (bool), tries, seconds.
        """
        import pandas as pd

        if isinstance(names, str):
            names = [names]
        chosen = [self._scenario(n) for n in (names or [s.name for s in self.scenarios])]
        rows = []
        for s in chosen:
            t0 = time.monotonic()
            first = self.run(s.name)
            self.apply_fix()
            final = self.retry_until_green(progress=progress)
            seen = first.error_text.splitlines()[0] if not first.ok else "(no error)"
            rows.append(
                {
                    "scenario": s.name,
                    "error seen": seen if len(seen) <= 140 else seen[:139] + "…",
                    "diagnosis id": first.diagnosis_id or "",
                    "fix": s.fix_text,
                    "fixed": bool(final.ok and not first.ok),
                    "tries": final.tries,
                    "seconds": round(time.monotonic() - t0, 2),
                }
            )
        self.select(self.scenarios[0].name)
        columns = ["scenario", "error seen", "diagnosis id", "fix", "fixed", "tries", "seconds"]
        return pd.DataFrame(rows, columns=columns)


def _progress_reporter(progress: Progress | bool | None, budget: float) -> Progress:
    """Normalise the progress argument: a callable, a lazily opened tqdm bar (True), or nothing."""
    if callable(progress):
        user = progress

        def call(fraction: float, message: str) -> None:
            if fraction >= 0:
                user(fraction, message)

        return call
    if not progress:
        return lambda fraction, message: None
    state: dict[str, Any] = {"bar": None}

    def bar(fraction: float, message: str) -> None:
        if fraction < 0:
            if state["bar"] is not None:
                state["bar"].close()
            return
        if state["bar"] is None:
            if not message or message.startswith("try 1") or message.startswith("✓ green after 1 "):
                return  # no bar for a first try that simply works
            from tqdm.auto import tqdm

            state["bar"] = tqdm(total=100, desc="retrying", bar_format="{desc}: {bar}| {postfix}")
        b = state["bar"]
        b.n = int(fraction * 100)
        if message:
            b.set_postfix_str(message, refresh=False)
        b.refresh()

    return bar
