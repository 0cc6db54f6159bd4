"""The browser fixtures' own guard: loopback requests pass, anything else is aborted and recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mi_helpers.constants import Imds

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


FETCH = "url => fetch(url, {mode: 'no-cors'}).then(() => 'answered', e => 'failed: ' + e)"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8888/lab", True),
        ("http://localhost:1/x", True),
        ("ws://127.0.0.1:9/api/kernels", True),
        ("data:image/svg+xml,%3Csvg%3E", True),
        ("blob:http://127.0.0.1:8888/1234", True),
        ("https://management.azure.com/", False),
        (f"http://{Imds.ADDRESS}/metadata/identity", False),
        ("http://127.0.0.1.nip.io/", False),
        ("https://localhost.example.com/", False),
    ],
)
def test_is_loopback_url(loopback_url: Callable[[str], bool], url: str, expected: bool) -> None:
    assert loopback_url(url) is expected


def test_route_guard_aborts_non_loopback_requests(lab_page: Any, lab: Any) -> None:
    page = lab_page.page
    # A blank page on Lab's origin (served by a more specific route, which Playwright tries first), so
    # its scripts may fetch from the server; every other request still meets the fixture's guard.
    blank = f"{lab.url}guard-check.html"
    page.route(blank, lambda route: route.fulfill(status=200, content_type="text/html", body="<p>guard</p>"))
    page.goto(blank)
    assert page.evaluate(FETCH, f"{lab.url}api/status") == "answered"
    assert not lab_page.blocked

    outside = "http://guard-check.invalid/probe"  # RFC 6761 name; the resolver rules refuse it anyway
    assert page.evaluate(FETCH, outside).startswith("failed")
    assert lab_page.blocked == [outside]
    lab_page.blocked.clear()  # recorded as it should be; do not fail this test for it
