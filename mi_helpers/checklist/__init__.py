"""The checklist behind ``mi-helpers doctor``: is managed-identity sign-in and ARM access healthy here?

Checks, in order (a check is ``skip`` when one it needs failed):

1. ``target`` — where requests go (Azure VM or the local emulator), decided without network traffic;
2. ``environment`` — environment settings that silently change sign-in (`diagnose.environment_traps`);
3. ``imds-reachable`` — one header-less request to the token endpoint, like DefaultAzureCredential's probe:
   any IMDS-style JSON answer means IMDS is there;
4. ``identity`` — IMDS issues a token for the identity (system-assigned, or ``client_id``);
5. ``arm-token`` — the token's audience is Azure Resource Manager;
6. ``token-claims`` — ``aud``/``exp``/``tid``/``oid`` are present and plausible;
7. ``vm-readable`` — the VM can be read through azure-mgmt-compute with that token;
8. ``principal-matches`` — the token's ``oid`` is the VM's identity (ARM's ``principalId``);
9. ``role-assignments`` — a role assignment for that principal covers the VM.

The whole run shares one deadline (``budget`` seconds): every network step gets explicit connect/read
timeouts cut to what is left, and retries stop before the deadline. A transient fault that a bounded retry
overcame (IMDS updating, throttling, 5xx, an identity or role assignment still propagating) is a ``warn``
carrying its diagnosis.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mi_helpers.checklist.checks import CHECKS, DATA_CHECK, CheckSpec, Deadline, State, first_line
from mi_helpers.checklist.report import FAIL, PASS, SKIP, Check, DoctorReport
from mi_helpers.constants import Arm, Imds
from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.diagnosis import diagnose
from mi_helpers.environ import restored_environ
from mi_helpers.validate import (
    InputError,
    validate_guid,
    validate_resource_group,
    validate_seconds,
    validate_vm_name,
)

if TYPE_CHECKING:
    from mi_helpers.emulator.control import EmulatorControl

__all__ = ["DOCTOR_SCENARIO_PARAMS", "LOAD_SCENARIOS", "Check", "DoctorReport", "doctor"]

# Scenario parameters the doctor uses unless told otherwise, so the fault shows within one short run: a
# slow refill, and for ARM a burst the doctor's own two reads exceed.
DOCTOR_SCENARIO_PARAMS: dict[str, dict[str, Any]] = {
    "imds-throttled": {"rate": 0.5, "retry_after": 1},
    "arm-throttled": {"burst": 1, "rate": 0.5, "retry_after": 1},
}
# Scenarios whose fault needs other clients' load (in the field: many processes on the VM asking IMDS).
# The doctor sends that many token requests first — a stand-in for them, said so in the target check.
LOAD_SCENARIOS = {"imds-throttled": "burst"}
_TEARDOWN = 0.4  # seconds kept for restoring the previous emulator state after a scenario run


# ------------------------------------------------------------------------------------------- scenario run


def _validate_scenario_name(scenario: object) -> str:
    from mi_helpers.emulator import SCENARIOS
    from mi_helpers.validate import validate_scenario

    return validate_scenario(scenario, list(SCENARIOS))


def _simulate_load(name: str, control: EmulatorControl) -> str | None:
    """For `LOAD_SCENARIOS`: send the token requests other processes would have sent; a note, or None."""
    import requests

    key = LOAD_SCENARIOS.get(name)
    if key is None:
        return None
    count = int((control.params or {}).get(key, 0))
    url = os.environ[Env.AZURE_POD_IDENTITY_AUTHORITY_HOST].rstrip("/") + Imds.TOKEN_PATH
    query = {"api-version": Imds.TOKEN_API_VERSION, "resource": Arm.RESOURCE}
    with requests.Session() as session:
        session.trust_env = False
        for _ in range(count):
            session.get(url, params=query, headers={"Metadata": "true"}, timeout=(1.0, 2.0))
    return f"{count} token requests sent first, standing in for other processes on the VM"


def _previous_emulator() -> tuple[EmulatorControl | None, bool]:
    """The emulator this process was using before a scenario run (or None), and whether it had chosen."""
    from mi_helpers.targeting import target, target_chosen

    chosen = target_chosen()
    external = bool(
        os.environ.get(Env.MI_HELPERS_EMULATOR_ADMIN) and os.environ.get(Env.MI_HELPERS_EMULATOR_KEY)
    )
    if not (chosen or external):
        return None, chosen
    try:  # cached when chosen; otherwise it attaches to the emulator the environment describes
        current = target()
    except InputError:
        return None, chosen
    return (current.emulator if current.is_emulator else None), chosen


@contextmanager
def _scenario_run(name: str, params: Mapping[str, Any] | None) -> Iterator[str | None]:
    """Switch this process to the emulator in scenario `name` for the duration, then restore.

    Restores the previous emulator scenario (and its parameters) or, when the process was not using the
    emulator, stops it; the environment variables are put back as they were. Changes made to the previous
    scenario's world (fix actions) are not kept.
    """
    from mi_helpers.identity import clear_credential_cache  # a cached token would hide what IMDS says now
    from mi_helpers.targeting import reset_target, use_emulator

    with restored_environ():
        previous, chosen_before = _previous_emulator()
        prev_scenario = previous.scenario if previous is not None else None
        prev_params = dict(previous.params or {}) if previous is not None else {}
        run_params = dict(DOCTOR_SCENARIO_PARAMS.get(name, {})) if params is None else dict(params)
        try:
            control = use_emulator(name, **run_params)
            clear_credential_cache()
            yield _simulate_load(name, control)
        finally:
            clear_credential_cache()
            if prev_scenario is not None:
                use_emulator(prev_scenario, **prev_params)  # back to what it was doing
                if not chosen_before:
                    reset_target(stop_emulator=False)
            else:  # the process was on Azure or had chosen nothing: stop the emulator started for this run
                reset_target(stop_emulator=True)


def doctor(
    *,
    scenario: str | None = None,
    budget: float = 15.0,
    client_id: str | None = None,
    vm_name: str | None = None,
    resource_group: str | None = None,
    subscription_id: str | None = None,
    progress: bool = False,
    params: Mapping[str, Any] | None = None,
    data_url: str | None = None,
) -> DoctorReport:
    """Run the managed-identity checklist within `budget` seconds and return a `DoctorReport`.

    `scenario` runs it against the embedded emulator in that scenario (started for the run, previous
    state restored afterwards); `params` overrides the scenario's parameters (default: the scenario's own,
    except `DOCTOR_SCENARIO_PARAMS`). `client_id` selects a user-assigned identity; `vm_name`,
    `resource_group`, `subscription_id` default to the VM's instance metadata. `progress` prints each step
    to stderr. `data_url` (a Key Vault secret URL or a blob URL) adds a last check: the identity reads it,
    as the program would (the value is never shown whole).
    """
    budget = validate_seconds(budget, "budget")
    if client_id is not None:
        client_id = validate_guid(client_id, "client_id")
    if vm_name is not None:
        vm_name = validate_vm_name(vm_name)
    if resource_group is not None:
        resource_group = validate_resource_group(resource_group)
    if subscription_id is not None:
        subscription_id = validate_guid(subscription_id, "subscription_id")
    if params is not None and scenario is None:
        raise InputError("params", "only meaningful together with scenario=", dict(params))
    # Stopping/switching the emulator afterwards also counts against the budget: keep time for it.
    deadline = Deadline(budget - (_TEARDOWN if scenario is not None else 0.05))
    st = State(deadline, client_id, vm_name, resource_group, subscription_id, progress)
    if data_url is not None:
        if not isinstance(data_url, str) or not data_url.startswith("https://"):
            raise InputError("data_url", "a secret or blob URL starting with https://", data_url)
        st.data_url = data_url
    if scenario is not None:
        name = _validate_scenario_name(scenario)
        try:
            with _scenario_run(name, params) as note:
                st.note = note
                checks = _run_checks(st)
        except InputError:
            raise
        except Exception as exc:  # starting/switching/restoring the emulator failed: report it, no traceback
            checks = _setup_failed(st, name, exc)
        return _report(st, checks, name, budget)
    return _report(st, _run_checks(st), None, budget)


def _setup_failed(st: State, name: str, exc: BaseException) -> list[Check]:
    """Checks for a scenario run whose emulator could not be switched (or restored)."""
    if len(st.checks) == len(_specs(st)):  # the run completed; only restoring failed
        warnings.warn(f"mi-helpers doctor: restoring the emulator failed: {first_line(exc)}", stacklevel=3)
        return list(st.checks)
    first, *rest = _specs(st)
    detail = f"could not switch the emulator to scenario {name!r}: {first_line(exc)}"
    checks = [Check(first.id, first.title, FAIL, detail, diagnose(exc, context=st.context()))]
    return checks + [Check(spec.id, spec.title, SKIP, f"skipped: needs {first.id}") for spec in rest]


def _specs(st: State) -> tuple[CheckSpec, ...]:
    """The checklist of this run: the nine checks, and the data-plane read when a URL was given."""
    return (*CHECKS, DATA_CHECK) if st.data_url else CHECKS


def _run_one(st: State, spec: CheckSpec) -> Check:
    """Run one check (or say why it is skipped); an unexpected failure is a diagnosed line, no traceback."""
    missing = [n for n in spec.needs if not st.passed(n)]
    if missing:
        return Check(spec.id, spec.title, SKIP, f"skipped: needs {', '.join(missing)}")
    if st.deadline.left() <= 0.2:
        used = f"{st.deadline.elapsed():.1f} s"
        return Check(spec.id, spec.title, SKIP, f"skipped: the time budget is used up ({used})")
    st.say(spec.title)
    try:
        out = spec.check(st)
    except InputError as exc:
        return Check(spec.id, spec.title, FAIL, str(exc))
    except Exception as exc:
        return Check(spec.id, spec.title, FAIL, first_line(exc), diagnose(exc, context=st.context()))
    return Check(spec.id, spec.title, out.status, out.detail, out.diagnosis)


def _run_checks(st: State) -> list[Check]:
    for spec in _specs(st):
        st.checks.append(_run_one(st, spec))
    return st.checks


def _report(st: State, checks: list[Check], scenario: str | None, budget: float) -> DoctorReport:
    name = getattr(st.target, "name", None) or "unknown"
    ok = bool(checks) and all(c.status == PASS for c in checks)
    return DoctorReport(name, scenario, ok, st.deadline.elapsed(), tuple(checks), budget)
