"""Where requests go: the real Azure endpoints (``azure``) or the local emulator (``emulator``).

``MI_HELPERS_TARGET=auto|azure|emulator`` chooses. ``auto`` decides **without any network traffic**: an
Azure VM identifies itself through SMBIOS (the chassis asset tag ``constants.AZURE_ASSET_TAG``), which
Linux exposes under ``/sys/class/dmi/id`` and Windows through WMI. Probing 169.254.169.254 instead would
hang on Binder/JupyterHub (the metadata IP is firewalled there) and would send traffic from a laptop.

The SDKs read their redirection variables (``AZURE_POD_IDENTITY_AUTHORITY_HOST``, ``REQUESTS_CA_BUNDLE``,
``NO_PROXY``) at request time, so selecting the emulator exports them into ``os.environ``
(:class:`mi_helpers.environ.ExportLedger` keeps the user's own values to give back).

Everything this module remembers for the process (the chosen target, the emulator it started, what it
exported) is one :class:`_TargetState`; :func:`reset_target` replaces it with a new one and
:func:`isolated_target` runs a block on a fresh one, as a new process would.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mi_helpers.constants import AZURE_ASSET_TAG, LOOPBACK_NO_PROXY, Arm, Imds
from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.environ import ExportLedger, replace_environ, restored_environ
from mi_helpers.validate import InputError, validate_scenario

if TYPE_CHECKING:
    from mi_helpers.clouds import Cloud
    from mi_helpers.emulator.control import EmulatorControl
    from mi_helpers.emulator.server import Emulator

__all__ = [
    "Detection",
    "Target",
    "current_emulator",
    "detect",
    "isolated_target",
    "original_environ",
    "reset_target",
    "target",
    "target_chosen",
    "use_emulator",
]

DEFAULT_DMI_ROOT = Path("/sys/class/dmi/id")
# Transitional: tests/emulator/test_scenarios.py still imports the address from here. Use constants.Imds;
# this alias goes once that test does (it is not part of the API, hence not in __all__).
IMDS_ADDRESS = Imds.ADDRESS
_TARGETS = ("auto", "azure", "emulator")


class _Value:
    """Base of this module's two immutable value types (:class:`Detection`, :class:`Target`).

    They are written out rather than made with ``@dataclass``: a dataclass generates (compiles) its methods
    when the class is created, ≈ 1.5 ms per class here, and this module is imported by the first token
    request of every process (bench ``token_cold_ms``). Fields are ``__slots__``; ``_hidden`` fields are
    left out of ``repr`` and equality.
    """

    __slots__ = ()
    _fields: tuple[str, ...] = ()  # in repr order
    _hidden: frozenset[str] = frozenset()

    def _init(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def _shown(self) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in self._fields if n not in self._hidden)

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields if n not in self._hidden)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Value) and type(other) is type(self) and other._shown() == self._shown()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._shown()))


class Detection(_Value):
    """Result of the SMBIOS check: is this an Azure VM, and why we think so."""

    _fields = ("is_azure", "reason", "asset_tag", "sys_vendor")
    __slots__ = _fields
    is_azure: bool
    reason: str
    asset_tag: str | None
    sys_vendor: str | None

    def __init__(
        self, is_azure: bool, reason: str, asset_tag: str | None = None, sys_vendor: str | None = None
    ) -> None:
        self._init(is_azure=is_azure, reason=reason, asset_tag=asset_tag, sys_vendor=sys_vendor)


class Target(_Value):
    """Endpoints the helpers use, and why they were chosen.

    ``emulator`` controls the local emulator (the in-process ``Emulator``, or an ``AdminClient`` for one
    started elsewhere: both are an ``EmulatorControl``), None on Azure. ``arm_scope`` is what the ARM SDK
    asks the credential (and so IMDS) for. ``ca_bundle`` is the CA file to trust for ARM's TLS, or None for
    the system/certifi default.
    """

    _fields = ("name", "reason", "cloud", "imds_url", "arm_url", "arm_scope", "ca_bundle", "emulator")
    __slots__ = _fields
    _hidden = frozenset({"emulator"})
    name: str
    reason: str
    cloud: str
    imds_url: str
    arm_url: str
    arm_scope: str
    ca_bundle: str | None
    emulator: EmulatorControl | None

    def __init__(
        self,
        name: str,
        reason: str,
        cloud: str,
        imds_url: str,
        arm_url: str,
        arm_scope: str,
        ca_bundle: str | None = None,
        emulator: EmulatorControl | None = None,
    ) -> None:
        self._init(
            name=name,
            reason=reason,
            cloud=cloud,
            imds_url=imds_url,
            arm_url=arm_url,
            arm_scope=arm_scope,
            ca_bundle=ca_bundle,
            emulator=emulator,
        )

    def replace(self, **changes: Any) -> Target:
        """A copy with ``changes`` applied (the endpoints re-read after a scenario switch)."""
        values = {n: getattr(self, n) for n in self._fields}
        return Target(**{**values, **changes})

    @property
    def cloud_info(self) -> Cloud:
        from mi_helpers.clouds import CLOUDS

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


# ------------------------------------------------------------------------------------------ detection


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


# ------------------------------------------------------------------------------------------ process state


def _quietly_stop(emulator: Emulator) -> None:
    try:
        emulator.stop()
    except Exception:  # noqa: S110 - best effort at interpreter exit
        pass


class _TargetState:
    """What this module remembers for the process: the chosen target, the emulator it started itself, and
    the variables it exported. :func:`reset_target` replaces it with a new instance."""

    def __init__(self, embedded: Emulator | None = None, exports: ExportLedger | None = None) -> None:
        self.current: Target | None = None
        self.forced = False  # use_emulator() was called: the emulator, whatever MI_HELPERS_TARGET says
        self.embedded = embedded  # the Emulator this process started (stopped at exit)
        self.exports = exports if exports is not None else ExportLedger()
        self.synced_scenario: str | None = None  # the scenario whose environment is exported

    def carried_over(self) -> _TargetState:
        """A new state that keeps the running emulator and its exports, and has chosen nothing."""
        fresh = _TargetState(self.embedded, self.exports)
        fresh.synced_scenario = self.synced_scenario
        return fresh

    def sync(self, control: EmulatorControl) -> None:
        """Re-export the control's environment (it changes with the scenario, e.g. ``imds-unreachable``)."""
        self.exports.export(dict(control.environment()))
        self.synced_scenario = control.scenario

    def start_embedded(self, scenario: str, params: dict[str, Any]) -> Emulator:
        """Start the in-process emulator (background threads) once, and export its client variables."""
        if self.embedded is None:
            from mi_helpers.emulator import Emulator

            emulator = Emulator(scenario=scenario, params=params or None)
            emulator.start()
            atexit.register(_quietly_stop, emulator)
            self.embedded = emulator
        self.sync(self.embedded)
        return self.embedded

    def stop_embedded(self) -> None:
        """Stop the emulator this process started (if any) and give the exported variables back."""
        emulator, self.embedded = self.embedded, None
        self.exports.withdraw()
        if emulator is not None:
            _quietly_stop(emulator)

    def refresh_if_switched(self) -> None:
        """Someone called ``set_scenario()`` on the embedded emulator directly: re-export, re-read."""
        current, embedded = self.current, self.embedded
        if current is not None and embedded is not None and current.emulator is embedded:
            if embedded.scenario != self.synced_scenario:
                self.sync(embedded)
                self.current = _refreshed(current)


