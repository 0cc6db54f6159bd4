"""`mi-helpers lab` / `start_lab`: JupyterLab on loopback with the emulator's variables in every kernel.

Lab start costs seconds, so there are two Lab starts in this file: the Python API (REST status, settings
overrides, a kernel started through the REST API that sees and reaches the emulator) and the console
command (banner, Ctrl-C stops Lab and the emulator). The network guard of the suite is inherited by Lab
and its kernels, so any outbound call Lab made (news, update check, extension listing) fails the test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import nbformat
import pytest
from jupyter_client import BlockingKernelClient
from nbformat.v4 import new_code_cell, new_notebook
from support.world import SYS_PRINCIPAL

from mi_helpers.launch import jupyterlab as lab
from mi_helpers.validate import InputError

pytestmark = pytest.mark.slow

# The kernel prints what it sees, then asks the emulator's IMDS for a token with the Metadata header and
# prints the status and token type (never the token).
KERNEL_PROBE = """
import json, os, urllib.request
print("PID=%d" % os.getpid())
print("HOST=" + os.environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST", ""))
print("TARGET=" + os.environ.get("MI_HELPERS_TARGET", ""))
print("CA=" + os.environ.get("REQUESTS_CA_BUNDLE", ""))
url = os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] + (
    "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F")
req = urllib.request.Request(url, headers={"Metadata": "true"})
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(req, timeout=10) as resp:
    body = json.load(resp)
