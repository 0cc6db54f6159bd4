"""The retry decision as a pure function (no HTTP, no clock), and the one table of attempt kinds."""

from __future__ import annotations

import typing

import pytest

from mi_helpers.attempts import KINDS, AttemptKind, RetryPolicy, decide
from mi_helpers.diagnosis.catalogue import CATALOGUE

POLICY = RetryPolicy()  # the documented defaults: delta 2 s, 5 retries, 410 polled every 2 s for 70 s


def _decide(kind: AttemptKind, **kw: typing.Any) -> tuple[float, str | None]:
    args: dict[str, typing.Any] = {
        "retry_after_s": None,
        "retries": 0,
        "elapsed": 0.0,
        "budget": 20.0,
        "first_410": None,
        "policy": POLICY,
    }
    args.update(kw)
    step = decide(kind, **args)
    return step.delay, step.give_up


def test_every_kind_is_in_the_table() -> None:
    assert set(KINDS) == set(typing.get_args(AttemptKind))
    for kind, info in KINDS.items():
        assert info.text, kind
        assert info.diagnosis_id is None or info.diagnosis_id in CATALOGUE, kind


@pytest.mark.parametrize(("retries", "delay"), [(0, 0.0), (1, 2.0), (2, 6.0), (3, 14.0), (4, 30.0)])
def test_timeouts_back_off_exponentially(retries: int, delay: float) -> None:
    assert _decide("timeout", retries=retries, budget=100) == (delay, None)


def test_retries_run_out_after_the_documented_count() -> None:
    assert _decide("timeout", retries=5, budget=1000)[1] == "retries-exhausted"


def test_server_errors_wait_at_least_a_second() -> None:
    assert _decide("server-error", retries=0) == (1.0, None)  # back-off says 0 s, IMDS says ≥ 1 s
    assert _decide("server-error", retries=1) == (2.0, None)


@pytest.mark.parametrize("kind", ["throttled", "throttle-replay", "server-error"])
def test_retry_after_is_honoured_where_the_server_sends_it(kind: AttemptKind) -> None:
    assert _decide(kind, retry_after_s=7.0, budget=60) == (7.0, None)


def test_retry_after_does_not_stretch_other_waits() -> None:
    assert _decide("timeout", retry_after_s=7.0) == (0.0, None)


def test_410_is_polled_within_its_window_whatever_the_retry_count() -> None:
    assert _decide("imds-updating", retries=4, first_410=0.0, elapsed=10, budget=100) == (2.0, None)
    assert _decide("imds-updating", retries=9, first_410=0.0, elapsed=60, budget=100) == (2.0, None)
    # past the 70 s window (plus 5 s of grace) IMDS is not coming back from an update
    assert (
        _decide("imds-updating", retries=9, first_410=0.0, elapsed=74, budget=100)[1] == "retries-exhausted"
    )


def test_a_retry_that_would_pass_the_budget_is_not_started() -> None:
    assert _decide("timeout", retries=2, elapsed=10, budget=15) == (6.0, "budget-exhausted")
    assert _decide("timeout", retries=2, elapsed=8, budget=15) == (6.0, None)


@pytest.mark.parametrize("kind", [k for k, info in KINDS.items() if not info.retryable])
def test_what_retrying_cannot_fix_stops_at_once(kind: AttemptKind) -> None:
    assert _decide(kind, budget=1000)[1] == "not-retryable"


def test_a_policy_with_other_numbers() -> None:
    fast = RetryPolicy(backoff=0.05, max_retries=1)
    assert decide("timeout", retry_after_s=None, retries=1, elapsed=0, budget=9, first_410=None, policy=fast)
    step = decide("timeout", retry_after_s=None, retries=0, elapsed=0, budget=9, first_410=None, policy=fast)
    assert (step.delay, step.give_up) == (0.0, None)
