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

import html
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mi_helpers.constants import Arm, Imds
from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.diagnosis import (
    Diagnosis,
    DiagnosisContext,
    diagnose,
    diagnosis_for,
    environment_traps,
    scope_covers,
)
from mi_helpers.environ import restored_environ
from mi_helpers.redaction import redact
from mi_helpers.retry import retry_after
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

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
SYMBOLS = {PASS: "✓", FAIL: "✗", WARN: "!", SKIP: "–"}
# Scenario parameters the doctor uses unless told otherwise, so the fault shows within one short run: a
# slow refill, and for ARM a burst the doctor's own two reads exceed.
DOCTOR_SCENARIO_PARAMS: dict[str, dict[str, Any]] = {
    "imds-throttled": {"rate": 0.5, "retry_after": 1},
    "arm-throttled": {"burst": 1, "rate": 0.5, "retry_after": 1},
}
# Scenarios whose fault needs other clients' load (in the field: many processes on the VM asking IMDS).
# The doctor sends that many token requests first — a stand-in for them, said so in the target check.
LOAD_SCENARIOS = {"imds-throttled": "burst"}
_CONNECT, _READ = 2.0, 3.0  # per network step, cut to the time left
# IMDS answers the header-less probe at once (no Entra round trip), so a silent IMDS is named sooner.
_PROBE_READ = 2.0
_ARM_RESERVE = 3.0  # seconds kept for the ARM checks while IMDS retries
_TABLE_DETAIL = 160  # characters of detail per line in the text table
_TEARDOWN = 0.4  # seconds kept for restoring the previous emulator state after a scenario run


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    id: str
    title: str
    status: str  # pass | fail | warn | skip
    detail: str
    diagnosis: Diagnosis | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of one check (diagnosis reduced to id, cause, fix, az and PowerShell commands)."""
        d = self.diagnosis
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "detail": redact(self.detail),
            "diagnosis": None
            if d is None
            else {
                "id": d.id,
                "cause": d.cause,
                "fix": list(d.fix),
                "commands": {"az": d.commands.get("az", ""), "powershell": d.commands.get("powershell", "")},
            },
        }


@dataclass(frozen=True)
class DoctorReport:
    """The result of `doctor`: ``ok`` is True when every check passed."""

    target: str
    scenario: str | None
    ok: bool
    elapsed_s: float
    checks: tuple[Check, ...]
    budget: float = 15.0

    def to_dict(self) -> dict[str, Any]:
        """Exactly the keys ``target, scenario, ok, elapsed_s, checks``."""
        return {
            "target": self.target,
            "scenario": self.scenario,
            "ok": self.ok,
            "elapsed_s": round(self.elapsed_s, 3),
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON (what ``mi-helpers doctor --json`` prints)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @property
    def diagnosis_ids(self) -> list[str]:
        """Ids of the diagnoses attached to failed or warned checks, in check order, without repeats."""
        out: list[str] = []
        for c in self.checks:
            if c.diagnosis is not None and c.status in (FAIL, WARN) and c.diagnosis.id not in out:
                out.append(c.diagnosis.id)
        return out

    def _summary(self) -> str:
        counts = {s: sum(1 for c in self.checks if c.status == s) for s in (PASS, WARN, FAIL, SKIP)}
        verdict = "all checks passed" if self.ok else "problems found"
        parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        return f"{verdict} ({parts}) in {self.elapsed_s:.1f} s of a {self.budget:g} s budget"

    def __str__(self) -> str:
        scen = f", scenario {self.scenario}" if self.scenario else ""
        lines = [f"mi-helpers doctor — target {self.target}{scen}"]
        width = max(len(c.title) for c in self.checks) if self.checks else 10
        for c in self.checks:
            detail = redact(c.detail)
            if len(detail) > _TABLE_DETAIL:  # the full text is in the JSON and in the card below
                detail = detail[: _TABLE_DETAIL - 1] + "…"
            lines.append(f" {SYMBOLS[c.status]} {c.status:<4}  {c.title:<{width}}  {detail}")
        lines.append(self._summary())
        for c in self.checks:
            if c.diagnosis is not None and c.status in (FAIL, WARN):
                lines.append("")
                lines.append(f"[{c.status}] {c.title}")
                lines.append(str(c.diagnosis))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"DoctorReport(target={self.target!r}, scenario={self.scenario!r}, ok={self.ok}, "
            f"checks={len(self.checks)})"
        )

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><td>{SYMBOLS[c.status]} <strong>{e(c.status)}</strong></td><td>{e(c.title)}</td>"
            f"<td>{e(redact(c.detail))}</td><td>{e(c.diagnosis.id) if c.diagnosis else ''}</td></tr>"
            for c in self.checks
        )
        cards = "".join(
            c.diagnosis._repr_html_()
            for c in self.checks
            if c.diagnosis is not None and c.status in (FAIL, WARN)
        )
        scen = f", scenario <code>{e(self.scenario)}</code>" if self.scenario else ""
        return (
            f"<div class='mi-doctor'><p><strong>mi-helpers doctor</strong> — target "
            f"<code>{e(self.target)}</code>{scen}</p>"
            "<table><thead><tr><th>Status</th><th>Check</th><th>Detail</th><th>Diagnosis</th></tr></thead>"
            f"<tbody>{rows}</tbody></table><p><strong>Result:</strong> {e(self._summary())}</p>{cards}</div>"
        )


# ---------------------------------------------------------------------------------------------- plumbing


class _Deadline:
    """One shared deadline; hands out timeouts no longer than what is left."""

    def __init__(self, budget: float) -> None:
        self.start = time.monotonic()
        self.end = self.start + budget

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def timeouts(self, connect: float = _CONNECT, read: float = _READ) -> tuple[float, float]:
        left = max(0.05, self.left() - 0.15)  # room to handle the failure after a timeout fires
        return min(connect, left), min(read, left)

    def sleep(self, seconds: float) -> bool:
        """Sleep if that still leaves time for a request afterwards; False when it would not."""
        if seconds + 0.3 >= self.left():
            return False
        time.sleep(seconds)
        return True


class _StaticTokenCredential:
    """Hands the token already checked to the ARM clients (no second IMDS round trip, no cache surprises)."""

    def __init__(self, token_info: Any) -> None:
        self._info = token_info

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._info.secret(), int(self._info.expires_on.timestamp()))

    def __repr__(self) -> str:
        return f"_StaticTokenCredential({self._info.redacted})"


@dataclass
class _State:
    """What the checks learn and pass on."""

    deadline: _Deadline
    client_id: str | None
    vm_name: str | None
    resource_group: str | None
    subscription_id: str | None
    progress: bool
    target: Any = None
    ctx_target: str | None = None
    world: dict[str, Any] | None = None
    token: Any = None
    vm: Any = None
    vm_id: str | None = None
    note: str | None = None  # what the scenario run did beforehand (simulated load), shown with the target
    checks: list[Check] = field(default_factory=list)

    def context(self, **extra: Any) -> DiagnosisContext:
        """The diagnosis context: names for the commands plus what the run knows."""
        principal = getattr(self.token, "principal_id", None) if self.token is not None else None
        base: dict[str, Any] = {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "vm_name": self.vm_name,
            "principal_id": principal,
            "client_id": self.client_id,
            "target": self.ctx_target,
            "emulator": bool(getattr(self.target, "is_emulator", False)),
            "imds_url": getattr(self.target, "imds_url", None),
            "arm_url": getattr(self.target, "arm_url", None),
            "scope": self.vm_id,
        }
        base.update(extra)
        return DiagnosisContext.coerce(base)

    def passed(self, check_id: str) -> bool:
        return any(c.id == check_id and c.status in (PASS, WARN) for c in self.checks)

    def say(self, text: str) -> None:
        if self.progress:
            print(f"[doctor {self.deadline.elapsed():5.1f} s] {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ checks


def _check_target(st: _State) -> Check:
    from mi_helpers.targeting import detect, target

    title = "Target: where requests go"
    try:
        st.target = target()
    except InputError as exc:
        return Check("target", title, FAIL, str(exc))
    if st.target.name == "azure" and not detect().is_azure:
        st.ctx_target = "off-azure"
        return Check(
            "target",
            title,
            WARN,
            f"azure (forced), but this machine does not look like an Azure VM: {st.target.reason}",
        )
    st.ctx_target = st.target.name
    if st.target.is_emulator:
        st.world = _world_of(st.target)
    note = f"; {st.note}" if st.note else ""
    return Check("target", title, PASS, f"{st.target.name}: {st.target.reason}{note}")


def _world_of(tgt: Any) -> dict[str, Any] | None:
    """The emulator's world as an administrator sees it (the portal's view), or None."""
    try:
        world = tgt.emulator.world_dict()
    except Exception:
        return None
    return world if isinstance(world, dict) else None


def _check_environment(st: _State) -> Check:
    title = "Environment: settings that change sign-in"
    # On Azure the helpers add the IMDS address to NO_PROXY for their own calls: judge the user's settings.
    from mi_helpers.targeting import original_environ

    on_azure = getattr(st.target, "name", None) == "azure"
    traps = environment_traps(original_environ() if on_azure else None)
    warns = [t for t in traps if t.severity == "warn"]
    infos = [t for t in traps if t.severity != "warn"]
    if not warns:
        detail = "no traps" + (f" (noted: {', '.join(t.id for t in infos)})" if infos else "")
        return Check("environment", title, PASS, detail)
    diag = None
    first = next((t for t in warns if t.diagnosis_id), None)
    if first is not None and first.diagnosis_id is not None:
        diag = diagnosis_for(
            first.diagnosis_id,
            context=st.context(),
            evidence={
                "environment": f"{', '.join(first.variables)}={first.value}",
                "server_text": first.effect,
            },
        )
    detail = "; ".join(f"{', '.join(t.variables)}: {t.effect}" for t in warns)
    return Check("environment", title, WARN, detail, diag)


def _check_imds(st: _State) -> Check:
    import requests

    title = "IMDS reachable"
    url = f"{st.target.imds_url}{Imds.TOKEN_PATH}"
    params = {"api-version": Imds.TOKEN_API_VERSION, "resource": Arm.RESOURCE}
    ctx = st.context(url=url, stage="imds")
    st.say(f"probing {url}")
    try:
        # Like DefaultAzureCredential's probe: no Metadata header, proxies honoured as the SDK would.
        resp = requests.get(
            url, params=params, timeout=st.deadline.timeouts(read=_PROBE_READ), allow_redirects=False
        )
    except requests.RequestException as exc:
        d = diagnose(exc, context=ctx)
        return Check("imds-reachable", title, FAIL, f"no HTTP answer from {url}: {type(exc).__name__}", d)
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("error" in body or "access_token" in body):
        what = body.get("error_description") or body.get("error") or "a token"
        _coordinates(st)  # the VM's names, so later diagnoses show real commands (best effort)
        return Check("imds-reachable", title, PASS, f"IMDS answered {resp.status_code} ({what}) at {url}")
    d = diagnose(resp, context=ctx)
    ctype = resp.headers.get("Content-Type", "?")
    return Check("imds-reachable", title, FAIL, f"{resp.status_code} {ctype} is not an IMDS answer", d)


def _forget_cached_credentials() -> None:
    """Drop mi_helpers.identity's cached credentials: a cached token would hide what IMDS says right now."""
    from mi_helpers.identity import clear_credential_cache

    clear_credential_cache()


