"""Binder support: environment copy, `binder/start` (emulator beside the server), `binder/postBuild`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BINDER = ROOT / "binder"
BIN = Path(sys.executable).parent

CLIENT_VARIABLES = (
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "REQUESTS_CA_BUNDLE",
    "MI_HELPERS_TARGET",
    "MI_HELPERS_ARM_URL",
    "MI_HELPERS_EMULATOR_ADMIN",
    "MI_HELPERS_EMULATOR_KEY",
    "NO_PROXY",
    "no_proxy",
)


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """Our environment minus any emulator variables, with this venv's scripts first on PATH."""
    env = {
        k: v for k, v in os.environ.items() if k not in CLIENT_VARIABLES and not k.startswith("MI_HELPERS_E")
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["TMPDIR"] = str(tmp_path)
    return env


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_binder_environment_is_a_byte_identical_copy_of_the_root_one() -> None:
    assert (BINDER / "environment.yml").read_bytes() == (ROOT / "environment.yml").read_bytes()


def test_hooks_are_executable_in_the_tree_and_in_git() -> None:
    out = subprocess.run(
        ["git", "ls-files", "-s", "binder/postBuild", "binder/start"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    modes = {line.split()[3]: line.split()[0] for line in out.splitlines()}
    assert modes == {"binder/postBuild": "100755", "binder/start": "100755"}
    for hook in ("postBuild", "start"):
        assert os.access(BINDER / hook, os.X_OK)
        assert (BINDER / hook).read_text().startswith("#!/bin/bash\n")


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[subprocess.CompletedProcess[str], dict[str, str]]]:
    """Run `binder/start env` in its own process group; kill the group (the emulator) afterwards."""
    from mi_helpers.launch.azure_cli import find_az

    az = find_az()
    if az is None:
        pytest.fail("the az CLI is not installed: run `make azure-cli` (scripts/ensure-azure-cli)", False)
    env = _clean_env(tmp_path)
    env["MI_HELPERS_AZURE_CLI_DIR"] = str(az.parent.parent)
    env["MI_HELPERS_AZURE_CONFIG_DIR"] = str(tmp_path / "azure")
    proc = subprocess.Popen(
        [str(BINDER / "start"), "env"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=60)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        printed = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        yield done, printed
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def test_start_runs_the_emulator_exports_its_variables_and_execs_the_command(
    started: tuple[subprocess.CompletedProcess[str], dict[str, str]], tmp_path: Path
) -> None:
    done, env = started
    assert done.returncode == 0, done.stderr
    for key in CLIENT_VARIABLES:
        assert env.get(key), f"{key} not exported by binder/start"
    assert env["MI_HELPERS_TARGET"] == "emulator"
    assert env["AZURE_POD_IDENTITY_AUTHORITY_HOST"].startswith("http://127.0.0.1:")
    assert "127.0.0.1" in env["NO_PROXY"].split(",")
    assert Path(env["REQUESTS_CA_BUNDLE"]).is_file()
    assert env["CURL_CA_BUNDLE"] == env["REQUESTS_CA_BUNDLE"]
    assert Path(env["MI_HELPERS_EMULATOR_LOG"]).parent == tmp_path

    # az on PATH through a link of its own (its private Python does not shadow the notebooks' one), the
    # emulator registered as its cloud in the private configuration directory.
    first = Path(env["PATH"].split(os.pathsep)[0])
    assert first == tmp_path / "mi-helpers-bin" and sorted(p.name for p in first.iterdir()) == ["az"]
    assert (first / "az").resolve() == (Path(env["MI_HELPERS_AZURE_CLI_DIR"]) / "bin" / "az").resolve()
    assert env["AZURE_CONFIG_DIR"] == str(tmp_path / "azure")
    clouds = (tmp_path / "azure" / "clouds.config").read_text()
    assert "[AzureEmulator]" in clouds and env["MI_HELPERS_ARM_URL"] in clouds
    assert env["AZURE_CORE_COLLECT_TELEMETRY"] == "false"

    # The emulator outlives the exec'd command (as it must beside a notebook server) and answers like IMDS.
    session = requests.Session()
    session.trust_env = False
    url = env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] + "/metadata/identity/oauth2/token"
    query = {"api-version": "2018-02-01", "resource": "https://management.azure.com/"}
    ok = session.get(url, params=query, headers={"Metadata": "true"}, timeout=10)
    assert ok.status_code == 200
    body = ok.json()
    assert body["token_type"] == "Bearer" and body["access_token"].startswith("eyJ")
    assert body["resource"] == "https://management.azure.com/"
    assert session.get(url, params=query, timeout=10).status_code == 400  # no Metadata header

    # ARM over TLS with the CA the start hook exported.
    arm = session.get(
        env["MI_HELPERS_ARM_URL"] + "/subscriptions?api-version=2022-12-01",
        verify=env["REQUESTS_CA_BUNDLE"],
        headers={"Authorization": "Bearer " + body["access_token"]},
        timeout=10,
    )
    assert arm.status_code == 200

    pid = int(env["MI_HELPERS_EMULATOR_PID"])
    assert _pid_alive(pid)
    os.killpg(os.getpgid(pid), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            session.get(url, params=query, headers={"Metadata": "true"}, timeout=5)
        except requests.ConnectionError:
            break
        time.sleep(0.1)
    with pytest.raises(requests.ConnectionError):
        session.get(url, params=query, headers={"Metadata": "true"}, timeout=5)


def test_start_still_execs_the_command_when_the_emulator_cannot_start(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    env["MI_HELPERS_SCENARIO"] = "no-such-scenario"
    proc = subprocess.run(
        [str(BINDER / "start"), "echo", "server-started"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == "server-started"
    assert "binder/start: the emulator did not start" in proc.stderr


@pytest.mark.slow  # runs the whole postBuild hook (a few seconds)
def test_post_build_installs_the_package_and_the_lab_settings(tmp_path: Path) -> None:
    """Run postBuild with `python -m pip` recorded instead of run (no network); the rest runs for real."""
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    pip_log = tmp_path / "pip.log"
    shim = shim_dir / "python"
    shim.write_text(
        "#!/bin/bash\n"
        'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "$@" >> "$PIP_LOG"; exit 0; fi\n'
        f'exec "{sys.executable}" "$@"\n'
    )
    shim.chmod(0o755)
    az_dir = tmp_path / "az"  # an installed CLI as scripts/ensure-azure-cli leaves it (stamp + az)
    (az_dir / "bin").mkdir(parents=True)
    (az_dir / "bin" / "az").write_text("#!/bin/sh\n")
    (az_dir / "bin" / "az").chmod(0o755)
    (az_dir / ".installed-azure-cli-0.0.0-test").touch()
    lab_dir, config_dir = tmp_path / "lab", tmp_path / "jupyter-config"
    (lab_dir / "settings").mkdir(parents=True)
    (lab_dir / "settings" / "overrides.json").write_text(json.dumps({"x:y": {"keep": 1}}))
    env = {
        **os.environ,
        "PATH": f"{shim_dir}{os.pathsep}{os.environ['PATH']}",
        "PIP_LOG": str(pip_log),
        "JUPYTERLAB_DIR": str(lab_dir),
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "MI_HELPERS_AZURE_CLI_DIR": str(az_dir),
        "AZURE_CLI_VERSION": "0.0.0-test",
    }

    proc = subprocess.run(
        [str(BINDER / "postBuild")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert proc.returncode == 0, proc.stderr
    pip_args = pip_log.read_text().split()
    assert pip_args[:3] == ["-m", "pip", "install"] and "--no-deps" in pip_args and pip_args[-1] == "."
    assert len(pip_log.read_text().splitlines()) == 1  # the CLI's own install found it installed: a no-op
    overrides = json.loads((lab_dir / "settings" / "overrides.json").read_text())
    assert overrides["x:y"] == {"keep": 1}
    assert overrides["@jupyterlab/notebook-extension:tracker"]["autoStartDefaultKernel"] is True
    assert overrides["@jupyterlab/apputils-extension:notification"] == {
        "fetchNews": "false",
        "checkForUpdates": False,
    }
    config = json.loads((config_dir / "jupyter_lab_config.json").read_text())
    assert config["LabApp"]["news_url"] is None
    assert config["LabApp"]["extension_manager"] == "readonly"
