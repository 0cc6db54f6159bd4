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

__all__ = ["BODY_TIMEOUT", "framing_problem", "read_body", "request_line_problem"]

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


def read_body(environ: dict[str, Any], body_limit: int) -> tuple[int, str] | None:
    """Read the request body now (bounded) and hand it to the route as a buffer; a problem, or None."""
    chunked = "HTTP_TRANSFER_ENCODING" in environ
    declared = int(str(environ.get("CONTENT_LENGTH") or "0").split(",")[0].strip() or 0)  # checked digits
    if not chunked and declared == 0:
        return None
    stream = environ["wsgi.input"]
    sock = environ.get("werkzeug.socket")
    previous = sock.gettimeout() if sock is not None else None
    wanted = body_limit + 1 if chunked else declared
    parts: list[bytes] = []
    got = 0
    try:
        if sock is not None:
            sock.settimeout(BODY_TIMEOUT)
        while got < wanted:
            data = stream.read(min(65536, wanted - got))
            if not data:
                break
            parts.append(data)
            got += len(data)
    except TimeoutError:
        return 408, f"The request body did not arrive within {BODY_TIMEOUT:g} seconds."
    except (OSError, ValueError):
        return 400, "The chunked request body is malformed." if chunked else "The request body is unreadable."
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(previous)
    if chunked and got > body_limit:
        return 413, f"The request body may be at most {body_limit} bytes."
    if not chunked and got < declared:
        return 400, "The request body is shorter than its Content-Length."
    body = b"".join(parts)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("wsgi.input_terminated", None)
    if chunked:
        environ["mi.close"] = True  # trailers after the last chunk would be read as the next request
    return None