def _identity_attached(st: _State) -> bool | None:
    """From the emulator's world: is the requested identity on the VM? None when unknown (real Azure)."""
    w = st.world
    if not w:
        return None
    host = (w.get("host_vm") or {}).get("name")
    vm = next((v for v in w.get("virtual_machines", []) if v.get("name") == host), None)
    if vm is None:
        return None
    if st.client_id is None:
        si = vm.get("system_identity") or {}
        return bool(si.get("enabled")) or len(vm.get("user_assigned") or []) == 1
    attached = {str(r).lower() for r in vm.get("user_assigned") or []}
    for u in w.get("user_assigned_identities", []):
        if str(u.get("client_id", "")).lower() == st.client_id.lower():
            return str(u.get("resource_id", "")).lower() in attached
    return False


def _check_identity(st: _State) -> Check:
    from mi_helpers.identity import SignInError, get_token

    title = "Identity: IMDS issues a token"
    who = f"client_id={st.client_id}" if st.client_id else "system-assigned identity"
    attached = _identity_attached(st)
    history: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    waits = [0.5, 1.0, 2.0]  # extra tries for "Identity not found" right after assignment
    _forget_cached_credentials()
    started = time.monotonic()
    while True:
        left = st.deadline.left()
        budget = max(0.1, min(left - 0.1, max(0.3, left - _ARM_RESERVE)))  # keep time for ARM if possible
        connect, read = st.deadline.timeouts()
        st.say(f"token request ({who}), {budget:.1f} s allowed")
        try:
            tok = get_token(
                "arm",
                client_id=st.client_id,
                budget=budget,
                connect_timeout=connect,
                read_timeout=read,
                progress=st.progress,
            )
        except SignInError as exc:
            errors.append(exc)
            history.extend(a.as_dict() for a in exc.attempts)
            retry = exc.kind == "identity-not-found" and attached is not False and waits
            if retry and st.deadline.sleep(waits[0]):
                waits.pop(0)
                continue
            d = diagnose(exc, context=st.context(identity_attached=attached, stage="imds", attempts=history))
            return Check("identity", title, FAIL, str(exc), d)
        except InputError as exc:
            return Check("identity", title, FAIL, str(exc))
        break
    st.token = tok
    history.extend(a.as_dict() for a in tok.attempts)
    tries = len(history)
    took = time.monotonic() - started
    detail = f"{who}: token {tok.redacted} after {tries} attempt(s) in {took:.1f} s"
    failed = [a for a in history if a.get("kind") != "ok"]
    if failed:
        subject: Any = errors[-1] if errors else {"attempts": history}
        d = diagnose(subject, context=st.context(identity_attached=attached, stage="imds", attempts=history))
        kinds = ", ".join(sorted({str(a.get("kind")) for a in failed}))
        return Check("identity", title, WARN, f"{detail}; recovered from: {kinds}", d)
    return Check("identity", title, PASS, detail)


