"""The shared back-off curves and Retry-After reading (every retry loop of the helpers uses them)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from requests.structures import CaseInsensitiveDict

from mi_helpers.retry import backoff, exponential, retry_after


def test_backoff_is_the_documented_curve() -> None:
    assert [backoff(i, 2.0) for i in range(6)] == [0, 2, 6, 14, 30, 60]  # 62 capped at 60
    assert backoff(10, 2.0, cap=5) == 5


def test_exponential_doubles_from_its_first_wait() -> None:
    assert [exponential(i, 0.5, 4.0) for i in range(5)] == [0.5, 1, 2, 4, 4]


@pytest.mark.parametrize(
    ("source", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": "2.5"}, 2.5),
        (CaseInsensitiveDict({"RETRY-AFTER": "4"}), 4.0),
        (SimpleNamespace(headers={"Retry-After": "1"}), 1.0),  # a response
        (SimpleNamespace(response=SimpleNamespace(headers={"Retry-After": "6"})), 6.0),  # an SDK exception
        (
            SimpleNamespace(attempts=[SimpleNamespace(retry_after=1.0), SimpleNamespace(retry_after=None)]),
            1.0,
        ),
        ({"Retry-After": "-5"}, 0.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),  # a date: neither IMDS nor ARM sends one
        ({}, None),
        (SimpleNamespace(response=None), None),
        (ValueError("no response at all"), None),
    ],
)
def test_retry_after_from_whatever_carries_it(source: object, seconds: float | None) -> None:
    assert retry_after(source) == seconds
