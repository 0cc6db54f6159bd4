"""The nine checks of the checklist, in :data:`CHECKS` order, and what they share while they run.

Each check takes the run's :class:`State` (what earlier checks learned, the shared deadline) and returns an
:class:`Outcome`; :data:`CHECKS` gives each its id, its title (written only there) and the checks it needs.
Every network step gets explicit connect/read timeouts cut to what is left of the deadline.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from mi_helpers.checklist.report import FAIL, PASS, WARN, Check, CheckStatus
from mi_helpers.constants import Arm, Imds
from mi_helpers.diagnosis import (
    Diagnosis,
    DiagnosisContext,
    diagnose,
    diagnosis_for,
    environment_traps,
    scope_covers,
)
from mi_helpers.redaction import redact, redact_secret
from mi_helpers.retry import retry_after
from mi_helpers.validate import InputError, validate_guid
from mi_helpers.world_view import WorldView

__all__ = ["CHECKS", "CheckSpec", "Deadline", "Outcome", "State", "first_line"]

_CONNECT, _READ = 2.0, 3.0  # per network step, cut to the time left
# IMDS answers the header-less probe at once (no Entra round trip), so a silent IMDS is named sooner.
_PROBE_READ = 2.0
_ARM_RESERVE = 3.0  # seconds kept for the ARM checks while IMDS retries


class Outcome(NamedTuple):
    """What one check found: its status, one line of detail, and the diagnosis when it failed or warned."""

    status: CheckStatus
    detail: str
    diagnosis: Diagnosis | None = None


# ---------------------------------------------------------------------------------------------- plumbing


class Deadline:
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
class State:
    """What the checks learn and pass on."""

    deadline: Deadline
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
    data_url: str | None = None  # the optional data-plane check: a secret or blob URL to read
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


def _check_target(st: State) -> Outcome:
    from mi_helpers.targeting import detect, target

    try:
        st.target = target()
    except InputError as exc:
        return Outcome(FAIL, str(exc))
    if st.target.name == "azure" and not detect().is_azure:
        st.ctx_target = "off-azure"
        return Outcome(
            WARN,
            f"azure (forced), but this machine does not look like an Azure VM: {st.target.reason}",
        )
    st.ctx_target = st.target.name
    if st.target.is_emulator:
        st.world = _world_of(st.target)
    note = f"; {st.note}" if st.note else ""
    return Outcome(PASS, f"{st.target.name}: {st.target.reason}{note}")


def _world_of(tgt: Any) -> dict[str, Any] | None:
    """The emulator's world as an administrator sees it (the portal's view), or None."""
    try:
        world = tgt.emulator.world_dict()
    except Exception:
        return None
    return world if isinstance(world, dict) else None


def _check_environment(st: State) -> Outcome:
    # On Azure the helpers add the IMDS address to NO_PROXY for their own calls: judge the user's settings.
    from mi_helpers.targeting import original_environ

    on_azure = getattr(st.target, "name", None) == "azure"
    traps = environment_traps(original_environ() if on_azure else None)
    warns = [t for t in traps if t.severity == "warn"]
    infos = [t for t in traps if t.severity != "warn"]
    if not warns:
        detail = "no traps" + (f" (noted: {', '.join(t.id for t in infos)})" if infos else "")
        return Outcome(PASS, detail)
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
    return Outcome(WARN, detail, diag)


def _check_imds(st: State) -> Outcome:
    import requests

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
        return Outcome(FAIL, f"no HTTP answer from {url}: {type(exc).__name__}", d)
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("error" in body or "access_token" in body):
        what = body.get("error_description") or body.get("error") or "a token"
        _coordinates(st)  # the VM's names, so later diagnoses show real commands (best effort)
        return Outcome(PASS, f"IMDS answered {resp.status_code} ({what}) at {url}")
    d = diagnose(resp, context=ctx)
    ctype = resp.headers.get("Content-Type", "?")
    return Outcome(FAIL, f"{resp.status_code} {ctype} is not an IMDS answer", d)


def _forget_cached_credentials() -> None:
    """Drop mi_helpers.identity's cached credentials: a cached token would hide what IMDS says right now."""
    from mi_helpers.identity import clear_credential_cache

    clear_credential_cache()


