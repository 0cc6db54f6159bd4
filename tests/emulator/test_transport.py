"""The transport: every malformed request gets a 4xx in the service's envelope and a closed connection.

Raw bytes on real sockets (HTTP for IMDS and the admin API, TLS for ARM), because ``http.client`` and
requests refuse to send most of these. After each refusal the emulator must keep serving. The framing rules
themselves are checked as plain functions in test_framing.py.
"""

from __future__ import annotations

import base64
import socket
from urllib.parse import urlsplit

import pytest
import requests
from support.emulator import (
    ARM_RESOURCE,
    TOKEN_PATH,
    VM_PATH,
    RawArm,
    RawImds,
    plain_session,
    raw_exchange,
    responses_in,
    status_of,
    still_serving,
)

import mi_helpers.emulator.framing as framing
from mi_helpers.emulator.errors import ARM_BODY_LIMIT

pytestmark = pytest.mark.timeout(60)

TOKEN_TARGET = f"{TOKEN_PATH}?api-version=2018-02-01&resource={ARM_RESOURCE}"
ARM_TARGET = f"{VM_PATH}?api-version=2024-07-01"
IMDS_LIMIT = 1_000_000


def _request(
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
) -> bytes:
    head = f"{method} {target} {version}\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return head.encode("latin-1") + b"\r\n" + body


def _put_scenario(emu, headers: dict[str, str], body: bytes) -> bytes:
    """A raw ``PUT /_emulator/scenario`` with the admin key and the given framing headers."""
    return _request("PUT", "/_emulator/scenario", {**headers, "X-Emulator-Key": emu.admin_key}, body)


def _complete(raw: bytes) -> bool:
    """Has ``raw`` one whole final response (head and its Content-Length of body)?"""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    ((_, headers, _),) = responses_in(head + sep)
    return len(body) >= int(headers.get("content-length", "0"))


