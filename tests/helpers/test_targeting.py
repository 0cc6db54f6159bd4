"""Target selection: SMBIOS detection with a fake DMI directory, no network while deciding, env export."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from mi_helpers import targeting as target_mod
from mi_helpers.constants import AZURE_ASSET_TAG, Imds
from mi_helpers.validate import InputError

from .conftest import Reply, Stub


def fake_dmi(tmp_path: Path, asset_tag: str | None, vendor: str | None) -> Path:
    root = tmp_path / "dmi"
    root.mkdir()
    if asset_tag is not None:
        (root / "chassis_asset_tag").write_text(asset_tag + "\n")
    if vendor is not None:
        (root / "sys_vendor").write_text(vendor + "\n")
    return root


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any socket use (even loopback, even DNS) is recorded and refused."""
    calls: list[str] = []

    def refuse(name: str) -> Any:
        def _refuse(*args: Any, **kwargs: Any) -> Any:
            calls.append(f"{name}{args[1:2]}")
            raise OSError(f"test: {name} forbidden")

        return _refuse

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    return calls


def test_detect_azure_vm(tmp_path: Path, no_network: list[str]) -> None:
    found = target_mod.detect(fake_dmi(tmp_path, AZURE_ASSET_TAG, "Microsoft Corporation"), platform="linux")
    assert found.is_azure
    assert AZURE_ASSET_TAG in found.reason
    assert no_network == []


def test_detect_laptop(tmp_path: Path, no_network: list[str]) -> None:
    found = target_mod.detect(fake_dmi(tmp_path, "Default string", "LENOVO"), platform="linux")
    assert not found.is_azure
    assert found.reason == (
        "not an Azure VM (chassis asset tag is 'Default string') — using the local emulator"
    )
    assert no_network == []


def test_detect_hyper_v_without_tag(tmp_path: Path) -> None:
    found = target_mod.detect(fake_dmi(tmp_path, "", "Microsoft Corporation"), platform="linux")
    assert not found.is_azure
    assert "not an Azure VM" in found.reason


def test_detect_no_dmi(tmp_path: Path) -> None:
    found = target_mod.detect(tmp_path / "missing", platform="linux")
    assert not found.is_azure
    assert "no chassis asset tag readable" in found.reason


def test_detect_windows_uses_wmi(monkeypatch: pytest.MonkeyPatch, no_network: list[str]) -> None:
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=AZURE_ASSET_TAG + "\r\n", stderr="")

    monkeypatch.setattr(target_mod.subprocess, "run", fake_run)
    assert target_mod.detect(platform="win32").is_azure
    assert "SMBIOSAssetTag" in seen[0][-1]
    monkeypatch.setattr(
        target_mod.subprocess,
        "run",
        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, stdout="No Asset Tag\r\n", stderr=""),
    )
    assert not target_mod.detect(platform="win32").is_azure
    assert no_network == []


def _clear_endpoint_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        "MI_HELPERS_ARM_URL",
        "MI_HELPERS_EMULATOR_ADMIN",
        "MI_HELPERS_EMULATOR_KEY",
        "REQUESTS_CA_BUNDLE",
    ):
        monkeypatch.delenv(var, raising=False)


def test_auto_on_azure_picks_azure_without_network(
    tmp_path: Path, isolated_target: None, monkeypatch: pytest.MonkeyPatch, no_network: list[str]
) -> None:
    _clear_endpoint_env(monkeypatch)
    monkeypatch.setenv("MI_HELPERS_TARGET", "auto")
    monkeypatch.setenv("MI_HELPERS_CLOUD", "usgov")
    monkeypatch.setenv("NO_PROXY", "corp.example")
    t = target_mod.target(dmi_root=fake_dmi(tmp_path, AZURE_ASSET_TAG, "Microsoft Corporation"))
    assert t.name == "azure"
    assert t.imds_url == f"http://{Imds.ADDRESS}"
    assert t.arm_url == "https://management.usgovcloudapi.net"
    assert t.arm_scope == "https://management.core.usgovcloudapi.net/.default"
    assert t.emulator is None and t.ca_bundle is None
    assert os.environ["NO_PROXY"].split(",")[:2] == ["corp.example", f"{Imds.ADDRESS}"]
    assert f"{Imds.ADDRESS}" in os.environ["no_proxy"]
    assert target_mod.target() is t  # cached
    assert no_network == []


