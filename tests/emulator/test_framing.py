"""The request-framing rules as plain functions (the transport applies them; test_transport.py checks that
over real sockets)."""

from __future__ import annotations

import email.message
import io

import pytest

from mi_helpers.constants import Imds
from mi_helpers.emulator.framing import BodyProblem, framing_problem, read_chunked, request_line_problem


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
        ("GET", f"http://{Imds.ADDRESS}/x", {}, None),  # an absolute-form target: parsed, never connected to
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


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n", b"hello world"),
        (b"A\n0123456789\r\n0\n\n", b"0123456789"),  # a bare LF ends a size or trailer line
        (b"0\r\n\r\n", b""),
    ],
)
def test_read_chunked_accepts_sound_bodies(raw: bytes, body: bytes) -> None:
    stream = io.BytesIO(raw + b"NEXT")
    assert read_chunked(stream, body_limit=100) == body
    assert stream.read() == b"NEXT"  # exactly the body was consumed, trailers included


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"1\r\n\r\n0\r\n\r\n", 400),  # one byte of data ("\r") then a lone LF, not CRLF
        (b"5\r\nhel", 400),  # ends inside a chunk
        (b"5\r\nhello\r\n", 400),  # no last chunk
        (b"0x5\r\nhello\r\n0\r\n\r\n", 400),
        (b"+5\r\nhello\r\n0\r\n\r\n", 400),
        (b"-5\r\nhello\r\n0\r\n\r\n", 400),
        (b"\r\nhello\r\n0\r\n\r\n", 400),
        (b"5\r\nhelloXX0\r\n\r\n", 400),
        (b"65\r\n" + b"x" * 101 + b"\r\n0\r\n\r\n", 413),
        (b"0\r\nX-Trailer: t\r\n", 400),  # trailers never end
    ],
)
def test_read_chunked_refuses_flawed_bodies(raw: bytes, status: int) -> None:
    with pytest.raises(BodyProblem) as info:
        read_chunked(io.BytesIO(raw), body_limit=100)
    assert info.value.status == status
