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

What a learner meets is set up here too:

* **working copies**: ``mi-helpers lab`` opens copies of the notebooks in ``work/`` (next to ``notebooks/``,
  ignored by git through its own ``.gitignore``), so autosave never writes outputs into the tracked
  sources; a copy the learner changed is kept when the original changes (:func:`prepare_working_copies`);
* **a terminal like the VM's shell**: ``mi-helpers`` and ``az`` on ``PATH`` (``az`` from ``.venv-az``, with
  the emulator registered as its cloud in a private configuration, :mod:`mi_helpers.launch.azure_cli`),
  ``curl`` trusting the emulator's CA; the banner never prints a whole token;
* **a quiet, light server**: kernels talk over private Unix sockets (no "running over TCP" warning), idle
  kernels are culled, and log lines a learner cannot act on are dropped (:class:`QuietLabLog`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    "QuietLabLog",
    "banner",
    "install_overrides",
    "install_server_config",
    "lab_overrides",
    "prepare_working_copies",
    "run_lab",
    "start_lab",
    "terminal_rc",
]

OVERRIDES_FILE = "overrides.json"

# Server-side LabApp settings that keep JupyterLab off the Internet: no news feed, no update check, and an
# extension manager that lists installed extensions only (the default one queries PyPI).
LAB_SERVER_CONFIG: dict[str, Any] = {
    "news_url": None,
    "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
    "extension_manager": "readonly",
}


#: Kernels idle this long (seconds) with no browser tab connected are shut down (each one holds a Python
#: process, and notebook 05's holds an emulator too); checked every ``KERNEL_CULL_INTERVAL`` seconds.
KERNEL_CULL_IDLE = 1800
KERNEL_CULL_INTERVAL = 300
#: The folder of the working copies, next to the notebooks folder, and what it holds besides them.
WORK_DIR = "work"
_MANIFEST = ".mi-helpers-copies.json"
#: Documents the notebooks link to (``../docs/…``), copied beside the working copies so the links resolve.
LINKED_DOCS = ("glossary.md", "snippets.md")


class QuietLabLog(logging.Filter):
    """Drops the server log lines a learner cannot act on (installed through ``ServerApp.logging_config``).

    * "Notebook … is not trusted": every first open of a notebook without stored outputs (jupyter_server's
      contents manager); trust only matters for outputs saved by someone else;
    * "The websocket_ping_timeout (90000) cannot be longer than the websocket_ping_interval (30000)":
      tornado 6.5 (websocket.py) on jupyter_server's own ping settings, at the first terminal;
    * "Skipped non-installed server(s): …": jupyter-lsp listing a dozen language servers nobody installed.
    """

    NOISE = ("is not trusted", "websocket_ping_timeout", "Skipped non-installed server")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in self.NOISE)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare_working_copies(source: Path, work: Path) -> tuple[Path, list[str]]:
    """Copy the notebooks of ``source`` into ``work/notebooks`` (and the docs they link into ``work/docs``).

    A notebook is copied when its copy is missing, or when the original changed and the copy is still
    the one copied last time (a manifest records what was copied); a copy the learner changed is kept.
    ``work`` gets a ``.gitignore`` of ``*``, so nothing in it ever shows in ``git status``. Returns the
    notebooks folder and the names of the kept copies whose original changed.
    """
    notebooks = work / "notebooks"
    notebooks.mkdir(parents=True, exist_ok=True)
    (work / ".gitignore").write_text("# working copies of mi-helpers lab: outside version control\n*\n")
    manifest_path = work / _MANIFEST
    try:
        manifest: dict[str, str] = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    kept = []
    for original in sorted(p for p in source.glob("*.ipynb") if not p.name.startswith(".")):
        copy = notebooks / original.name
        fresh = _sha256(original)
        if copy.exists() and manifest.get(original.name) == fresh:
            continue  # the original did not change since it was copied
        if copy.exists() and _sha256(copy) != manifest.get(original.name):
            kept.append(original.name)  # the learner's own work: never overwritten
            continue
        shutil.copyfile(original, copy)
        manifest[original.name] = fresh
    docs = source.parent / "docs"
    for name in LINKED_DOCS:
        if (docs / name).is_file():
            (work / "docs").mkdir(exist_ok=True)
            shutil.copyfile(docs / name, work / "docs" / name)
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return notebooks, kept


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
    #: Where the notebooks are, relative to ``root_dir`` ("" or "notebooks" for working copies).
    notebooks_path: str = ""
    #: Working copies kept although their original changed (the learner's own work).
    kept: list[str] = field(default_factory=list)
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


