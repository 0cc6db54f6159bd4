"""``mi-helpers lab``: JupyterLab over the notebooks with the local Azure emulator beside it.

The emulator runs embedded in the launcher process (:class:`mi_helpers.emulator.Emulator`); its client
variables (``AZURE_POD_IDENTITY_AUTHORITY_HOST``, ``REQUESTS_CA_BUNDLE``, ``MI_HELPERS_*``, ``NO_PROXY``)
go into JupyterLab's environment, so every kernel and every Lab terminal sees the emulator exactly where a
VM sees IMDS: ``curl -H Metadata:true "$AZURE_POD_IDENTITY_AUTHORITY_HOST/metadata/..."`` works as is.

JupyterLab runs in a per-run directory (settings, workspaces, runtime files, server config), so the user's
own Lab settings are neither read nor changed. The settings overrides shipped as ``jupyterlab_overrides.json``
start the default kernel without a dialog and switch off news, update checks and the extension manager:
Lab itself makes no outbound call. :func:`start_lab` is the reusable piece (the browser tests use it);
:func:`run_lab` is the interactive command.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from mi_helpers.constants import NO_PROXY_VARIABLES
from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.validate import InputError

__all__ = [
    "LAB_SERVER_CONFIG",
    "LabHandle",
    "install_overrides",
    "install_server_config",
    "lab_overrides",
    "run_lab",
    "start_lab",
]

OVERRIDES_FILE = "overrides.json"

# Server-side LabApp settings that keep JupyterLab off the Internet: no news feed, no update check, and an
# extension manager that lists installed extensions only (the default one queries PyPI).
LAB_SERVER_CONFIG: dict[str, Any] = {
    "news_url": None,
    "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
    "extension_manager": "readonly",
}


def lab_overrides() -> dict[str, Any]:
    """The JupyterLab settings overrides shipped with the package (``jupyterlab_overrides.json``)."""
    shipped = resources.files("mi_helpers.launch").joinpath("jupyterlab_overrides.json")
    text = shipped.read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def default_app_settings_dir() -> Path:
    """JupyterLab's app settings directory of this environment (``<prefix>/share/jupyter/lab/settings``)."""
    from jupyterlab.commands import get_app_dir

    return Path(get_app_dir()) / "settings"


def install_overrides(settings_dir: Path | None = None) -> Path:
    """Merge the shipped overrides into ``<settings_dir>/overrides.json`` and return that path.

    Existing entries of other plugins (and other keys of the same plugins) are kept; ours win where both
    set a key. Binder's ``postBuild`` calls this with the default directory of the environment.
    """
    settings_dir = default_app_settings_dir() if settings_dir is None else settings_dir
    settings_dir.mkdir(parents=True, exist_ok=True)
    path = settings_dir / OVERRIDES_FILE
    merged: dict[str, Any] = {}
    if path.exists():
        merged = json.loads(path.read_text(encoding="utf-8") or "{}")
    for plugin, values in lab_overrides().items():
        merged.setdefault(plugin, {}).update(values)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def install_server_config(config_dir: Path | None = None) -> Path:
    """Merge :data:`LAB_SERVER_CONFIG` into ``<config_dir>/jupyter_lab_config.json`` and return its path.

    The default directory is Jupyter's user config directory (``JUPYTER_CONFIG_DIR`` or ``~/.jupyter``),
    which is part of the image on Binder. ``mi-helpers lab`` passes the same values on the command line.
    """
    if config_dir is None:
        from jupyter_core.paths import jupyter_config_dir

        config_dir = Path(jupyter_config_dir())
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "jupyter_lab_config.json"
    merged: dict[str, Any] = {}
    if path.exists():
        merged = json.loads(path.read_text(encoding="utf-8") or "{}")
    merged.setdefault("LabApp", {}).update(LAB_SERVER_CONFIG)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


