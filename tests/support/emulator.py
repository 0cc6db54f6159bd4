"""Helpers for the emulator tests: wire texts, raw HTTP clients, socket-free layer calls, a manual clock.

``from support.emulator import RawImds, unverified_claims, ...``. The fixtures that build on these (the
shared emulator, ``use_scenario``, ``clock``) live in ``tests/emulator/conftest.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from mi_helpers.constants import MANAGED_IDENTITY_VARIABLES, PROXY_VARIABLES, Arm, Imds, Roles
from mi_helpers.constants import EnvironmentVariables as Env
from support.world import SUB, TENANT

# --- Azure facts and wire texts the tests compare against ----------------------------------------

ARM_RESOURCE = Arm.RESOURCE
ARM_SCOPE = Arm.SCOPE
CLI_ARM_RESOURCE = Arm.CLI_RESOURCE
ARM_AUDIENCES = Arm.AUDIENCES
READER_ROLE_ID = Roles.READER
TOKEN_PATH = Imds.TOKEN_PATH
TOKEN_QUERY = {"api-version": Imds.TOKEN_API_VERSION, "resource": ARM_RESOURCE}
IDENTITY_NOT_FOUND_BODY = b'{"error":"invalid_request","error_description":"Identity not found"}'
MULTIPLE_UAMI_TEXT = (
    "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in "
    "the token request"
)
MI_NO_RESPONSE = "ManagedIdentityCredential authentication unavailable, no response from the IMDS endpoint."
VM_PATH = (
    f"/subscriptions/{SUB}/resourceGroups/rg-mi-tutorial/providers/Microsoft.Compute/virtualMachines/"
    "vm-mi-tutorial"
)

#: Variables that change which back end azure-identity/MSAL use, or where a client goes; a developer
#: machine may have some set, so every emulator test starts without them.
CLIENT_TRAPS = (
    *MANAGED_IDENTITY_VARIABLES,
    *PROXY_VARIABLES,
    Env.AZURE_AUTHORITY_HOST,
    Env.AZURE_CLIENT_ID,
    Env.AZURE_TENANT_ID,
    Env.AZURE_CLIENT_SECRET,
)


# --- time ------------------------------------------------------------------------------------------


class ManualClock:
    """A clock that moves only when told to (``advance``): fault windows and buckets without sleeping.

    ``monotonic()`` starts at an arbitrary point and stands still between ``advance`` calls. ``time()`` is
    the real wall clock (so tokens stay valid for the SDKs), unless ``wall`` is given: then it starts there
    and moves with ``advance`` too (token lifetimes and ``expires_in`` countdowns without sleeping).
    """

    def __init__(self, wall: float | None = None) -> None:
        self._now = 1_000.0
        self._wall = wall

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        if self._wall is None:
            return time.time()
        return self._wall + (self._now - 1_000.0)

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "time never runs backwards"
        self._now += seconds


# --- raw HTTP clients ----------------------------------------------------------------------------


def plain_session() -> requests.Session:
    """A requests session that ignores proxy and CA variables of the environment (raw wire checks)."""
    s = requests.Session()
    s.trust_env = False
    return s


class RawImds:
    """Raw IMDS requests against an emulator (no SDK in the way)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def get(
        self,
        path: str = TOKEN_PATH,
        params: Any = None,
        headers: dict[str, str] | None = None,
        metadata: bool = True,
        timeout: float = 10,
        method: str = "GET",
    ) -> requests.Response:
        hdrs = {"Metadata": "true"} if metadata else {}
        hdrs.update(headers or {})
        with plain_session() as s:
            return s.request(method, self.base + path, params=params, headers=hdrs, timeout=timeout)

    def token(self, resource: str = ARM_RESOURCE, **selectors: str) -> requests.Response:
        return self.get(params={"api-version": Imds.TOKEN_API_VERSION, "resource": resource, **selectors})

    def access_token(self, resource: str = ARM_RESOURCE, **selectors: str) -> str:
        r = self.token(resource, **selectors)
        assert r.status_code == 200, (r.status_code, r.text[:300])
        return str(r.json()["access_token"])


