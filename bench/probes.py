"""Single measurements, each run by ``bench/run.py`` in a fresh child process.

``python probes.py NAME [ARGS]``.

Every probe prints one JSON object on its last stdout line. Probes that need the emulator start it in
their own process (the embedded emulator, as a notebook does) unless the environment already points at a
running one (``MI_HELPERS_EMULATOR_ADMIN`` …), which the cold-start probes use so that starting the emulator
is not counted. Loopback only.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import time
from typing import Any


def _arm_scope() -> str:
    """``constants.Arm.SCOPE``, imported late: the ``import`` probe times ``import mi_helpers`` itself."""
    from mi_helpers.constants import Arm

    return Arm.SCOPE


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


def _quiet() -> None:
    # The SDK logs each failed try as a WARNING; the figures are what matters here.
    for name in ("azure", "msal"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _helpers_in(scenario: str, **params: Any) -> Any:
    """Switch to the embedded emulator in ``scenario``; the stack is imported before any clock starts
    (the raw-SDK probes import azure.identity before theirs too), so only the failure path is timed."""
    import azure.identity  # noqa: F401
    import requests  # noqa: F401

    import mi_helpers
    import mi_helpers.checklist
    import mi_helpers.diagnosis
    import mi_helpers.identity

    return mi_helpers.use_emulator(scenario, **params)


def _embedded_env(scenario: str, **params: Any) -> Any:
    """An in-process emulator whose client variables are exported, for the raw SDK probes."""
    from mi_helpers.emulator import Emulator

    emu = Emulator(scenario=scenario, params=params or None).start()
    os.environ.update(emu.environment())
    return emu


# ------------------------------------------------------------------------------------------ failure paths


def diag(scenario: str) -> None:
    """mi_helpers' diagnostic entry point (``doctor()``, default budget) in ``scenario``: seconds to its
    report."""
    import mi_helpers

    _quiet()
    _helpers_in(scenario)
    t0 = time.monotonic()
    rep = mi_helpers.doctor()
    took = time.monotonic() - t0
    emit({"seconds": took, "diagnosis_ids": rep.diagnosis_ids, "ok": rep.ok})


def signin_fail(scenario: str) -> None:
    """mi_helpers' ``get_token`` with default settings in ``scenario``: time to the first classified attempt
    (what the progress display reports) and to the ``SignInError``, plus its diagnosis."""
    import mi_helpers
    from mi_helpers.identity import SignInError

    _quiet()
    _helpers_in(scenario)
    t0 = time.monotonic()
    first: list[float] = []

    def progress(ev: Any) -> None:
        if ev.kind in ("result", "failed") and not first:
            first.append(time.monotonic() - t0)

    try:
        mi_helpers.get_token("arm", progress=progress)
    except SignInError as exc:
        took = time.monotonic() - t0
        d = mi_helpers.diagnose(exc)
        emit(
            {
                "seconds": took,
                "first_report_s": first[0] if first else None,
                "diagnosis": d.id,
                "attempts": len(exc.attempts),
                "reason": exc.reason,
            }
        )
        return
    emit({"seconds": time.monotonic() - t0, "first_report_s": None, "diagnosis": None, "unexpected": "token"})


def sdk_fail(scenario: str) -> None:
    """The raw ``ManagedIdentityCredential().get_token`` with default settings: seconds until it raises.

    Under ``imds-hang`` this blocks for minutes; ``run.py`` caps it with a subprocess timeout.
    """
    scope = _arm_scope()
    _quiet()
    _embedded_env(scenario)
    from azure.identity import ManagedIdentityCredential

    import mi_helpers

    t0 = time.monotonic()
    try:
        ManagedIdentityCredential().get_token(scope)
    except Exception as exc:
        took = time.monotonic() - t0
        emit({"seconds": took, "error": type(exc).__name__, "diagnosis": mi_helpers.diagnose(exc).id})
        return
    emit({"seconds": time.monotonic() - t0, "error": None})


# ------------------------------------------------------------------------------------------ 410 recovery


def recover_410(outage: float, budget: str = "default") -> None:
    """``imds-updating`` with t=outage: seconds until mi_helpers' ``get_token`` succeeds (or fails)."""
    import mi_helpers
    from mi_helpers.identity import SignInError

    _quiet()
    emu = _helpers_in("imds-updating", t=outage)
    kw: dict[str, Any] = {} if budget == "default" else {"budget": float(budget)}
    t0 = time.monotonic()
    try:
        tok = mi_helpers.get_token("arm", progress=False, **kw)
    except SignInError as exc:
        emit(
            {
                "seconds": None,
                "failed_after_s": time.monotonic() - t0,
                "reason": exc.reason,
                "attempt_times": [round(a.started, 2) for a in exc.attempts],
                "diagnosis": mi_helpers.diagnose(exc).id,
            }
        )
        return
    took = time.monotonic() - t0
    emit(
        {
            "seconds": took,
            "attempt_times": [round(a.started, 2) for a in tok.attempts],
            "requests": sum(1 for e in emu.request_log() if "oauth2/token" in e["path"]),
        }
    )


