"""The fault matrix: every emulator scenario × {the helpers' sign-in, doctor, the raw SDK + diagnose()}.

For each cell: the expected outcome (a token, or the expected diagnosis id), no exception other than the
documented one, no wait past the budget, and — read from the emulator's request log — the retries the IMDS
documentation calls for: 5xx retried after at least 1 s with the back-off 0, 2, 6 … s; 410 retried within
its window; 429 retried no sooner than ``Retry-After``; 4xx such as ``Identity not found`` not retried at
all. Budgets, windows and timeouts are small so the whole file runs in well under a minute and a half.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from typing import Any

import pytest
import requests
from support.timing import SLACK

import mi_helpers as mi
from mi_helpers.constants import Arm, Imds
from mi_helpers.emulator import SCENARIOS
from mi_helpers.identity import SignInError, clear_credential_cache

pytestmark = pytest.mark.timeout(60)

BUDGET = 6.0  # get_token budget
TIMEOUT = 0.5  # connect/read timeout per try (helpers and raw SDK)
DOCTOR_BUDGET = 8.0
BACKOFF = 2.0  # the documented delta back-off (get_token's default)
TOL = 0.9  # s of scheduling jitter allowed on a documented wait (the next back-off step is ≥ 1 s away)

# Scenario parameters for this matrix: short windows so retries finish within the budget.
PARAMS: dict[str, dict[str, Any]] = {
    "imds-updating": {"t": 1.5},
    "imds-server-error": {"n": 2},
    "identity-propagating": {"n": 2},
    "role-propagating": {"n": 2},
    "imds-throttled": {"burst": 1, "rate": 1.0, "retry_after": 1},
}

OK = "ok"
# scenario -> (helpers' get_token, raw SDK with retry_total=0 then diagnose(), doctor's diagnosis ids)
EXPECTED: dict[str, tuple[str | set[str], str | set[str], list[str]]] = {
    "healthy": (OK, OK, []),
    "no-identity": ("identity-not-assigned", "identity-not-assigned", ["identity-not-assigned"]),
    # No system identity, one UAMI: IMDS hands out the UAMI's token; doctor warns that it is implicit.
    "user-assigned-only": (OK, OK, ["user-assigned-selector-required"]),
    "multiple-user-assigned": (
        "user-assigned-selector-required",
        "user-assigned-selector-required",
        ["user-assigned-selector-required"],
    ),
    "no-role-assignment": (OK, OK, ["arm-authorization-failed"]),
    "role-propagating": (OK, OK, ["role-propagating"]),
    # A single 400 cannot tell "just assigned" from "never assigned"; doctor knows the world and retries.
    "identity-propagating": ("identity-not-assigned", "identity-not-assigned", ["identity-propagating"]),
    "imds-unreachable": ("imds-unreachable", "imds-unreachable", ["imds-unreachable"]),
    "imds-hang": ("imds-timeout", "imds-timeout", ["imds-timeout"]),
    "imds-updating": (OK, "imds-updating", ["imds-updating"]),
    "imds-throttled": (OK, "imds-throttled", ["imds-throttled"]),
    "imds-server-error": (OK, "imds-server-error", ["imds-server-error"]),
    "foreign-metadata-server": ("non-imds-response", "non-imds-response", ["non-imds-response"]),
    "proxy-intercept": ("proxy-intercepts-imds", "proxy-intercepts-imds", ["proxy-intercepts-imds"]),
    "legacy-extension-endpoint": (
        "legacy-extension-endpoint",
        "legacy-extension-endpoint",
        ["legacy-extension-endpoint"],
    ),
    "expired-token": (OK, OK, ["arm-token-expired"]),
    "arm-throttled": (OK, OK, ["arm-throttled"]),
    "tls-untrusted": (OK, OK, ["tls-untrusted"]),
    # The sync SDK reduces the 403 to "authentication unavailable." (nothing says "unreachable"), so from
    # its exception alone a non-IMDS answer is the honest reading; the helpers saw the 403 and its text.
    "docker-desktop-unreachable": (
        "imds-unreachable",
        {"non-imds-response", "imds-unreachable"},
        ["imds-unreachable"],
    ),
    # The data-plane scenarios leave the sign-in and ARM alone (doctor without --secret-url/--blob-url).
    "kv-access-policy-missing": (OK, OK, []),
    "kv-rbac-missing": (OK, OK, []),
    "storage-data-role-missing": (OK, OK, []),
    "data-role-propagating": (OK, OK, []),
    "storage-wrong-audience": (OK, OK, []),
}


def test_every_scenario_has_expectations() -> None:
    assert set(EXPECTED) == set(SCENARIOS)


def _switch(name: str) -> Any:
    emu = mi.use_emulator(name, **PARAMS.get(name, {}))
    clear_credential_cache()
    emu.clear_log()
    return emu


def _token_requests(emu: Any) -> list[dict[str, Any]]:
    """Token requests that got an answer (a hung request released later is logged with status 0)."""
    return [e for e in emu.request_log() if "oauth2/token" in e["path"] and e["status"]]


def _gaps(entries: list[dict[str, Any]]) -> list[float]:
    """Seconds between consecutive requests, from the log's arrival times (ms resolution).

    The log stamps an entry when the answer is ready; the faults here answer at once, so that is arrival.
    """
    times = [datetime.fromisoformat(e["time"]).timestamp() for e in entries]
    return [round(b - a, 3) for a, b in itertools.pairwise(times)]


def _empty_bucket(emu: Any) -> None:
    """Use up the throttling scenario's burst with one plain request, so the next one gets a 429."""
    with requests.Session() as s:
        s.trust_env = False
        s.get(
            f"{emu.imds_url}{Imds.TOKEN_PATH}",
            params={"api-version": Imds.TOKEN_API_VERSION, "resource": Arm.URL},
            headers={"Metadata": "true"},
            timeout=5,
        )
    emu.clear_log()