def _aud_ok(aud: str, arm_scope: str) -> bool:
    """An audience ARM accepts: any cloud's (the token says which cloud it is for), or the target's."""
    from mi_helpers.clouds import CLOUDS

    norm = aud.rstrip("/").lower()
    accepted = {a.rstrip("/").lower() for cloud in CLOUDS.values() for a in cloud.arm_audiences}
    return norm in accepted or norm == arm_scope.removesuffix("/.default").rstrip("/").lower()


def _check_arm_token(st: _State) -> Check:
    title = "Token is for Azure Resource Manager"
    aud = str(st.token.claims.get("aud") or "")
    if _aud_ok(aud, st.target.arm_scope):
        return Check("arm-token", title, PASS, f"aud={aud}")
    d = diagnosis_for(
        "arm-wrong-audience", context=st.context(), evidence={"server_text": f"token aud={aud}"}
    )
    return Check("arm-token", title, FAIL, f"aud={aud!r} is not an ARM audience", d)


def _check_claims(st: _State) -> Check:
    title = "Token claims are sane (aud, exp, tid, oid)"
    c = st.token.claims
    problems = [f"no {k}" for k in ("aud", "tid", "oid") if not c.get(k)]
    exp = c.get("exp")
    now = time.time()
    if not isinstance(exp, (int, float)):
        problems.append("no exp")
    elif exp <= now:
        d = diagnosis_for("arm-token-expired", context=st.context(), evidence={"server_text": f"exp={exp}"})
        return Check("token-claims", title, FAIL, f"expired {int(now - exp)} s ago (exp={exp})", d)
    elif exp - now < 300:
        problems.append(f"expires in {int(exp - now)} s (< 5 min)")
    for k in ("tid", "oid"):
        if c.get(k):
            try:
                validate_guid(c[k], k)
            except InputError:
                problems.append(f"{k} is not a GUID")
    if problems:
        return Check("token-claims", title, WARN, "; ".join(problems))
    return Check(
        "token-claims",
        title,
        PASS,
        f"tid={c['tid']}, oid={c['oid']}, expires in {int(exp - now)} s",
    )


