"""The wire errors of the emulator's Entra ID token endpoints and of its Microsoft Graph.

Kept beside :mod:`mi_helpers.emulator.errors` (IMDS, ARM, admin) in a module of their own so the two
services' texts live in one place each (docs/protocol.md, "Entra ID token endpoints", "Microsoft Graph").

Entra's envelope (public error bodies quoted in docs/protocol.md):
``{"error", "error_description", "error_codes": [n], "timestamp", "trace_id", "correlation_id",
"error_uri"}``, the description ending ``\\r\\nTrace ID: …\\r\\nCorrelation ID: …\\r\\nTimestamp: …``.
The correlation ID is the client's ``client-request-id`` when it sent one (MSAL does), so a client can
match the error to its request. Graph's envelope: ``{"error": {"code", "message", "innerError": {"date",
"request-id", "client-request-id"}}}``.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from typing import Any

from werkzeug.wrappers import Response

from mi_helpers.emulator.errors import WireError

__all__ = [
    "ENTRA_CONTENT_TYPE",
    "GRAPH_CONTENT_TYPE",
    "EntraError",
    "GraphError",
    "entra_framing_error",
    "graph_framing_error",
]

ENTRA_CONTENT_TYPE = "application/json; charset=utf-8"
GRAPH_CONTENT_TYPE = "application/json"


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


class EntraError(WireError):
    """An Entra ID (STS) error: ``status``, the OAuth ``error``, the ``AADSTS`` number and its text."""

    def __init__(self, status: int, error: str, code: int, text: str, headers: dict[str, str] | None = None):
        self.error = error
        self.code = code
        self.text = text
        super().__init__(status, self.body_for(None), content_type=ENTRA_CONTENT_TYPE, headers=headers)

    def body_for(self, correlation_id: str | None) -> dict[str, Any]:
        """The error body, with fresh trace ID and timestamp and ``correlation_id`` (or a new one)."""
        trace = str(uuid.uuid4())
        correlation = correlation_id or str(uuid.uuid4())
        stamp = _now().strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.text}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {correlation}\r\nTimestamp: {stamp}",
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }

    def response_for(self, correlation_id: str | None) -> Response:
        """The reply, its correlation ID the client's ``client-request-id`` (when it sent one)."""
        self.body = self.body_for(correlation_id)
        response = self.response()
        response.headers["x-ms-request-id"] = self.body["trace_id"]
        return response


def entra_framing_error(status: int, detail: str) -> EntraError:
    """Entra's answer to a request the transport cannot accept (AADSTS9002313, "Request is malformed")."""
    return EntraError(
        status, "invalid_request", 9002313, f"Invalid request. Request is malformed or invalid. {detail}"
    )


class GraphError(WireError):
    """A Microsoft Graph error: ``{"error": {"code", "message", "innerError": {…}}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self.code = code
        self.message = message
        super().__init__(status, self.body_for(None), content_type=GRAPH_CONTENT_TYPE, headers=headers)

    def body_for(self, client_request_id: str | None, request_id: str | None = None) -> dict[str, Any]:
        """The body; ``innerError`` names this request (``client-request-id``: the client's, else ours)."""
        rid = request_id or str(uuid.uuid4())
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": _now().strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": rid,
                    "client-request-id": client_request_id or rid,
                },
            }
        }


def graph_framing_error(status: int, detail: str) -> GraphError:
    """Graph's answer to a request the transport cannot accept."""
    code = {413: "RequestEntityTooLarge", 408: "RequestTimeout"}.get(status, "BadRequest")
    return GraphError(status, code, detail)
