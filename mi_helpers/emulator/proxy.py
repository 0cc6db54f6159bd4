"""The fake corporate proxy of ``proxy-intercept`` (docs/protocol.md#failure-modes).

The scenario puts ``HTTP_PROXY=<this listener>`` in the client environment with a ``NO_PROXY`` that lacks
the IMDS address, so token requests arrive here as proxy requests. ``mode=gateway`` answers the classic
502 HTML page; ``mode=forward`` relays the request to the emulator's own IMDS adding ``X-Forwarded-For``
and ``Via``, which IMDS rejects. The proxy never connects anywhere but the emulator's IMDS listener.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.endpoints import Endpoints
from mi_helpers.emulator.errors import WireError, proxy_framing_error
from mi_helpers.emulator.layer import Layer
from mi_helpers.emulator.scenarios import GATEWAY_HTML

__all__ = ["ProxyLayer"]

_HOP_HEADERS = {
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
}


class ProxyLayer(Layer):
    """Answers requests sent to the proxy listener; ``endpoints`` says where the emulator's IMDS is."""

    name = "proxy"
    keep_alive = False

    def __init__(self, backend: Backend, endpoints: Callable[[], Endpoints]) -> None:
        super().__init__(backend)
        self.endpoints = endpoints

    def framing_error(self, status: int, detail: str) -> WireError:
        return proxy_framing_error(status, detail)

    def respond(self, request: Request) -> Response:
        request.environ["mi.fault"] = "proxy-intercept"
        mode = str(self.backend.params.get("mode", "gateway"))
        ep = self.endpoints()
        if mode == "forward" and request.method == "GET" and _targets_imds(request, ep):
            return _forward(request, ep.imds_url)
        return _gateway()


def _gateway() -> Response:
    return Response(GATEWAY_HTML, status=502, content_type="text/html; charset=UTF-8")


def _targets_imds(request: Request, ep: Endpoints) -> bool:
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    netloc = urlsplit(raw).netloc or request.host
    imds = urlsplit(ep.imds_url).netloc
    return bool(
        ep.imds_listening and netloc.lower() in (imds.lower(), imds.lower().replace("127.0.0.1", "localhost"))
    )


def _forward(request: Request, imds_url: str) -> Response:
    target = urlsplit(imds_url)
    path = request.full_path.rstrip("?") if request.query_string else request.path
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
    peer = request.remote_addr or "127.0.0.1"
    headers["X-Forwarded-For"] = peer
    headers["Via"] = "1.1 corporate-proxy"
    conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        upstream = conn.getresponse()
        body = upstream.read()
        resp = Response(body, status=upstream.status)
        for k, v in upstream.getheaders():
            if k.lower() not in _HOP_HEADERS and k.lower() not in ("content-length", "date", "server"):
                resp.headers[k] = v
        resp.headers["Via"] = "1.1 corporate-proxy"
        return resp
    except OSError:
        return _gateway()
    finally:
        conn.close()
