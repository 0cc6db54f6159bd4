"""Fixtures for the emulator conformance suite.

One healthy :class:`~mi_helpers.emulator.Emulator` per session (starting it costs a certificate and three
listeners); every test gets it back in ``healthy`` with a clean request log, and the client environment
(``emu.environment()``) set with ``monkeypatch`` for the duration of the test only. Tests that need a fault
call ``use_scenario(name, **params)``, which switches the emulator and the client variables together; the
fixture puts the emulator back in ``healthy`` afterwards.

The stable IDs below are the documented default world (docs/architecture.md): the suite checks the
emulator against them instead of reading them from the emulator it is testing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import requests

# Test modules import the constants and helpers below as ``from emulator_suite import ...``: two
# conftest.py files outside packages make ``import conftest`` ambiguous, so this module registers itself
# under a name of its own (pytest always loads it before the test modules of this directory).
sys.modules.setdefault("emulator_suite", sys.modules[__name__])

# --- the documented default world -------------------------------------------------------------------

TENANT = "5f3b7d2a-8c41-4e6b-9a0d-2c7e1b4f6a93"
SUB = "3c9e6f1a-52d8-4b7e-a1c4-9d8e7f6a5b4c"
RG = "rg-mi-tutorial"
VM = "vm-mi-tutorial"
VM_ID = "7d4a9c1e-3b6f-4e2a-8c5d-0f9b2e7a6c13"
VM_RESOURCE_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{VM}"
SYS_PRINCIPAL = "9a7b5c3d-1e2f-4a6b-8c9d-0e1f2a3b4c5d"
SYS_CLIENT = "4e6f8a0b-2c4d-4e6f-9a1b-3c5d7e9f1a2b"
UAMI_READER = "uami-reader"
UAMI_READER_CLIENT = "1b3d5f7a-9c1e-4b3d-8f5a-7c9e1b3d5f7a"
UAMI_READER_PRINCIPAL = "6c8e0a2b-4d6f-4a8c-9e0b-2d4f6a8c0e1b"
UAMI_DEPLOY = "uami-deploy"
UAMI_DEPLOY_CLIENT = "2c4e6a8b-0d2f-4c4e-8a6b-8d0f2c4e6a8b"
UAMI_DEPLOY_PRINCIPAL = "7d9f1b3c-5e7a-4b9d-8f1c-3e5a7c9e1b3d"
RG_SCOPE = f"/subscriptions/{SUB}/resourceGroups/{RG}"
READER_ROLE_ID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def uami_resource_id(name: str) -> str:
    """ARM ID of a user-assigned identity of the default world."""
    return f"{RG_SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"


ARM_RESOURCE = "https://management.azure.com/"
ARM_SCOPE = "https://management.azure.com/.default"
CLI_ARM_RESOURCE = "https://management.core.windows.net/"
ARM_AUDIENCES = (
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
)
TOKEN_PATH = "/metadata/identity/oauth2/token"
TOKEN_QUERY = {"api-version": "2018-02-01", "resource": ARM_RESOURCE}
IDENTITY_NOT_FOUND_BODY = b'{"error":"invalid_request","error_description":"Identity not found"}'
MULTIPLE_UAMI_TEXT = (
    "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in "
    "the token request"
)
MI_NO_RESPONSE = "ManagedIdentityCredential authentication unavailable, no response from the IMDS endpoint."

# Variables that change which back end azure-identity/MSAL use; a developer machine may have some set.
_CLIENT_TRAPS = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_AUTHORITY_HOST",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


# --- emulator fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def emu_session() -> Iterator[Any]:
    """The emulator shared by the whole session (healthy; tests put it back after switching)."""
    from mi_helpers.emulator import Emulator

    emulator = Emulator(scenario="healthy")
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


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


@pytest.fixture
def client_env(monkeypatch: pytest.MonkeyPatch) -> EnvSwitch:
    """The client variables of this test (restored afterwards by ``monkeypatch``)."""
    return EnvSwitch(monkeypatch)


@pytest.fixture
def emu(emu_session: Any, client_env: EnvSwitch, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The session emulator in ``healthy``, with its client environment set for this test only."""
    for key in _CLIENT_TRAPS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")
    emu_session.set_scenario("healthy")  # fresh world, default parameters, no faults
    emu_session.clear_log()
    client_env.apply(dict(emu_session.environment()))
    yield emu_session
    emu_session.set_scenario("healthy")


