"""A private Azure CLI configuration for the local emulator: the real ``az``, pointed at loopback only.

The Azure CLI keeps everything in one directory (``AZURE_CONFIG_DIR``, default ``~/.azure``): its settings
(``config``), its clouds (``clouds.config``), the signed-in accounts (``azureProfile.json``) and caches.
:func:`prepare_config_dir` writes a fresh directory of that kind in which

* the emulator is registered as a cloud (:data:`CLOUD_NAME`) and is the active one: ARM, the Entra
  authority and Microsoft Graph all point at loopback URLs of the emulator, so a command that would go to
  an endpoint the emulator does not serve fails against the emulator instead of leaving the machine;
* every feature of the CLI that calls a Microsoft server on its own is switched off (:data:`OFFLINE_SETTINGS`
  and :func:`prepare_config_dir`'s version-check record; each entry names the CLI source file it answers).

:func:`cli_environment` is the environment of an ``az`` child process: the caller's, minus every variable
that would send the CLI (or MSAL inside it) somewhere else, plus the emulator's client variables
(``AZURE_POD_IDENTITY_AUTHORITY_HOST`` for ``az login --identity``, ``REQUESTS_CA_BUNDLE`` for the emulator's
TLS certificate, ``NO_PROXY``) and ``AZURE_CONFIG_DIR``. The user's own ``~/.azure`` is never read or
written. ``python -m mi_helpers.launch.azure_cli --config-dir DIR`` does the same for a shell (Lab terminal,
Binder): it writes ``DIR`` and prints ``export`` lines.

The sources cited below are files of the ``azure-cli-core``/``azure-cli`` and ``msal`` wheels
(``pip download --no-deps azure-cli-core azure-cli msal``), read for version 2.91.0 / 1.39.0; the client
side is summarised in docs/protocol.md, "Clients" (Azure CLI).
"""

from __future__ import annotations

import argparse
import configparser
import datetime as _dt
import io
import ipaddress
import json
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from mi_helpers.constants import CLIENT_REDIRECT_VARIABLES, Arm, EnvironmentVariables
from mi_helpers.validate import InputError

__all__ = [
    "CLOUD_NAME",
    "OFFLINE_SETTINGS",
    "CliEndpoints",
    "cli_environment",
    "endpoints_from_environment",
    "find_az",
    "installed_versions",
    "offline_variables",
    "prepare_config_dir",
    "shell_lines",
]

_E = EnvironmentVariables

#: The name the emulator is registered under (the emulator's ``GET /metadata/endpoints`` calls itself so).
CLOUD_NAME = "AzureEmulator"

#: The repository's default place for the CLI's own virtual environment (``scripts/ensure-azure-cli``).
DEFAULT_VENV = ".venv-az"

#: The variables of an emulator environment that name its Entra ID authority host and Microsoft Graph
#: (``Emulator.environment``); without them both default to the emulator's ARM URL (loopback, so nothing
#: leaves the machine either way).
ENTRA_URL_VARIABLE = _E.MI_HELPERS_ENTRA_URL
GRAPH_URL_VARIABLE = _E.MI_HELPERS_GRAPH_URL

#: ``(section, option) -> value`` written to ``<config dir>/config`` (what ``az config set`` writes) and
#: exported as ``AZURE_<SECTION>_<OPTION>`` where the name is a valid shell variable (knack's
#: ``CLIConfig.env_var_name``; an environment variable overrides the file). Each one switches off a call the
#: CLI would otherwise make to a Microsoft server:
OFFLINE_SETTINGS: dict[tuple[str, str], str] = {
    # azure/cli/core/telemetry.py (is_telemetry_enabled) -> azure/cli/telemetry/__init__.py (save) starts a
    # detached uploader that posts to Application Insights after every command.
    ("core", "collect_telemetry"): "false",
    # azure/cli/core/intercept_survey.py (should_prompt): the survey banner and its go.microsoft.com link.
    ("core", "survey_message"): "false",
    # azure/cli/core/_profile.py (_create_identity_instance) -> msal/authority.py
    # (_initialize_entra_authority): with instance discovery on, MSAL validates any authority host it does
    # not know by asking https://login.microsoftonline.com/common/discovery/instance, and
    # msal/application.py (_get_authority_aliases) asks the same host for aliases on silent token requests.
    ("core", "instance_discovery"): "false",
    # azure/cli/core/extension/dynamic_install.py (_get_extension_command_tree): an unknown command makes the
    # CLI download https://aka.ms/azExtCmdTree and offer to install an extension from the extension index.
    ("extension", "use_dynamic_install"): "no",
    # azure/cli/__main__.py: after a successful command, auto-upgrade reads the latest version (the CLI's
    # release storage account) and runs ``az upgrade``. Off by default; pinned off so a user setting cannot
    # turn it on here. (No environment variable: the section name has a hyphen.)
    ("auto-upgrade", "enable"): "no",
    # azure/cli/core/command_recommender.py: error recommendations (local in 2.91; its older versions asked
    # an online service). Off keeps error output to the error itself.
    ("core", "error_recommendation"): "off",
    # azure/cli/core/_help.py: the first-run welcome banner (local; keeps outputs stable).
    ("core", "first_run"): "yes",
}