#: The api-version the pinned SDKs send per resource type (azure-mgmt-compute 39, -msi 7.1, -authorization
#: 4, -resource 26; the Azure CLI for subscriptions): what a raw request in a test sends unless it says.
CLIENT_API_VERSIONS = {
    "microsoft.compute/": "2026-04-01",
    "microsoft.managedidentity/": "2024-11-30",
    "microsoft.authorization/roleassignments": "2022-04-01",
    "microsoft.authorization/roledefinitions": "2022-04-01",
}
CORE_API_VERSION = "2025-04-01"


def client_api_version(path: str) -> str:
    """The api-version a real client sends for ``path`` (by its last provider namespace and type)."""
    low = path.lower()
    if "/providers/" in low:
        tail = low.rsplit("/providers/", 1)[1]
        for prefix, version in CLIENT_API_VERSIONS.items():
            if tail.startswith(prefix):
                return version
    return CORE_API_VERSION


class RawArm:
    """Raw ARM requests (TLS verified against the emulator CA bundle) on one keep-alive session.

    Without ``api_version`` a request carries the version real clients send for its type
    (:func:`client_api_version`); ``api_version=None`` sends none.
    """

    def __init__(self, base: str, ca: str) -> None:
        self.base = base
        self.ca = ca
        self.session = plain_session()

    def get(
        self,
        path: str,
        token: str | None = None,
        api_version: str | None = "auto",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        method: str = "GET",
    ) -> requests.Response:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        query = dict(params or {})
        if api_version == "auto":
            api_version = client_api_version(path)
        if api_version is not None:
            query["api-version"] = api_version
        return self.session.request(
            method, self.base + path, params=query, headers=hdrs, verify=self.ca, timeout=10
        )

    def close(self) -> None:
        self.session.close()


def arm_error(r: requests.Response | Response) -> tuple[str, str]:
    """(code, message) of an ARM error envelope, asserting its shape."""
    body = r.json
    body = body() if callable(body) else body
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err["code"], str) and isinstance(err["message"], str), err
    return err["code"], err["message"]


_CONTEXTS: dict[str, ssl.SSLContext] = {}


def client_context(ca_bundle: str) -> ssl.SSLContext:
    """One client TLS context per CA bundle (loading the bundle costs far more than a handshake)."""
    if ca_bundle not in _CONTEXTS:
        _CONTEXTS[ca_bundle] = ssl.create_default_context(cafile=ca_bundle)
    return _CONTEXTS[ca_bundle]


def raw_exchange(
    url: str,
    payload: bytes,
    *,
    ca_bundle: str | None = None,
    timeout: float = 10.0,
    half_close: bool = False,
) -> tuple[bytes, float]:
    """Send raw bytes to a listener (TLS when ``ca_bundle`` is given); everything it sent until it closed,
    and how many seconds that took. Fails the test when the server neither closes nor answers in time.

    ``half_close`` shuts our writing side after sending (plain HTTP only), as a client that sent a short
    body and then stopped would.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", int(parts.port or 80)
    started = time.monotonic()
    sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
    chunks: list[bytes] = []
    try:
        if ca_bundle is not None:
            sock = client_context(ca_bundle).wrap_socket(sock, server_hostname=host)
        sock.sendall(payload)
        if half_close and ca_bundle is None:
            sock.shutdown(socket.SHUT_WR)
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not data:
                break
            chunks.append(data)
    except TimeoutError:
        pytest.fail(f"no answer and no close within {timeout} s after {payload[:60]!r}")
    finally:
        sock.close()
    return b"".join(chunks), time.monotonic() - started


def responses_in(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The (status, headers, body) of every response in ``raw``, interim ``100 Continue`` ones included."""
    out = []
    rest = raw
    while rest.startswith(b"HTTP/"):
        head, sep, rest = rest.partition(b"\r\n\r\n")
        assert sep, f"unterminated response head: {head[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        length = int(headers.get("content-length", "0")) if status >= 200 else 0
        body, rest = rest[:length], rest[length:]
        out.append((status, headers, body))
    return out


def status_of(raw: bytes) -> int | None:
    """The status of the first final (non-1xx) response in ``raw``, or None if there is none."""
    finals = [r for r in responses_in(raw) if r[0] >= 200]
    return finals[0][0] if finals else None


# --- socket-free layer calls ---------------------------------------------------------------------