def server_config(
    token: str,
    *,
    terminal: Sequence[str] | None = None,
    default_url: str | None = None,
    cull_idle: float = KERNEL_CULL_IDLE,
    cull_interval: float = KERNEL_CULL_INTERVAL,
) -> dict[str, Any]:
    """The per-run server configuration (``jupyter_server_config.json``): token, terminal, kernels, log."""
    server: dict[str, Any] = {
        # merged into traitlets' default logging config: the console handler drops QuietLabLog's lines
        "logging_config": {
            "filters": {"mi_quiet": {"()": f"{__name__}.QuietLabLog"}},
            "handlers": {"console": {"filters": ["mi_quiet"]}},
        },
    }
    if terminal:
        server["terminado_settings"] = {"shell_command": list(terminal)}
    if default_url:
        server["default_url"] = default_url
    return {
        "IdentityProvider": {"token": token},
        "ServerApp": server,
        # kernel channels over private Unix sockets in the run directory, not loopback TCP ports
        "KernelManager": {"transport": "ipc"},
        "MappingKernelManager": {
            "cull_idle_timeout": int(cull_idle),
            "cull_interval": max(1, int(cull_interval)),
            "cull_connected": False,
        },
    }


def _prepare_run_dir(run_dir: Path) -> dict[str, Path]:
    """Create the per-run Lab directories (settings, workspaces, runtime files, the terminal's ``bin``)."""
    dirs = {
        name: run_dir / name for name in ("app-settings", "user-settings", "workspaces", "runtime", "bin")
    }
    for d in dirs.values():
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
    default = default_app_settings_dir()
    if default.is_dir():  # keep the environment's page_config.json etc.; only overrides.json is merged
        shutil.copytree(default, dirs["app-settings"], dirs_exist_ok=True)
    install_overrides(dirs["app-settings"])
    dirs["config"] = run_dir / "jupyter_server_config.json"
    return dirs


def _write_config(path: Path, config: Mapping[str, Any]) -> None:
    """Write the server config (it carries the Jupyter token: mode 0600 before anything is written)."""
    path.touch(mode=0o600)
    path.write_text(json.dumps(config), encoding="utf-8")


# ---------------------------------------------------------------------------------------- the terminal


def _az_shell_lines(env: Mapping[str, str], run_dir: Path) -> str:
    """Lines putting ``az`` (of ``.venv-az``) on PATH with the emulator as its cloud, or an install hint.

    ``az`` goes in through a link in the run's own ``bin`` folder, so the CLI's private Python never shadows
    the tutorial's ``python`` on PATH.
    """
    from mi_helpers.launch import azure_cli

    found = azure_cli.find_az()
    if found is None:
        hint = "az is not installed: run 'make azure-cli' in the repository, then open a new terminal"
        return f"echo {shlex.quote(hint)}\n"
    link = run_dir / "bin" / "az"
    if not link.exists():
        link.symlink_to(found)
    try:
        config = azure_cli.prepare_config_dir(run_dir / "azure", env, az=found)
        return azure_cli.shell_lines(env, config, link)
    except Exception as exc:  # a CLI that cannot be configured: the terminal says why, Lab still starts
        return f"echo {shlex.quote(f'az is not set up for the emulator here: {exc}')}\n"


def terminal_rc(env: Mapping[str, str], run_dir: Path) -> str:
    """The start-up file of a Lab terminal: the user's own bash set-up, then the tools on PATH.

    ``mi-helpers`` (this installation's ``bin``) and ``az`` (see :func:`_az_shell_lines`) come first on
    PATH, after the user's rc files: a login shell's ``/etc/profile`` would otherwise reset PATH.
    """
    bindir = Path(sys.executable).parent
    ca = env.get(Env.REQUESTS_CA_BUNDLE, "")
    lines = [
        "# mi-helpers lab: a terminal that talks to the local emulator as a VM's shell talks to IMDS",
        "[ -r /etc/bash.bashrc ] && . /etc/bash.bashrc",
        "[ -r ~/.bashrc ] && . ~/.bashrc",
        _az_shell_lines(env, run_dir).rstrip("\n"),
        f'export PATH={shlex.quote(str(bindir))}:"$PATH"',
    ]
    if ca:
        lines.append(f"export CURL_CA_BUNDLE={shlex.quote(ca)}  # curl trusts the emulator's ARM certificate")
    hint = "This terminal is a shell on the emulated VM. Try:  az login --identity  ·  mi-helpers doctor"
    lines.append(f"echo {shlex.quote(hint)}")
    return "\n".join(lines) + "\n"