def _matches(got: str, want: str | set[str]) -> bool:
    return got in want if isinstance(want, set) else got == want


# ------------------------------------------------------------------------------------ the helpers' sign-in


@pytest.mark.parametrize("name", list(EXPECTED))
def test_helpers_sign_in(hardening_emulator: Any, name: str) -> None:
    want = EXPECTED[name][0]
    emu = _switch(name)
    if name == "imds-throttled":
        _empty_bucket(emu)
    t0 = time.monotonic()
    try:
        tok = mi.get_token(
            "arm", budget=BUDGET, connect_timeout=TIMEOUT, read_timeout=TIMEOUT, progress=False
        )
    except SignInError as exc:  # the one documented failure type; anything else fails the test
        elapsed = time.monotonic() - t0
        got, attempts = mi.diagnose(exc).id, exc.attempts
        assert exc.elapsed <= BUDGET + 0.5
    else:
        elapsed = time.monotonic() - t0
        got, attempts = OK, tok.attempts
        assert tok.claims.get("aud", "").startswith("https://management.")
    assert elapsed <= BUDGET + SLACK, f"{name}: {elapsed:.1f} s for a {BUDGET} s budget"
    assert _matches(got, want), f"{name}: got {got}, want {want}; attempts {[a.kind for a in attempts]}"
    _check_retries(name, emu, attempts)