def sdk_recover_410(outage: float) -> None:
    """The same outage against the raw SDK with default settings (its ImdsRetryPolicy: 0, 5, 10, 20, 40 s)."""
    scope = _arm_scope()
    _quiet()
    emu = _embedded_env("imds-updating", t=outage)
    from azure.identity import ManagedIdentityCredential

    t0 = time.monotonic()
    try:
        ManagedIdentityCredential().get_token(scope)
    except Exception as exc:
        emit({"seconds": None, "failed_after_s": time.monotonic() - t0, "error": type(exc).__name__})
        return
    took = time.monotonic() - t0
    times = [e["time"] for e in emu.request_log() if "oauth2/token" in e["path"]]
    emit({"seconds": took, "requests": len(times)})


# ------------------------------------------------------------------------------------------ token latency


def token_cold(kind: str) -> None:
    """First token in a fresh process; the stack is imported before the clock starts (both kinds).

    ``helpers``: ``mi_helpers.get_token("arm")`` against the emulator named by the environment (started by
    run.py in another process); includes target selection, credential construction and one IMDS round trip.
    ``sdk``: ``ManagedIdentityCredential().get_token(scope)`` against whatever
    ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` names (the static stub or the emulator); construction + round trip.
    """
    scope = _arm_scope()
    import azure.identity  # noqa: F401 - imported before the clock in both kinds

    if kind in ("helpers", "helpers-preimported"):
        import mi_helpers
        import mi_helpers.identity

        if kind == "helpers-preimported":  # what the first call would import lazily, imported up front
            import mi_helpers.emulator.client
            import mi_helpers.environ
            import mi_helpers.targeting

        t0 = time.perf_counter()
        tok = mi_helpers.get_token("arm", progress=False)
        took = time.perf_counter() - t0
        assert tok.attempts[-1].kind == "ok"
    else:
        from azure.identity import ManagedIdentityCredential

        t0 = time.perf_counter()
        ManagedIdentityCredential().get_token(scope)
        took = time.perf_counter() - t0
    emit({"ms": took * 1000})


def token_warm(runs: int = 20, cached_runs: int = 2000) -> None:
    """In a warm process (emulator in another process): a new credential per call, then cached calls."""
    import mi_helpers
    from mi_helpers.identity import clear_credential_cache

    mi_helpers.get_token("arm", progress=False)  # warm-up: imports, target, first connection
    warm = []
    for _ in range(runs):
        clear_credential_cache()
        t0 = time.perf_counter()
        mi_helpers.get_token("arm", progress=False)
        warm.append(time.perf_counter() - t0)
    cached = []
    for _ in range(cached_runs):
        t0 = time.perf_counter()
        mi_helpers.get_token("arm", progress=False)
        cached.append(time.perf_counter() - t0)
    cached_bar = []
    for _ in range(50):  # the default progress=True starts (and joins) a ticker thread per call
        t0 = time.perf_counter()
        mi_helpers.get_token("arm")
        cached_bar.append(time.perf_counter() - t0)
    emit(
        {
            "warm_ms": statistics.median(warm) * 1000,
            "cached_us": statistics.median(cached) * 1e6,
            "cached_progress_us": statistics.median(cached_bar) * 1e6,
        }
    )


def sdk_warm(runs: int = 20, cached_runs: int = 2000) -> None:
    """The raw SDK in a warm process: new credential per call, then a cached call on one credential."""
    scope = _arm_scope()
    from azure.identity import ManagedIdentityCredential

    ManagedIdentityCredential().get_token(scope)
    warm = []
    for _ in range(runs):
        t0 = time.perf_counter()
        ManagedIdentityCredential().get_token(scope)
        warm.append(time.perf_counter() - t0)
    cred = ManagedIdentityCredential()
    cred.get_token(scope)
    cached = []
    for _ in range(cached_runs):
        t0 = time.perf_counter()
        cred.get_token(scope)
        cached.append(time.perf_counter() - t0)
    emit({"warm_ms": statistics.median(warm) * 1000, "cached_us": statistics.median(cached) * 1e6})


def import_time(what: str) -> None:
    t0 = time.perf_counter()
    if what == "helpers":
        import mi_helpers  # noqa: F401
    else:
        import azure.identity
        import azure.mgmt.compute  # noqa: F401
    emit({"seconds": time.perf_counter() - t0})


PROBES = {
    "diag": diag,
    "signin-fail": signin_fail,
    "sdk-fail": sdk_fail,
    "recover-410": lambda t, *b: recover_410(float(t), *b),
    "sdk-recover-410": lambda t: sdk_recover_410(float(t)),
    "token-cold": token_cold,
    "token-warm": lambda: token_warm(),
    "sdk-warm": lambda: sdk_warm(),
    "import": import_time,
}


if __name__ == "__main__":
    name, *args = sys.argv[1:]
    PROBES[name](*args)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown (the embedded emulator's hung handler threads, atexit hooks)
