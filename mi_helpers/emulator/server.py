"""Wiring: the listeners (werkzeug threaded servers), start/stop, scenario switching, request log, env file.

One :class:`Emulator` owns up to five loopback listeners: IMDS (HTTP), ARM (HTTPS), admin (HTTP, always up),
and, when the scenario needs them, the fake proxy of ``proxy-intercept`` and the dead legacy port of
``legacy-extension-endpoint`` (bound without ``listen()``, so connecting is refused and no other program
can take the port). ``imds-unreachable`` closes the IMDS listener the same way and re-opens it on the same
port when the scenario changes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import ipaddress
import json
import os
import secrets
import socket
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from mi_helpers.emulator.admin import FIX_ACTIONS, AdminLayer, is_discovery_path
from mi_helpers.emulator.arm import ArmLayer
from mi_helpers.emulator.imds import ImdsLayer
from mi_helpers.emulator.proxy import ProxyLayer
from mi_helpers.emulator.scenarios import (
    COMMON_DEFAULTS,
    FaultEngine,
    Scenario,
    build_faults,
    build_world,
    get_scenario,
    resolve_params,
)
from mi_helpers.emulator.tls import ensure_signing_key, ensure_tls, server_ssl_context
from mi_helpers.emulator.tokens import TokenIssuer
from mi_helpers.emulator.world import World
from mi_helpers.redaction import redact, redact_token
from mi_helpers.validate import InputError

__all__ = ["IMDS_SERVER_HEADER", "Emulator"]

IMDS_SERVER_HEADER = "IMDS/150.870.65.1854"
LEGACY_PORT = 50342
_LOG_SIZE = 2000


class _Dropped(ConnectionAbortedError):
    """A hung request was released: close the connection without an answer.

    A ``ConnectionError`` so werkzeug treats it as a dropped connection (no 500, no traceback).
    """


class _Request(Request):
    max_content_length = 1_000_000
    max_form_memory_size = 1_000_000


class _KeepAliveInput:
    """The handler's input stream, with werkzeug's post-response drain made harmless.

    After each response werkzeug reads "whatever is left" with ``rfile.read(10_000_000)`` because it always
    closes the connection. On a kept-alive connection that would swallow (or block on) the client's next
    request, so once a response is sent, reads return nothing until the handler starts the next request
    (which it reads with ``readline``, passed through like everything else).
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.response_sent = False

    def read(self, size: int | None = -1) -> bytes:
        if self.response_sent:  # werkzeug drains the body after the response: the next request is not body
            return b""
        data: bytes = self._raw.read(size)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _Handler(WSGIRequestHandler):
    """werkzeug's handler with Nagle off, HTTP/1.1 keep-alive, bounded idle time and silent logging.

    werkzeug itself answers every request with ``Connection: close``; real clients (urllib3 pools) reuse
    connections, and IMDS/ARM allow that, so a response to a body-less HTTP/1.1 request that did not ask
    to close drops that header and keeps the connection (``mi.keep_alive`` set by the WSGI wrapper).
    Connections are tracked per server so closing a listener also closes its kept-alive connections: a
    pooled client connection must not outlive ``imds-unreachable``.
    """

    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    timeout = 30

    def setup(self) -> None:
        super().setup()
        self.rfile = _KeepAliveInput(self.rfile)  # type: ignore[assignment]
        conns = getattr(self.server, "mi_connections", None)
        if conns is not None:
            with self.server.mi_lock:  # type: ignore[attr-defined]
                conns.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            conns = getattr(self.server, "mi_connections", None)
            if conns is not None:
                with self.server.mi_lock:  # type: ignore[attr-defined]
                    conns.discard(self.connection)

    def handle_one_request(self) -> None:
        self.rfile.response_sent = False  # type: ignore[attr-defined]
        self.environ = {}  # no keep-alive decision may leak from the previous request
        super().handle_one_request()

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close":
            env = getattr(self, "environ", None) or {}
            if not self.close_connection and env.get("mi.keep_alive"):
                self.rfile.response_sent = True  # type: ignore[attr-defined]
                return
        super().send_header(keyword, value)

    def log(self, type: str, message: str, *args: Any) -> None:
        return None

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's 4xx for an oversized request line/headers, then drain what the client still sends.

        Closing a socket with unread input makes the kernel send RST, and over TLS the client then sees a
        connection reset instead of the 431/414; reading the rest (bounded) lets it read the answer.
        """
        self.close_connection = True
        super().send_error(code, message, explain)
        if 400 <= code < 500:
            with contextlib.suppress(OSError, ValueError):
                self.wfile.flush()
                self.connection.settimeout(1.5)  # a descheduled client may still be sending its header
                total = 0
                while total < 8_000_000:
                    chunk = self.rfile.read1(65536)
                    if not chunk:
                        break
                    total += len(chunk)

    def send_response(self, code: int, message: str | None = None) -> None:
        self.send_response_only(code, message)
        header = getattr(self.server, "mi_server_header", "")
        if header:
            self.send_header("Server", header)
        self.send_header("Date", self.date_time_string())


class _Listener:
    """One werkzeug server on its own thread; ``close`` keeps the port bound (refusing) when asked."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        app: Callable[..., Any],
        ssl_context: Any = None,
        server_header: str = "",
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.app = app
        self.ssl_context = ssl_context
        self.server_header = server_header
        self.server: BaseWSGIServer | None = None
        self.thread: threading.Thread | None = None
        self.reservation: socket.socket | None = None

    @property
    def listening(self) -> bool:
        return self.server is not None

    def open(self) -> None:
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
        server.mi_server_header = self.server_header  # type: ignore[attr-defined]
        server.mi_connections = set()  # type: ignore[attr-defined]
        server.mi_lock = threading.Lock()  # type: ignore[attr-defined]
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
        self.reservation = _reserve_port(self.host, self.port)
        self.port = self.reservation.getsockname()[1]

    def close(self, keep_port: bool = False) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            with server.mi_lock:  # type: ignore[attr-defined]
                open_conns = list(server.mi_connections)  # type: ignore[attr-defined]
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