_lock = threading.RLock()
_state = _TargetState()


def _forget_shared_credentials() -> None:
    """Tokens cached by mi_helpers.identity's shared credentials belong to the previous world.

    Looked up in ``sys.modules`` rather than imported: identity imports this module, and a process that
    never signed in has nothing cached (nor a reason to import the Azure SDK).
    """
    identity = sys.modules.get("mi_helpers.identity")
    if identity is not None:
        identity.clear_credential_cache()


# ------------------------------------------------------------------------------------------ the targets


def _strip_url(url: str) -> str:
    return url.rstrip("/")


def _emulator_described_by_env() -> bool:
    """An emulator started elsewhere (``mi-helpers lab``) exported its endpoints into this environment."""
    names = (Env.MI_HELPERS_EMULATOR_ADMIN, Env.AZURE_POD_IDENTITY_AUTHORITY_HOST, Env.MI_HELPERS_ARM_URL)
    return all(os.environ.get(v) for v in names)


def _emulator_target(st: _TargetState, reason: str, scenario: str = "healthy") -> Target:
    control: EmulatorControl
    if st.embedded is None and _emulator_described_by_env():
        from mi_helpers.emulator import AdminClient

        control = AdminClient.from_env()
        reason += f" (emulator started outside this process: {os.environ[Env.MI_HELPERS_EMULATOR_ADMIN]})"
    else:
        control = st.start_embedded(scenario, {})
        reason += " (embedded emulator on 127.0.0.1)"
    # The emulator's environment is authoritative (NO_PROXY included: proxy-intercept narrows it on purpose).
    os.environ[Env.MI_HELPERS_TARGET] = "emulator"
    return Target(
        name="emulator",
        reason=reason,
        cloud="public",
        imds_url=_strip_url(os.environ[Env.AZURE_POD_IDENTITY_AUTHORITY_HOST]),
        arm_url=_strip_url(os.environ[Env.MI_HELPERS_ARM_URL]),
        arm_scope=Arm.SCOPE,  # the emulator plays the public cloud
        ca_bundle=os.environ.get(Env.REQUESTS_CA_BUNDLE) or None,
        emulator=control,
    )