print("IMDS=%d %s %s" % (resp.status, body["token_type"], body["access_token"][:3]))
"""


def _notebooks(tmp_path: Path) -> Path:
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell("1 + 1")]), nbs / "00-hello.ipynb")
    return nbs


def _refused(url: str) -> bool:
    parsed = urlparse(url)
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((parsed.hostname or "127.0.0.1", parsed.port or 80)) != 0


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an exited child nobody has reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _run_in_kernel(connection_file: Path, code: str) -> str:
    client = BlockingKernelClient(connection_file=str(connection_file))
    client.load_connection_file()
    client.start_channels()
    try:
        # The heartbeat answers only once the kernel process is up; until then the client calls it dead.
        deadline = time.monotonic() + 60
        while True:
            try:
                client.wait_for_ready(timeout=30)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        chunks: list[str] = []

        def hook(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                chunks.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                chunks.append("ERROR " + msg["content"]["ename"] + ": " + msg["content"]["evalue"])

        reply = client.execute_interactive(code, output_hook=hook, timeout=60)
        assert reply["content"]["status"] == "ok", "".join(chunks)
        return "".join(chunks)
    finally:
        client.stop_channels()


async def _run_in_terminal(handle: lab.LabHandle, command: str) -> str:
    """Type ``command`` into a new Lab terminal (the websocket Lab's UI uses); return its output."""
    from tornado.websocket import websocket_connect

    name = handle.api("/api/terminals", method="POST")["name"]
    url = f"ws://127.0.0.1:{handle.port}/terminals/websocket/{name}?token={handle.token}"
    ws = await websocket_connect(url)
    try:
        # The marker is computed by the shell, so the echo of the typed line does not end the loop.
        await ws.write_message(json.dumps(["stdin", command + "; echo END-$((40 + 2))\r"]))
        out = ""
        while "END-42" not in out:
            msg = await asyncio.wait_for(ws.read_message(), timeout=30)
            if msg is None:
                break
            kind, *rest = json.loads(msg)
            if kind == "stdout":
                out += rest[0]
        return out
    finally:
        ws.close()
        handle.api(f"/api/terminals/{name}", method="DELETE")


def test_start_lab_serves_the_notebooks_with_the_emulator_beside_it(tmp_path: Path) -> None:
    nbs = _notebooks(tmp_path)
    handle = lab.start_lab(nbs, scenario="healthy")
    try:
        assert handle.url == f"http://127.0.0.1:{handle.port}/" and handle.port > 0
        assert handle.token not in repr(handle)
        status = handle.api("/api/status")
        assert "started" in status
        with pytest.raises(urllib.error.HTTPError) as refused:  # the token is required
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                handle.url + "api/contents", timeout=5
            )
        assert refused.value.code == 403
        assert [c["name"] for c in handle.api("/api/contents")["content"]] == ["00-hello.ipynb"]

        # The shipped overrides are in effect: the default kernel starts without a dialog, no news.
        tracker = handle.api("/lab/api/settings/@jupyterlab/notebook-extension:tracker")
        assert tracker["schema"]["properties"]["autoStartDefaultKernel"]["default"] is True
        notes = handle.api("/lab/api/settings/@jupyterlab/apputils-extension:notification")
        assert notes["schema"]["properties"]["fetchNews"]["default"] == "false"
        assert notes["schema"]["properties"]["checkForUpdates"]["default"] is False
        assert handle.api("/lab/api/news") == {"news": []}

        kernel = handle.api("/api/kernels", method="POST", body={"name": "python3"})
        out = _run_in_kernel(handle.run_dir / "runtime" / f"kernel-{kernel['id']}.json", KERNEL_PROBE)
        env = handle.env
        assert f"HOST={env['AZURE_POD_IDENTITY_AUTHORITY_HOST']}\n" in out
        assert env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] == handle.emulator.imds_url
        assert "TARGET=emulator\n" in out
        assert f"CA={handle.emulator.ca_bundle}\n" in out
        assert "IMDS=200 Bearer eyJ" in out
        kernel_pid = int(out.split("PID=", 1)[1].split()[0])  # left running: stop() must end it

        # A Lab terminal is a shell on "the VM": curl with the Metadata header reaches IMDS as is.
        typed = (
            'curl -s -o /dev/null -w "status=%{http_code}\\n" -H Metadata:true '
            '"$AZURE_POD_IDENTITY_AUTHORITY_HOST/metadata/identity/oauth2/token'
            '?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"; '
            'echo "target=$MI_HELPERS_TARGET"; curl -s -o /dev/null -w "arm=%{http_code}\\n" '
            '"$MI_HELPERS_ARM_URL/subscriptions?api-version=2022-12-01"'
        )
        shell = asyncio.run(_run_in_terminal(handle, typed))
        assert "status=200" in shell and "target=emulator" in shell, shell[-2000:]
        assert "arm=401" in shell, shell[-2000:]  # TLS verified (000 otherwise); no token, so 401

        # The tools the notebooks name are on the terminal's PATH: mi-helpers of this installation, and the
        # real az with the emulator as its cloud (signing in with the emulated managed identity).
        tools = (
            'echo "mi=$(command -v mi-helpers)"; mi-helpers whoami --json | python3 -c '
            '\'import json,sys; print("oid=" + json.load(sys.stdin)["token_principal_id"])\'; '
            'az login --identity -o none && echo "az=$(az account show --query user.name -o tsv)"'
        )
        shell = asyncio.run(_run_in_terminal(handle, tools))
        assert f"mi={Path(sys.executable).parent / 'mi-helpers'}" in shell, shell[-2000:]
        assert f"oid={SYS_PRINCIPAL}" in shell, shell[-2000:]
        assert "az=systemAssignedIdentity" in shell, shell[-2000:]
    finally:
        handle.stop()
    assert handle.process.poll() is not None
    assert not handle.run_dir.exists()
    assert _refused(handle.url) and _refused(handle.emulator.imds_url)
    deadline = time.monotonic() + 15
    while _running(kernel_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(kernel_pid), "the kernel outlived Lab"
    handle.stop()  # idempotent


def test_mi_helpers_lab_prints_the_url_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    nbs = _notebooks(tmp_path)
    exe = Path(sys.executable).with_name("mi-helpers")
    proc = subprocess.Popen(
        [str(exe), "lab", "--no-browser", "--port", "0", "--notebooks", str(nbs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        banner = []
        assert proc.stdout is not None
        for line in proc.stdout:
            banner.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(banner)
        assert (
            f"Notebooks:   {tmp_path / 'work' / 'notebooks'}" in text
        )  # working copies, next to the originals
        lab_url = next(line.split()[1] for line in banner if line.startswith("JupyterLab:"))
        imds = next(line.split()[1] for line in banner if line.strip().startswith("IMDS"))
        parsed = urlparse(lab_url)
        assert parsed.hostname == "127.0.0.1" and parsed.path == "/lab", text
        token = parse_qs(parsed.query)["token"][0]
        req = urllib.request.Request(f"http://127.0.0.1:{parsed.port}/api/status")
        req.add_header("Authorization", f"token {token}")
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as resp:
            assert resp.status == 200 and "started" in json.load(resp)
        assert imds.startswith("http://127.0.0.1:") and not _refused(imds)

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        assert proc.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while not (_refused(lab_url) and _refused(imds)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _refused(lab_url) and _refused(imds)
    finally:
        if proc.poll() is None:  # the launcher stops Lab and the emulator on SIGTERM too
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def test_lab_ends_when_its_launcher_is_killed(tmp_path: Path) -> None:
    """A launcher killed with SIGKILL cannot clean up; Lab (in its own session) must still go away."""
    nbs = _notebooks(tmp_path)
    code = (
        "import sys, time\n"
        "from mi_helpers.launch.jupyterlab import start_lab\n"
        f"h = start_lab({str(nbs)!r})\n"
        "print(h.process.pid, h.url, h.run_dir, flush=True)\n"
        "time.sleep(600)\n"
    )
    launcher = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert launcher.stdout is not None
        pid_text, url, run_dir = launcher.stdout.readline().split()
        lab_pid = int(pid_text)
        assert _running(lab_pid) and not _refused(url)
        launcher.kill()
        launcher.wait(10)
        deadline = time.monotonic() + 30
        while _running(lab_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(lab_pid), "Lab outlived its launcher"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(10)
        if "run_dir" in locals():
            shutil.rmtree(run_dir, ignore_errors=True)  # a killed launcher cannot remove it itself


def test_bad_input_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^notebooks: '.*missing' is not a directory"):
        lab.start_lab(tmp_path / "missing")
    with pytest.raises(InputError, match=r"^port: 70000 is not a TCP port"):
        lab.start_lab(tmp_path, port=70000)
    with pytest.raises(InputError, match=r"^scenario: 'no-such-scenario' is not a known scenario \(one of: "):
        lab.start_lab(tmp_path, scenario="no-such-scenario")


def test_overrides_and_server_config_merge_into_existing_files(tmp_path: Path) -> None:
    settings = tmp_path / "settings"
    settings.mkdir()
    (settings / "overrides.json").write_text(
        json.dumps(
            {
                "@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
                "@jupyterlab/notebook-extension:tracker": {
                    "autoStartDefaultKernel": False,
                    "kernelShutdown": True,
                },
            }
        )
    )
    merged = json.loads(lab.install_overrides(settings).read_text())
    assert merged["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
    assert merged["@jupyterlab/notebook-extension:tracker"] == {
        "autoStartDefaultKernel": True,
        "kernelShutdown": True,
    }
    assert merged["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert merged["@jupyterlab/extensionmanager-extension:plugin"]["enabled"] is False

    config_dir = tmp_path / "cfg"
    config_dir.mkdir()
    (config_dir / "jupyter_lab_config.json").write_text(
        json.dumps({"ServerApp": {"x": 1}, "LabApp": {"y": 2}})
    )
    config = json.loads(lab.install_server_config(config_dir).read_text())
    assert config["ServerApp"] == {"x": 1}
    assert config["LabApp"] == {"y": 2, **lab.LAB_SERVER_CONFIG}
    assert config["LabApp"]["news_url"] is None


def test_shipped_override_ids_exist_in_the_installed_jupyterlab() -> None:
    """Every plugin id and key in mi_helpers/launch/jupyterlab_overrides.json is a real Lab setting."""
    schemas = Path(lab.default_app_settings_dir()).parent / "schemas"
    for plugin_id, values in lab.lab_overrides().items():
        package, plugin = plugin_id.split(":")
        schema = json.loads((schemas / package / f"{plugin}.json").read_text())
        for key, value in values.items():
            prop = schema["properties"][key]
            allowed = [c["const"] for c in prop.get("oneOf", [])] or None
            assert allowed is None or value in allowed, (plugin_id, key, value)
            assert {"boolean": bool, "string": str}[prop["type"]] is type(value), (plugin_id, key)


def test_lab_environment_keeps_the_users_no_proxy_and_lets_extra_env_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "corp.example,127.0.0.1")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    emulator_env = {
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    env = lab.lab_environment(emulator_env, tmp_path, {"MI_HELPERS_TARGET": "azure"})
    assert env["NO_PROXY"] == "127.0.0.1,localhost,corp.example"
    assert "no_proxy" not in env
    assert env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] == "http://127.0.0.1:1"
    assert env["MI_HELPERS_TARGET"] == "azure"
    assert env["JUPYTER_RUNTIME_DIR"] == str(tmp_path)
    assert "CURL_CA_BUNDLE" not in env  # only set alongside REQUESTS_CA_BUNDLE
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    with_ca = lab.lab_environment({**emulator_env, "REQUESTS_CA_BUNDLE": "/x/ca.pem"}, tmp_path, None)
    assert with_ca["CURL_CA_BUNDLE"] == with_ca["REQUESTS_CA_BUNDLE"] == "/x/ca.pem"
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_idle_kernels_are_culled_and_the_console_stays_quiet(tmp_path: Path) -> None:
    """A kernel nobody uses goes away; opening notebooks, kernels and terminals logs nothing a learner
    cannot act on (no "not trusted", no kernel over TCP, no websocket ping warning)."""
    nbs = _notebooks(tmp_path)
    handle = lab.start_lab(nbs, cull_idle=3, cull_interval=1)
    try:
        assert handle.log_path is not None
        kernel = handle.api("/api/kernels", method="POST", body={"name": "python3"})
        handle.api("/api/contents/00-hello.ipynb")  # what opening a notebook reads

        async def sockets() -> None:
            from tornado.websocket import websocket_connect

            name = handle.api("/api/terminals", method="POST")["name"]
            term = await websocket_connect(
                f"ws://127.0.0.1:{handle.port}/terminals/websocket/{name}?token={handle.token}"
            )
            await asyncio.sleep(1)
            term.close()

        asyncio.run(sockets())
        deadline = time.monotonic() + 30
        while any(k["id"] == kernel["id"] for k in handle.api("/api/kernels")):
            assert time.monotonic() < deadline, "the idle kernel was not culled"
            time.sleep(0.5)
        log = handle.log_path.read_text(encoding="utf-8", errors="replace")
        assert f"Kernel shutdown: {kernel['id']}" in log  # culled, and the log is the real one
        for noise in ("is not trusted", "running over TCP", "websocket_ping_timeout", "non-installed server"):
            assert noise not in log, noise
    finally:
        handle.stop()


def test_quiet_lab_log_drops_only_the_noise() -> None:
    quiet = lab.QuietLabLog()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("ServerApp", logging.WARNING, __file__, 1, message, (), None)

    assert not quiet.filter(record("Notebook notebooks/00-start-here.ipynb is not trusted"))
    assert quiet.filter(record("Kernel started: 1234"))
    assert quiet.filter(record("WebSocket ping timeout after 90000 ms."))  # a real problem stays


def test_working_copies_keep_the_learners_work(tmp_path: Path) -> None:
    source = tmp_path / "repo" / "notebooks"
    source.mkdir(parents=True)
    (source.parent / "docs").mkdir()
    (source.parent / "docs" / "glossary.md").write_text("# Glossary\n")
    for name in ("00-a.ipynb", "01-b.ipynb"):
        nbformat.write(new_notebook(cells=[new_code_cell(f"# {name}")]), source / name)
    work = tmp_path / "repo" / "work"
    notebooks, kept = lab.prepare_working_copies(source, work)
    assert notebooks == work / "notebooks" and kept == []
    assert sorted(p.name for p in notebooks.glob("*.ipynb")) == ["00-a.ipynb", "01-b.ipynb"]
    assert (work / "docs" / "glossary.md").read_text() == "# Glossary\n"  # the notebooks' ../docs links
    assert (work / ".gitignore").read_text().splitlines()[-1] == "*"

    learner = nbformat.read(notebooks / "00-a.ipynb", as_version=4)
    learner.cells.append(new_code_cell("print('my own work')"))
    nbformat.write(learner, notebooks / "00-a.ipynb")
    for name in ("00-a.ipynb", "01-b.ipynb"):  # both originals change upstream
        nbformat.write(new_notebook(cells=[new_code_cell(f"# {name}, version 2")]), source / name)
    _, kept = lab.prepare_working_copies(source, work)
    assert kept == ["00-a.ipynb"]
    assert "my own work" in (notebooks / "00-a.ipynb").read_text()  # never overwritten
    assert "version 2" in (notebooks / "01-b.ipynb").read_text()  # an untouched copy follows its original


def test_a_learners_run_leaves_git_status_clean(tmp_path: Path) -> None:
    """Lab over working copies: a notebook saved with outputs (what autosave does after a run) changes
    nothing git tracks or reports."""
    repo = tmp_path / "clone"
    shutil.copytree(Path(__file__).resolve().parents[2] / "notebooks", repo / "notebooks")

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
        return done.stdout

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", "notebooks")
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "notebooks")
    handle = lab.start_lab(repo / "notebooks", work_dir=repo / "work")
    try:
        path = f"{handle.notebooks_path}/00-start-here.ipynb"
        model = handle.api(f"/api/contents/{path}")
        code = next(c for c in model["content"]["cells"] if c["cell_type"] == "code")
        code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "a learner's output\n"}]
        code["execution_count"] = 1
        handle.api(
            f"/api/contents/{path}", method="PUT", body={"type": "notebook", "content": model["content"]}
        )
    finally:
        handle.stop()
    assert "a learner's output" in (repo / "work" / "notebooks" / "00-start-here.ipynb").read_text()
    assert git("status", "--porcelain", "--untracked-files=all") == ""
