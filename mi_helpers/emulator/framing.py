"""HTTP/1.1 request framing, as pure rules: which request lines, targets and body framings are refused.

:func:`request_line_problem` and :func:`framing_problem` judge a request's head (RFC 9112: a request line
``METHOD TARGET HTTP/1.x``; ``Content-Length`` digits only, never together with ``Transfer-Encoding``;
``chunked`` as the only transfer coding); :func:`read_body` reads the body before any layer sees it, bounded
by a size and a stall timeout. The transport turns each problem into the service's 4xx.
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "BODY_TIMEOUT",
    "BodyProblem",
    "framing_problem",
    "read_body",
    "read_chunked",
    "request_line_problem",
]

#: Seconds a client may pause while sending a request body before it gets a 408.
BODY_TIMEOUT = 5.0

_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/1\.[01]")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_AUTHORITY = re.compile(r"[^\s/?#@]+:\d{1,5}")


def request_line_problem(line: str) -> str | None:
    """Why a request line cannot be served (None if it can): ``METHOD TARGET HTTP/1.x``, nothing else."""
    words = line.split()
    if len(words) != 3:
        return "The request line must be METHOD TARGET HTTP/1.1 (a method, a target and a version)."
    method, _, version = words
    if not _METHOD.fullmatch(method):
        return "The request method is not a valid token."
    if not _VERSION.fullmatch(version):
        return "Only HTTP/1.0 and HTTP/1.1 are supported."
    return None


def _target_problem(method: str, target: str) -> str | None:
    if target.startswith("/") and not target.startswith("//"):
        return None  # the usual origin-form path (http.server has already reduced a leading "//")
    if target.startswith("/") or _ABSOLUTE.match(target):
        try:
            parts = urlsplit(target)
        except ValueError:
            return "The request target is not a valid URL."
        if target.startswith("/") or parts.netloc:
            return None
        return "The request target is not a valid URL."
    if (method == "OPTIONS" and target == "*") or (method == "CONNECT" and _AUTHORITY.fullmatch(target)):
        return None
    return "The request target must be an absolute path such as /metadata/... or an absolute URL."


def framing_problem(method: str, target: str, headers: Any, body_limit: int) -> tuple[int, str] | None:
    """Status and reason for a request whose target or body framing the listener refuses, or None.

    ``headers`` is the parsed header block (``email.message.Message``: ``get_all`` gives repeated fields).
    """
    target_problem = _target_problem(method, target)
    if target_problem is not None:
        return 400, target_problem
    if headers.defects or headers.get_payload():
        return 400, "Every header line must be NAME: VALUE."
    codings = headers.get_all("Transfer-Encoding") or []
    lengths = headers.get_all("Content-Length") or []
    if codings and lengths:
        return 400, "Content-Length and Transfer-Encoding must not both be given."
    if codings:
        if ",".join(codings).strip().lower() != "chunked":
            return 400, "The only transfer coding accepted is chunked."
        return None
    if not lengths:
        return None
    values = [v.strip() for field in lengths for v in str(field).split(",")]
    if not all(v.isdigit() for v in values):
        return 400, "Content-Length must be a decimal number of bytes."
    if len(set(values)) > 1:
        return 400, "Content-Length is given more than once, with different values."
    if int(values[0]) > body_limit:
        return 413, f"The request body may be at most {body_limit} bytes."
    return None


class BodyProblem(Exception):
    """A request body the transport refuses: ``status`` (400, 408, 413) and a one-line reason."""

    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail
        super().__init__(detail)


_HEX = frozenset(b"0123456789abcdefABCDEF")
_ENDED_EARLY = "The chunked request body ended before its last chunk."


def read_chunked(stream: Any, body_limit: int) -> bytes:
    """Read a chunked body strictly (RFC 9112, section 7.1); raise :class:`BodyProblem` for any flaw.

    A chunk is a hexadecimal size (extensions after ``;`` ignored), a line end, exactly that many bytes and
    CRLF; a zero size ends the body, and trailer lines run to an empty line. A bare LF is accepted as the
    end of a size or trailer line (section 2.2), never after chunk data. werkzeug's own dechunker is more
    lenient (it takes a lone CR or LF after chunk data, ``0x``/``+`` in a size), so it is not used.
    """
    body = bytearray()
    while True:
        line = stream.readline(1026)
        if not line.endswith(b"\n"):
            raise BodyProblem(400, _ENDED_EARLY if len(line) < 1026 else "A chunk size line is too long.")
        size_text = line.rstrip(b"\r\n").split(b";", 1)[0].strip(b" \t")
        if not size_text or not set(size_text) <= _HEX:
            raise BodyProblem(400, "A chunk size is not a hexadecimal number.")
        size = int(size_text, 16)
        if size == 0:
            break
        if len(body) + size > body_limit:
            raise BodyProblem(413, f"The request body may be at most {body_limit} bytes.")
        data = stream.read(size)
        if len(data) < size:
            raise BodyProblem(400, _ENDED_EARLY)
        body += data
        if stream.read(2) != b"\r\n":
            raise BodyProblem(400, "A chunk's data is not followed by CRLF.")
    for _ in range(100):  # the trailer section, up to its empty line
        line = stream.readline(8192)
        if line in (b"\r\n", b"\n"):
            return bytes(body)
        if not line.endswith(b"\n"):
            raise BodyProblem(400, _ENDED_EARLY)
    raise BodyProblem(400, "The chunked request body has too many trailer lines.")


def _read_declared(stream: Any, declared: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < declared:
        data = stream.read(min(65536, declared - got))
        if not data:
            raise BodyProblem(400, "The request body is shorter than its Content-Length.")
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def read_body(environ: dict[str, Any], body_limit: int) -> tuple[int, str] | None:
    """Read the request body now (bounded) and hand it to the route as a buffer; a problem, or None.

    ``environ["mi.input"]`` is the connection's raw input (the transport puts it there): a chunked body is
    read from it with :func:`read_chunked`, not through werkzeug's dechunker.
    """
    chunked = "HTTP_TRANSFER_ENCODING" in environ
    declared = int(str(environ.get("CONTENT_LENGTH") or "0").split(",")[0].strip() or 0)  # checked digits
    if not chunked and declared == 0:
        return None
    sock = environ.get("werkzeug.socket")
    previous = sock.gettimeout() if sock is not None else None
    try:
        if sock is not None:
            sock.settimeout(BODY_TIMEOUT)
        if chunked:
            body = read_chunked(environ.get("mi.input", environ["wsgi.input"]), body_limit)
        else:
            body = _read_declared(environ["wsgi.input"], declared)
    except BodyProblem as problem:
        return problem.status, problem.detail
    except TimeoutError:
        return 408, f"The request body did not arrive within {BODY_TIMEOUT:g} seconds."
    except (OSError, ValueError):
        return 400, "The request body could not be read."
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(previous)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("wsgi.input_terminated", None)
    if chunked:
        environ["mi.close"] = True  # keep-alive only after a body whose end was declared up front
    return None