def _coordinates(st: _State) -> str | None:
    """Fill subscription / resource group / VM name from instance metadata; an error text on failure."""
    if st.subscription_id and st.resource_group and st.vm_name:
        return None
    from mi_helpers.arm import instance_metadata

    try:
        md = instance_metadata(timeout=st.deadline.timeouts())
    except Exception as exc:
        return (
            f"instance metadata unavailable ({type(exc).__name__}); "
            "pass subscription_id, resource_group and vm_name"
        )
    st.subscription_id = st.subscription_id or md.subscription_id
    st.resource_group = st.resource_group or md.resource_group
    st.vm_name = st.vm_name or md.name
    return None


def _role_assignments_from_world(st: _State) -> list[dict[str, Any]] | None:
    return list(st.world.get("role_assignments", [])) if st.world else None


def _arm_status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


@dataclass
class _ArmOutcome:
    """An ARM call after the doctor's bounded retries: the value, or the last error, and the history."""

    value: Any = None
    error: BaseException | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


def _arm_call(st: _State, what: str, call: Callable[[float, float], Any]) -> _ArmOutcome:
    """Run `call(connect, read)` retrying what the field says may pass: 403 while a role propagates, 429 after
    Retry-After, 5xx; each try within what is left of the budget."""
    out = _ArmOutcome()
    role_waits = [0.5, 1.0]
    while True:
        connect, read = st.deadline.timeouts()
        st.say(what)
        started = time.monotonic()
        try:
            out.value = call(connect, read)
        except Exception as exc:
            status, seconds = _arm_status(exc), retry_after(exc)
            when = round(started - st.deadline.start, 3)
            out.history.append({"status": status, "time": when, "retry_after": seconds})
            out.errors.append(exc)
            wait = None
            if status == 403 and role_waits and _arm_context(st, out).role_exists() is not False:
                wait = role_waits.pop(0)
            elif status == 429 and len(out.history) < 4:
                wait = seconds if seconds is not None else 1.0
            elif status is not None and 500 <= status < 600 and len(out.history) < 3:
                wait = 1.0
            if wait is not None and st.deadline.sleep(wait):
                continue
            out.error = exc
            return out
        if out.errors:
            out.history.append({"status": 200, "time": round(time.monotonic() - st.deadline.start, 3)})
        return out


