"""Fixtures for the mi_helpers tests: the package's embedded emulator and a scripted loopback IMDS."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.targets import own_emulator
from support.world import SYS_PRINCIPAL, TENANT

from mi_helpers.constants import Arm
from mi_helpers.identity import clear_credential_cache
from mi_helpers.targeting import use_emulator


@pytest.fixture(scope="package")
def emulator() -> Iterator[Any]:
    """The package's embedded emulator (its own target state), started once through ``use_emulator``."""
    with own_emulator("healthy") as control:
        yield control


@pytest.fixture
def emu(emulator: Any) -> Iterator[Any]:
    """The package emulator in ``healthy`` with an empty request log and no cached credentials."""
    control = use_emulator("healthy")
    control.clear_log()
    clear_credential_cache()
    yield control
    use_emulator("healthy")
    clear_credential_cache()


# --------------------------------------------------------------------------- scripted IMDS stub


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; str -> sent as text/html
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0  # seconds to stall before answering


@dataclass
class Stub:
    """A loopback HTTP server that answers IMDS token requests from a script (then repeats the last reply)."""

    url: str
    script: list[Reply]
    requests: list[dict[str, Any]]
    stop_event: threading.Event

    def set(self, *replies: Reply) -> None:
        self.script[:] = list(replies)
        self.requests.clear()


def stub_token(claims: dict[str, Any] | None = None) -> str:
    import jwt

    payload = {
        "aud": Arm.URL,
        "oid": SYS_PRINCIPAL,
        "tid": TENANT,
        "exp": 4102444800,
    }
    payload.update(claims or {})
    return jwt.encode(payload, "stub-signing-key-of-sufficient-length!", algorithm="HS256")


def ok_reply(claims: dict[str, Any] | None = None) -> Reply:
    return Reply(
        200,
        {
            "access_token": stub_token(claims),
            "expires_in": "86399",
            "expires_on": "4102444800",
            "resource": Arm.URL,
            "token_type": "Bearer",
        },
    )


@pytest.fixture
def imds_stub(isolated_target: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stub]:
    """Target ``azure`` aimed at a scripted loopback IMDS (the way tests run the azure target)."""
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    script: list[Reply] = [ok_reply()]
    seen: list[dict[str, Any]] = []
    stop = threading.Event()

    @Request.application  # type: ignore[arg-type]
    def app(request: Request) -> Response:
        seen.append({"path": request.path, "args": dict(request.args), "headers": dict(request.headers)})
        reply = script[min(len(seen) - 1, len(script) - 1)]
        if reply.hang:
            stop.wait(reply.hang)
        if isinstance(reply.body, str):
            return Response(reply.body, reply.status, reply.headers, content_type="text/html")
        return Response(
            json.dumps(reply.body or {}), reply.status, reply.headers, content_type="application/json"
        )

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    for var in ("MI_HELPERS_EMULATOR_ADMIN", "MI_HELPERS_EMULATOR_KEY", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MI_HELPERS_TARGET", "azure")
    monkeypatch.setenv("MI_HELPERS_CLOUD", "public")
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", url)
    monkeypatch.setenv("MI_HELPERS_ARM_URL", "https://127.0.0.1:9")
    try:
        yield Stub(url, script, seen, stop)
    finally:
        stop.set()
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def events() -> tuple[list[Any], Callable[[Any], None]]:
    """A progress callback that records every event."""
    seen: list[Any] = []
    return seen, seen.append