def wsgi_request(
    path: str,
    *,
    method: str = "GET",
    query: dict[str, str] | list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    remote_addr: str = "127.0.0.1",
    base_url: str = "http://127.0.0.1",
) -> Request:
    """A werkzeug request as a listener would hand it to a layer (no socket anywhere)."""
    builder = EnvironBuilder(
        path=path,
        base_url=base_url,
        method=method,
        query_string=query,
        headers=headers,
        data=body,
        environ_base={"REMOTE_ADDR": remote_addr},
    )
    try:
        return builder.get_request()
    finally:
        builder.close()


def imds_token_request(resource: str = ARM_RESOURCE, **selectors: str) -> Request:
    """A well-formed IMDS token request, as the SDKs send it."""
    return wsgi_request(
        TOKEN_PATH,
        query={"api-version": Imds.TOKEN_API_VERSION, "resource": resource, **selectors},
        headers={"Metadata": "true"},
    )


def json_of(response: Response) -> Any:
    """The JSON body of a layer's reply."""
    return json.loads(response.get_data(as_text=True))


# --- JWT verification ------------------------------------------------------------------------------


def unverified_claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def fetch_jwks(emu: Any) -> dict[str, Any]:
    """The emulator's signing keys, found as a token reader would: OpenID metadata → ``jwks_uri``."""
    base = emu.admin_url.rsplit("/_emulator", 1)[0]
    with plain_session() as s:
        meta = s.get(f"{base}/{TENANT}/.well-known/openid-configuration", timeout=5)
        assert meta.status_code == 200, meta.text[:200]
        assert meta.json()["issuer"] == f"https://sts.windows.net/{TENANT}/"
        keys = s.get(meta.json()["jwks_uri"], timeout=5)
        assert keys.status_code == 200, keys.text[:200]
        return dict(keys.json())


def verify_token(emu: Any, token: str, audience: str) -> dict[str, Any]:
    """Verify an RS256 token with the emulator's JWKS (signature, audience, expiry) and return its claims."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256", header
    assert header.get("typ") == "JWT", header
    keys = fetch_jwks(emu)["keys"]
    matching = [k for k in keys if k.get("kid") == header.get("kid")]
    assert matching, f"kid {header.get('kid')!r} not in the emulator JWKS"
    key = jwt.PyJWK(matching[0]).key
    return dict(jwt.decode(token, key=key, algorithms=["RS256"], audience=audience))


# --- real SDK clients ------------------------------------------------------------------------------


def mgmt_kwargs(emu: Any, **extra: Any) -> dict[str, Any]:
    """Keyword arguments that aim an azure-mgmt-* client at the emulator's ARM."""
    kw: dict[str, Any] = {"base_url": emu.arm_url, "connection_verify": emu.ca_bundle, "retry_total": 0}
    kw.update(extra)
    return kw


def mi_credential(**kwargs: Any) -> Any:
    """A sync ManagedIdentityCredential that never sits through the SDK's long retry windows."""
    from azure.identity import ManagedIdentityCredential

    kwargs.setdefault("retry_total", 0)
    kwargs.setdefault("read_timeout", 5)
    return ManagedIdentityCredential(**kwargs)


def compute_client(emu: Any, credential: Any = None, **extra: Any) -> Any:
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(credential or mi_credential(), SUB, **mgmt_kwargs(emu, **extra))


# --- environment -----------------------------------------------------------------------------------


class EnvSwitch:
    """Sets client variables through ``monkeypatch``, dropping the extras of a previous scenario."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._mp = monkeypatch
        self._set: set[str] = set()

    def apply(self, env: dict[str, str]) -> None:
        for key in self._set - set(env):
            self._mp.delenv(key, raising=False)
        for key, value in env.items():
            self._mp.setenv(key, str(value))
        self._set = set(env)


# --- curl ------------------------------------------------------------------------------------------

CURL = shutil.which("curl")


def run_curl(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run curl (loopback only, proxies ignored); returns the completed process with text output."""
    if CURL is None:
        pytest.fail("curl is not installed; the conformance suite needs it")
    return subprocess.run(
        [CURL, "-sS", "--noproxy", "*", "--max-time", "15", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
        check=False,
    )


def still_serving(emu: Any) -> None:
    """The emulator answers a plain token request with a token for the system identity."""
    from support.world import SYS_PRINCIPAL

    r = RawImds(emu.imds_url).token(ARM_RESOURCE)
    assert r.status_code == 200, r.text
    assert unverified_claims(r.json()["access_token"])["oid"] == SYS_PRINCIPAL