def _one_refusal(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """The single final response of ``raw`` (a refusal closes the connection, so nothing follows)."""
    finals = [r for r in responses_in(raw) if r[0] >= 200]
    assert len(finals) == 1, raw[:400]
    status, headers, body = finals[0]
    assert headers.get("connection", "").lower() == "close", headers
    return status, headers, body


@pytest.fixture
def listeners(emu):
    """(name, url, CA bundle or None) of the three listeners every client reaches."""
    return [
        ("imds", emu.imds_url, None),
        ("admin", emu.admin_url.rsplit("/_emulator", 1)[0], None),
        ("arm", emu.arm_url, emu.ca_bundle),
    ]


def _still_serving_all(emu) -> None:
    still_serving(emu)
    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    arm = RawArm(emu.arm_url, emu.ca_bundle)
    try:
        assert arm.get(VM_PATH, token=token).status_code == 200
    finally:
        arm.close()
    with plain_session() as s:
        assert s.get(emu.admin_url + "/health", headers={"X-Emulator-Key": emu.admin_key}, timeout=5).ok


# --- (a) a declared body over the limit: 413, not a 500 from inside the app ---------------------------------


def test_declared_body_over_the_limit_is_413_in_each_service_envelope(emu, listeners):
    bodies = {}
    for name, url, ca in listeners:
        limit = ARM_BODY_LIMIT if name == "arm" else IMDS_LIMIT
        target = TOKEN_TARGET if name == "imds" else ("/_emulator/health" if name == "admin" else ARM_TARGET)
        raw, _ = raw_exchange(
            url, _request("GET", target, {"Content-Length": str(limit + 1), "Metadata": "true"}), ca_bundle=ca
        )
        status, headers, body = _one_refusal(raw)
        assert status == 413, (name, raw[:300])
        assert headers["content-type"].startswith("application/json"), headers
        bodies[name] = body
    assert bodies["imds"].startswith(b'{"error":"Request entity too large. ')
    assert bodies["arm"] == (
        b'{"error":{"code":"RequestContentTooLarge","message":"The request content size exceeds the maximum '
        b'size of 4 MB."}}'
    )
    assert bodies["admin"].startswith(b'{"error":"request_too_large","message":')
    _still_serving_all(emu)


def test_chunked_body_over_the_limit_is_413(emu):
    chunk = b"x" * 65536
    body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 17 + b"0\r\n\r\n"  # 17 * 64 KiB > 1 MB
    raw, _ = raw_exchange(
        emu.admin_url.rsplit("/_emulator", 1)[0],
        _request(
            "PUT",
            "/_emulator/scenario",
            {"Transfer-Encoding": "chunked", "X-Emulator-Key": emu.admin_key},
            body,
        ),
    )
    status, _, payload = _one_refusal(raw)
    assert status == 413 and b"request_too_large" in payload
    assert emu.scenario == "healthy"
    _still_serving_all(emu)


# --- (b) a large body with Connection: close: answered, then closed at once -----------------------------


@pytest.mark.parametrize("name", ["imds", "admin", "arm"])
def test_large_body_with_connection_close_is_answered_and_closed(emu, listeners, name):
    url, ca = next((u, c) for n, u, c in listeners if n == name)
    target = {"imds": TOKEN_TARGET, "admin": "/_emulator/health", "arm": ARM_TARGET}[name]
    body = b"x" * 60_000
    headers = {"Content-Length": str(len(body)), "Connection": "close", "Metadata": "true"}
    headers["X-Emulator-Key"] = emu.admin_key
    # raw_exchange reads until the server closes: a server that keeps the connection fails it (timeout)
    raw, _ = raw_exchange(url, _request("GET", target, headers, body), ca_bundle=ca, timeout=10)
    ((status, resp_headers, _),) = [r for r in responses_in(raw) if r[0] >= 200]
    assert status in (200, 401), raw[:300]  # ARM wants a token; the point is the answer and the close
    assert resp_headers["connection"].lower() == "close"
    _still_serving_all(emu)


# --- (c) an empty request target: a 400, not silence --------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"GET  HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET HTTP/1.1\r\nHost: x\r\n\r\n",
        b" / HTTP/1.1\r\n\r\n",
        b"GET /metadata/instance\r\n\r\n",
        b"GET metadata/instance HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://[::1/ HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["empty-target", "no-target", "no-method", "http-0.9", "relative-target", "bad-absolute-url"],
)
@pytest.mark.parametrize("name", ["imds", "arm"])
def test_request_lines_without_a_usable_target_get_400(emu, listeners, name, payload):
    url, ca = next((u, c) for n, u, c in listeners if n == name)
    raw, _ = raw_exchange(url, payload, ca_bundle=ca)
    status, _, body = _one_refusal(raw)
    assert status == 400, raw[:300]
    assert body.startswith(b'{"error":{"code":"BadRequest"' if name == "arm" else b'{"error":"Bad request. ')
    _still_serving_all(emu)


# --- the rest of the framing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Content-Length": "5", "Transfer-Encoding": "chunked"}, b"0\r\n\r\n"),
        ({"Transfer-Encoding": "gzip"}, b""),
        ({"Content-Length": "abc"}, b""),
        ({"Content-Length": "-5"}, b""),
        ({"Content-Length": "3, 4"}, b"abcd"),
        ({"Transfer-Encoding": "chunked"}, b"zz\r\nabc\r\n0\r\n\r\n"),
        ({"Transfer-Encoding": "chunked"}, b"1\r\n\r\n0\r\n\r\n"),  # found by the fuzzer
    ],
    ids=[
        "length-and-chunked",
        "unknown-coding",
        "non-numeric",
        "negative",
        "two-lengths",
        "bad-chunk",
        "lone-lf-after-data",
    ],
)
@pytest.mark.parametrize("name", ["imds", "arm"])
def test_malformed_framing_is_400(emu, listeners, name, headers, body):
    url, ca = next((u, c) for n, u, c in listeners if n == name)
    target = TOKEN_TARGET if name == "imds" else ARM_TARGET
    raw, _ = raw_exchange(url, _request("POST", target, {**headers, "Metadata": "true"}, body), ca_bundle=ca)
    status, _, _ = _one_refusal(raw)
    assert status == 400, raw[:300]
    _still_serving_all(emu)


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/9.9", "HTTP/1.x", "FTP/1.1"])
def test_unsupported_versions_are_400(emu, version):
    raw, _ = raw_exchange(emu.imds_url, _request("GET", TOKEN_TARGET, version=version))
    status, _, _ = _one_refusal(raw)
    assert status == 400
    still_serving(emu)