def _arm_context(st: _State, out: _ArmOutcome) -> DiagnosisContext:
    return st.context(stage="arm", attempts=out.history, role_assignments=_role_assignments_from_world(st))


def _check_vm(st: _State) -> Check:
    from mi_helpers.arm import compute_client

    title = "VM readable in ARM"
    problem = _coordinates(st)
    if problem:
        return Check("vm-readable", title, FAIL, problem)
    sub, rg, name = str(st.subscription_id), str(st.resource_group), str(st.vm_name)
    st.vm_id = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"
    cred = _StaticTokenCredential(st.token)

    def read_vm(connect: float, read: float) -> Any:
        kw = {"retry_total": 0, "connection_timeout": connect, "read_timeout": read}
        with compute_client(sub, credential=cred, **kw) as client:
            return client.virtual_machines.get(rg, name)

    out = _arm_call(st, f"reading VM {name}", read_vm)
    if out.error is not None:
        d = diagnose(out.error, context=_arm_context(st, out))
        return Check("vm-readable", title, FAIL, f"{sub}/{rg}/{name}: {_first_line(out.error)}", d)
    st.vm = out.value
    detail = f"{name} in {rg} ({getattr(st.vm, 'location', '?')})"
    if out.errors:
        d = diagnose(out.errors[-1], context=_arm_context(st, out))
        statuses = ", ".join(str(h["status"]) for h in out.history[:-1])
        return Check("vm-readable", title, WARN, f"{detail}; succeeded after {statuses}", d)
    return Check("vm-readable", title, PASS, detail)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__)[:300]


