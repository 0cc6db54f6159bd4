"""The shape every HTTP layer of the emulator shares: parse → ask the backend → render, or a wire error.

A layer is one service's HTTP face (IMDS, ARM, the admin API, the fake proxy; later Entra, Graph, Key Vault,
Blob). It takes the :class:`~mi_helpers.emulator.backend.Backend` it answers for and never a socket or the
server facade, so ``layer.handle(request)`` can be driven with a ``werkzeug.test`` request and no listener.
``framing_error`` is how the service words a request the transport refuses before any layer sees it (body
too large, malformed framing): the transport renders it in the service's own error envelope.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from mi_helpers.emulator.backend import Backend
from mi_helpers.emulator.errors import WireError, imds_framing_error

__all__ = ["Layer", "json_response"]


def json_response(body: Any, status: int = 200, content_type: str = "application/json") -> Response:
    """A compact JSON reply (no spaces after separators, as Azure services send it)."""
    return Response(json.dumps(body, separators=(",", ":")), status=status, content_type=content_type)


class Layer:
    """Base of the HTTP layers: ``handle`` turns a :class:`WireError` from :meth:`respond` into its reply."""

    #: Name of the listener this layer serves (the request log's ``listener`` field).
    name: ClassVar[str] = ""
    #: Body limit in bytes; a larger declared or chunked body gets this service's 413.
    body_limit: ClassVar[int] = 1_000_000
    #: Whether a connection may carry several requests (a proxy closes after each answer).
    keep_alive: ClassVar[bool] = True

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def handle(self, request: Request) -> Response:
        """Answer one request: :meth:`respond` (or its wire error's reply), then :meth:`finish`."""
        try:
            response = self.respond(request)
        except WireError as err:
            response = err.response()
        return self.finish(request, response)

    def respond(self, request: Request) -> Response:
        """Parse ``request``, ask the backend, render the answer (raise a :class:`WireError` to refuse)."""
        raise NotImplementedError

    def finish(self, request: Request, response: Response) -> Response:
        """Headers every reply of this service carries, errors included (default: none)."""
        return response

    def framing_error(self, status: int, detail: str) -> WireError:
        """This service's reply to a request the transport refuses (``status`` is 400, 408, 413, 414, 431)."""
        return imds_framing_error(status, detail)
