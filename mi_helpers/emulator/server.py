"""The :class:`Emulator` facade: a backend, the listeners serving it, their URLs and the client environment.

One :class:`Emulator` owns up to nine loopback listeners: IMDS (HTTP), ARM (HTTPS), Entra ID and Microsoft
Graph (HTTPS, each its own listener, as each is its own host on Azure), Key Vault and Blob storage (HTTPS,
the data planes), admin (HTTP, always up), and, when
the scenario needs them, the fake proxy of ``proxy-intercept`` and the dead legacy port of
``legacy-extension-endpoint`` (bound without ``listen()``, so connecting is refused and no other program
can take the port). ``imds-unreachable`` closes the IMDS listener the same way and re-opens it on the same
port when the scenario changes. State and rules live in :class:`~mi_helpers.emulator.backend.Backend`;
sockets and framing in :mod:`~mi_helpers.emulator.transport`; this module only wires them together.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import tempfile
import warnings
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from mi_helpers.constants import Imds
from mi_helpers.emulator.admin import AdminLayer, is_discovery_path
from mi_helpers.emulator.arm import ArmLayer
from mi_helpers.emulator.backend import Backend, Layout, WorldSource
from mi_helpers.emulator.blob import BlobLayer
from mi_helpers.emulator.clock import Clock
from mi_helpers.emulator.endpoints import Endpoints, is_loopback, url_host
from mi_helpers.emulator.entra import EntraLayer
from mi_helpers.emulator.faults import FaultEngine
from mi_helpers.emulator.graph import GraphLayer
from mi_helpers.emulator.imds import ImdsLayer
from mi_helpers.emulator.keyvault import KeyVaultLayer
from mi_helpers.emulator.layer import Layer
from mi_helpers.emulator.proxy import ProxyLayer
from mi_helpers.emulator.tls import ensure_tls, server_ssl_context
from mi_helpers.emulator.tokens import TokenIssuer
from mi_helpers.emulator.transport import Listener, reserve_port
from mi_helpers.emulator.world import World
from mi_helpers.validate import InputError

__all__ = ["IMDS_SERVER_HEADER", "Emulator"]

IMDS_SERVER_HEADER = Imds.SERVER_HEADER


class Emulator:
    """The local Azure emulator: IMDS + ARM subset + admin API, driven by a named scenario.

    ``allow_non_loopback`` lets ``host`` be an address other machines can reach (with a
    :class:`RuntimeWarning`); ``clock`` replaces the real clocks (tests step time instead of sleeping);
    ``entra_port`` and ``graph_port`` place the Entra ID and Microsoft Graph listeners (0 = any free port).

    >>> with Emulator(scenario="healthy") as emu:          # doctest: +SKIP
    ...     os.environ.update(emu.environment())
    """

    def __init__(
        self,
        scenario: str = "healthy",
        world: WorldSource = None,
        host: str = "127.0.0.1",
        imds_port: int = 0,
        arm_port: int = 0,
        admin_port: int = 0,
        params: dict[str, Any] | None = None,
        *,
        allow_non_loopback: bool = False,
        clock: Clock | None = None,
        entra_port: int = 0,
        graph_port: int = 0,
        keyvault_port: int = 0,
        blob_port: int = 0,
    ) -> None:
        _check_host(host, allow_non_loopback)
        ports = (("imds_port", imds_port), ("arm_port", arm_port), ("admin_port", admin_port))
        services = (("entra_port", entra_port), ("graph_port", graph_port))
        data_planes = (("keyvault_port", keyvault_port), ("blob_port", blob_port))
        for field, value in (*ports, *services, *data_planes):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
                raise InputError(field, "must be a port number 0-65535 (0 = any free port)", value)
        self.host = host
        self.backend = Backend(scenario, world, params, clock=clock)
        self.admin_key = secrets.token_urlsafe(24)
        self._tls = ensure_tls()
        self._started = False
        backend = self.backend
        self._imds_layer = ImdsLayer(backend)
        self._admin_layer = AdminLayer(backend, self.endpoints)
        arm_layer = ArmLayer(backend, self.endpoints)
        proxy_layer = ProxyLayer(backend, self.endpoints)
        self._imds = self._listener(
            self._imds_layer, imds_port, route=self._imds_route, server_header=IMDS_SERVER_HEADER
        )
        self._arm = self._listener(arm_layer, arm_port, ssl_context=server_ssl_context(self._tls))
        self._admin = self._listener(self._admin_layer, admin_port)
        self._proxy = self._listener(proxy_layer, 0, server_header="corporate-proxy")
        self._legacy: socket.socket | None = None
        self._legacy_port = 0
        tls = server_ssl_context(self._tls)
        self._entra = self._listener(EntraLayer(backend, self.endpoints), entra_port, ssl_context=tls)
        self._graph = self._listener(GraphLayer(backend, self.endpoints), graph_port, ssl_context=tls)
        # --- data planes: Key Vault (the listener is the vault's host) and Blob storage (path-style)
        self._keyvault = self._listener(
            KeyVaultLayer(backend, self.endpoints), keyvault_port, ssl_context=tls
        )
        self._blob = self._listener(BlobLayer(backend, self.endpoints), blob_port, ssl_context=tls)
        backend.on_layout(self._on_layout)

    def _listener(self, layer: Layer, port: int, **kw: Any) -> Listener:
        route = kw.pop("route", layer.handle)
        return Listener(
            layer.name,
            self.host,
            port,
            route,
            framing_error=layer.framing_error,
            recorder=self.backend,
            body_limit=layer.body_limit,
            keep_alive=layer.keep_alive,
            **kw,
        )

    def _imds_route(self, request: Request) -> Response:
        """The IMDS listener also serves the admin API and the token-verification documents."""
        if request.path.startswith("/_emulator") or is_discovery_path(request.path):
            return self._admin_layer.handle(request)
        return self._imds_layer.handle(request)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Emulator:
        """Open every listener the scenario needs; returns once each accepts connections."""
        with self.backend.lock:
            if self._started:
                return self
            try:
                self._entra.open()
                self._graph.open()
                self._keyvault.open()
                self._blob.open()
                self.backend.data_plane_urls.update(keyvault=self.keyvault_url, blob=self.blob_url)
                self._admin.open()
                self._arm.open()
                # The emulated services are resources a token may be asked for: az uses its cloud's Graph
                # base URL as the Graph token's resource, and its ARM URL for some calls.
                self.backend.directory.register_service(self.arm_url)
                self.backend.directory.register_service(self.endpoints().graph_url)
                self._started = True
                self.backend.rearm()  # listeners as the scenario says, faults armed afresh
            except BaseException:
                self._started = False
                self._close_all()
                raise
        return self

    def stop(self) -> None:
        """Close every listener and release hung requests (idempotent)."""
        with self.backend.lock:
            self.backend.release()
            self._close_all()
            self._started = False

    def _close_all(self) -> None:
        listeners = (self._imds, self._proxy, self._arm, self._entra, self._graph, self._admin)
        for lst in (*listeners, self._keyvault, self._blob):
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

    def _on_layout(self, layout: Layout) -> None:
        if self._started:
            self._apply_layout(layout)

    def _apply_layout(self, layout: Layout) -> None:
        """Make listeners match the scenario: IMDS open or refused, proxy and dead legacy port as needed."""
        if layout.imds_listening:
            self._imds.open()
        else:
            self._imds.close(keep_port=True)
        if layout.proxy:
            self._proxy.open()
        else:
            self._proxy.close()
        if layout.legacy_port and self._legacy is None:
            host = self.host if self.host != "localhost" else "127.0.0.1"
            try:
                self._legacy = reserve_port(host, Imds.LEGACY_EXTENSION_PORT)
            except OSError:
                self._legacy = reserve_port(host, 0)
            self._legacy_port = self._legacy.getsockname()[1]
        elif not layout.legacy_port and self._legacy is not None:
            self._legacy.close()
            self._legacy = None

    # ------------------------------------------------------------------ URLs and environment
    @property
    def imds_url(self) -> str:
        return f"http://{url_host(self.host)}:{self._imds.port}"

    @property
    def arm_url(self) -> str:
        return f"https://{url_host(self.host)}:{self._arm.port}"

    @property
    def entra_url(self) -> str:
        """The Entra ID authority host (MI_HELPERS_ENTRA_URL): the authority is ``<entra_url>/<tenant>``."""
        return f"https://{url_host(self.host)}:{self._entra.port}"

    @property
    def graph_url(self) -> str:
        """Microsoft Graph's base URL (MI_HELPERS_GRAPH_URL); ``az`` also uses it as Graph's resource ID."""
        return f"https://{url_host(self.host)}:{self._graph.port}"

    @property
    def keyvault_url(self) -> str:
        """The emulated vault's URL (MI_HELPERS_KEYVAULT_URL); on Azure ``https://<name>.vault.azure.net/``."""
        return f"https://{url_host(self.host)}:{self._keyvault.port}"

    @property
    def blob_url(self) -> str:
        """Blob storage's base URL (MI_HELPERS_BLOB_URL); an account's endpoint: ``<blob_url>/<account>/``."""
        return f"https://{url_host(self.host)}:{self._blob.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{url_host(self.host)}:{self._admin.port}/_emulator"

    @property
    def proxy_url(self) -> str | None:
        return f"http://{url_host(self.host)}:{self._proxy.port}" if self._proxy.listening else None

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

    def endpoints(self) -> Endpoints:
        """Where this emulator can be reached right now (what the admin API and the proxy read)."""
        return Endpoints(
            imds_url=self.imds_url,
            arm_url=self.arm_url,
            admin_url=self.admin_url,
            proxy_url=f"http://{url_host(self.host)}:{self._proxy.port}",
            legacy_port=self._legacy_port or Imds.LEGACY_EXTENSION_PORT,
            ca_bundle=self.ca_bundle,
            admin_key=self.admin_key,
            imds_listening=self._imds.listening,
            entra_url=self.entra_url,
            graph_url=self.graph_url,
            tenant_id=self.backend.world.tenant.id,
            keyvault_url=self.keyvault_url,
            blob_url=self.blob_url,
            **self._operator(),
        )

    def _operator(self) -> dict[str, str]:
        """The operator's client ID and per-run secret for :class:`Endpoints` (none without an operator)."""
        creds = self.backend.operator_credentials()
        return {} if creds is None else {"operator_client_id": creds[0], "operator_secret": creds[1]}

    def environment(self) -> dict[str, str]:
        """Every variable a client process needs, including the scenario's client-side extras.

        Besides the IMDS and ARM pointers, it names the emulator's Entra ID and Graph, the tenant and the
        operator principal (client ID and its per-run secret) for a terminal or a Python cell that signs in
        to change things. On Azure you sign in as yourself with ``az login``; here an operator principal
        stands in for you: ``az login --service-principal -u "$MI_HELPERS_OPERATOR_CLIENT_ID" -p
        "$MI_HELPERS_OPERATOR_CLIENT_SECRET" --tenant "$MI_HELPERS_TENANT_ID"``.
        """
        ep = self.endpoints()
        return ep.environment(self.backend.scenario_environment(ep))

    def scenario_environment(self) -> dict[str, str]:
        """Only the client-side variables the current scenario adds (a misconfigured client machine)."""
        return self.backend.scenario_environment(self.endpoints())

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

    # ------------------------------------------------------------------ the backend, for callers of this API
    @property
    def world(self) -> World:
        """The live world (replaced by every scenario switch)."""
        return self.backend.world

    @property
    def engine(self) -> FaultEngine:
        return self.backend.engine

    @property
    def issuer(self) -> TokenIssuer:
        return self.backend.issuer

    @property
    def scenario(self) -> str:
        return self.backend.scenario

    @property
    def params(self) -> dict[str, Any]:
        return self.backend.params

    def scenario_state(self) -> dict[str, Any]:
        """Name, description, params, active faults and client-side extras of the current scenario."""
        return self.backend.scenario_state(self.endpoints())

    def set_scenario(self, name: str, **params: Any) -> dict[str, Any]:
        """Switch scenario: fresh world from the scenario's edit, faults re-armed, token cache emptied."""
        self.backend.set_scenario(name, **params)
        return self.scenario_state()

    def apply_fix(self, action: str, **kw: Any) -> dict[str, Any]:
        """Change the live world (or faults) as a learner's fix would; returns what happened."""
        return self.backend.apply_fix(action, **kw)

    def arm_clock_skew(self) -> float:
        """Seconds ARM's clock runs ahead (``expired-token``); 0 once faults are cleared."""
        return self.backend.arm_clock_skew()

    def world_dict(self) -> dict[str, Any]:
        """JSON-able description of the live world (same as ``GET /_emulator/world``)."""
        return self.backend.world_dict()

    def jwks(self) -> dict[str, Any]:
        """The public token-signing keys (same as ``GET {imds_url}/<tenant>/discovery/keys``)."""
        return self.backend.jwks()

    def request_log(self) -> list[dict[str, Any]]:
        """Recent requests (oldest first); ``Authorization`` and tokens are redacted."""
        return self.backend.request_log()

    def clear_log(self) -> None:
        self.backend.clear_log()


def _check_host(host: str, allow_non_loopback: bool) -> None:
    """Loopback only, unless ``allow_non_loopback`` (then a warning: other machines can get tokens)."""
    if not isinstance(host, str) or not host:
        raise InputError("host", "must be an IP address such as 127.0.0.1", host)
    if is_loopback(host):
        return
    if not allow_non_loopback:
        raise InputError(
            "host", f"{host!r} is not a loopback address (allowed: 127.0.0.1, ::1, localhost)", host
        )
    warnings.warn(
        f"the emulator listens on {host}: other machines can reach its IMDS and ARM",
        RuntimeWarning,
        stacklevel=3,
    )