def test_truncated_body_is_400_once_the_client_stops_sending(emu):
    payload = _request(
        "PUT", "/_emulator/scenario", {"Content-Length": "100", "X-Emulator-Key": emu.admin_key}
    )
    raw, _ = raw_exchange(emu.imds_url, payload + b'{"scenario": ', half_close=True)
    status, _, body = _one_refusal(raw)
    assert status == 400 and b"shorter than its Content-Length" in body
    assert emu.scenario == "healthy"
    still_serving(emu)


def test_stalled_body_is_408(emu, monkeypatch):
    monkeypatch.setattr(framing, "BODY_TIMEOUT", 0.3)
    payload = _request(
        "PUT", "/_emulator/scenario", {"Content-Length": "100", "X-Emulator-Key": emu.admin_key}
    )
    raw, _ = raw_exchange(emu.imds_url, payload + b'{"scenario": ', timeout=10)  # and then nothing
    status, _, body = _one_refusal(raw)
    assert status == 408 and b"Request timeout" in body
    still_serving(emu)


def test_expect_100_continue_gets_one_interim_answer(emu):
    url = emu.admin_url.rsplit("/_emulator", 1)[0]
    host, port = urlsplit(url).hostname, urlsplit(url).port
    body = b'{"scenario": "no-role-assignment"}'
    head = _request(
        "PUT",
        "/_emulator/scenario",
        {"Content-Length": str(len(body)), "Expect": "100-continue", "X-Emulator-Key": emu.admin_key},
    )
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head)
        interim = sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"  # before we sent the body
        sock.sendall(body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            answer += sock.recv(65536)
    assert [r[0] for r in responses_in(answer)] == [200]
    assert emu.scenario == "no-role-assignment"


def test_expect_100_continue_with_a_refused_body_gets_no_100(emu):
    raw, _ = raw_exchange(
        emu.imds_url,
        _request("PUT", TOKEN_TARGET, {"Content-Length": str(IMDS_LIMIT + 1), "Expect": "100-continue"}),
    )
    assert [r[0] for r in responses_in(raw)] == [413]


def test_chunked_body_is_read_and_the_connection_closed(emu):
    body = b'{"scenario": "no-role-assignment"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    raw, _ = raw_exchange(
        emu.imds_url,
        _request(
            "PUT",
            "/_emulator/scenario",
            {"Transfer-Encoding": "chunked", "X-Emulator-Key": emu.admin_key},
            chunked,
        ),
    )
    ((status, headers, _),) = responses_in(raw)
    assert status == 200 and headers["connection"].lower() == "close"
    assert emu.scenario == "no-role-assignment"


def test_a_fully_read_body_keeps_the_connection(emu):
    """Two requests with bodies on one connection: the first answer must not close it."""
    url = emu.admin_url.rsplit("/_emulator", 1)[0]
    host, port = urlsplit(url).hostname, urlsplit(url).port
    with socket.create_connection((host, port), timeout=10) as sock:
        for name in ("no-role-assignment", "healthy"):
            body = f'{{"scenario": "{name}"}}'.encode()
            sock.sendall(
                _request(
                    "PUT",
                    "/_emulator/scenario",
                    {"Content-Length": str(len(body)), "X-Emulator-Key": emu.admin_key},
                    body,
                )
            )
            answer = b""
            while not responses_in(answer) or len(responses_in(answer)[-1][2]) < int(
                responses_in(answer)[-1][1]["content-length"]
            ):
                chunk = sock.recv(65536)
                assert chunk, "the connection closed after a request whose body was read"
                answer += chunk
            ((status, headers, _),) = responses_in(answer)
            assert status == 200 and "connection" not in headers
            assert emu.scenario == name