def test_azure_cloud_from_instance_metadata(imds_stub: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MI_HELPERS_CLOUD")
    imds_stub.set(Reply(200, "AzureChinaCloud"))
    t = target_mod.target()
    assert t.name == "azure" and t.cloud == "china"
    assert t.imds_url == imds_stub.url
    assert t.arm_url == "https://127.0.0.1:9"  # MI_HELPERS_ARM_URL wins over the cloud's endpoint
    assert t.arm_scope == "https://management.chinacloudapi.cn/.default"
    (req,) = imds_stub.requests
    assert req["path"] == "/metadata/instance/compute/azEnvironment"
    assert req["headers"]["Metadata"] == "true"


def test_azure_cloud_defaults_to_public_when_imds_says_nothing(
    imds_stub: Stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MI_HELPERS_CLOUD")
    imds_stub.set(Reply(404, {"error": "Not found"}))
    t = target_mod.target()
    assert t.cloud == "public"
    assert "defaulted to public" in t.reason


def test_bad_target_value(isolated_target: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MI_HELPERS_TARGET", "cloud")
    with pytest.raises(InputError) as exc:
        target_mod.target()
    assert str(exc.value) == "MI_HELPERS_TARGET: 'cloud' is not allowed (one of: auto, azure, emulator)"


def test_auto_off_azure_starts_an_embedded_emulator(
    tmp_path: Path, isolated_target: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mi_helpers.emulator import Emulator

    _clear_endpoint_env(monkeypatch)
    monkeypatch.setenv("MI_HELPERS_TARGET", "auto")
    assert not target_mod.target_chosen()
    t = target_mod.target(dmi_root=fake_dmi(tmp_path, "Default string", None))
    assert target_mod.target_chosen()
    assert t.name == "emulator"
    assert t.reason.startswith(
        "not an Azure VM (chassis asset tag is 'Default string') — using the local emulator"
    )
    assert isinstance(t.emulator, Emulator) and t.emulator is target_mod.current_emulator()
    emulator = t.emulator
    assert os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] == emulator.imds_url == t.imds_url
    assert os.environ["MI_HELPERS_ARM_URL"] == emulator.arm_url == t.arm_url
    assert t.ca_bundle == emulator.ca_bundle and os.path.isfile(t.ca_bundle)
    assert os.environ["REQUESTS_CA_BUNDLE"] == t.ca_bundle
    for var in ("NO_PROXY", "no_proxy"):
        assert {"127.0.0.1", "localhost"} <= set(os.environ[var].split(","))
    assert t.arm_scope == "https://management.azure.com/.default"


def test_scenario_switch_reexports_environment(
    isolated_target: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_endpoint_env(monkeypatch)
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.setenv("MI_HELPERS_TARGET", "emulator")
    emu = target_mod.current_emulator()
    assert emu is not None
    control = target_mod.use_emulator("proxy-intercept")
    assert control is emu
    assert os.environ["HTTP_PROXY"] == emu.environment()["HTTP_PROXY"]
    assert os.environ["NO_PROXY"] == "localhost"  # the scenario's misconfiguration, kept as it is
    target_mod.use_emulator("healthy")
    assert "HTTP_PROXY" not in os.environ
    assert "127.0.0.1" in os.environ["NO_PROXY"].split(",")
    emu.set_scenario("legacy-extension-endpoint")  # directly on the control: target() notices
    target_mod.target()
    assert os.environ["MSI_ENDPOINT"] == emu.environment()["MSI_ENDPOINT"]
    emu.set_scenario("healthy")
    target_mod.target()
    assert "MSI_ENDPOINT" not in os.environ


def test_emulator_described_by_environment_is_reused(
    isolated_target: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a kernel beside `mi-helpers lab`: the process drives that emulator instead of starting one."""
    from mi_helpers.emulator import Emulator

    with Emulator(scenario="healthy") as other:
        for key, value in other.environment().items():
            monkeypatch.setenv(key, value)
        t = target_mod.target()
        assert t.name == "emulator"
        assert t.imds_url == other.imds_url.rstrip("/")
        assert t.emulator is not other and type(t.emulator).__name__ == "AdminClient"
        assert "started outside this process" in t.reason
        control = target_mod.use_emulator("no-identity")
        assert control is t.emulator
        assert other.scenario == "no-identity"  # the switch reached that emulator: nothing new was started
        assert target_mod.target().imds_url == other.imds_url.rstrip("/")


def test_isolated_target_restores_the_previous_state(emu: Any) -> None:
    """What the suite's fixture relies on: a block with a fresh state, then the old one back untouched."""
    before_env = dict(os.environ)
    before = target_mod.target()
    with target_mod.isolated_target():
        assert not target_mod.target_chosen()
        assert os.environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST") != emu.imds_url  # not exported in here
        os.environ["MI_HELPERS_TARGET"] = "emulator"
        inner = target_mod.current_emulator()
        assert inner is not None and inner is not emu
    assert target_mod.target() is before and target_mod.current_emulator() is emu
    assert dict(os.environ) == before_env
    with requests.Session() as session, pytest.raises(requests.ConnectionError):
        session.trust_env = False
        session.get(f"{inner.imds_url}/metadata/versions", timeout=5)  # the block's emulator was stopped


def test_forced_azure_off_azure_never_asks_imds_for_the_cloud(
    isolated_target: None, monkeypatch: pytest.MonkeyPatch, no_network: list[str]
) -> None:
    """MI_HELPERS_TARGET=azure on a laptop: the cloud is not looked up at the link-local address."""
    _clear_endpoint_env(monkeypatch)
    monkeypatch.delenv("MI_HELPERS_CLOUD", raising=False)
    monkeypatch.setenv("MI_HELPERS_TARGET", "azure")
    t = target_mod.target()
    assert t.name == "azure" and t.cloud == "public"
    assert "IMDS was not asked" in t.reason
    assert no_network == []


def test_reset_restores_the_users_no_proxy() -> None:
    """A fresh process on the azure target: the helpers add IMDS to NO_PROXY for their own calls, doctor
    sees the user's value (original_environ), and reset_target gives the user's value back."""
    code = (
        "import os\n"
        "from mi_helpers import targeting as t\n"
        "t.target()\n"
        f"print({Imds.ADDRESS!r} in os.environ['NO_PROXY'])\n"
        "print(t.original_environ()['NO_PROXY'], 'no_proxy' in t.original_environ())\n"
        "t.reset_target(stop_emulator=False)\n"
        "print(os.environ['NO_PROXY'], 'no_proxy' in os.environ)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MI_HELPERS_", "AZURE_"))}
    env.pop("no_proxy", None)
    env.update(MI_HELPERS_TARGET="azure", NO_PROXY="corp.example")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["True", "corp.example False", "corp.example False"]


def test_target_is_an_immutable_value() -> None:
    """Target is written without @dataclass (cold-start cost); it must still behave like a frozen one."""
    t = target_mod.Target("azure", "why", "public", "http://a", "https://b", "s", None, emulator=object())
    same = target_mod.Target("azure", "why", "public", "http://a", "https://b", "s", None, emulator=None)
    assert t == same and hash(t) == hash(same)  # the control object is not part of the value
    assert "emulator" not in repr(t) and repr(t).startswith("Target(name='azure', reason='why'")
    assert t.replace(imds_url="http://c").imds_url == "http://c" and t.imds_url == "http://a"
    assert t != t.replace(arm_url="https://other")
    with pytest.raises(AttributeError):
        t.name = "emulator"  # type: ignore[misc]
    assert target_mod.Detection(True, "r") == target_mod.Detection(True, "r", None, None)