def _check_principal(st: _State) -> Check:
    title = "Token principal is the VM's identity"
    oid = st.token.principal_id
    mirid = str(st.token.mi_resource_id or "")
    identity = getattr(st.vm, "identity", None)
    system_pid = getattr(identity, "principal_id", None) if identity is not None else None
    uamis = getattr(identity, "user_assigned_identities", None) or {}
    is_uami_token = "/userassignedidentities/" in mirid.lower()
    if st.client_id is None and is_uami_token:
        name = mirid.rstrip("/").rsplit("/", 1)[-1]
        d = diagnosis_for(
            "user-assigned-selector-required",
            context=st.context(),
            evidence={
                "server_text": f"token xms_mirid names user-assigned identity {name}; no client_id given"
            },
        )
        return Check(
            "principal-matches",
            title,
            WARN,
            f"no system-assigned identity: IMDS answered a 'system' request with the only user-assigned "
            f"identity {name!r} (oid {oid}); a second one would break this — pass client_id",
            d,
        )
    if is_uami_token:
        match = next(
            (v for k, v in uamis.items() if k.rstrip("/").lower() == mirid.rstrip("/").lower()), None
        )
        expected = getattr(match, "principal_id", None) if match is not None else None
        label = "user-assigned " + mirid.rstrip("/").rsplit("/", 1)[-1]
    else:
        expected, label = system_pid, "system-assigned"
    if oid and expected and oid.lower() == expected.lower():
        return Check("principal-matches", title, PASS, f"oid {oid} is the VM's {label} identity")
    d = diagnosis_for(
        "wrong-identity",
        context=st.context(),
        evidence={"server_text": f"token oid {oid}; VM {label} principalId {expected}"},
    )
    return Check("principal-matches", title, FAIL, f"token oid {oid} ≠ VM {label} principalId {expected}", d)


def _check_roles(st: _State) -> Check:
    from mi_helpers.arm import authorization_client, role_name

    title = "Role assignment covers the VM"
    oid = st.token.principal_id
    sub, scope = str(st.subscription_id), str(st.vm_id)
    cred = _StaticTokenCredential(st.token)

    def list_roles(connect: float, read: float) -> list[Any]:
        kw = {"retry_total": 0, "connection_timeout": connect, "read_timeout": read}
        with authorization_client(sub, credential=cred, **kw) as client:
            return list(client.role_assignments.list_for_scope(scope, filter=f"principalId eq '{oid}'"))

    out = _arm_call(st, "listing role assignments", list_roles)
    if out.error is not None:
        if (
            _arm_status(out.error) == 403
        ):  # listing needs roleAssignments/read, which Reader has; others may not
            return Check(
                "role-assignments",
                title,
                WARN,
                f"could not list role assignments ({_first_line(out.error)}); the VM itself was readable",
            )
        d = diagnose(out.error, context=_arm_context(st, out))
        return Check("role-assignments", title, FAIL, f"listing failed: {_first_line(out.error)}", d)
    found = []
    for ra in out.value:
        ra_scope = str(getattr(ra, "scope", "") or "")
        if str(getattr(ra, "principal_id", "")).lower() == str(oid).lower() and scope_covers(ra_scope, scope):
            found.append(f"{role_name(str(getattr(ra, 'role_definition_id', '') or ''))} at {ra_scope}")
    if not found:
        return Check(
            "role-assignments",
            title,
            WARN,
            f"no direct role assignment for {oid} at or above the VM (access comes from elsewhere, "
            "e.g. a group)",
        )
    if out.errors:
        d = diagnose(out.errors[-1], context=_arm_context(st, out))
        statuses = ", ".join(str(h["status"]) for h in out.history[:-1])
        return Check("role-assignments", title, WARN, f"{'; '.join(found)}; succeeded after {statuses}", d)
    return Check("role-assignments", title, PASS, "; ".join(found))


