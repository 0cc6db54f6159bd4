"""`mi-helpers emulator` and `mi-helpers scenarios` as subprocesses: the env file, export lines, signals."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import certifi
import pytest
from support.timing import SLACK, wait_until
from support.world import REQUIRED_SCENARIOS, RG, SUB, SYS_PRINCIPAL, VM

from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.emulator import AdminClient

pytestmark = pytest.mark.timeout(90)

REQUIRED_VARS = (
    Env.AZURE_POD_IDENTITY_AUTHORITY_HOST,
    Env.REQUESTS_CA_BUNDLE,
    Env.MI_HELPERS_TARGET,
    Env.MI_HELPERS_ARM_URL,
    Env.MI_HELPERS_EMULATOR_ADMIN,
    Env.NO_PROXY,
)
#: The variables whose values are the emulator's URLs.
URL_VARS = (Env.AZURE_POD_IDENTITY_AUTHORITY_HOST, Env.MI_HELPERS_ARM_URL, Env.MI_HELPERS_EMULATOR_ADMIN)
#: Seconds the emulator may take to write its env file (start-up: certificate, three listeners).
START_BUDGET = 30.0
#: Seconds within which it exits after SIGINT/SIGTERM.
EXIT_BUDGET = 5.0


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("mi-helpers")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mi_helpers.cli"]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in URL_VARS:
        env.pop(key, None)
    return env


def _wait_for_env_file(proc: subprocess.Popen, env_file: Path, stderr: Path | None = None) -> None:
    """Until the emulator wrote its env file; fails at once if it exited, or after the start-up budget."""

    def ready() -> bool:
        if proc.poll() is not None:
            if stderr is not None:
                err = stderr.read_text()
            else:
                err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"mi-helpers emulator exited {proc.returncode}: {err[-2000:]}")
        return env_file.exists()

    wait_until(ready, timeout=START_BUDGET + SLACK, what=f"the env file {env_file.name}")


def _read_env_file(env_file: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)


def _accepts(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=1).close()
        return True
    except OSError:
        return False


class Running:
    def __init__(self, proc: subprocess.Popen, env_file: Path, stdout: Path, stderr: Path) -> None:
        self.proc = proc
        self.env_file = env_file
        self.stdout = stdout
        self.stderr = stderr
        self.env: dict[str, str] = {}
        self.ready_checked: dict[str, bool] = {}


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One `mi-helpers emulator --env-file F` process for this module."""
    d = tmp_path_factory.mktemp("cli-emulator")
    env_file = d / "emulator.env"
    out, err = d / "stdout.txt", d / "stderr.txt"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(
            [*_cli(), "emulator", "--env-file", str(env_file)], stdout=o, stderr=e, env=_child_env()
        )
    run = Running(proc, env_file, out, err)
    try:
        _wait_for_env_file(proc, env_file, stderr=err)
        # the env file appears only once every listener accepts: check at once, before anything else
        for line in env_file.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                k, _, v = line.partition("=")
                run.env[k.strip()] = v
        for key in URL_VARS:
            if key in run.env:
                run.ready_checked[key] = _accepts(run.env[key])
        yield run
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def _client_env(run: Running) -> dict[str, str]:
    env = _child_env()
    env.update(run.env)
    return env


def test_env_file_appears_only_when_listeners_accept(standalone):
    assert standalone.ready_checked, standalone.env
    assert all(standalone.ready_checked.values()), standalone.ready_checked


