"""Listeners: werkzeug threaded servers on loopback, HTTP/1.1 keep-alive, request framing, lingering close.

Everything about sockets and bytes lives here, nothing about Azure. A :class:`Listener` serves one route
(an HTTP layer's ``handle``) on one port and guarantees, whatever a client sends:

* every request it cannot accept gets a 4xx in the service's own error envelope (the ``framing_error`` the
  layer provides) and a closed connection: a malformed request line or target (400), conflicting or
  unreadable ``Content-Length``/``Transfer-Encoding`` (400), a declared or chunked body above the limit
  (413), a body that stops short (400) or stalls (408), an over-long request line (414) or header (431);
* a body is read before the route runs (so no layer ever meets werkzeug's ``RequestEntityTooLarge``), and a
  connection is kept alive only when its request was read completely; ``Expect: 100-continue`` gets one
  ``100 Continue``, and only for a request that passed the checks;
* a closing connection is shut down for writing first and its unread input drained briefly, so the client
  reads its answer instead of a reset, and no worker waits for a client that never closes.

:func:`reserve_port` binds a port without listening (connections are refused and nobody else can take it),
which is how ``imds-unreachable`` and the dead legacy port are emulated.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from mi_helpers.emulator.errors import DropConnection, WireError
from mi_helpers.emulator.framing import framing_problem, read_body, request_line_problem
from mi_helpers.redaction import redact, redact_token

__all__ = ["Listener", "Recorder", "log_entry", "reserve_port"]

#: Leading empty lines a server should ignore before a request line (RFC 9112, section 2.2).
_EMPTY_LINES = 4
#: A closing connection is drained until the client has been silent this long (s) ...
_LINGER_QUIET = 1.0
#: ... or this long in all (s), or this many bytes.
_LINGER_TOTAL = 3.0
_LINGER_BYTES = 8_000_000


class Recorder(Protocol):
    """Where a listener reports each request (the backend's request log)."""

    @property
    def scenario(self) -> str:
        """The scenario answering right now (stamped on each log entry)."""
        ...

    def record(self, entry: dict[str, Any]) -> None: ...


# ------------------------------------------------------------------------------------------- request log
def log_entry(
    listener: str, request: Request, status: int, started: float, error: str | None
) -> dict[str, Any] | None:
    """One request-log entry (tokens and the ``Authorization`` header redacted); None for admin requests."""
    if request.path.startswith("/_emulator"):
        return None
    auth = request.headers.get("Authorization")
    if auth:
        scheme, _, tok = auth.partition(" ")
        auth = f"{scheme} {redact_token(tok)}" if tok else redact_token(scheme)
    entry = {
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
        "listener": listener,
        "method": request.method,
        "path": redact(request.path),
        "query": redact(request.query_string.decode("latin-1")),
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "client": request.remote_addr,
        "user_agent": redact(request.headers.get("User-Agent", "")),
        "metadata_header": request.headers.get("Metadata"),
        "authorization": auth,
        "identity": request.environ.get("mi.identity"),
        "fault": request.environ.get("mi.fault"),
        "scenario": request.environ.get("mi.scenario"),
    }
    if error:
        entry["error"] = error
    return entry


class _Request(Request):
    # Bodies are read (and bounded) by the transport before a route sees the request.
    max_form_memory_size = 1_000_000


# ------------------------------------------------------------------------------------------- the handler
class _Input:
    """The handler's input stream; once the answer is on its way, reads return nothing.

    werkzeug reads "whatever is left" after each response, because it means to close the connection. On a
    kept-alive connection that would swallow (or block on) the client's next request, and on a closing one
    it blocks until the client gives up; the lingering close in :meth:`_Handler.finish` drains instead.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.answered = False

    def read(self, size: int | None = -1) -> bytes:
        if self.answered:
            return b""
        data: bytes = self._raw.read(size)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _Handler(WSGIRequestHandler):
    """werkzeug's handler with Nagle off, HTTP/1.1 keep-alive, framing checks and silent logging.

    werkzeug itself answers every request with ``Connection: close``; real clients (urllib3 pools) reuse
    connections, and IMDS/ARM allow that, so that header is dropped unless the connection must close.
    Connections are tracked per listener so closing a listener also closes its kept-alive connections: a
    pooled client connection must not outlive ``imds-unreachable``.
    """

    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    timeout = 30

    @property
    def listener(self) -> Listener:
        owner: Listener = self.server.mi_listener  # type: ignore[attr-defined]
        return owner

    def setup(self) -> None:
        super().setup()
        self.rfile = _Input(self.rfile)  # type: ignore[assignment]
        self.listener.track(self.connection)

    def finish(self) -> None:
        try:
            self._linger()
            super().finish()
        finally:
            self.listener.untrack(self.connection)

    def handle_one_request(self) -> None:
        self.rfile.answered = False  # type: ignore[attr-defined]
        self.environ = {}  # no keep-alive decision may leak from the previous request
        super().handle_one_request()

    def parse_request(self) -> bool:
        if not self._skip_empty_lines():
            return False
        line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        problem = request_line_problem(line)
        if problem is not None:
            self.request_version = "HTTP/1.1"
            self.send_error(400, problem)
            return False
        if not super().parse_request():
            return False
        refused = framing_problem(self.command, self.path, self.headers, self.listener.body_limit)
        if refused is not None:
            self.send_error(*refused)
            return False
        if self.headers.get("Expect", "").strip().lower() == "100-continue":
            del self.headers["Expect"]  # answered here, so werkzeug does not send a second 100
            if self.request_version == "HTTP/1.1" and self._expects_body():
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.wfile.flush()
        return True

    def make_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().make_environ()
        environ["mi.input"] = self.rfile  # the raw input: the transport reads chunked bodies itself
        return environ

    def handle_expect_100(self) -> bool:
        return True  # decided in parse_request, once the framing is known to be acceptable

    def _skip_empty_lines(self) -> bool:
        """Ignore a few empty lines before the request line; False at end of input (nothing to answer)."""
        line: bytes = self.raw_requestline  # type: ignore[has-type]
        for _ in range(_EMPTY_LINES):
            if line not in (b"\r\n", b"\n"):
                break
            line = self.rfile.readline(65537)
        self.raw_requestline = line
        if not self.raw_requestline:
            self.close_connection = True
            return False
        if len(self.raw_requestline) > 65536:
            self.request_version = "HTTP/1.1"
            self.send_error(414, "The request line is longer than 65536 bytes.")
            return False
        return True

    def _expects_body(self) -> bool:
        return "Transfer-Encoding" in self.headers or int(self.headers.get("Content-Length") or 0) > 0

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close":
            env = getattr(self, "environ", None) or {}
            if not self.close_connection and self.listener.keep_alive and not env.get("mi.close"):
                return  # keep the connection for the client's next request
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        super().end_headers()
        self.rfile.answered = True  # type: ignore[attr-defined]

    def send_response(self, code: int, message: str | None = None) -> None:
        self.send_response_only(code, message)
        if self.listener.server_header:
            self.send_header("Server", self.listener.server_header)
        self.send_header("Date", self.date_time_string())

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A refusal in the service's own envelope, with ``Connection: close`` (never an HTML page)."""
        self.close_connection = True
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            self.request_version = "HTTP/1.1"  # never an HTTP/0.9 answer without a status line
        detail = message or self.responses.get(code, ("Bad request",))[0]
        err = self.listener.framing_error(code, detail)
        body = err.body if isinstance(err.body, str) else json.dumps(err.body, separators=(",", ":"))
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", err.content_type)
        for key, value in err.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if getattr(self, "command", None) != "HEAD":  # unset when the request line was unreadable
            self.wfile.write(data)

    def _linger(self) -> None:
        """Close gently: answer flushed, write side shut, unread input drained (bounded), then close."""
        if not self.close_connection:
            return
        with contextlib.suppress(OSError, ValueError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)  # the client sees the end of the answer at once
            deadline = time.monotonic() + _LINGER_TOTAL
            drained = 0
            while drained < _LINGER_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.connection.settimeout(min(_LINGER_QUIET, left))
                data = self.connection.recv(65536)
                if not data:
                    break
                drained += len(data)

    def log(self, type: str, message: str, *args: Any) -> None:
        return None

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


# ------------------------------------------------------------------------------------------- listeners
class Listener:
    """One werkzeug server on its own thread, serving ``route``; ``close`` can keep the port (refusing).

    ``framing_error(status, detail)`` renders a refusal in the service's envelope, ``body_limit`` bounds
    request bodies, ``keep_alive`` allows several requests per connection, and every request is reported
    to ``recorder``.
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        route: Callable[[Request], Response],
        *,
        framing_error: Callable[[int, str], WireError],
        recorder: Recorder,
        body_limit: int = 1_000_000,
        keep_alive: bool = True,
        ssl_context: Any = None,
        server_header: str = "",
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.route = route
        self.framing_error = framing_error
        self.recorder = recorder
        self.body_limit = body_limit
        self.keep_alive = keep_alive
        self.ssl_context = ssl_context
        self.server_header = server_header
        self.server: BaseWSGIServer | None = None
        self.thread: threading.Thread | None = None
        self.reservation: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "listening" if self.listening else ("reserved" if self.reservation else "closed")
        return f"<Listener {self.name} {self.host}:{self.port} {state}>"

    @property
    def listening(self) -> bool:
        return self.server is not None

    # ------------------------------------------------------------------ the WSGI application
    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Read the body, run the route, turn anything it cannot digest into a 4xx, log the request."""
        started = time.perf_counter()
        environ["mi.scenario"] = self.recorder.scenario  # the scenario that answers, even if it changes
        problem = read_body(environ, self.body_limit)
        request = _Request(environ)
        error = None
        if problem is not None:
            environ["mi.close"] = True
            response = self.framing_error(*problem).response()
        else:
            try:
                response = self.route(request)
            except DropConnection:
                self._record(request, 0, started, "connection dropped without an answer")
                sock = environ.get("werkzeug.socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                raise
            except HTTPException as exc:  # werkzeug's own refusals (limits of form parsing and the like)
                environ["mi.close"] = True
                response = self.framing_error(exc.code or 400, exc.description or exc.name).response()
            except Exception as exc:  # input the emulator could not digest: a 400, never a 500 or a hang
                error = f"{type(exc).__name__}: {redact(exc)}"[:300]
                response = self.framing_error(
                    400, f"The emulator could not process this request ({type(exc).__name__})."
                ).response()
        self._record(request, response.status_code, started, error)
        return response(environ, start_response)

    def _record(self, request: Request, status: int, started: float, error: str | None) -> None:
        entry = log_entry(self.name, request, status, started, error)
        if entry is not None:
            self.recorder.record(entry)

    # ------------------------------------------------------------------ connections
    def track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Listen (re-using the reserved port, if any); returns once connections are accepted."""
        if self.server is not None:
            return
        if self.reservation is not None:
            self.reservation.close()
            self.reservation = None
        try:
            server = make_server(
                self.host,
                self.port,
                self.app,
                threaded=True,
                request_handler=_Handler,
                ssl_context=self.ssl_context,
            )
        except SystemExit:  # werkzeug prints the reason and exits on bind errors
            raise OSError(f"{self.name}: cannot listen on {self.host}:{self.port} (port in use?)") from None
        server.mi_listener = self  # type: ignore[attr-defined]
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.port = server.port
        self.server = server
        self.thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"emulator-{self.name}",
            daemon=True,
        )
        self.thread.start()

    def reserve(self) -> None:
        """Bind the port without listening: connections are refused and nobody else can take it."""
        if self.reservation is not None or self.server is not None:
            return
        self.reservation = reserve_port(self.host, self.port)
        self.port = self.reservation.getsockname()[1]

    def close(self, keep_port: bool = False) -> None:
        """Stop listening and end kept-alive connections; ``keep_port`` leaves the port bound, refusing."""
        server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            with self._lock:
                open_conns = list(self._connections)
            for conn in open_conns:  # kept-alive client connections end with the listener
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        if self.thread is not None:
            self.thread.join(timeout=2)
            self.thread = None
        if keep_port:
            self.reserve()
        elif self.reservation is not None:
            self.reservation.close()
            self.reservation = None


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: any free port) that never listens: connecting is refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError:
        s.close()
        raise
    return s