def _check_retries(name: str, emu: Any, attempts: list[Any]) -> None:
    """What the request log must show for the helpers' sign-in in this scenario."""
    log = _token_requests(emu)
    statuses = [e["status"] for e in log]
    gaps = _gaps(log)
    if name == "imds-server-error":  # n=2: 500, 500, 200; waits max(1 s, 0) then max(1 s, 2 s)
        assert statuses == [500, 500, 200], statuses
        assert 1.0 - 0.05 <= gaps[0] <= 1.0 + TOL, gaps  # "safe to retry after at least 1 second"
        assert BACKOFF * 1 - 0.05 <= gaps[1] <= BACKOFF * 1 + TOL, gaps  # back-off delta·(2^1 − 1)
    elif name == "imds-updating":  # 410 for 1.5 s: tries at 0, 0 and 2 s (back-off 0, then 2 s)
        assert statuses[:-1] == [410] * (len(statuses) - 1) and statuses[-1] == 200, statuses
        assert len(statuses) == 3, statuses
        assert gaps[0] <= TOL, gaps
        assert BACKOFF - 0.05 <= gaps[1] <= BACKOFF + TOL, gaps
    elif name == "imds-throttled":  # 429 with Retry-After: 1, then the refilled bucket lets one through
        assert statuses == [429, 200], statuses
        assert 1.0 - 0.05 <= gaps[0] <= 1.0 + TOL, gaps  # Retry-After honoured, not the 0 s back-off
        assert attempts[0].retry_after == 1.0
    elif name in (
        "no-identity",
        "multiple-user-assigned",
        "identity-propagating",
        "foreign-metadata-server",
        "proxy-intercept",
        "docker-desktop-unreachable",
    ):  # design-time 4xx / not IMDS at all: one request, no retry
        assert len(log) == 1, statuses
        assert len(attempts) == 1 and attempts[0].outcome == "fatal"
    elif name in ("imds-unreachable", "legacy-extension-endpoint"):  # refused: nothing to log, no retry
        assert log == []
        assert len(attempts) == 1 and attempts[0].kind == "connection-refused"
    elif name == "imds-hang":  # read timeouts are retried (back-off 0, 2 s …) until the budget ends
        assert all(a.kind == "timeout" for a in attempts), [a.kind for a in attempts]
        assert len(attempts) >= 2
        starts = [a.started for a in attempts]
        assert starts[1] - starts[0] >= TIMEOUT - 0.05
        assert attempts[-1].outcome == "gave-up"
    else:  # healthy and the ARM-side scenarios: one token request, answered at once
        assert statuses == [200], statuses


# ------------------------------------------------------------------------------------ the raw SDK


@pytest.mark.parametrize("name", list(EXPECTED))
def test_raw_sdk_then_diagnose(hardening_emulator: Any, name: str) -> None:
    from azure.identity import ManagedIdentityCredential

    want = EXPECTED[name][1]
    emu = _switch(name)
    if name == "imds-throttled":
        _empty_bucket(emu)
    cred = ManagedIdentityCredential(retry_total=0, connection_timeout=TIMEOUT, read_timeout=TIMEOUT)
    t0 = time.monotonic()
    try:
        cred.get_token(Arm.SCOPE)
        got = OK
    except Exception as exc:  # whatever the SDK raises, diagnose() must explain it without raising
        d = mi.diagnose(exc)
        got = d.id
        assert d.fix and d.cause
    elapsed = time.monotonic() - t0
    assert elapsed <= 2 * TIMEOUT + SLACK, f"{name}: the bounded SDK took {elapsed:.1f} s"
    assert _matches(got, want), f"{name}: got {got}, want {want}"
    assert len(_token_requests(emu)) <= 1  # retry_total=0: one request at most


# ------------------------------------------------------------------------------------ doctor


@pytest.mark.parametrize("name", list(EXPECTED))
def test_doctor(hardening_emulator: Any, name: str) -> None:
    want = EXPECTED[name][2]
    mi.use_emulator("healthy")
    t0 = time.monotonic()
    rep = mi.doctor(
        scenario=name, budget=DOCTOR_BUDGET, params=PARAMS.get(name) if name != "imds-throttled" else None
    )
    elapsed = time.monotonic() - t0
    assert elapsed <= DOCTOR_BUDGET + SLACK, f"{name}: doctor took {elapsed:.1f} s"
    assert rep.diagnosis_ids == want, (name, [(c.id, c.status, c.detail[:80]) for c in rep.checks])
    assert rep.ok == (want == [])
    assert {c.id for c in rep.checks} >= {"target", "imds-reachable", "identity"}
    # doctor puts the process back as it was: the emulator runs the previous scenario again
    assert hardening_emulator.scenario == "healthy"
