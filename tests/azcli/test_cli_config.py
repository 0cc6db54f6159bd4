"""The private CLI configuration for the emulator (mi_helpers.launch.azure_cli), with the real CLI.

What it must guarantee: the CLI reads the emulator cloud from it, signs in with the emulator's IMDS, trusts
the emulator's CA, never touches the user's ``~/.azure``, makes no call of its own to a Microsoft server
(each switch is shown to matter: without it the network guard records the attempt), and runs under the
suite's network guard like every other child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import certifi
import pytest
from support.azcli import AzSession, new_session, with_guard_log
from support.world import SUB, TENANT, UAMI_READER_CLIENT

from azcli.report import TIMINGS
from mi_helpers.launch import azure_cli
from mi_helpers.validate import InputError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _run(session: AzSession, script: str, **kw: Any) -> Any:
    result = session.run(script, **kw)
    TIMINGS.append((script, result.seconds))
    return result


# --- without the CLI ------------------------------------------------------------------------------------


def _emulator_env(arm: str = "https://127.0.0.1:8443") -> dict[str, str]:
    return {
        "MI_HELPERS_ARM_URL": arm,
        "REQUESTS_CA_BUNDLE": "/tmp/ca.pem",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:8080",
        "NO_PROXY": "127.0.0.1,localhost",
    }


def test_config_dir_holds_the_emulator_cloud_and_every_offline_switch(tmp_path: Path) -> None:
    import configparser
    import json

    azure_cli.prepare_config_dir(tmp_path, _emulator_env(), versions={"azure-cli": "2.0.0", "core": "2.0.0"})
    config = configparser.ConfigParser()
    config.read(tmp_path / "config")
    assert config["cloud"]["name"] == azure_cli.CLOUD_NAME
    for (section, option), value in azure_cli.OFFLINE_SETTINGS.items():
        assert config[section][option] == value
    clouds = configparser.ConfigParser()
    clouds.read(tmp_path / "clouds.config")
    cloud = clouds[azure_cli.CLOUD_NAME]
    assert cloud["endpoint_resource_manager"] == "https://127.0.0.1:8443/"
    assert cloud["endpoint_active_directory"] == "https://127.0.0.1:8443"
    assert cloud["endpoint_active_directory_resource_id"] == "https://management.core.windows.net/"
    record = json.loads((tmp_path / "versionCheck.json").read_text())
    assert record["versions"]["core"] == {"local": "2.0.0"} and record["update_time"]
    assert (tmp_path.stat().st_mode & 0o777) == 0o700


@pytest.mark.parametrize(
    "arm",
    ["https://management.azure.com", "http://127.0.0.1:8443", "https://10.0.0.4:443", "", "https://[::2]:1"],
)
def test_only_loopback_https_endpoints_are_accepted(arm: str, tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        azure_cli.prepare_config_dir(tmp_path, _emulator_env(arm), versions={"azure-cli": "2", "core": "2"})
    assert str(err.value).startswith("arm_url: ") and "\n" not in str(err.value)


def test_cli_environment_drops_redirections_and_keeps_the_guard(tmp_path: Path) -> None:
    base = {
        "PATH": "/usr/bin",
        "HOME": "/home/learner",
        "AZURE_CLIENT_ID": "x",
        "AZURE_CLOUD_NAME": "AzureCloud",  # would override the config file's cloud
        "AZURE_CONFIG_DIR": "/home/learner/.azure",
        "ARM_CLOUD_METADATA_URL": "https://example.invalid/metadata",
        "MSI_ENDPOINT": "http://localhost:50342/oauth2/token",
        "HTTPS_PROXY": "http://proxy:3128",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": "/guard",
        "MI_HELPERS_GUARD_LOG": "/tmp/guard.log",
    }
    env = azure_cli.cli_environment(_emulator_env(), tmp_path, base=base, az=Path("/opt/az/bin/az"))
    for gone in (
        "AZURE_CLIENT_ID",
        "AZURE_CLOUD_NAME",
        "ARM_CLOUD_METADATA_URL",
        "MSI_ENDPOINT",
        "HTTPS_PROXY",
    ):
        assert gone not in env, gone
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["AZURE_CONFIG_DIR"] == str(tmp_path) and env["HOME"] == "/home/learner"
    assert env["PYTHONPATH"] == "/guard" and env["MI_HELPERS_GUARD_LOG"] == "/tmp/guard.log"
    assert env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] == "http://127.0.0.1:8080"
    assert env["AZURE_CORE_COLLECT_TELEMETRY"] == "false" and env["AZURE_CORE_INSTANCE_DISCOVERY"] == "false"
    assert env["PATH"].split(os.pathsep)[0] == "/opt/az/bin"
    scenario_extra = {**_emulator_env(), "HTTP_PROXY": "http://127.0.0.1:9"}  # a scenario's misconfiguration
    assert (
        azure_cli.cli_environment(scenario_extra, tmp_path, base=base)["HTTP_PROXY"] == "http://127.0.0.1:9"
    )


def test_installed_versions_come_from_the_virtual_environment(az: Path) -> None:
    versions = azure_cli.installed_versions(az)
    assert versions["azure-cli"] == versions["core"] and versions["azure-cli"].startswith("2.")
    with pytest.raises(InputError):
        azure_cli.installed_versions("/usr/bin/true")


# --- with the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def fresh(az: Path, emulator: Any, tmp_path: Path) -> AzSession:
    emulator.set_scenario("healthy")
    return new_session(az, emulator, tmp_path)


def test_the_cli_reads_the_emulator_cloud_as_written(fresh: AzSession, emulator: Any) -> None:
    result = _run(fresh, "az cloud show -o json")
    assert result.returncode == 0, result.describe()
    import json

    shown = json.loads(result.stdout)
    section = azure_cli.endpoints_from_environment(emulator.environment()).cloud_section()
    assert (
        shown["name"] == azure_cli.CLOUD_NAME and shown["isActive"] is True and shown["profile"] == "latest"
    )
    camel = {"resource_manager": "resourceManager", "active_directory": "activeDirectory"}
    camel |= {"active_directory_resource_id": "activeDirectoryResourceId"}
    camel |= {"microsoft_graph_resource_id": "microsoftGraphResourceId", "management": "management"}
    for key, name in camel.items():
        assert shown["endpoints"][name] == section[f"endpoint_{key}"], key
    assert not result.requests  # reading the configuration sends nothing


def test_login_with_the_identity_goes_to_the_emulator_imds_only(fresh: AzSession) -> None:
    result = _run(fresh, f"az login --identity --client-id {UAMI_READER_CLIENT} --query '[0].id' -o tsv")
    assert result.returncode == 0 and result.stdout.strip() == SUB, result.describe()
    imds = [r for r in result.requests if r["listener"] == "imds"]
    assert len(imds) == 1 and imds[0]["path"] == "/metadata/identity/oauth2/token"
    assert "client_id=" + UAMI_READER_CLIENT in imds[0]["query"] and imds[0]["metadata_header"] == "true"
    assert "resource=https%3A%2F%2Fmanagement.core.windows.net%2F" in imds[0]["query"]
    assert [r["path"] for r in result.requests if r["listener"] == "arm"] == ["/subscriptions"]
    assert not (fresh.home / ".azure").exists()  # the user's own configuration stays untouched
    assert (fresh.config_dir / "azureProfile.json").exists()


def test_the_emulator_ca_is_what_makes_arm_trusted(fresh: AzSession) -> None:
    assert _run(fresh, "az login --identity -o none").returncode == 0
    untrusted = _run(fresh, "az group list -o none", extra_env={"REQUESTS_CA_BUNDLE": certifi.where()})
    assert untrusted.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, untrusted.describe()


def test_the_network_guard_is_active_inside_the_cli(fresh: AzSession, tmp_path: Path) -> None:
    """A deliberately non-loopback request is refused before it leaves, and recorded (in its own log)."""
    log = tmp_path / "probe-guard.log"
    probe = with_guard_log(log)
    literal = _run(
        fresh, "az rest --skip-authorization-header --method get --url https://192.0.2.1/", extra_env=probe
    )
    named = _run(
        fresh,
        "az rest --skip-authorization-header --method get --url https://management.azure.com/",
        extra_env=probe,
    )
    assert literal.returncode != 0 and named.returncode != 0
    recorded = log.read_text()
    assert "connect ('192.0.2.1', 443)" in recorded, recorded[:2000]
    assert "getaddrinfo 'management.azure.com'" in recorded, recorded[:2000]


def test_without_the_version_record_the_cli_would_check_online(fresh: AzSession, tmp_path: Path) -> None:
    """The switch matters: a config dir without ``versionCheck.json`` makes every start probe the CLI's
    release storage (azure/cli/core/util.py, handle_version_update); with it, nothing is attempted."""
    log = tmp_path / "probe-guard.log"
    quiet = _run(fresh, "az version -o none", extra_env=with_guard_log(log))
    assert quiet.returncode == 0 and log.read_text() == ""
    (fresh.config_dir / "versionCheck.json").unlink()
    _run(fresh, "az version -o none", extra_env=with_guard_log(log))
    assert "getaddrinfo 'azcliprod.blob.core.windows.net'" in log.read_text()


def test_service_principal_sign_in_asks_the_emulator_authority_only(
    fresh: AzSession, emulator: Any, tmp_path: Path
) -> None:
    """``az login --service-principal`` with the emulator cloud: MSAL's first request is the tenant's OpenID
    configuration at ``<endpoint_active_directory>/<tenant>/v2.0/.well-known/openid-configuration`` on the
    emulator (msal/authority.py, _initialize_entra_authority), because instance discovery is off. With it
    on (the CLI's default) MSAL first asks login.microsoftonline.com about the unknown authority host.

    The client ID is a managed identity's, which has no secret: the emulator's Entra ID refuses it
    (AADSTS7000215); what is asserted is where the sign-in went.
    """
    sign_in = (
        f"az login --service-principal -u {UAMI_READER_CLIENT} -p not-a-secret --tenant {TENANT} -o none"
    )
    log = tmp_path / "probe-guard.log"
    ours = _run(fresh, sign_in, extra_env=with_guard_log(log))
    assert ours.returncode != 0 and log.read_text() == ""
    first = ours.requests[0]
    assert (first["listener"], first["method"]) == ("entra", "GET"), ours.describe()
    assert first["path"] == f"/{TENANT}/v2.0/.well-known/openid-configuration"
    assert "AADSTS7000215" in ours.stderr, ours.describe()

    default = _run(fresh, sign_in, extra_env={**with_guard_log(log), "AZURE_CORE_INSTANCE_DISCOVERY": "true"})
    assert default.returncode != 0 and not default.requests
    assert "getaddrinfo 'login.microsoftonline.com'" in log.read_text()


def test_shell_lines_turn_a_lab_terminal_into_an_az_terminal(
    az: Path, emulator: Any, tmp_path: Path, session_for: Callable[[str], AzSession]
) -> None:
    """A Lab terminal or Binder runs ``eval "$(python -m mi_helpers.launch.azure_cli --config-dir D)"``."""
    emulator.set_scenario("healthy")
    home = tmp_path / "home"
    home.mkdir()
    terminal = {**os.environ, **emulator.environment(), "HOME": str(home), "AZURE_CLIENT_ID": "stale"}
    terminal["PYTHONDONTWRITEBYTECODE"] = "1"
    config = home / ".azure-emulator"
    script = (
        f'eval "$({sys.executable} -m mi_helpers.launch.azure_cli --config-dir {config} --az {az})"\n'
        'test -z "${AZURE_CLIENT_ID:-}" || exit 9\n'
        "az login --identity -o none && az account show --query '[environmentName, user.name]' -o tsv"
    )
    proc = subprocess.run(["bash", "-c", script], env=terminal, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [azure_cli.CLOUD_NAME, "systemAssignedIdentity"]
    assert not (home / ".azure").exists() and (config / "azureProfile.json").exists()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "mi_helpers.launch.azure_cli",
            "--config-dir",
            str(tmp_path / "x"),
            "--az",
            str(az),
        ],
        env={k: v for k, v in terminal.items() if k != "MI_HELPERS_ARM_URL"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: arm_url: ") and bad.stderr.count("\n") == 1