def test_leading_empty_lines_are_ignored(emu):
    raw, _ = raw_exchange(
        emu.imds_url, b"\r\n\r\n" + _request("GET", TOKEN_TARGET, {"Metadata": "true", "Connection": "close"})
    )
    assert status_of(raw) == 200


def test_refusal_bodies_never_echo_the_request(emu):
    part = base64.urlsafe_b64encode(b'{"typ":"JWT","alg":"none"}').rstrip(b"=").decode()
    secret = f"{part}.{part}.c2lnbmF0dXJl"  # shaped like a token, built here so none is committed
    raw, _ = raw_exchange(emu.imds_url, f"GET {secret} HTTP/1.1\r\n\r\n".encode())
    assert status_of(raw) == 400 and secret.encode() not in raw


@pytest.mark.parametrize("size", [9000, 100_000])
def test_huge_header_is_a_4xx(emu, size):
    with plain_session() as s:
        try:
            r = s.get(
                emu.imds_url + "/metadata/identity/oauth2/token",
                params={"api-version": "2018-02-01", "resource": ARM_RESOURCE},
                headers={"Metadata": "true", "X-Big": "b" * size},
                timeout=5,
            )
            status = r.status_code
        except requests.ConnectionError:
            status = None
    if size >= 100_000:
        assert status is not None and 400 <= status < 500, status
    else:
        assert status is not None and status < 500, status
    still_serving(emu)


def test_many_headers(emu):
    headers = {f"X-H{i}": "v" for i in range(500)}
    headers["Metadata"] = "true"
    with plain_session() as s:
        try:
            status = s.get(
                emu.imds_url + "/metadata/identity/oauth2/token",
                params={"api-version": "2018-02-01", "resource": ARM_RESOURCE},
                headers=headers,
                timeout=5,
            ).status_code
        except requests.ConnectionError:
            status = None
    assert status is None or status < 500
    still_serving(emu)


@pytest.mark.parametrize(
    "payload",
    [
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        # the start of a TLS ClientHello on the HTTP port, then a line end so the request line is complete
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",
        b"GET /metadata/identity/oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET /metadata/identity/oauth2/token HTTP/1.1\r\nHost: x\r\nMetadata true\r\n\r\n",
    ],
    ids=["garbage", "no-target", "http-9.9", "tls-hello", "negative-length", "broken-header"],
)
def test_malformed_http(emu, payload):
    raw, _ = raw_exchange(emu.imds_url, payload, timeout=5)
    status = status_of(raw)
    assert status is None or 400 <= status < 500, raw[:200]
    still_serving(emu)


def test_half_open_connection_does_not_block_others(emu):
    parts = urlsplit(emu.imds_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as idle:
        idle.sendall(b"GET /metadata/identity/oauth2/token HTTP/1.1\r\nHost: x\r\n")  # never finished
        still_serving(emu)


def test_arm_huge_header(emu, arm):
    try:
        status = arm.get(VM_PATH, headers={"X-Big": "b" * 100_000}).status_code
    except requests.ConnectionError:
        status = None
    assert status is not None and 400 <= status < 500, status
    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    assert arm.get(VM_PATH, token=token).status_code == 200


def test_plain_http_on_the_tls_port(emu, arm):
    raw, _ = raw_exchange(emu.arm_url.replace("https://", "http://"), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status = status_of(raw)
    assert status is None or 400 <= status < 500
    token = RawImds(emu.imds_url).access_token(ARM_RESOURCE)
    assert arm.get(VM_PATH, token=token).status_code == 200