def _reserve_port(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError:
        s.close()
        raise
    return s


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _coerce_world(world: World | dict[str, Any] | str | os.PathLike[str] | None) -> World:
    if world is None:
        return World.default()
    if isinstance(world, World):
        return world.copy()
    if isinstance(world, dict):
        return World.from_dict(world)
    return World.load(os.fspath(world))


class Emulator:
    """The local Azure emulator: IMDS + ARM subset + admin API, driven by a named scenario.

    >>> with Emulator(scenario="healthy") as emu:          # doctest: +SKIP
    ...     os.environ.update(emu.environment())
    """

    def __init__(
        self,
        scenario: str = "healthy",
        world: World | dict[str, Any] | str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        imds_port: int = 0,
        arm_port: int = 0,
        admin_port: int = 0,
        params: dict[str, Any] | None = None,
        *,
        proxy_port: int = 0,
        allow_non_loopback: bool = False,
        state_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise InputError("host", "must be an IP address such as 127.0.0.1", host)
        if not _is_loopback_host(host):
            if not allow_non_loopback:
                raise InputError(
                    "host", f"{host!r} is not a loopback address (allowed: 127.0.0.1, ::1, localhost)", host
                )
            warnings.warn(
                f"the emulator listens on {host}: other machines can reach its IMDS and ARM",
                RuntimeWarning,
                stacklevel=2,
            )
        for field, value in (
            ("imds_port", imds_port),
            ("arm_port", arm_port),
            ("admin_port", admin_port),
            ("proxy_port", proxy_port),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
                raise InputError(field, "must be a port number 0-65535 (0 = any free port)", value)
        self.host = host
        self._base_world = _coerce_world(world)
        self._scenario: Scenario = get_scenario(scenario)
        self._params: dict[str, Any] = resolve_params(self._scenario, params)
        self.admin_key = secrets.token_urlsafe(24)
        state = Path(state_dir) if state_dir is not None else None
        if state is not None:
            state.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._tls = ensure_tls(state)
        self.issuer = TokenIssuer(
            ensure_signing_key(state), self._base_world.tenant.id, int(self._params["token_lifetime"])
        )
        self.engine = FaultEngine()
        self.world: World = build_world(self._scenario, self._base_world, self._params)
        self._lock = threading.RLock()
        self._log: deque[dict[str, Any]] = deque(maxlen=_LOG_SIZE)
        self._log_lock = threading.Lock()
        self._started = False
        self._faults_cleared = False
        imds_layer, arm_layer, admin_layer, proxy_layer = (
            ImdsLayer(self),
            ArmLayer(self),
            AdminLayer(self),
            ProxyLayer(self),
        )

        def imds_route(req: Request) -> Response:
            if req.path.startswith("/_emulator") or is_discovery_path(req.path):
                return admin_layer.handle(req)
            return imds_layer.handle(req)

        self._imds = _Listener(
            "imds", host, imds_port, self._wsgi("imds", imds_route), None, IMDS_SERVER_HEADER
        )
        self._arm = _Listener(
            "arm", host, arm_port, self._wsgi("arm", arm_layer.handle), server_ssl_context(self._tls), ""
        )
        self._admin = _Listener("admin", host, admin_port, self._wsgi("admin", admin_layer.handle), None, "")
        self._proxy = _Listener(
            "proxy", host, proxy_port, self._wsgi("proxy", proxy_layer.handle), None, "corporate-proxy"
        )
        self._legacy: socket.socket | None = None
        self._legacy_port = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Emulator:
        """Open every listener the scenario needs; returns once each accepts connections."""
        with self._lock:
            if self._started:
                return self
            try:
                self._admin.open()
                self._arm.open()
                self._apply_layout()
            except BaseException:
                self._close_all()
                raise
            self._started = True
        return self

    def stop(self) -> None:
        """Close every listener and release hung requests (idempotent)."""
        with self._lock:
            self.engine.release()
            self._close_all()
            self._started = False

    def _close_all(self) -> None:
        for lst in (self._imds, self._proxy, self._arm, self._admin):
            with contextlib.suppress(OSError):
                lst.close()
        if self._legacy is not None:
            self._legacy.close()
            self._legacy = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"<Emulator {state} scenario={self.scenario!r} imds={self.imds_url} arm={self.arm_url}>"

    def _apply_layout(self) -> None:
        """Make listeners match the scenario: IMDS open or refused, proxy and dead legacy port as needed."""
        sc = self._scenario
        if sc.imds_listening or self._faults_cleared:
            self._imds.open()
        else:
            self._imds.close(keep_port=True)
        if sc.proxy:
            self._proxy.open()
        else:
            self._proxy.close()
        if sc.legacy_port and self._legacy is None:
            try:
                self._legacy = _reserve_port(
                    self.host if self.host != "localhost" else "127.0.0.1", LEGACY_PORT
                )
            except OSError:
                self._legacy = _reserve_port(self.host if self.host != "localhost" else "127.0.0.1", 0)
            self._legacy_port = self._legacy.getsockname()[1]
        elif not sc.legacy_port and self._legacy is not None:
            self._legacy.close()
            self._legacy = None
        self.engine.replace([] if self._faults_cleared else build_faults(sc, self._params))

    # ------------------------------------------------------------------ URLs and environment
    @property
    def imds_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self._imds.port}"

    @property
    def arm_url(self) -> str:
        return f"https://{_url_host(self.host)}:{self._arm.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self._admin.port}/_emulator"

    @property
    def proxy_url(self) -> str | None:
        return f"http://{_url_host(self.host)}:{self._proxy.port}" if self._proxy.listening else None

    @property
    def legacy_port(self) -> int | None:
        return self._legacy_port if self._legacy is not None else None

    @property
    def ca_bundle(self) -> str:
        return str(self._tls.ca_bundle)

    @property
    def ca_cert(self) -> str:
        return str(self._tls.ca_cert)

    @property
    def imds_listening(self) -> bool:
        return self._imds.listening

    @property
    def running(self) -> bool:
        return self._started

    def environment(self) -> dict[str, str]:
        """Every variable a client process needs, including the scenario's client-side extras."""
        env = {
            "AZURE_POD_IDENTITY_AUTHORITY_HOST": self.imds_url,
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
            "MI_HELPERS_TARGET": "emulator",
            "MI_HELPERS_ARM_URL": self.arm_url,
            "MI_HELPERS_EMULATOR_ADMIN": self.admin_url,
            "MI_HELPERS_EMULATOR_KEY": self.admin_key,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        env.update(self.scenario_environment())
        return env

    def scenario_environment(self) -> dict[str, str]:
        """Only the client-side variables the current scenario adds (a misconfigured client machine)."""
        sc = self._scenario
        if sc.client_env is None:
            return {}
        ctx = {
            "imds_url": self.imds_url,
            "arm_url": self.arm_url,
            "admin_url": self.admin_url,
            "proxy_url": self.proxy_url or f"http://{_url_host(self.host)}:{self._proxy.port}",
            "legacy_port": str(self._legacy_port or LEGACY_PORT),
        }
        return sc.client_env(ctx, dict(self._params))

    def write_env_file(self, path: str | os.PathLike[str]) -> Path:
        """Write ``KEY=VALUE`` lines (no quotes, no ``export``) atomically: temp file, then rename."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{k}={v}\n" for k, v in self.environment().items())
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return target

    # ------------------------------------------------------------------ scenario and fixes
    @property
    def scenario(self) -> str:
        return self._scenario.name

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def scenario_state(self) -> dict[str, Any]:
        """Name, description, params, active faults and client-side extras of the current scenario."""
        return {
            "scenario": self.scenario,
            "description": self._scenario.description,
            "params": self.params,
            "faults": self.engine.describe(),
            "faults_cleared": self._faults_cleared,
            "imds_listening": self.imds_listening,
            "scenario_environment": self.scenario_environment(),
        }

    def set_scenario(self, name: str, **params: Any) -> dict[str, Any]:
        """Switch scenario: fresh world from the scenario's edit, faults re-armed, token cache emptied."""
        sc = get_scenario(name)
        resolved = resolve_params(sc, params)
        with self._lock:
            self._scenario, self._params = sc, resolved
            self._faults_cleared = False
            self.world = build_world(sc, self._base_world, resolved)
            self.issuer.lifetime = int(resolved["token_lifetime"])
            self.issuer.clear_cache()
            if self._started:
                self._apply_layout()
            else:
                self.engine.replace(build_faults(sc, resolved))
        return self.scenario_state()

    def apply_fix(self, action: str, **kw: Any) -> dict[str, Any]:  # noqa: C901
        """Change the live world (or faults) as a learner's fix would; returns what happened."""
        if action not in FIX_ACTIONS:
            raise InputError("action", f"unknown fix {action!r} (allowed: {', '.join(FIX_ACTIONS)})", action)
        allowed_kw = {
            "attach-user-identity": {"name", "resource_id", "client_id"},
            "detach-user-identity": {"name", "resource_id", "client_id"},
            "add-role-assignment": {"principal_id", "role", "scope"},
            "remove-role-assignment": {"principal_id", "role", "scope", "id"},
        }.get(action, set())
        bad = [k for k in kw if k not in allowed_kw]
        if bad:
            allowed = ", ".join(sorted(allowed_kw)) or "none"
            raise InputError(bad[0], f"not an argument of fix {action!r} (allowed: {allowed})", kw[bad[0]])
        for k, v in kw.items():
            if v is not None and not isinstance(v, str):
                raise InputError(k, "must be a string", v)
        with self._lock:
            w = self.world  # read under the lock: a concurrent set_scenario replaces the world
            if action == "enable-system-identity":
                msg = w.enable_system_identity()
            elif action == "disable-system-identity":
                msg = w.disable_system_identity()
            elif action == "attach-user-identity":
                msg = w.attach_user_identity(**kw)
            elif action == "detach-user-identity":
                msg = w.detach_user_identity(**kw)
            elif action == "add-role-assignment":
                msg = w.add_role_assignment(**kw)
            elif action == "remove-role-assignment":
                msg = w.remove_role_assignment(**kw)
            elif action == "clear-faults":
                self._faults_cleared = True
                if self._started:
                    self._apply_layout()
                else:
                    self.engine.clear()
                msg = "stopped every fault (the world is unchanged)"
            else:  # reset
                self.set_scenario(self.scenario, **self._overrides())
                msg = f"reset to scenario {self.scenario!r}"
        return {"action": action, "message": msg, "scenario": self.scenario}

    def _overrides(self) -> dict[str, Any]:
        """The params that differ from the scenario's defaults (kept by ``reset``)."""
        defaults = {**COMMON_DEFAULTS, **self._scenario.defaults}
        return {k: v for k, v in self._params.items() if defaults.get(k) != v}

    def arm_clock_skew(self) -> float:
        """Seconds ARM's clock runs ahead (``expired-token``); 0 once faults are cleared."""
        key = self._scenario.arm_clock_skew
        if key is None or self._faults_cleared:
            return 0.0
        return float(self._params.get(key) or 0)

    def world_dict(self) -> dict[str, Any]:
        """JSON-able description of the live world (same as ``GET /_emulator/world``)."""
        return self.world.to_dict()

    def jwks(self) -> dict[str, Any]:
        """The public token-signing keys (same as ``GET {imds_url}/<tenant>/discovery/keys``)."""
        return self.issuer.jwks()

    # ------------------------------------------------------------------ hang support (imds-hang)
    def hang(self, request: Request) -> None:
        """Keep the connection open without answering until the scenario changes or the emulator stops."""
        released = self.engine.released
        while not released.wait(0.5):
            if not self._started:
                break
        sock = request.environ.get("werkzeug.socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        raise _Dropped()

    # ------------------------------------------------------------------ request log
    def request_log(self) -> list[dict[str, Any]]:
        """Recent requests (oldest first); ``Authorization`` and tokens are redacted."""
        with self._log_lock:
            return [dict(e) for e in self._log]

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def _record(
        self, listener: str, request: Request, status: int, started: float, error: str | None
    ) -> None:
        if request.path.startswith("/_emulator"):
            return
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
            "scenario": request.environ.get("mi.scenario", self.scenario),
        }
        if error:
            entry["error"] = error
        with self._log_lock:
            self._log.append(entry)

    # ------------------------------------------------------------------ WSGI wrapper
    def _wsgi(self, listener: str, route: Callable[[Request], Response]) -> Callable[..., Any]:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            started = time.perf_counter()
            request = _Request(environ)
            environ["mi.scenario"] = self.scenario  # the scenario that answers, even if it changes meanwhile
            error = None
            try:
                response = route(request)
            except _Dropped:
                self._record(listener, request, 0, started, "connection dropped without an answer")
                raise
            except HTTPException as exc:  # e.g. 413 from werkzeug's body limits
                response = Response(
                    json.dumps({"error": "bad_request", "error_description": exc.description or exc.name}),
                    status=exc.code or 400,
                    content_type="application/json",
                )
            except Exception as exc:  # input the emulator could not digest: a 400, never a 500 or a hang
                error = f"{type(exc).__name__}: {redact(exc)}"[:300]
                response = Response(
                    json.dumps(
                        {
                            "error": "bad_request",
                            "error_description": "The emulator could not process this request "
                            f"({type(exc).__name__}).",
                        }
                    ),
                    status=400,
                    content_type="application/json",
                )
            self._record(listener, request, response.status_code, started, error)
            # Keep the connection only when no request body is left unread (a leftover body would be
            # parsed as the next request) and the listener is not a proxy.
            has_body = bool(request.content_length) or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "")
            drained = bool(getattr(request.stream, "is_exhausted", False)) if has_body else True
            environ["mi.keep_alive"] = listener != "proxy" and drained
            return response(environ, start_response)

        return app