@dataclass
class LabHandle:
    """A running JupyterLab with its emulator. ``stop()`` ends both (also via ``with``)."""

    url: str
    token: str = field(repr=False)
    port: int
    root_dir: Path
    run_dir: Path
    env: dict[str, str] = field(repr=False)
    process: subprocess.Popen[bytes] = field(repr=False)
    emulator: Any = field(repr=False)
    log_path: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def lab_url(self) -> str:
        """The URL to open in a browser (it carries the Jupyter server's token)."""
        return f"{self.url}lab?token={self.token}"

    def api(self, path: str, *, method: str = "GET", body: Any = None, timeout: float = 10) -> Any:
        """Call the Jupyter server's REST API (``path`` like ``/api/status``) and return the parsed JSON."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method)  # noqa: S310
        req.add_header("Authorization", f"token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with _opener().open(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def stop(self, timeout: float = 15) -> None:
        """Shut Lab down (SIGTERM: it stops its kernels and terminals), then the emulator; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            _terminate(self.process, timeout)
        finally:
            try:
                self.emulator.stop()
            finally:
                shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> LabHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _opener() -> urllib.request.OpenerDirector:
    """A urllib opener that ignores proxy variables: Lab listens on loopback only."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the Lab process, wait, then SIGKILL its process group if it is still there."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    if hasattr(os, "killpg"):  # POSIX: Lab leads its own process group (start_new_session)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    elif process.poll() is None:
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook that makes Lab get SIGTERM when the thread that started it dies (Linux only).

    Without it a launcher killed with SIGKILL (or a test runner aborted mid-test) would leave Lab running
    in its own session. The kernel ties the signal to the starting *thread*, so the hook is only used
    from the main thread.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return hook


def _prepare_run_dir(run_dir: Path, token: str) -> dict[str, Path]:
    """Create the per-run Lab directories and the server config (which carries the token, mode 0600)."""
    dirs = {name: run_dir / name for name in ("app-settings", "user-settings", "workspaces", "runtime")}
    for d in dirs.values():
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
    default = default_app_settings_dir()
    if default.is_dir():  # keep the environment's page_config.json etc.; only overrides.json is merged
        shutil.copytree(default, dirs["app-settings"], dirs_exist_ok=True)
    install_overrides(dirs["app-settings"])
    config = run_dir / "jupyter_server_config.json"
    config.touch(mode=0o600)
    config.write_text(json.dumps({"IdentityProvider": {"token": token}}), encoding="utf-8")
    dirs["config"] = config
    return dirs


def lab_command(
    root_dir: Path, dirs: Mapping[str, Path], *, port: int, port_retries: int, open_browser: bool
) -> list[str]:
    """The ``jupyter lab`` command line: loopback only, per-run dirs, nothing fetched from the Internet."""
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--config={dirs['config']}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--ServerApp.port_retries={port_retries}",
        f"--ServerApp.root_dir={root_dir}",
        f"--ServerApp.open_browser={open_browser}",
        f"--LabApp.app_settings_dir={dirs['app-settings']}",
        f"--LabApp.user_settings_dir={dirs['user-settings']}",
        f"--LabApp.workspaces_dir={dirs['workspaces']}",
        *(f"--LabApp.{key}={value}" for key, value in LAB_SERVER_CONFIG.items()),
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--ServerApp.allow_root=True")  # containers and CI often run as root
    return cmd


def lab_environment(
    emulator_env: Mapping[str, str], runtime_dir: Path, extra_env: Mapping[str, str] | None
) -> dict[str, str]:
    """Environment of the Lab process: ours, plus the emulator's client variables, plus ``extra_env``."""
    env = dict(os.environ)
    env.update({k: str(v) for k, v in emulator_env.items()})
    for var in NO_PROXY_VARIABLES:  # keep the user's own exclusions; the emulator's loopback ones first
        merged: list[str] = []
        for source in (str(emulator_env.get(var, "")), os.environ.get(var, "")):
            merged += [h.strip() for h in source.split(",") if h.strip()]
        if merged:
            env[var] = ",".join(dict.fromkeys(merged))
    if emulator_env.get(Env.REQUESTS_CA_BUNDLE):  # curl in a Lab terminal then trusts ARM as on a VM
        env[Env.CURL_CA_BUNDLE] = str(emulator_env[Env.REQUESTS_CA_BUNDLE])
    env["JUPYTER_RUNTIME_DIR"] = str(runtime_dir)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, *(p for p in env.get("PATH", "").split(os.pathsep) if p)])
    if extra_env:
        env.update({k: str(v) for k, v in extra_env.items()})
    return env


def _server_info(runtime_dir: Path, pid: int) -> dict[str, Any] | None:
    """The ``jpserver-<pid>.json`` the server writes once it listens (it holds the real port)."""
    path = runtime_dir / f"jpserver-{pid}.json"
    try:
        info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info


def _log_tail(log_path: Path | None, limit: int = 2000) -> str:
    if log_path is None or not log_path.exists():
        return ""
    return log_path.read_text(encoding="utf-8", errors="replace")[-limit:]


