"""The request-framing rules as plain functions (the transport applies them; test_transport.py checks that
over real sockets)."""

from __future__ import annotations

import email.message

import pytest

from mi_helpers.emulator.framing import framing_problem, request_line_problem


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        ("GET / HTTP/1.1", True),
        ("OPTIONS * HTTP/1.0", True),
        ("GET  HTTP/1.1", False),
        ("GET / HTTP/1.1 extra", False),
        ("G(T / HTTP/1.1", False),
        ("GET / HTTP/2.0", False),
        ("", False),
    ],
)
def test_request_line_problem(line, ok):
    assert (request_line_problem(line) is None) is ok


def _headers(**fields: str | list[str]) -> email.message.Message:
    m = email.message.Message()
    for k, v in fields.items():
        for value in v if isinstance(v, list) else [v]:
            m[k.replace("_", "-")] = value
    return m


@pytest.mark.parametrize(
    ("method", "target", "headers", "expected"),
    [
        ("GET", "/x", {}, None),
        ("GET", "http://169.254.169.254/x", {}, None),
        ("CONNECT", "management.azure.com:443", {}, None),
        ("GET", "x", {}, 400),
        ("GET", "http:///x", {}, 400),
        ("POST", "/x", {"Content_Length": "10"}, None),
        ("POST", "/x", {"Content_Length": ["10", "10"]}, None),
        ("POST", "/x", {"Content_Length": ["10", "11"]}, 400),
        ("POST", "/x", {"Content_Length": "1001"}, 413),
        ("POST", "/x", {"Transfer_Encoding": "chunked"}, None),
        ("POST", "/x", {"Transfer_Encoding": "gzip, chunked"}, 400),
    ],
)
def test_framing_problem(method, target, headers, expected):
    problem = framing_problem(method, target, _headers(**headers), body_limit=1000)
    assert (problem[0] if problem else None) == expected
