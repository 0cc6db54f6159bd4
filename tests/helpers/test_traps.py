"""Environment traps: proxies, other identity back ends, DefaultAzureCredential knobs, a moved IMDS, the Arc
agent — each found from a given environment, with its effect, fix and severity (no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.world import UAMI_READER_CLIENT as CID

from mi_helpers.constants import Imds
from mi_helpers.diagnosis import environment_traps
from mi_helpers.diagnosis.traps import TRAP_CHECKS

# A JWT-shaped secret: three base64url segments, the first starting "eyJ".
FAKE_JWT = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9."
    + "eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tIn0"
    + ".c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
)


def _ids(env: dict[str, str], arc: Any = None) -> set[str]:
    return {t.id for t in environment_traps(env, arc_agent_path=arc)}


def test_traps_clean_environment(tmp_path: Path) -> None:
    assert _ids({}, tmp_path / "absent") == set()
    assert _ids({"HTTP_PROXY": "http://p:3128", "NO_PROXY": f"{Imds.ADDRESS}"}) == set()


@pytest.mark.parametrize(
    ("env", "captured"),
    [
        ({"HTTP_PROXY": "http://p:3128"}, True),
        ({"http_proxy": "http://p:3128"}, True),
        ({"ALL_PROXY": "http://p:3128"}, True),
        ({"HTTPS_PROXY": "http://p:3128"}, False),  # IMDS is plain HTTP
        ({"HTTP_PROXY": "http://p:3128", "NO_PROXY": "*"}, False),
        ({"HTTP_PROXY": "http://p:3128", "NO_PROXY": "169.254.0.0/16"}, False),
        ({"HTTP_PROXY": "http://p:3128", "no_proxy": f"localhost, {Imds.ADDRESS}"}, False),
        ({"HTTP_PROXY": "http://p:3128", "NO_PROXY": "localhost,127.0.0.1"}, True),
        ({"HTTP_PROXY": "http://p:3128", "NO_PROXY": "169.254.169.25"}, True),
    ],
)
def test_trap_proxy_semantics(env: dict[str, str], captured: bool) -> None:
    assert ("proxy-captures-imds" in _ids(env)) is captured


def test_trap_proxy_captures_emulator_address() -> None:
    env = {
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": f"localhost,{Imds.ADDRESS}",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:5555",
    }
    traps = environment_traps(env, arc_agent_path=None)
    proxy = [t for t in traps if t.id == "proxy-captures-imds"]
    assert proxy and proxy[0].diagnosis_id == "proxy-intercepts-imds"
    env["NO_PROXY"] += ",127.0.0.1"
    assert "proxy-captures-imds" not in _ids(env)


def test_traps_identity_backends_and_secrets() -> None:
    secret = "s3cr3t-value-0123456789abcdef"
    sf = {
        "IDENTITY_ENDPOINT": "https://x",
        "IDENTITY_HEADER": secret,
        "IDENTITY_SERVER_THUMBPRINT": "AB" * 20,
    }
    assert "service-fabric-identity" in _ids(sf)
    app = {"IDENTITY_ENDPOINT": "http://127.0.0.1:41741/msi/token", "IDENTITY_HEADER": secret}
    assert "app-service-identity" in _ids(app)
    arc = {"IDENTITY_ENDPOINT": "http://localhost:40342/metadata/identity/oauth2/token", "IMDS_ENDPOINT": "x"}
    assert "arc-identity" in _ids(arc)
    ml = {"MSI_ENDPOINT": "http://127.0.0.1:46808/msi/token", "MSI_SECRET": secret}
    assert "msi-endpoint-azure-ml" in _ids(ml)
    assert "msi-endpoint-cloud-shell" in _ids({"MSI_ENDPOINT": "http://localhost:8000/msi/token"})
    shell = {
        "MSI_ENDPOINT": "http://localhost:50342/oauth2/token",
        "AZUREPS_HOST_ENVIRONMENT": "cloud-shell/1.0",
    }
    assert "msi-endpoint-cloud-shell" in _ids(shell)
    legacy = environment_traps({"MSI_ENDPOINT": "http://localhost:50342/oauth2/token"}, arc_agent_path=None)
    assert legacy[0].id == "msi-endpoint-legacy" and legacy[0].diagnosis_id == "legacy-extension-endpoint"
    for env in (sf, app, ml):
        for t in environment_traps(env, arc_agent_path=None):
            assert secret not in str(t) and secret not in json.dumps(t.to_dict())


def test_traps_workload_client_id_token_credentials(tmp_path: Path) -> None:
    wi = {
        "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com",
        "AZURE_TENANT_ID": "t",
        "AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/token",
    }
    assert "workload-identity" in _ids(wi)
    assert "workload-identity" not in _ids({k: v for k, v in wi.items() if k != "AZURE_TENANT_ID"})
    traps = {t.id: t for t in environment_traps({"AZURE_CLIENT_ID": CID}, arc_agent_path=None)}
    assert "DefaultAzureCredential" in traps["azure-client-id"].effect
    dev = {t.id: t for t in environment_traps({"AZURE_TOKEN_CREDENTIALS": "dev"}, arc_agent_path=None)}
    assert dev["azure-token-credentials"].severity == "warn"
    mi = {
        t.id: t
        for t in environment_traps(
            {"AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential"}, arc_agent_path=None
        )
    }
    assert mi["azure-token-credentials"].severity == "info"
    himds = tmp_path / "himds"
    himds.write_text("")
    assert "arc-agent-present" in _ids({}, himds)
    assert "arc-agent-present" not in _ids({}, tmp_path / "nope")


def test_trap_emulator_override_is_info() -> None:
    traps = environment_traps(
        {"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:4444"}, arc_agent_path=None
    )
    assert [t.severity for t in traps if t.id == "imds-host-override"] == ["info"]


def test_trap_real_imds_capture_is_info_when_emulator_in_use() -> None:
    env = {
        "HTTP_PROXY": "http://corp:3128",
        "NO_PROXY": "localhost,127.0.0.1",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:5555",
    }
    traps = {t.id: t for t in environment_traps(env, arc_agent_path=None)}
    assert "proxy-captures-imds" not in traps  # the emulator address in use is excluded
    assert traps["proxy-captures-azure-imds"].severity == "info"


def test_every_check_finds_nothing_in_a_clean_environment() -> None:
    assert [list(check({})) for check in TRAP_CHECKS] == [[] for _ in TRAP_CHECKS]


def test_the_arc_agent_on_disk_is_a_trap(tmp_path: Path) -> None:
    agent = tmp_path / "himds"
    agent.write_text("")
    (trap,) = environment_traps({}, arc_agent_path=agent)
    assert trap.id == "arc-agent-present" and "localhost:40342" in trap.effect and trap.severity == "warn"