#: Variables removed from the caller's environment before the emulator's are added: every ``AZURE_*`` name
#: (CLI settings such as ``AZURE_CLOUD_NAME`` override the config file, azure-identity/MSAL variables switch
#: the identity or the authority), the client redirections of :mod:`mi_helpers.constants`, and
#: ``ARM_CLOUD_METADATA_URL`` (azure/cli/core/cloud.py, get_known_clouds: read from that URL at every start),
#: ``ACC_CLOUD`` (azure/cli/core/util.py, in_cloud_console: Cloud Shell sign-in) and ``MSAL_FORCE_REGION``
#: (msal/application.py: regional authority hosts). ``PYTHONDONTWRITEBYTECODE`` is dropped because the CLI is
#: installed without byte-code (``scripts/ensure-azure-cli``) and caches it on first use: without the cache
#: every start takes twice as long.
_STRIPPED_PREFIXES = ("AZURE_",)
_STRIPPED = frozenset(
    {*CLIENT_REDIRECT_VARIABLES, "ARM_CLOUD_METADATA_URL", "ACC_CLOUD", "MSAL_FORCE_REGION"}
    | {"AZUREPS_HOST_ENVIRONMENT", "PYTHONDONTWRITEBYTECODE", "CURL_CA_BUNDLE"}
)

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class CliEndpoints:
    """The loopback URLs a CLI configuration points at (ARM, Entra authority, Microsoft Graph)."""

    def __init__(self, arm_url: str, entra_url: str | None = None, graph_url: str | None = None) -> None:
        self.arm_url = _loopback_https("arm_url", arm_url)
        self.entra_url = _loopback_https("entra_url", entra_url or arm_url)
        self.graph_url = _loopback_https("graph_url", graph_url or arm_url)

    def cloud_section(self) -> dict[str, str]:
        """The ``clouds.config`` options of the emulator cloud (``az cloud register`` writes the same keys).

        azure/cli/core/cloud.py (get_clouds) reads ``endpoint_*``/``suffix_*`` options; an endpoint left
        unset raises ``CloudEndpointNotSetException`` when a command needs it, never a public default.
        ``active_directory`` is the authority host: a service-principal sign-in uses
        ``<active_directory>/<tenant>`` (azure/cli/core/auth/identity.py, _get_authority_url). The token
        audience stays the real one (``active_directory_resource_id``), as on Azure. The CLI uses
        ``microsoft_graph_resource_id`` both as Graph's base URL and as the token resource for it
        (azure/cli/command_modules/role/_msgrpah/_graph_client.py).
        """
        arm = self.arm_url.rstrip("/") + "/"
        return {
            "profile": "latest",
            "endpoint_resource_manager": arm,
            "endpoint_management": Arm.CLI_RESOURCE,
            "endpoint_active_directory": self.entra_url.rstrip("/"),
            "endpoint_active_directory_resource_id": Arm.CLI_RESOURCE,
            "endpoint_microsoft_graph_resource_id": self.graph_url.rstrip("/") + "/",
            "endpoint_active_directory_graph_resource_id": self.graph_url.rstrip("/") + "/",
            "endpoint_portal": arm,
            "endpoint_gallery": arm,
            "endpoint_vm_image_alias_doc": arm + "vm/aliases.json",
            "suffix_keyvault_dns": ".vault.azure.net",
            "suffix_storage_endpoint": "core.windows.net",
        }


def _loopback_https(field: str, url: object) -> str:
    if not isinstance(url, str) or not url.strip():
        raise InputError(field, "is missing (an https:// URL of the local emulator)", url)
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if parts.scheme != "https" or not loopback:
        raise InputError(field, f"{url!r} is not allowed (an https:// URL on 127.0.0.1 or localhost)", url)
    return url.strip()


