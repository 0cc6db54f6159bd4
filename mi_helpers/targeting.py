"""Where requests go: the real Azure endpoints (``azure``) or the local emulator (``emulator``).

``MI_HELPERS_TARGET=auto|azure|emulator`` chooses. ``auto`` decides **without any network traffic**: an
Azure VM identifies itself through SMBIOS (the chassis asset tag ``7783-7084-3265-9085-8269-3286-77``),
which Linux exposes under ``/sys/class/dmi/id`` and Windows through WMI. Probing 169.254.169.254 instead
would hang on Binder/JupyterHub (the metadata IP is firewalled there) and would send traffic from a laptop.

The SDKs read their redirection variables (``AZURE_POD_IDENTITY_AUTHORITY_HOST``, ``REQUESTS_CA_BUNDLE``,
``NO_PROXY``) at request time, so selecting the emulator exports them into ``os.environ``.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mi_helpers.clouds import CLOUDS, Cloud, cloud_info
from mi_helpers.constants import AZURE_ASSET_TAG, LOOPBACK_NO_PROXY, Imds
from mi_helpers.validate import InputError, validate_scenario

__all__ = [
    "Detection",
    "Target",
    "current_emulator",
    "detect",
    "original_environ",
    "patched_environ",
    "reset_target",
    "target",
    "use_emulator",
]

DEFAULT_DMI_ROOT = Path("/sys/class/dmi/id")

_lock = threading.RLock()
_current: Target | None = None
_embedded: Any = None  # the Emulator this process started (stopped at exit)
_forced: str | None = None  # set by use_emulator(): overrides MI_HELPERS_TARGET for this process


@dataclass(frozen=True)
class Detection:
    """Result of the SMBIOS check: is this an Azure VM, and why we think so."""

    is_azure: bool
    reason: str
    asset_tag: str | None = None
    sys_vendor: str | None = None


@dataclass(frozen=True)
class Target:
    """Endpoints the helpers use, and why they were chosen.

    ``emulator`` is the control object of the local emulator (in-process ``Emulator`` or ``AdminClient``;
    both offer ``set_scenario``, ``apply_fix``, ``world_dict``, ``request_log``…), None on Azure.
    ``arm_scope`` is what the ARM SDK asks the credential (and so IMDS) for. ``ca_bundle`` is the CA file to
    trust for ARM's TLS, or None for the system/certifi default.
    """

    name: str
    reason: str
    cloud: str
    imds_url: str
    arm_url: str
    arm_scope: str
    ca_bundle: str | None = None
    emulator: Any = field(default=None, repr=False, compare=False)

    @property
    def cloud_info(self) -> Cloud:
        return CLOUDS[self.cloud]

    @property
    def is_emulator(self) -> bool:
        return self.name == "emulator"

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in (
                ("target", self.name),
                ("why", self.reason),
                ("cloud", self.cloud_info.display_name),
                ("IMDS", self.imds_url),
                ("ARM", self.arm_url),
                ("ARM scope", self.arm_scope),
                ("CA bundle", self.ca_bundle or "system default"),
            )
        )
        return f"<table>{rows}</table>"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _windows_asset_tag() -> str | None:
    """Read the SMBIOS asset tag through WMI (PowerShell's CIM cmdlets), without touching the network."""
    command = "(Get-CimInstance -ClassName Win32_SystemEnclosure).SMBIOSAssetTag"
    try:
        out = subprocess.run(
            ["powershell", "-NoProfile", "-NonInteractive", "-Command", command],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def detect(dmi_root: str | os.PathLike[str] | None = None, *, platform: str | None = None) -> Detection:
    """Decide whether this machine is an Azure VM from SMBIOS data only (no network).

    ``dmi_root`` replaces ``/sys/class/dmi/id`` (tests pass a fake directory); ``platform`` replaces
    ``sys.platform``. On Windows the asset tag comes from WMI; elsewhere from the DMI files.
    """
    plat = platform or sys.platform
    vendor: str | None = None
    if plat.startswith("win") and dmi_root is None:
        tag = _windows_asset_tag()
        where = "WMI Win32_SystemEnclosure"
    else:
        root = Path(dmi_root) if dmi_root is not None else DEFAULT_DMI_ROOT
        tag = _read(root / "chassis_asset_tag")
        vendor = _read(root / "sys_vendor")
        where = str(root / "chassis_asset_tag")
    if tag == AZURE_ASSET_TAG:
        detail = f" (sys_vendor {vendor!r})" if vendor else ""
        return Detection(True, f"Azure VM: chassis asset tag is {AZURE_ASSET_TAG}{detail}", tag, vendor)
    if tag is None:
        why = f"not an Azure VM (no chassis asset tag readable at {where}) — using the local emulator"
    else:
        why = f"not an Azure VM (chassis asset tag is {tag!r}) — using the local emulator"
    if vendor == "Microsoft Corporation" and tag != AZURE_ASSET_TAG:
        why = why.replace("not an Azure VM", "Microsoft hardware (Hyper-V?) but not an Azure VM")
    return Detection(False, why, tag, vendor)


def _merge_no_proxy(*hosts: str) -> None:
    """Add hosts to NO_PROXY and no_proxy (requests reads either), keeping what the user already had.

    Recorded like :func:`_export`'s variables, so :func:`reset_target` restores the user's own values.
    """
    for var in ("NO_PROXY", "no_proxy"):
        have = [h.strip() for h in os.environ.get(var, "").split(",") if h.strip()]
        _exported.setdefault(var, os.environ.get(var))
        os.environ[var] = ",".join([*have, *(h for h in hosts if h not in have)])


def _strip_url(url: str) -> str:
    return url.rstrip("/")


def _emulator_described_by_env() -> bool:
    return all(
        os.environ.get(v)
        for v in ("MI_HELPERS_EMULATOR_ADMIN", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "MI_HELPERS_ARM_URL")
    )


def _stop_embedded() -> None:
    global _embedded
    emu, _embedded = _embedded, None
    _export({})
    if emu is not None:
        try:
            emu.stop()
        except Exception:  # noqa: S110 - best effort at interpreter exit
            pass


def _apply_environ(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextlib.contextmanager
def patched_environ(changes: Mapping[str, str | None]) -> Iterator[None]:
    """Set (``None``: unset) environment variables for the duration of a block, then restore them.

    azure-identity and MSAL read their variables at request time, so this is how a lesson or a lab run
    plays a differently configured client machine without leaking that configuration afterwards.
    """
    saved = {key: os.environ.get(key) for key in changes}
    try:
        _apply_environ(changes)
        yield
    finally:
        _apply_environ(saved)


_exported: dict[str, str | None] = {}  # variables we set -> the value they had before (None: unset)
_synced_scenario: object = None


def _export(env: dict[str, str]) -> None:
    """Export the emulator's client variables; drop the ones a previous scenario added but this one lacks."""
    for key in [k for k in _exported if k not in env]:
        before = _exported.pop(key)
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
    for key, value in env.items():
        if key not in _exported:
            _exported[key] = os.environ.get(key)
        os.environ[key] = str(value)


def original_environ() -> dict[str, str]:
    """The environment as the user set it: variables this module exported are shown with their old values."""
    env = dict(os.environ)
    for key, before in _exported.items():
        if before is None:
            env.pop(key, None)
        else:
            env[key] = before
    return env


def _sync_env(control: Any) -> None:
    """Re-export the control's environment (it changes with the scenario, e.g. ``imds-unreachable``)."""
    global _synced_scenario
    _export(dict(control.environment()))
    _synced_scenario = getattr(control, "scenario", None)


def _start_embedded(scenario: str, params: dict[str, Any]) -> Any:
    """Start the in-process emulator (background threads) and export its client variables."""
    global _embedded
    from mi_helpers.emulator import Emulator

    if _embedded is None:
        emu = Emulator(scenario=scenario, params=params or None)
        emu.start()
        _embedded = emu
        atexit.register(_stop_embedded)
    _sync_env(_embedded)
    return _embedded


def _emulator_target(reason: str, scenario: str = "healthy", params: dict[str, Any] | None = None) -> Target:
    if _embedded is None and _emulator_described_by_env():
        from mi_helpers.emulator import AdminClient

        control: Any = AdminClient.from_env()
        reason += " (emulator started outside this process: " + os.environ["MI_HELPERS_EMULATOR_ADMIN"] + ")"
    else:
        control = _start_embedded(scenario, params or {})
        reason += " (embedded emulator on 127.0.0.1)"
    # The emulator's environment is authoritative (NO_PROXY included: proxy-intercept narrows it on purpose).
    os.environ["MI_HELPERS_TARGET"] = "emulator"
    public = CLOUDS["public"]
    return Target(
        name="emulator",
        reason=reason,
        cloud="public",
        imds_url=_strip_url(os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"]),
        arm_url=_strip_url(os.environ["MI_HELPERS_ARM_URL"]),
        arm_scope=public.arm_scope,
        ca_bundle=os.environ.get("REQUESTS_CA_BUNDLE") or None,
        emulator=control,
    )


def _refreshed(current: Target) -> Target:
    """The same emulator target with endpoints re-read from the (re-exported) environment."""
    return dataclasses.replace(
        current,
        imds_url=_strip_url(os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"]),
        arm_url=_strip_url(os.environ["MI_HELPERS_ARM_URL"]),
        ca_bundle=os.environ.get("REQUESTS_CA_BUNDLE") or None,
    )


def _cloud_from_imds(imds_url: str) -> tuple[str, str]:
    """Ask IMDS (the VM's own metadata service) for ``azEnvironment``; public when it cannot say."""
    override = os.environ.get("MI_HELPERS_CLOUD")
    if override:
        return cloud_info(override).name, f"cloud from MI_HELPERS_CLOUD={override}"
    try:
        import requests

        with requests.Session() as session:
            session.trust_env = False  # IMDS must never go through a proxy
            resp = session.get(
                f"{imds_url}/metadata/instance/compute/azEnvironment",
                params={"api-version": "2021-02-01", "format": "text"},
                headers={"Metadata": "true"},
                timeout=(2, 3),
            )
        if resp.status_code == 200 and resp.text.strip():
            return cloud_info(resp.text.strip()).name, f"cloud from instance metadata ({resp.text.strip()})"
    except Exception as exc:  # requests' errors, an unknown azEnvironment (InputError): same fallback
        return "public", f"cloud defaulted to public (instance metadata unavailable: {type(exc).__name__})"
    return "public", "cloud defaulted to public (instance metadata gave no azEnvironment)"


def _is_loopback_url(url: str) -> bool:
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def _azure_target(reason: str, *, on_azure: bool = False) -> Target:
    imds_url = _strip_url(os.environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST") or Imds.URL)
    _merge_no_proxy(Imds.ADDRESS, *LOOPBACK_NO_PROXY)
    if on_azure or _is_loopback_url(imds_url) or os.environ.get("MI_HELPERS_CLOUD"):
        cloud, cloud_reason = _cloud_from_imds(imds_url)
    else:  # forced off Azure: never send a packet to the link-local address to find the cloud
        cloud, cloud_reason = "public", "cloud defaulted to public (not an Azure VM, so IMDS was not asked)"
    if _is_loopback_url(imds_url):
        cloud_reason += f"; IMDS redirected to {imds_url} by AZURE_POD_IDENTITY_AUTHORITY_HOST"
    info = CLOUDS[cloud]
    control = None
    if os.environ.get("MI_HELPERS_EMULATOR_ADMIN") and os.environ.get("MI_HELPERS_EMULATOR_KEY"):
        try:
            from mi_helpers.emulator import AdminClient

            control = AdminClient.from_env()
        except ImportError:
            control = None
    return Target(
        name="azure",
        reason=f"{reason}; {cloud_reason}",
        cloud=cloud,
        imds_url=imds_url,
        arm_url=_strip_url(os.environ.get("MI_HELPERS_ARM_URL") or info.arm_url),
        arm_scope=info.arm_scope,
        ca_bundle=os.environ.get("REQUESTS_CA_BUNDLE") or None,
        emulator=control,
    )


def _choose(dmi_root: str | os.PathLike[str] | None = None) -> Target:
    wanted = (_forced or os.environ.get("MI_HELPERS_TARGET") or "auto").strip().lower()
    if wanted not in ("auto", "azure", "emulator"):
        raise InputError(
            "MI_HELPERS_TARGET", f"{wanted!r} is not allowed (one of: auto, azure, emulator)", wanted
        )
    if wanted == "azure":
        return _azure_target("MI_HELPERS_TARGET=azure")
    if wanted == "emulator":
        why = "use_emulator() was called" if _forced else "MI_HELPERS_TARGET=emulator"
        return _emulator_target(why)
    found = detect(dmi_root)
    if found.is_azure:
        return _azure_target(found.reason, on_azure=True)
    return _emulator_target(found.reason)


def target(*, dmi_root: str | os.PathLike[str] | None = None) -> Target:
    """Return the (cached) :class:`Target` for this process, choosing and preparing it on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = _choose(dmi_root)
        elif _current.emulator is not None and _current.emulator is _embedded:
            if getattr(_embedded, "scenario", None) != _synced_scenario:
                _sync_env(_embedded)  # someone called emu.set_scenario() directly
                _current = _refreshed(_current)
        return _current


def current_emulator() -> Any:
    """The emulator control object of the current target, or None (on Azure)."""
    return target().emulator


def use_emulator(scenario: str = "healthy", **params: Any) -> Any:
    """Switch this process to the local emulator in ``scenario`` and return its control object.

    Starts the embedded emulator on first use (or attaches to the one ``mi-helpers lab`` runs, when the
    environment describes it); later calls switch the scenario. ``params`` are scenario parameters such as
    ``n`` or ``t``. The control object has the same methods for both kinds of emulator.
    """
    global _current, _forced
    known: list[str] | None
    try:
        from mi_helpers.emulator import SCENARIOS

        known = list(SCENARIOS)
    except ImportError:
        known = None
    scenario = validate_scenario(scenario, known)
    with _lock:
        if _current is None or not _current.is_emulator:
            _forced = "emulator"
            _current = None
            started_here = _embedded is None and not _emulator_described_by_env()
            if started_here:
                _start_embedded(scenario, params)
            _current = _emulator_target("use_emulator() was called")
            if started_here:
                return _current.emulator
        control = _current.emulator
        control.set_scenario(scenario, **params)
        _sync_env(control)
        # Tokens cached by the shared credentials belong to the previous scenario's world.
        identity = sys.modules.get("mi_helpers.identity")
        if identity is not None:
            identity.clear_credential_cache()
        _current = _refreshed(_current)
        return control


def reset_target(*, stop_emulator: bool = True) -> None:
    """Forget the chosen target (tests); stops the embedded emulator unless ``stop_emulator=False``."""
    global _current, _forced
    with _lock:
        _current = None
        _forced = None
        if stop_emulator:
            _stop_embedded()
        elif _embedded is None:
            _export({})  # nothing running needs our variables: give the user's own back