def _identity_attached(st: State) -> bool | None:
    """From the emulator's world: is the requested identity on the VM? None when unknown (real Azure)."""
    return WorldView(st.world).identity_attached(st.client_id) if st.world else None


def _check_identity(st: State) -> Outcome:
    from mi_helpers.identity import SignInError, get_token

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
            return Outcome(FAIL, str(exc), d)
        except InputError as exc:
            return Outcome(FAIL, str(exc))
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
        return Outcome(WARN, f"{detail}; recovered from: {kinds}", d)
    return Outcome(PASS, detail)


def _aud_ok(aud: str, arm_scope: str) -> bool:
    """An audience ARM accepts: any cloud's (the token says which cloud it is for), or the target's."""
    from mi_helpers.clouds import CLOUDS

    norm = aud.rstrip("/").lower()
    accepted = {a.rstrip("/").lower() for cloud in CLOUDS.values() for a in cloud.arm_audiences}
    return norm in accepted or norm == arm_scope.removesuffix("/.default").rstrip("/").lower()


def _check_arm_token(st: State) -> Outcome:
    aud = str(st.token.claims.get("aud") or "")
    if _aud_ok(aud, st.target.arm_scope):
        return Outcome(PASS, f"aud={aud}")
    d = diagnosis_for(
        "arm-wrong-audience", context=st.context(), evidence={"server_text": f"token aud={aud}"}
    )
    return Outcome(FAIL, f"aud={aud!r} is not an ARM audience", d)


def _check_claims(st: State) -> Outcome:
    c = st.token.claims
    problems = [f"no {k}" for k in ("aud", "tid", "oid") if not c.get(k)]
    exp = c.get("exp")
    now = time.time()
    if not isinstance(exp, (int, float)):
        problems.append("no exp")
    elif exp <= now:
        d = diagnosis_for("arm-token-expired", context=st.context(), evidence={"server_text": f"exp={exp}"})
        return Outcome(FAIL, f"expired {int(now - exp)} s ago (exp={exp})", d)
    elif exp - now < 300:
        problems.append(f"expires in {int(exp - now)} s (< 5 min)")
    for k in ("tid", "oid"):
        if c.get(k):
            try:
                validate_guid(c[k], k)
            except InputError:
                problems.append(f"{k} is not a GUID")
    if problems:
        return Outcome(WARN, "; ".join(problems))
    return Outcome(
        PASS,
        f"tid={c['tid']}, oid={c['oid']}, expires in {int(exp - now)} s",
    )


def _coordinates(st: State) -> str | None:
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


def _role_assignments_from_world(st: State) -> list[dict[str, Any]] | None:
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


def _arm_call(st: State, what: str, call: Callable[[float, float], Any]) -> _ArmOutcome:
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


def _arm_context(st: State, out: _ArmOutcome) -> DiagnosisContext:
    return st.context(stage="arm", attempts=out.history, role_assignments=_role_assignments_from_world(st))


def _check_vm(st: State) -> Outcome:
    from mi_helpers.arm import compute_client

    problem = _coordinates(st)
    if problem:
        return Outcome(FAIL, problem)
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
        return Outcome(FAIL, f"{sub}/{rg}/{name}: {first_line(out.error)}", d)
    st.vm = out.value
    detail = f"{name} in {rg} ({getattr(st.vm, 'location', '?')})"
    if out.errors:
        d = diagnose(out.errors[-1], context=_arm_context(st, out))
        statuses = ", ".join(str(h["status"]) for h in out.history[:-1])
        return Outcome(WARN, f"{detail}; succeeded after {statuses}", d)
    return Outcome(PASS, detail)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__)[:300]