def test_env_file_is_plain_key_value(standalone):
    lines = [
        ln for ln in standalone.env_file.read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    assert lines
    for line in lines:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=[^'\"\s]*", line), line
        assert not line.startswith("export")
    for key in REQUIRED_VARS:
        assert key in standalone.env, key
    assert standalone.env[Env.MI_HELPERS_TARGET] == "emulator"
    assert Env.MI_HELPERS_EMULATOR_KEY in standalone.env
    assert {"127.0.0.1", "localhost"} <= set(standalone.env[Env.NO_PROXY].split(","))
    assert standalone.env.get(Env.NO_PROXY.lower()) == standalone.env[Env.NO_PROXY]


def test_stdout_has_export_lines(standalone):
    def exports() -> str:
        text = standalone.stdout.read_text()
        return text if all(f"export {k}=" in text for k in REQUIRED_VARS) else ""

    text = wait_until(exports, timeout=10, what="the export lines on stdout")
    for key in REQUIRED_VARS:
        line = next((ln for ln in text.splitlines() if ln.startswith(f"export {key}=")), None)
        assert line is not None, (key, text[-1000:])
        value = line.split("=", 1)[1].strip("'\"")
        assert value == standalone.env[key], key


def test_urls_are_loopback(standalone):
    env = standalone.env
    assert env[Env.AZURE_POD_IDENTITY_AUTHORITY_HOST].startswith("http://127.0.0.1:")
    assert env[Env.MI_HELPERS_ARM_URL].startswith("https://127.0.0.1:")
    assert urlsplit(env[Env.MI_HELPERS_EMULATOR_ADMIN]).hostname in ("127.0.0.1", "localhost")


def test_ca_bundle_is_certifi_plus_emulator_ca(standalone):
    bundle = Path(standalone.env[Env.REQUESTS_CA_BUNDLE]).read_text()
    roots = Path(certifi.where()).read_text()
    first_root = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", roots, re.S).group(0)
    assert first_root in bundle
    assert bundle.count("BEGIN CERTIFICATE") >= roots.count("BEGIN CERTIFICATE") + 1


def test_real_clients_in_a_child_process(standalone):
    code = (
        "import os\n"
        "from azure.identity import ManagedIdentityCredential\n"
        "from azure.mgmt.compute import ComputeManagementClient\n"
        "cred = ManagedIdentityCredential(retry_total=0)\n"
        f"client = ComputeManagementClient(cred, {SUB!r}, "
        "base_url=os.environ['MI_HELPERS_ARM_URL'], retry_total=0)\n"
        f"print(client.virtual_machines.get({RG!r}, {VM!r}).identity.principal_id)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], env=_client_env(standalone), capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == SYS_PRINCIPAL


def test_admin_client_across_processes(standalone):
    code = (
        "from mi_helpers.emulator import AdminClient\n"
        "c = AdminClient.from_env()\n"
        "c.set_scenario('no-role-assignment')\n"
        "print(c.scenario)\n"
        "c.set_scenario('healthy')\n"
        "print(c.scenario)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], env=_client_env(standalone), capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["no-role-assignment", "healthy"]


def test_sigterm_exits_zero_and_closes_listeners(standalone):
    """Runs last in this module (file order): it stops the shared process."""
    urls = [standalone.env[k] for k in (Env.AZURE_POD_IDENTITY_AUTHORITY_HOST, Env.MI_HELPERS_ARM_URL)]
    standalone.proc.send_signal(signal.SIGTERM)
    try:
        rc = standalone.proc.wait(timeout=EXIT_BUDGET + SLACK)
    except subprocess.TimeoutExpired:
        pytest.fail(f"mi-helpers emulator did not exit within {EXIT_BUDGET:g} s of SIGTERM")
    assert rc == 0, standalone.stderr.read_text()[-2000:]
    assert not any(_accepts(u) for u in urls)


def test_sigint_exits_zero(tmp_path):
    env_file = tmp_path / "e.env"
    proc = subprocess.Popen(
        [*_cli(), "emulator", "--env-file", str(env_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_child_env(),
    )
    try:
        _wait_for_env_file(proc, env_file)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=EXIT_BUDGET + SLACK) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_scenarios_command_lists_every_required_scenario():
    p = subprocess.run([*_cli(), "scenarios"], capture_output=True, text=True, timeout=60, env=_child_env())
    assert p.returncode == 0, p.stderr[-2000:]
    missing = [name for name in REQUIRED_SCENARIOS if not re.search(rf"(?m)\b{re.escape(name)}\b", p.stdout)]
    assert not missing, missing


def test_scenarios_json_documents_the_world():
    p = subprocess.run(
        [*_cli(), "scenarios", "--json"], capture_output=True, text=True, timeout=60, env=_child_env()
    )
    assert p.returncode == 0, p.stderr[-2000:]
    data = json.loads(p.stdout)
    text = json.dumps(data)
    assert SYS_PRINCIPAL in text
    for name in REQUIRED_SCENARIOS:
        assert name in text, name


def test_bad_scenario_is_one_line_error(tmp_path):
    p = subprocess.run(
        [*_cli(), "emulator", "--scenario", "no-such", "--env-file", str(tmp_path / "x.env")],
        capture_output=True,
        text=True,
        timeout=60,
        env=_child_env(),
    )
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert "healthy" in p.stderr
    assert not (tmp_path / "x.env").exists()


def test_imds_unreachable_env_file_when_arm_and_admin_accept(tmp_path):
    env_file = tmp_path / "u.env"
    proc = subprocess.Popen(
        [*_cli(), "emulator", "--scenario", "imds-unreachable", "--env-file", str(env_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_child_env(),
    )
    try:
        _wait_for_env_file(proc, env_file)
        env = _read_env_file(env_file)
        assert _accepts(env[Env.MI_HELPERS_ARM_URL])
        assert _accepts(env[Env.MI_HELPERS_EMULATOR_ADMIN])
        assert urlsplit(env[Env.AZURE_POD_IDENTITY_AUTHORITY_HOST]).hostname == "127.0.0.1"
        assert not _accepts(env[Env.AZURE_POD_IDENTITY_AUTHORITY_HOST])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=EXIT_BUDGET + SLACK) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_sigterm_with_a_hung_imds_request(tmp_path):
    """A request held by `imds-hang` must not keep the process alive after SIGTERM."""
    env_file = tmp_path / "h.env"
    proc = subprocess.Popen(
        [*_cli(), "emulator", "--scenario", "imds-hang", "--env-file", str(env_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_child_env(),
    )
    hung = None
    try:
        _wait_for_env_file(proc, env_file)
        env = _read_env_file(env_file)
        parts = urlsplit(env[Env.AZURE_POD_IDENTITY_AUTHORITY_HOST])
        hung = socket.create_connection((parts.hostname, parts.port), timeout=5)
        hung.sendall(
            b"GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=x HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nMetadata: true\r\n\r\n"
        )
        admin = AdminClient(env[Env.MI_HELPERS_EMULATOR_ADMIN], env[Env.MI_HELPERS_EMULATOR_KEY])
        wait_until(  # the server picked the request up and is holding it
            lambda: any(f["label"] == "imds-hang" and f["fired"] for f in admin.scenario_state()["faults"]),
            timeout=5,
            what="the hung request to reach the emulator",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=EXIT_BUDGET + SLACK) == 0
    finally:
        if hung is not None:
            hung.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