@pytest.fixture
def use_scenario(emu: Any, client_env: EnvSwitch) -> Callable[..., Any]:
    """``use_scenario(name, **params)``: switch the emulator and the client variables together."""

    def switch(name: str, **params: Any) -> Any:
        emu.set_scenario(name, **params)
        emu.clear_log()
        client_env.apply(dict(emu.environment()))
        return emu

    return switch


# --- raw HTTP helpers --------------------------------------------------------------------------------


def plain_session() -> requests.Session:
    """A requests session that ignores proxy and CA variables of the environment (raw wire checks)."""
    s = requests.Session()
    s.trust_env = False
    return s


@dataclass
class Imds:
    """Raw IMDS requests against the emulator (no SDK in the way)."""

    base: str

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
        return self.get(params={"api-version": "2018-02-01", "resource": resource, **selectors})

    def access_token(self, resource: str = ARM_RESOURCE, **selectors: str) -> str:
        r = self.token(resource, **selectors)
        assert r.status_code == 200, (r.status_code, r.text[:300])
        return r.json()["access_token"]


@pytest.fixture
def imds(emu: Any) -> Imds:
    return Imds(emu.imds_url)


class Arm:
    """Raw ARM requests (TLS verified against the emulator CA bundle) on one keep-alive session."""

    def __init__(self, base: str, ca: str) -> None:
        self.base = base
        self.ca = ca
        self.session = plain_session()

    def get(
        self,
        path: str,
        token: str | None = None,
        api_version: str | None = "2026-04-01",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        method: str = "GET",
    ) -> requests.Response:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        query = dict(params or {})
        if api_version is not None:
            query["api-version"] = api_version
        return self.session.request(
            method, self.base + path, params=query, headers=hdrs, verify=self.ca, timeout=10
        )

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def arm(emu: Any) -> Iterator[Arm]:
    client = Arm(emu.arm_url, emu.ca_bundle)
    yield client
    client.close()


def arm_error(r: requests.Response) -> tuple[str, str]:
    """(code, message) of an ARM error envelope, asserting its shape."""
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err["code"], str) and isinstance(err["message"], str), err
    return err["code"], err["message"]


# --- JWT verification --------------------------------------------------------------------------------


def unverified_claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def fetch_jwks(emu: Any) -> dict[str, Any]:
    """The emulator's signing keys, found as a token reader would: OpenID metadata → ``jwks_uri``."""
    base = emu.admin_url.rsplit("/_emulator", 1)[0]
    with plain_session() as s:
        meta = s.get(f"{base}/{TENANT}/.well-known/openid-configuration", timeout=5)
        assert meta.status_code == 200, meta.text[:200]
        assert meta.json()["issuer"] == f"https://sts.windows.net/{TENANT}/"
        keys = s.get(meta.json()["jwks_uri"], timeout=5)
        assert keys.status_code == 200, keys.text[:200]
        return keys.json()


def verify_token(emu: Any, token: str, audience: str) -> dict[str, Any]:
    """Verify an RS256 token with the emulator's JWKS (signature, audience, expiry) and return its claims."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256", header
    assert header.get("typ") == "JWT", header
    keys = fetch_jwks(emu)["keys"]
    matching = [k for k in keys if k.get("kid") == header.get("kid")]
    assert matching, f"kid {header.get('kid')!r} not in the emulator JWKS"
    key = jwt.PyJWK(matching[0]).key
    return jwt.decode(token, key=key, algorithms=["RS256"], audience=audience)


# --- real SDK clients --------------------------------------------------------------------------------


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


# --- curl --------------------------------------------------------------------------------------------

CURL = shutil.which("curl")


def run_curl(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run curl (loopback only, proxies ignored); returns the completed process with text output."""
    if CURL is None:
        pytest.fail("curl is not installed; the conformance suite needs it")
    env = dict(os.environ)
    return subprocess.run(
        [CURL, "-sS", "--noproxy", "*", "--max-time", "15", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