def endpoints_from_environment(emulator_env: Mapping[str, str]) -> CliEndpoints:
    """Endpoints from an emulator's ``environment()`` (``MI_HELPERS_ARM_URL`` and the optional extras)."""
    return CliEndpoints(
        emulator_env.get(_E.MI_HELPERS_ARM_URL, ""),
        emulator_env.get(ENTRA_URL_VARIABLE) or None,
        emulator_env.get(GRAPH_URL_VARIABLE) or None,
    )


def find_az(venv: str | os.PathLike[str] | None = None) -> Path | None:
    """The ``az`` of ``venv`` (default: ``.venv-az`` of the repository, then ``$PATH``), or None."""
    import shutil

    candidates = []
    if venv is not None:
        candidates.append(Path(venv) / "bin" / "az")
    else:
        candidates.append(Path(__file__).resolve().parents[2] / DEFAULT_VENV / "bin" / "az")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    if venv is None:
        found = shutil.which("az")
        return Path(found) if found else None
    return None


_DISTRIBUTIONS = {"azure_cli": "azure-cli", "azure_cli_core": "core", "azure_cli_telemetry": "telemetry"}


def installed_versions(az: str | os.PathLike[str]) -> dict[str, str]:
    """``{"azure-cli": …, "core": …, "telemetry": …}`` of the installation that ``az`` belongs to.

    Read from the ``*.dist-info`` folders of its virtual environment, without starting the CLI (the same
    names azure/cli/core/util.py, _get_local_versions, derives from the installed distributions).
    """
    root = Path(az).resolve().parent.parent
    found: dict[str, str] = {}
    for info in root.glob("lib/python3*/site-packages/azure_cli*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        key = {"azure_cli": "azure-cli", "azure_cli_core": "core", "azure_cli_telemetry": "telemetry"}.get(
            name
        )
        if key:
            found[key] = version
    if "core" not in found or "azure-cli" not in found:
        raise InputError("az", f"{str(az)!r} is not an az CLI installed in a virtual environment", str(az))
    return found


def _version_check_record(versions: Mapping[str, str]) -> dict[str, object]:
    """The ``versionCheck.json`` that tells the CLI its version check already ran.

    azure/cli/core/__init__.py (AzCli.__init__) calls azure/cli/core/util.py (handle_version_update) at
    every start; with no recorded versions it calls get_cached_latest_versions, which probes the CLI's
    release storage account (check_connectivity, then ``<storage>/cli/azure-cli-core/setup.py``). A record
    of the local versions (no ``pypi`` entry, so auto-upgrade has nothing to compare) stops it.
    """
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
    return {"versions": {k: {"local": v} for k, v in versions.items()}, "update_time": now}


def _ini(sections: Mapping[str, Mapping[str, str]]) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    for section, options in sections.items():
        parser[section] = dict(options)
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def prepare_config_dir(
    config_dir: str | os.PathLike[str],
    emulator_env: Mapping[str, str],
    *,
    az: str | os.PathLike[str] | None = None,
    versions: Mapping[str, str] | None = None,
) -> Path:
    """Write a CLI configuration directory for the emulator of ``emulator_env``; return its path.

    ``versions`` (or, when omitted, :func:`installed_versions` of ``az``) must be the installed CLI's:
    a record that does not match makes the CLI throw it away and run its online version check. Existing
    settings, clouds and the version record are replaced; signed-in accounts are kept (a re-run after the
    emulator restarted on new ports keeps a terminal's ``az login``).
    """
    endpoints = endpoints_from_environment(emulator_env)
    if versions is None:
        found = az or find_az()
        if found is None:
            raise InputError("az", "is not installed (run scripts/ensure-azure-cli)", None)
        versions = installed_versions(found)
    target = Path(config_dir)
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, 0o700)
    settings: dict[str, dict[str, str]] = {"cloud": {"name": CLOUD_NAME}}
    for (section, option), value in OFFLINE_SETTINGS.items():
        settings.setdefault(section, {})[option] = value
    files = {
        "config": _ini(settings),
        "clouds.config": _ini({CLOUD_NAME: endpoints.cloud_section()}),
        "versionCheck.json": json.dumps(_version_check_record(versions)),
    }
    for name, text in files.items():
        tmp = target / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target / name)
    return target


def offline_variables() -> dict[str, str]:
    """:data:`OFFLINE_SETTINGS` as ``AZURE_<SECTION>_<OPTION>`` variables (those that are valid names)."""
    out = {}
    for (section, option), value in OFFLINE_SETTINGS.items():
        name = f"AZURE_{section.upper()}_{option.upper()}"
        if _ENV_NAME.match(name):
            out[name] = value
    return out