def _terminal_command(env: Mapping[str, str], run_dir: Path) -> list[str] | None:
    """``bash --rcfile <rc> -i`` (None without bash: Lab's default shell)."""
    bash = shutil.which("bash", path=env.get("PATH"))
    if bash is None:
        return None
    rc = run_dir / "terminal.bashrc"
    rc.write_text(terminal_rc(env, run_dir), encoding="utf-8")
    return [bash, "--rcfile", str(rc), "-i"]


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
    work_dir: Path | str | None = None,
    cull_idle: float = KERNEL_CULL_IDLE,
    cull_interval: float = KERNEL_CULL_INTERVAL,
) -> LabHandle:
    """Start the emulator (``scenario``) and JupyterLab over ``notebooks_dir`` on 127.0.0.1.

    With ``work_dir``, Lab opens working copies of the notebooks in ``<work_dir>/notebooks``
    (:func:`prepare_working_copies`) instead of the originals. ``port=0`` picks a free port. Lab's output goes
    to ``log`` when given (e.g. ``sys.stderr`` for the interactive command), else to ``lab.log`` in the run
    directory. Kernels idle for ``cull_idle`` seconds are shut down (checked every ``cull_interval``).
    Returns once ``/api/status`` answers; the caller must ``stop()`` the handle (or use it as a context
    manager).
    """
    source = Path(notebooks_dir).resolve()
    if not source.is_dir():
        raise InputError(
            "notebooks", f"{str(notebooks_dir)!r} is not a directory (pass an existing directory)"
        )
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise InputError("port", f"{port!r} is not a TCP port (0 for a free port, or 1-65535)")

    from mi_helpers.emulator import SCENARIOS, Emulator
    from mi_helpers.validate import validate_scenario

    validate_scenario(scenario, known=SCENARIOS)
    root, notebooks_path, kept = source, "", list[str]()
    if work_dir is not None:
        root = Path(work_dir).resolve()
        _, kept = prepare_working_copies(source, root)
        notebooks_path = "notebooks"
    emulator = Emulator(scenario=scenario)
    token = secrets.token_hex(24)
    run_dir = Path(tempfile.mkdtemp(prefix="mi-helpers-lab-"))
    process: subprocess.Popen[bytes] | None = None
    log_file = None
    try:
        dirs = _prepare_run_dir(run_dir)
        emulator.start()
        env = lab_environment(emulator.environment(), dirs["runtime"], extra_env)
        first = sorted((root / notebooks_path).glob("00-*.ipynb"))
        config = server_config(
            token,
            terminal=_terminal_command(env, run_dir),
            default_url=f"/lab/tree/{first[0].relative_to(root).as_posix()}" if first else None,
            cull_idle=cull_idle,
            cull_interval=cull_interval,
        )
        _write_config(dirs["config"], config)
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
        notebooks_path=notebooks_path,
        kept=kept,
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


#: The terminal commands the banner suggests. The curl pipes the answer through Python and prints the
#: token's first characters and its length only, as the notebooks do: a whole token never reaches a screen.
BANNER_CURL = (
    'curl -s -H Metadata:true "$AZURE_POD_IDENTITY_AUTHORITY_HOST/metadata/identity/oauth2/token'
    '?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F" | python3 -c '
    '\'import json,sys; d=json.load(sys.stdin); t=d["access_token"]; '
    'print(d["resource"], d["expires_in"], t[:8] + "…(%d chars)" % len(t))\''
)


def banner(handle: LabHandle, scenario: str) -> str:
    """What ``mi-helpers lab`` prints once Lab answers: where to go, the emulator, what to try."""
    env = handle.env
    lines = [f"JupyterLab:  {handle.lab_url}"]
    if handle.notebooks_path:
        where = handle.root_dir / handle.notebooks_path
        lines.append(f"Notebooks:   {where}  (your working copies: outputs stay out of the repository)")
        lines += [
            f"  kept your copy of {name} (its original changed; delete the copy to get it)"
            for name in handle.kept
        ]
    lines += [
        f"Emulator:    scenario {scenario}",
        f"  IMDS       {env.get(Env.AZURE_POD_IDENTITY_AUTHORITY_HOST, '?')}",
        f"  ARM        {env.get(Env.MI_HELPERS_ARM_URL, '?')}",
        "In a Lab terminal (File → New → Terminal), as on a VM:",
        "  az login --identity",
        "  mi-helpers doctor",
        f"  {BANNER_CURL}",
        "Press Ctrl-C to stop JupyterLab and the emulator.",
    ]
    return "\n".join(lines)


def run_lab(
    notebooks_dir: Path | str,
    *,
    port: int | None = None,
    scenario: str = "healthy",
    open_browser: bool = True,
    out: TextIO = sys.stdout,
    work_dir: Path | str | None = None,
) -> int:
    """Run Lab + emulator until Ctrl-C (or until Lab exits); return Lab's exit code (0 after Ctrl-C).

    Lab opens working copies in ``work_dir`` (default: ``work`` next to ``notebooks_dir``). Without ``port``
    Lab tries 8888 and the next ports, as ``jupyter lab`` does.
    """
    chosen = 8888 if port is None else port
    work = Path(work_dir) if work_dir is not None else Path(notebooks_dir).resolve().parent / WORK_DIR
    handle = start_lab(
        notebooks_dir,
        port=chosen,
        scenario=scenario,
        open_browser=open_browser,
        port_retries=50 if port is None else 0,
        log=sys.stderr,
        work_dir=work,
    )
    print(banner(handle, scenario), file=out, flush=True)
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