def _refreshed(current: Target) -> Target:
    """The same emulator target with endpoints re-read from the (re-exported) environment."""
    return current.replace(
        imds_url=_strip_url(os.environ[Env.AZURE_POD_IDENTITY_AUTHORITY_HOST]),
        arm_url=_strip_url(os.environ[Env.MI_HELPERS_ARM_URL]),
        ca_bundle=os.environ.get(Env.REQUESTS_CA_BUNDLE) or None,
    )


def _cloud_from_imds(imds_url: str) -> tuple[str, str]:
    """Ask IMDS (the VM's own metadata service) for ``azEnvironment``; public when it cannot say."""
    from mi_helpers.clouds import cloud_info

    override = os.environ.get(Env.MI_HELPERS_CLOUD)
    if override:
        return cloud_info(override).name, f"cloud from MI_HELPERS_CLOUD={override}"
    try:
        import requests

        with requests.Session() as session:
            session.trust_env = False  # IMDS must never go through a proxy
            resp = session.get(
                f"{imds_url}{Imds.INSTANCE_PATH}/compute/azEnvironment",
                params={"api-version": Imds.INSTANCE_API_VERSION, "format": "text"},
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


def _azure_target(st: _TargetState, reason: str, *, on_azure: bool = False) -> Target:
    from mi_helpers.clouds import CLOUDS

    imds_url = _strip_url(os.environ.get(Env.AZURE_POD_IDENTITY_AUTHORITY_HOST) or Imds.URL)
    st.exports.merge_no_proxy(Imds.ADDRESS, *LOOPBACK_NO_PROXY)
    if on_azure or _is_loopback_url(imds_url) or os.environ.get(Env.MI_HELPERS_CLOUD):
        cloud, cloud_reason = _cloud_from_imds(imds_url)
    else:  # forced off Azure: never send a packet to the link-local address to find the cloud
        cloud, cloud_reason = "public", "cloud defaulted to public (not an Azure VM, so IMDS was not asked)"
    if _is_loopback_url(imds_url):
        cloud_reason += f"; IMDS redirected to {imds_url} by AZURE_POD_IDENTITY_AUTHORITY_HOST"
    info = CLOUDS[cloud]
    control: EmulatorControl | None = None
    if os.environ.get(Env.MI_HELPERS_EMULATOR_ADMIN) and os.environ.get(Env.MI_HELPERS_EMULATOR_KEY):
        from mi_helpers.emulator import AdminClient

        control = AdminClient.from_env()  # the azure target aimed at an emulator (tests, demos)
    return Target(
        name="azure",
        reason=f"{reason}; {cloud_reason}",
        cloud=cloud,
        imds_url=imds_url,
        arm_url=_strip_url(os.environ.get(Env.MI_HELPERS_ARM_URL) or info.arm_url),
        arm_scope=info.arm_scope,
        ca_bundle=os.environ.get(Env.REQUESTS_CA_BUNDLE) or None,
        emulator=control,
    )


def _wanted(st: _TargetState) -> str:
    wanted = ("emulator" if st.forced else os.environ.get(Env.MI_HELPERS_TARGET) or "auto").strip().lower()
    if wanted not in _TARGETS:
        allowed = ", ".join(_TARGETS)
        raise InputError(Env.MI_HELPERS_TARGET, f"{wanted!r} is not allowed (one of: {allowed})", wanted)
    return wanted


def _choose(st: _TargetState, dmi_root: str | os.PathLike[str] | None = None) -> Target:
    wanted = _wanted(st)
    if wanted == "azure":
        return _azure_target(st, "MI_HELPERS_TARGET=azure")
    if wanted == "emulator":
        return _emulator_target(
            st, "use_emulator() was called" if st.forced else "MI_HELPERS_TARGET=emulator"
        )
    found = detect(dmi_root)
    if found.is_azure:
        return _azure_target(st, found.reason, on_azure=True)
    return _emulator_target(st, found.reason)


def _control(tgt: Target) -> EmulatorControl:
    if tgt.emulator is None:  # an emulator target always has one; say so rather than fail on None later
        raise RuntimeError(f"the {tgt.name} target has no emulator to control")
    return tgt.emulator


# ------------------------------------------------------------------------------------------ public API


def target(*, dmi_root: str | os.PathLike[str] | None = None) -> Target:
    """Return the (cached) :class:`Target` for this process, choosing and preparing it on first use."""
    with _lock:
        st = _state
        if st.current is None:
            st.current = _choose(st, dmi_root)
        else:
            st.refresh_if_switched()
        return st.current


def target_chosen() -> bool:
    """True once this process has chosen a target (a call that needed one, or :func:`use_emulator`)."""
    return _state.current is not None


def current_emulator() -> EmulatorControl | None:
    """The emulator control object of the current target, or None (on Azure)."""
    return target().emulator


def use_emulator(scenario: str = "healthy", **params: Any) -> EmulatorControl:
    """Switch this process to the local emulator in ``scenario`` and return its control object.

    Starts the embedded emulator on first use (or attaches to the one ``mi-helpers lab`` runs, when the
    environment describes it); later calls switch the scenario. ``params`` are scenario parameters such as
    ``n`` or ``t``. Both kinds of control object are an ``EmulatorControl``.
    """
    from mi_helpers.emulator import SCENARIOS

    scenario = validate_scenario(scenario, list(SCENARIOS))
    with _lock:
        st = _state
        if st.current is None or not st.current.is_emulator:
            st.forced, st.current = True, None
            if st.embedded is None and not _emulator_described_by_env():
                st.start_embedded(scenario, params)  # started in this scenario: nothing to switch
                st.current = _emulator_target(st, "use_emulator() was called")
                return _control(st.current)
            st.current = _emulator_target(st, "use_emulator() was called")
        control = _control(st.current)
        control.set_scenario(scenario, **params)
        st.sync(control)
        _forget_shared_credentials()
        st.current = _refreshed(st.current)
        return control


def reset_target(*, stop_emulator: bool = True) -> None:
    """Forget the chosen target; stops the embedded emulator unless ``stop_emulator=False``.

    Nothing this process exported stays behind unless a running emulator still needs it.
    """
    global _state
    with _lock:
        old = _state
        if stop_emulator:
            old.stop_embedded()
            _state = _TargetState()
        else:
            if old.embedded is None:
                old.exports.withdraw()  # nothing running needs our variables: give the user's own back
            _state = old.carried_over()


def original_environ() -> dict[str, str]:
    """The environment as the user set it: variables this module exported are shown with their old values."""
    return _state.exports.original()


@contextlib.contextmanager
def isolated_target() -> Iterator[None]:
    """Run a block as a new process started from the user's shell would: no target chosen, no emulator
    started, and the environment as the user set it (nothing this module exported).

    Afterwards the emulator the block started (if any) is stopped, the process's previous target state
    comes back as it was (its emulator still running), and so does every environment variable. The test
    suite's ``isolated_target`` fixture is this; shared credentials are forgotten on the way in and out.
    """
    global _state
    with restored_environ():
        with _lock:
            saved, _state = _state, _TargetState()
            replace_environ(saved.exports.original())
        _forget_shared_credentials()
        try:
            yield
        finally:
            with _lock:
                inner, _state = _state, saved
            inner.stop_embedded()
            _forget_shared_credentials()
