"""A minimal static IMDS token server (werkzeug) for the baseline of ``token_cold_ms``.

It answers every request with one fixed JSON token body, doing no checks, no signing and no bookkeeping,
so "raw SDK against this stub" is the floor a client can reach on this machine; the emulator's cost is the
ratio to it. Run ``python stub_server.py``: it prints ``PORT <n>`` once listening and serves until killed.
Same server machinery as the emulator (werkzeug's threaded server, Nagle off), so the ratio measures what
the emulator does per request, not a different HTTP stack.
"""

from __future__ import annotations

import json
import sys
import time

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

_NOW = int(time.time())
BODY = json.dumps(
    {
        "access_token": "stub-access-token-not-a-jwt",
        "client_id": "00000000-0000-0000-0000-000000000000",
        "expires_in": "86399",
        "expires_on": str(_NOW + 86399),
        "ext_expires_in": "86399",
        "not_before": str(_NOW),
        "resource": "https://management.azure.com",
        "token_type": "Bearer",
    }
)


class _Handler(WSGIRequestHandler):
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


@Request.application
def app(request: Request) -> Response:
    return Response(BODY, content_type="application/json; charset=utf-8")


def main() -> None:
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Handler)
    print(f"PORT {server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