def cli_environment(
    emulator_env: Mapping[str, str],
    config_dir: str | os.PathLike[str],
    *,
    base: Mapping[str, str] | None = None,
    az: str | os.PathLike[str] | None = None,
) -> dict[str, str]:
    """The environment of an ``az`` child process that talks to the emulator of ``emulator_env`` only.

    ``base`` (default ``os.environ``) loses every variable that would redirect the CLI or its sign-in;
    then come the emulator's variables (a scenario's client-side extras included: they model a
    misconfigured machine), ``AZURE_CONFIG_DIR`` and :func:`offline_variables`. With ``az``, its folder
    goes first on ``PATH`` so a shell finds that CLI.
    """
    if not emulator_env.get(_E.REQUESTS_CA_BUNDLE):
        raise InputError("emulator_env", "has no REQUESTS_CA_BUNDLE (the emulator's environment())", None)
    endpoints_from_environment(emulator_env)  # validates the URLs
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if k not in _STRIPPED and not k.startswith(_STRIPPED_PREFIXES)}
    env.update(emulator_env)
    env["AZURE_CONFIG_DIR"] = str(Path(config_dir))
    env.update(offline_variables())
    if az is not None:
        env["PATH"] = os.pathsep.join(p for p in (str(Path(az).parent), env.get("PATH", "")) if p)
    return env


#: The variables of an emulator's ``environment()`` (``Emulator.environment``, docs/architecture.md,
#: "Client environment") that :func:`main` takes from its own environment.
_EMULATOR_VARIABLES = (
    _E.AZURE_POD_IDENTITY_AUTHORITY_HOST,
    _E.REQUESTS_CA_BUNDLE,
    _E.MI_HELPERS_TARGET,
    _E.MI_HELPERS_ARM_URL,
    _E.MI_HELPERS_EMULATOR_ADMIN,
    _E.MI_HELPERS_EMULATOR_KEY,
    ENTRA_URL_VARIABLE,
    GRAPH_URL_VARIABLE,
    # the operator sign-in: az login --service-principal -u "$MI_HELPERS_OPERATOR_CLIENT_ID"
    # -p "$MI_HELPERS_OPERATOR_CLIENT_SECRET" --tenant "$MI_HELPERS_TENANT_ID"
    _E.MI_HELPERS_TENANT_ID,
    _E.MI_HELPERS_OPERATOR_CLIENT_ID,
    _E.MI_HELPERS_OPERATOR_CLIENT_SECRET,
    "NO_PROXY",
    "no_proxy",
)


def shell_lines(environ: Mapping[str, str], config_dir: str | os.PathLike[str], az: Path) -> str:
    """``unset``/``export`` lines that turn a shell with the emulator's variables into an az shell."""
    emulator_env = {k: environ[k] for k in _EMULATOR_VARIABLES if environ.get(k)}
    env = cli_environment(emulator_env, config_dir, base=environ, az=az)
    dropped = sorted(k for k in environ if k not in env and _ENV_NAME.match(k))
    lines = [f"unset {k}\n" for k in dropped]
    lines += [
        f"export {k}={shlex.quote(env[k])}\n" for k in ("AZURE_CONFIG_DIR", *offline_variables(), "PATH")
    ]
    return "".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mi_helpers.launch.azure_cli``: write a config dir for the emulator of this shell."""
    parser = argparse.ArgumentParser(
        prog="python -m mi_helpers.launch.azure_cli",
        description="Write a private Azure CLI configuration for the local emulator whose variables this "
        "process has (MI_HELPERS_ARM_URL, REQUESTS_CA_BUNDLE, ...) and print the lines a shell evaluates: "
        'eval "$(python -m mi_helpers.launch.azure_cli --config-dir DIR)".',
    )
    parser.add_argument("--config-dir", required=True, help="the CLI configuration directory to write")
    parser.add_argument("--az", help="the az executable (default: .venv-az/bin/az, then PATH)")
    args = parser.parse_args(argv)
    try:
        az = Path(args.az) if args.az else find_az()
        if az is None:
            raise InputError("az", "is not installed (run scripts/ensure-azure-cli)", None)
        config = prepare_config_dir(args.config_dir, os.environ, az=az)
        sys.stdout.write(shell_lines(os.environ, config, az))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through the subprocess tests
    raise SystemExit(main())
