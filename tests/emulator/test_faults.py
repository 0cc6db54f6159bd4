"""The fault engine on a manual clock: windows of n requests or t seconds, buckets, targets, release."""

from __future__ import annotations

import threading

import pytest
from support.emulator import ManualClock

from mi_helpers.emulator.faults import Fault, FaultEngine, TokenBucket, Window


def test_count_window_fires_n_times_from_the_first_request() -> None:
    w = Window(n=2)
    assert [w.take(now) for now in (10.0, 500.0, 501.0, 502.0)] == [True, True, False, False]
    assert w.first == 10.0 and w.count == 2


def test_time_window_opens_at_the_first_request_not_before() -> None:
    w = Window(t=1.0)
    assert w.first is None  # nothing started when the scenario was switched on
    assert w.take(100.0) is True
    assert w.take(100.999) is True
    assert w.take(101.0) is False  # t seconds after the first request, the window is over


def test_window_ends_with_whichever_bound_comes_first() -> None:
    by_count = Window(n=1, t=60.0)
    assert [by_count.take(t) for t in (0.0, 1.0)] == [True, False]
    by_time = Window(n=100, t=0.5)
    assert [by_time.take(t) for t in (0.0, 0.4, 0.6)] == [True, True, False]


def test_unbounded_window_always_fires() -> None:
    w = Window()
    assert all(w.take(float(t)) for t in range(1000))


def test_token_bucket_bursts_then_refills_at_its_rate() -> None:
    b = TokenBucket(capacity=3, rate=2.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.remaining() == 0
    assert b.take(0.4) is False  # 0.8 of a token
    assert b.take(0.5) is True  # one whole token after 0.5 s at 2/s
    assert b.take(100.0) and b.remaining() == 2  # never more than its capacity


def test_engine_reads_its_clock_and_keeps_targets_apart() -> None:
    clock = ManualClock()
    engine = FaultEngine(
        [Fault("imds-token", "reply", 410, window=Window(t=3.0), label="updating")], clock=clock.monotonic
    )
    assert engine.check("arm") is None  # another target neither fires nor opens the window
    assert engine.check("imds") is None
    clock.advance(100)
    hit = engine.check("imds-token")
    assert hit is not None and hit.label == "updating"
    clock.advance(2.9)
    assert engine.check("imds-token") is not None
    clock.advance(0.2)
    assert engine.check("imds-token") is None
    assert engine.describe()[0]["fired"] == 2


def test_engine_throttle_and_latency_faults() -> None:
    clock = ManualClock()
    engine = FaultEngine(
        [
            Fault("arm", "latency", seconds=0.001, window=Window(n=1), label="slow"),
            Fault("arm", "throttle", 429, bucket=TokenBucket(1, 0.0), label="throttled"),
        ],
        clock=clock.monotonic,
    )
    assert engine.check("arm") is None  # the bucket's one token; the latency fault only delays
    hit = engine.check("arm")
    assert hit is not None and hit.label == "throttled"


def test_replace_releases_hung_requests_and_describe_reports_windows() -> None:
    engine = FaultEngine([Fault("imds", "hang", label="hang")], clock=ManualClock().monotonic)
    assert engine.describe()[0]["started"] is None
    released = engine.released
    waiter = threading.Thread(target=released.wait, daemon=True)
    waiter.start()
    assert engine.check("imds") is not None
    assert isinstance(engine.describe()[0]["started"], float)  # an epoch time, for the admin API
    engine.replace([])
    waiter.join(5)
    assert not waiter.is_alive() and released.is_set()
    assert not engine.released.is_set()  # the new fault list has its own, unset event
    assert engine.describe() == []


@pytest.mark.parametrize("n", [0, None])
def test_zero_count_never_fires_and_none_is_unbounded(n: int | None) -> None:
    w = Window(n=n)
    fired = [w.take(float(i)) for i in range(3)]
    assert fired == ([False] * 3 if n == 0 else [True] * 3)