def _wait_ready(
    process: subprocess.Popen[bytes], runtime_dir: Path, token: str, timeout: float, log: Path | None
) -> int:
    """Wait until ``/api/status`` answers 200 with the token; return the port. Fails fast if Lab exits."""
    deadline = time.monotonic() + timeout
    port = 0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with code {process.returncode} while starting\n{_log_tail(log)}"
            )
        if not port:
            info = _server_info(runtime_dir, process.pid)
            port = int(info["port"]) if info else 0
        if port:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/status")
            req.add_header("Authorization", f"token {token}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                with _opener().open(req, timeout=2) as resp:
                    if resp.status == 200:
                        return port
        time.sleep(0.1)
    raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s\n{_log_tail(log)}")


def start_lab(
    notebooks_dir: Path | str,
    *,
    port: int = 0,
    scenario: str = "healthy",
    extra_env: Mapping[str, str] | None = None,
    open_browser: bool = False,
    port_retries: int = 0,
    log: TextIO | None = None,
    startup_timeout: float = 90,
) -> LabHandle:
    """Start the emulator (``scenario``) and JupyterLab over ``notebooks_dir`` on 127.0.0.1.

    ``port=0`` picks a free port. Lab's output goes to ``log`` when given (e.g. ``sys.stderr`` for the
    interactive command), else to ``lab.log`` in the run directory. Returns once ``/api/status`` answers;
    the caller must ``stop()`` the handle (or use it as a context manager).
    """
    root = Path(notebooks_dir).resolve()
    if not root.is_dir():
        raise InputError(
            "notebooks", f"{str(notebooks_dir)!r} is not a directory (pass an existing directory)"
        )
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise InputError("port", f"{port!r} is not a TCP port (0 for a free port, or 1-65535)")

    from mi_helpers.emulator import SCENARIOS, Emulator
    from mi_helpers.validate import validate_scenario

    validate_scenario(scenario, known=SCENARIOS)
    emulator = Emulator(scenario=scenario)
    token = secrets.token_hex(24)
    run_dir = Path(tempfile.mkdtemp(prefix="mi-helpers-lab-"))
    process: subprocess.Popen[bytes] | None = None
    log_file = None
    try:
        dirs = _prepare_run_dir(run_dir, token)
        emulator.start()
        env = lab_environment(emulator.environment(), dirs["runtime"], extra_env)
        cmd = lab_command(root, dirs, port=port, port_retries=port_retries, open_browser=open_browser)
        log_path: Path | None = None
        out: Any = log
        if log is None:
            log_path = run_dir / "lab.log"
            out = log_file = open(log_path, "wb")
        process = subprocess.Popen(
            cmd,
            env=env,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=os.name == "posix",  # Ctrl-C reaches the launcher only; it stops Lab cleanly
            preexec_fn=_die_with_parent(),
        )
        bound = _wait_ready(process, dirs["runtime"], token, startup_timeout, log_path)
    except BaseException:
        if process is not None:
            _terminate(process, 5)
        emulator.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        if log_file is not None:
            log_file.close()
    return LabHandle(
        url=f"http://127.0.0.1:{bound}/",
        token=token,
        port=bound,
        root_dir=root,
        run_dir=run_dir,
        env=env,
        process=process,
        emulator=emulator,
        log_path=log_path,
    )


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so the launcher cleans up as for Ctrl-C."""

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    names = ("SIGTERM", "SIGHUP")  # SIGHUP does not exist on Windows
    old = {s: signal.signal(s, _raise) for s in (getattr(signal, n) for n in names if hasattr(signal, n))}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def run_lab(
    notebooks_dir: Path | str,
    *,
    port: int | None = None,
    scenario: str = "healthy",
    open_browser: bool = True,
    out: TextIO = sys.stdout,
) -> int:
    """Run Lab + emulator until Ctrl-C (or until Lab exits); return Lab's exit code (0 after Ctrl-C).

    Without ``port`` Lab tries 8888 and the next ports, as ``jupyter lab`` does.
    """
    chosen = 8888 if port is None else port
    handle = start_lab(
        notebooks_dir,
        port=chosen,
        scenario=scenario,
        open_browser=open_browser,
        port_retries=50 if port is None else 0,
        log=sys.stderr,
    )
    env = handle.env
    print(
        "\n".join(
            [
                f"JupyterLab:  {handle.lab_url}",
                f"Emulator:    scenario {scenario}",
                f"  IMDS       {env.get(Env.AZURE_POD_IDENTITY_AUTHORITY_HOST, '?')}",
                f"  ARM        {env.get(Env.MI_HELPERS_ARM_URL, '?')}",
                "In a Lab terminal, as on a VM:",
                '  curl -s -H Metadata:true "$AZURE_POD_IDENTITY_AUTHORITY_HOST/metadata/identity/oauth2/'
                'token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"',
                "Press Ctrl-C to stop JupyterLab and the emulator.",
            ]
        ),
        file=out,
        flush=True,
    )
    try:
        with _stop_on_signals():
            # Poll rather than block in waitpid: a signal the kernel delivers to one of the emulator's
            # threads would not interrupt a blocked main thread, so Ctrl-C would wait for Lab to exit.
            while (code := handle.process.poll()) is None:
                time.sleep(0.2)
    except KeyboardInterrupt:
        print("\nstopping JupyterLab and the emulator ...", file=out, flush=True)
        code = 0
    finally:
        handle.stop()
    return code
