"""Fuzzing the emulator's request parsing through a real socket: IMDS over HTTP, ARM over HTTPS.

Requests are written byte by byte on a raw socket (``http.client`` would refuse the odd ones), so the
emulator's whole stack is exercised: the transport's request-line, header and body framing, the routing,
the query parser, the identity/ARM checks. For any input it must answer with a status below 500, never
hang, and keep serving the next client. The framing tests also vary what a request says about its body
against what it sends (``Content-Length`` vs the bytes, chunked bodies, ``Expect: 100-continue``, requests
cut short), over HTTP and TLS: a malformed one must get a 4xx and a closed connection.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.emulator import VM_PATH, client_context, raw_exchange, responses_in
from support.world import RG, SUB, UAMI_READER_CLIENT

import mi_helpers.emulator.framing as framing
from mi_helpers.constants import Imds
from mi_helpers.emulator import Emulator
from mi_helpers.emulator.errors import ARM_BODY_LIMIT

VM = VM_PATH
TOKEN = Imds.TOKEN_PATH
BODY_LIMIT = 1_000_000  # IMDS and the admin API; ARM's is ARM_BODY_LIMIT
ANSWER_TIMEOUT = 10.0  # s; a hang shows as a timeout on our side

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    # A stalled body is answered after BODY_TIMEOUT; a short one keeps the cut-short examples quick.
    saved, framing.BODY_TIMEOUT = framing.BODY_TIMEOUT, 0.3
    try:
        with Emulator(scenario="healthy") as e:
            yield e
    finally:
        framing.BODY_TIMEOUT = saved


@pytest.fixture(scope="module")
def bearer(emu: Emulator) -> str:
    status, body = exchange(
        emu,
        "imds",
        f"GET {TOKEN}?api-version=2018-02-01&resource=https://management.azure.com HTTP/1.1",
        {"Metadata": "true"},
    )
    assert status == 200
    return str(json.loads(body.split(b"\r\n\r\n", 1)[1])["access_token"])


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def exchange(
    emu: Emulator, listener: str, request_line: str | bytes, headers: dict[str, str] | list[tuple[str, str]]
) -> tuple[int | None, bytes]:
    """Send one request on a fresh connection; the status (None if the server closed without one) and
    the raw answer. Raises ``TimeoutError`` when the server neither answers nor closes in time."""
    port = _port(emu.imds_url if listener == "imds" else emu.arm_url)
    items = headers.items() if isinstance(headers, dict) else headers
    line = request_line if isinstance(request_line, bytes) else request_line.encode("utf-8", "surrogatepass")
    head = b"".join(
        k.encode("latin-1", "replace") + b": " + val.encode("latin-1", "replace") + b"\r\n"
        for k, val in items
    )
    raw = line + b"\r\nHost: 127.0.0.1\r\n" + head + b"Connection: close\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT)
    try:
        if listener == "arm":
            sock = client_context(emu.ca_bundle).wrap_socket(sock, server_hostname="127.0.0.1")
        sock.sendall(raw)
        if listener == "imds":
            # Nothing more to send: a server draining unread input after an error sees EOF at once.
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except ssl.SSLError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    except TimeoutError as exc:
        raise TimeoutError(f"no answer within {ANSWER_TIMEOUT} s to {raw[:200]!r}") from exc
    finally:
        sock.close()
    data = b"".join(chunks)
    if not data.startswith(b"HTTP/"):
        return None, data
    return int(data.split(b" ", 2)[1]), data


def still_serving(emu: Emulator, bearer: str | None = None) -> None:
    status, _ = exchange(
        emu,
        "imds",
        f"GET {TOKEN}?api-version=2018-02-01&resource=https://management.azure.com HTTP/1.1",
        {"Metadata": "true"},
    )
    assert status == 200
    if bearer is not None:
        status, _ = exchange(
            emu, "arm", f"GET {VM}?api-version=2024-07-01 HTTP/1.1", {"Authorization": f"Bearer {bearer}"}
        )
        assert status == 200


# ------------------------------------------------------------------------------------------ strategies

# Characters allowed raw in a request target, plus percent-encoded anything.
_raw_target_chars = st.characters(codec="ascii", exclude_characters=" \r\n#", exclude_categories=("Cc",))
raw_segment = st.text(_raw_target_chars, max_size=30)
encoded_segment = st.text(max_size=30).map(lambda s: quote(s, safe=""))
segment = st.one_of(
    raw_segment, encoded_segment, st.sampled_from(["", ".", "..", "%00", "%2F", "%ZZ", "%", "~"])
)
known_params = st.sampled_from(
    [
        "api-version",
        "resource",
        "client_id",
        "object_id",
        "msi_res_id",
        "mi_res_id",
        "bypass_cache",
        "format",
        "$filter",
        "$expand",
    ]
)
param_name = st.one_of(known_params, segment)
param_value = st.one_of(
    st.sampled_from(
        [
            "2018-02-01",
            "2021-02-01",
            "https://management.azure.com",
            "https://management.azure.com/",
            UAMI_READER_CLIENT,
            "true",
            "",
        ]
    ),
    segment,
)
query = st.lists(st.tuples(param_name, param_value), max_size=6).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)
)
header_name = st.one_of(
    st.sampled_from(
        [
            "Metadata",
            "X-Forwarded-For",
            "Authorization",
            "Accept",
            "User-Agent",
            "X-Emulator-Key",
            "Accept-Encoding",
            "Cookie",
        ]
    ),
    st.text(
        st.characters(codec="ascii", categories=("Lu", "Ll", "Nd"), include_characters="-_"),
        min_size=1,
        max_size=20,
    ),
)
header_value = st.one_of(
    st.sampled_from(
        ["true", "True", "TRUE", "false", "", "Bearer ", "Bearer x.y.z", "Basic Zm9vOmJhcg==", "127.0.0.1"]
    ),
    st.text(
        st.characters(codec="latin-1", exclude_characters="\r\n", exclude_categories=("Cc",)), max_size=60
    ),
)
headers = st.lists(st.tuples(header_name, header_value), max_size=5).map(
    lambda hs: [
        (k, v)
        for k, v in hs
        if k.lower() not in ("content-length", "transfer-encoding", "expect", "host", "connection")
    ]
)
method = st.sampled_from(["GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "BREW"])
imds_prefix = st.sampled_from(
    [
        "/metadata/identity/oauth2/token",
        "/metadata/instance",
        "/metadata/instance/compute",
        "/metadata/identity/info",
        "/metadata/versions",
        "/metadata",
        "/",
        "//metadata/identity/oauth2/token",
        "/METADATA/identity/oauth2/token",
    ]
)
arm_prefix = st.sampled_from(
    [
        VM,
        f"/subscriptions/{SUB}",
        f"/subscriptions/{SUB}/resourceGroups/{RG}",
        f"/subscriptions/{SUB}/resources",
        "/subscriptions",
        "/metadata/endpoints",
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments",
        "/",
    ]
)


def assert_sane(status: int | None, raw: bytes, request: str) -> None:
    assert status is None or status < 500, f"{status} for {request!r}: {raw[:300]!r}"
    if status is None:
        # Only a request the HTTP layer cannot read may be closed without an answer.
        assert raw == b"", raw[:200]


# ------------------------------------------------------------------------------------------ tests


@settings(SETTINGS, max_examples=200)
@given(
    m=method, prefix=imds_prefix, extra=st.lists(segment, max_size=3), q=query, hs=headers, meta=st.booleans()
)
def test_imds_requests(
    emu: Emulator, m: str, prefix: str, extra: list[str], q: str, hs: list[tuple[str, str]], meta: bool
) -> None:
    path = "/".join([prefix.rstrip("/"), *extra]) if extra else prefix
    target = path + (f"?{q}" if q else "")
    base = [("Metadata", "true")] if meta else []
    status, raw = exchange(emu, "imds", f"{m} {target} HTTP/1.1", [*base, *hs])
    assert_sane(status, raw, target)


@settings(SETTINGS, max_examples=200)
@given(q=query, hs=headers)
def test_imds_token_queries_answer_json(emu: Emulator, q: str, hs: list[tuple[str, str]]) -> None:
    """Every token-endpoint answer is a JSON object: a token (all string fields) or an OAuth error."""
    status, raw = exchange(emu, "imds", f"GET {TOKEN}?{q} HTTP/1.1", [("Metadata", "true"), *hs])
    assert_sane(status, raw, q)
    if status is None:
        return
    body = (
        json.loads(raw.split(b"\r\n\r\n", 1)[1] or b"null") if status != 400 or b"<?xml" not in raw else None
    )
    if status == 200:
        assert isinstance(body, dict) and all(isinstance(v, str) for v in body.values())
    elif body is not None:
        assert isinstance(body, dict) and "error" in body


@SETTINGS
@given(
    m=method, prefix=arm_prefix, extra=st.lists(segment, max_size=4), q=query, hs=headers, auth=st.booleans()
)
def test_arm_requests(
    emu: Emulator,
    bearer: str,
    m: str,
    prefix: str,
    extra: list[str],
    q: str,
    hs: list[tuple[str, str]],
    auth: bool,
) -> None:
    path = "/".join([prefix.rstrip("/"), *extra]) if extra else prefix
    target = path + (f"?{q}" if q else "")
    base = [("Authorization", f"Bearer {bearer}")] if auth else []
    status, raw = exchange(emu, "arm", f"{m} {target} HTTP/1.1", [*base, *hs])
    assert_sane(status, raw, target)


@settings(SETTINGS, max_examples=200)
@given(line=st.binary(max_size=300))
def test_garbage_request_lines(emu: Emulator, line: bytes) -> None:
    """Arbitrary bytes as the request line: an error answer or a closed connection, never a hang."""
    line = line.replace(b"\r", b"").replace(b"\n", b"")
    status, raw = exchange(emu, "imds", line, {})
    assert status is None or status < 500 or status == 505, raw[:200]  # 505: an HTTP version it cannot speak


# ------------------------------------------------------------------------------------------ body framing


@dataclass(frozen=True)
class Framed:
    """One raw request and what a correct server must answer it with."""

    listener: str  # imds | admin | arm
    raw: bytes
    #: Final statuses a correct server may give; None: anything below 500 (the framing is sound).
    expected: frozenset[int] | None
    half_close: bool


def _is_sound_chunked(body: bytes) -> bool:
    """The test's own reading of RFC 9112 §7.1 (no extensions, no trailers): is ``body`` one complete,
    well-formed chunked body? Independent of how the generator built it: a size that lies can still
    frame a valid body by accident (22 declared bytes that happen to end in the next chunk's CRLF)."""
    pos = 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            return False
        line = body[pos:end]
        if not line or any(c not in b"0123456789abcdefABCDEF" for c in line):
            return False
        size, pos = int(line, 16), end + 2
        if size == 0:
            return body[pos:] == b"\r\n"
        if body[pos + size : pos + size + 2] != b"\r\n":
            return False
        pos += size + 2


def _chunked(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A chunked body, sound or not: chunk sizes that lie, bad size lines, a missing last chunk."""
    body = b""
    for declared, actual in draw(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=4)):
        if declared == 0:
            continue  # a zero-size chunk would end the body early
        size = draw(st.sampled_from(["hex", "hex", "hex", "junk", "negative", "empty"]))
        line = {"hex": f"{declared:x}", "junk": "zz", "negative": f"-{declared:x}", "empty": ""}[size]
        body += line.encode() + b"\r\n" + b"x" * actual + b"\r\n"
    if draw(st.booleans()):
        body += b"0\r\n\r\n"
    return body, _is_sound_chunked(body)


def test_the_chunked_oracle_reads_the_rfc() -> None:
    assert _is_sound_chunked(b"3\r\nabc\r\n0\r\n\r\n")
    assert _is_sound_chunked(b"0\r\n\r\n")
    assert not _is_sound_chunked(b"4\r\nabc\r\n0\r\n\r\n")  # the size lies
    assert not _is_sound_chunked(b"3\r\nabc\r\n")  # no last chunk
    assert not _is_sound_chunked(b"zz\r\nabc\r\n0\r\n\r\n")
    assert _is_sound_chunked(b"4\r\nab\r\n\r\n0\r\n\r\n")  # data may contain CRLF


@st.composite
def framed_requests(draw: st.DrawFn) -> Framed:
    listener = draw(st.sampled_from(["imds", "admin", "arm"]))
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH"]))
    limit = ARM_BODY_LIMIT if listener == "arm" else BODY_LIMIT
    target = {
        "imds": f"{TOKEN}?api-version=2018-02-01&resource=https://management.azure.com/",
        "admin": "/_emulator/scenario",
        "arm": f"{VM}?api-version=2024-07-01",
    }[listener]
    headers = [("Host", "127.0.0.1"), ("Metadata", "true"), ("Connection", "close")]
    framing = draw(st.sampled_from(["none", "length", "length", "chunked", "chunked", "both"]))
    body, expected = b"", None
    if framing == "length":
        declared = draw(st.one_of(st.integers(0, 300), st.sampled_from([limit, limit + 1, 10**12])))
        body = b"x" * draw(st.integers(0, 400))
        headers.append(("Content-Length", str(declared)))
        if declared > limit:
            expected = frozenset({413})
        elif len(body) < declared:
            expected = frozenset({400, 408})  # cut short: the client stops, or stalls
    elif framing == "chunked":
        body, sound = _chunked(draw)
        headers.append(("Transfer-Encoding", "chunked"))
        expected = None if sound else frozenset({400, 408})
    elif framing == "both":
        body = b"0\r\n\r\n"
        headers += [("Content-Length", str(len(body))), ("Transfer-Encoding", "chunked")]
        expected = frozenset({400})
    if draw(st.booleans()):
        headers.append(("Expect", "100-continue"))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    half_close = listener != "arm" and draw(st.booleans())
    return Framed(listener, head.encode() + body, expected, half_close)


@settings(SETTINGS, max_examples=150)
@given(req=framed_requests())
def test_body_framing(emu: Emulator, req: Framed) -> None:
    """Declared vs sent body length, chunked bodies, Expect: 100-continue, cut-short requests, HTTP and TLS:
    one final answer below 500 (a 4xx when the framing is broken), and the connection closed after it."""
    url = {
        "imds": emu.imds_url,
        "admin": emu.admin_url.rsplit("/_emulator", 1)[0],
        "arm": emu.arm_url,
    }[req.listener]
    ca = emu.ca_bundle if req.listener == "arm" else None
    # raw_exchange reads until the server closes and fails the test if it neither answers nor closes
    raw, _ = raw_exchange(url, req.raw, ca_bundle=ca, timeout=ANSWER_TIMEOUT, half_close=req.half_close)
    responses = responses_in(raw)
    interim = [r for r in responses if r[0] < 200]
    finals = [r for r in responses if r[0] >= 200]
    assert len(finals) == 1, (req, raw[:400])
    status, headers, _ = finals[0]
    assert status < 500, (req, raw[:400])
    assert headers.get("connection", "").lower() == "close", (req, headers)
    assert all(r[0] == 100 for r in interim) and len(interim) <= 1, raw[:400]
    if req.expected is not None:
        assert status in req.expected, (req, raw[:400])
        assert 400 <= status < 500


def test_still_serving_after_the_fuzzing(emu: Emulator, bearer: str) -> None:
    """Run last in this module: after every odd request above, both listeners answer normally."""
    still_serving(emu, bearer)
    log = emu.request_log()
    assert log and not any(e["status"] >= 500 for e in log)
    # The emulator turns an exception in its own code into a 400 and notes it in the log: there must be
    # none (such a 400 would hide a crash behind a plausible answer).
    crashes = sorted({e["error"] for e in log if e.get("error")})
    assert crashes == [], crashes[:5]