def _check_principal(st: State) -> Outcome:
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
        return Outcome(
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
        return Outcome(PASS, f"oid {oid} is the VM's {label} identity")
    d = diagnosis_for(
        "wrong-identity",
        context=st.context(),
        evidence={"server_text": f"token oid {oid}; VM {label} principalId {expected}"},
    )
    return Outcome(FAIL, f"token oid {oid} ≠ VM {label} principalId {expected}", d)


def _check_roles(st: State) -> Outcome:
    from mi_helpers.arm import authorization_client, role_name

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
            return Outcome(
                WARN,
                f"could not list role assignments ({first_line(out.error)}); the VM itself was readable",
            )
        d = diagnose(out.error, context=_arm_context(st, out))
        return Outcome(FAIL, f"listing failed: {first_line(out.error)}", d)
    found = []
    for ra in out.value:
        ra_scope = str(getattr(ra, "scope", "") or "")
        if str(getattr(ra, "principal_id", "")).lower() == str(oid).lower() and scope_covers(ra_scope, scope):
            found.append(f"{role_name(str(getattr(ra, 'role_definition_id', '') or ''))} at {ra_scope}")
    if not found:
        return Outcome(
            WARN,
            f"no direct role assignment for {oid} at or above the VM (access comes from elsewhere, "
            "e.g. a group)",
        )
    if out.errors:
        d = diagnose(out.errors[-1], context=_arm_context(st, out))
        statuses = ", ".join(str(h["status"]) for h in out.history[:-1])
        return Outcome(WARN, f"{'; '.join(found)}; succeeded after {statuses}", d)
    return Outcome(PASS, "; ".join(found))


def _check_data_read(st: State) -> Outcome:
    """Read the secret or blob at ``st.data_url`` with the identity (the optional data-plane check)."""
    from mi_helpers.dataplane import SecretValue, read_data_url
    from mi_helpers.identity import shared_credential

    try:
        got = read_data_url(str(st.data_url), credential=shared_credential(st.client_id))
    except InputError:
        raise
    except Exception as exc:
        return Outcome(FAIL, f"could not read it: {first_line(exc)}", diagnose(exc, context=st.context()))
    if isinstance(got, SecretValue):
        return Outcome(PASS, f"read secret {got.name}: {redact_secret(got.value)}")
    return Outcome(PASS, f"read blob {got.container}/{got.name} ({got.size} bytes)")


class CheckSpec(NamedTuple):
    """One line of the checklist: its id, its title, the check, and the ids it needs to have passed."""

    id: str
    title: str
    check: Callable[[State], Outcome]
    needs: tuple[str, ...]


#: The checklist, in order: (id, title, check, the ids it needs to have passed). Each title is written here
#: only; a check returns just its outcome.
CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("target", "Target: where requests go", _check_target, ()),
    CheckSpec("environment", "Environment: settings that change sign-in", _check_environment, ()),
    CheckSpec("imds-reachable", "IMDS reachable", _check_imds, ("target",)),
    CheckSpec("identity", "Identity: IMDS issues a token", _check_identity, ("imds-reachable",)),
    CheckSpec("arm-token", "Token is for Azure Resource Manager", _check_arm_token, ("identity",)),
    CheckSpec("token-claims", "Token claims are sane (aud, exp, tid, oid)", _check_claims, ("identity",)),
    CheckSpec("vm-readable", "VM readable in ARM", _check_vm, ("arm-token",)),
    CheckSpec(
        "principal-matches", "Token principal is the VM's identity", _check_principal, ("vm-readable",)
    ),
    CheckSpec("role-assignments", "Role assignment covers the VM", _check_roles, ("vm-readable",)),
)
#: The optional last line, when a data-plane URL is given (``doctor(data_url=…)``, ``--data-url``).
DATA_CHECK = CheckSpec("data-read", "Identity can read the secret or blob", _check_data_read, ("identity",))