_CHECKS: list[tuple[str, str, Callable[[_State], Check], tuple[str, ...]]] = [
    ("target", "Target: where requests go", _check_target, ()),
    ("environment", "Environment: settings that change sign-in", _check_environment, ()),
    ("imds-reachable", "IMDS reachable", _check_imds, ("target",)),
    ("identity", "Identity: IMDS issues a token", _check_identity, ("imds-reachable",)),
    ("arm-token", "Token is for Azure Resource Manager", _check_arm_token, ("identity",)),
    ("token-claims", "Token claims are sane (aud, exp, tid, oid)", _check_claims, ("identity",)),
    ("vm-readable", "VM readable in ARM", _check_vm, ("arm-token",)),
    ("principal-matches", "Token principal is the VM's identity", _check_principal, ("vm-readable",)),
    ("role-assignments", "Role assignment covers the VM", _check_roles, ("vm-readable",)),
]


# ------------------------------------------------------------------------------------------- scenario run


def _validate_scenario_name(scenario: object) -> str:
    from mi_helpers.validate import validate_scenario

    try:
        from mi_helpers.emulator import SCENARIOS
    except ImportError as exc:  # pragma: no cover - the emulator ships with the package
        raise InputError(
            "scenario", "the local emulator is not available in this installation", scenario
        ) from exc
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
    from mi_helpers.targeting import reset_target, use_emulator

    with restored_environ():
        previous, chosen_before = _previous_emulator()
        prev_scenario = previous.scenario if previous is not None else None
        prev_params = dict(previous.params or {}) if previous is not None else {}
        run_params = dict(DOCTOR_SCENARIO_PARAMS.get(name, {})) if params is None else dict(params)
        try:
            control = use_emulator(name, **run_params)
            _forget_cached_credentials()
            yield _simulate_load(name, control)
        finally:
            _forget_cached_credentials()
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
) -> DoctorReport:
    """Run the managed-identity checklist within `budget` seconds and return a `DoctorReport`.

    `scenario` runs it against the embedded emulator in that scenario (started for the run, previous
    state restored afterwards); `params` overrides the scenario's parameters (default: the scenario's own,
    except `DOCTOR_SCENARIO_PARAMS`). `client_id` selects a user-assigned identity; `vm_name`,
    `resource_group`, `subscription_id` default to the VM's instance metadata. `progress` prints each step
    to stderr.
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
    deadline = _Deadline(budget - (_TEARDOWN if scenario is not None else 0.05))
    st = _State(deadline, client_id, vm_name, resource_group, subscription_id, progress)
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


def _setup_failed(st: _State, name: str, exc: BaseException) -> list[Check]:
    """Checks for a scenario run whose emulator could not be switched (or restored)."""
    if len(st.checks) == len(_CHECKS):  # the run completed; only restoring failed
        warnings.warn(f"mi-helpers doctor: restoring the emulator failed: {_first_line(exc)}", stacklevel=3)
        return list(st.checks)
    title = _CHECKS[0][1]
    detail = f"could not switch the emulator to scenario {name!r}: {_first_line(exc)}"
    checks = [Check("target", title, FAIL, detail, diagnose(exc, context=st.context()))]
    return checks + [Check(cid, t, SKIP, "skipped: needs target") for cid, t, _, _ in _CHECKS[1:]]


def _run_checks(st: _State) -> list[Check]:
    for check_id, title, fn, needs in _CHECKS:
        missing = [n for n in needs if not st.passed(n)]
        if missing:
            st.checks.append(Check(check_id, title, SKIP, f"skipped: needs {', '.join(missing)}"))
            continue
        if st.deadline.left() <= 0.2:
            used = f"{st.deadline.elapsed():.1f} s"
            st.checks.append(Check(check_id, title, SKIP, f"skipped: the time budget is used up ({used})"))
            continue
        st.say(title)
        try:
            result = fn(st)
        except InputError as exc:
            result = Check(check_id, title, FAIL, str(exc))
        except Exception as exc:  # an unexpected failure still becomes a diagnosed line, never a traceback
            result = Check(check_id, title, FAIL, _first_line(exc), diagnose(exc, context=st.context()))
        st.checks.append(replace(result, title=title))
    return st.checks


def _report(st: _State, checks: list[Check], scenario: str | None, budget: float) -> DoctorReport:
    name = getattr(st.target, "name", None) or "unknown"
    ok = bool(checks) and all(c.status == PASS for c in checks)
    return DoctorReport(name, scenario, ok, st.deadline.elapsed(), tuple(checks), budget)
