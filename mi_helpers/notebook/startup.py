"""What the first cells of every notebook run: choose and name the target, one-line input errors, the stack
check. (Named ``startup``, not ``setup``: a module must not share its name with a function the package
exports, or importing one hides the other.)"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.notebook.tables import emulator_scenario, install_formatters, target_reason
from mi_helpers.validate import InputError

if TYPE_CHECKING:
    import pandas as pd

    from mi_helpers.targeting import Target

__all__ = [
    "emulator_scenario",
    "install_notebook_error_display",
    "scenario_hint",
    "setup",
    "stack_check",
    "target_line",
    "target_reason",
]

_TARGET_CHOICES = ("", "auto", "azure", "emulator")
# Packages whose versions the stack check always shows (beyond mi-helpers' own requirements).
_STACK = (
    "azure-identity",
    "msal",
    "azure-core",
    "azure-mgmt-compute",
    "azure-mgmt-resource",
    "ipywidgets",
    "pandas",
)


def install_notebook_error_display() -> bool:
    """Make an :class:`~mi_helpers.validate.InputError` raised in a notebook cell show only its one line.

    Uses IPython's ``set_custom_exc``; other exceptions keep their normal tracebacks. Returns False when
    not running under IPython (nothing to install).
    """
    ipython_mod = sys.modules.get("IPython")
    shell = ipython_mod.get_ipython() if ipython_mod is not None else None
    if shell is None:
        return False

    def _show_input_error(
        shell: Any, etype: type, evalue: BaseException, tb: Any, tb_offset: Any = None
    ) -> None:
        print(f"InputError: {evalue}", file=sys.stderr)

    shell.set_custom_exc((InputError,), _show_input_error)
    return True


def setup(target: str = "", *, quiet: bool = False) -> Target:
    """Prepare a tutorial notebook and return :func:`mi_helpers.target`.

    ``target`` ("", "auto", "azure" or "emulator") overrides ``MI_HELPERS_TARGET`` for this kernel; empty
    keeps the environment's choice. Prints one line: which target is used, why, and (on the emulator) its
    scenario, with how to get back to ``healthy`` when another cell or notebook left it elsewhere. Installs
    the one-line input errors, the table style (:mod:`.tables`) and keeps the SDK's log lines out of cells.
    """
    from mi_helpers.targeting import reset_target
    from mi_helpers.targeting import target as current_target

    if target not in _TARGET_CHOICES:
        choices = ", ".join(repr(a) for a in _TARGET_CHOICES)
        raise InputError("target", f"{target!r} is not a target (one of {choices})", target)
    if target and os.environ.get(Env.MI_HELPERS_TARGET) != target:
        os.environ[Env.MI_HELPERS_TARGET] = target
        reset_target(stop_emulator=False)  # an earlier choice is cached: choose again
    install_notebook_error_display()
    install_formatters()
    _readable_tables()
    _quiet_sdk_loggers()
    chosen = current_target()
    if not quiet:
        print(target_line(chosen))
        hint = scenario_hint(chosen)
        if hint:
            print(hint)
    return chosen


def _where(t: Target) -> str:
    if not t.is_emulator:
        return t.cloud_info.display_name
    shared = Env.MI_HELPERS_EMULATOR_ADMIN in os.environ and type(t.emulator).__name__ == "AdminClient"
    return "the local emulator beside JupyterLab" if shared else "a local emulator in this kernel"


def target_line(t: Target) -> str:
    """``Target: emulator (a local emulator in this kernel), scenario healthy — why``, in one line."""
    scenario = emulator_scenario(t)
    scen = f", scenario {scenario}" if scenario else ""
    return f"Target: {t.name} ({_where(t)}{scen}) — {target_reason(t)}"


def scenario_hint(t: Target) -> str:
    """How to get back to ``healthy`` when the emulator is in another scenario ("" when it is healthy)."""
    scenario = emulator_scenario(t)
    if scenario in (None, "healthy"):
        return ""
    return (
        f"⚠ The emulator is in scenario {scenario!r}, not 'healthy': some cell switched it. "
        'To get back: mi.use_emulator("healthy")'
    )


def _quiet_sdk_loggers() -> None:
    """Keep the SDK's WARNING lines out of cells: with a handler of their own (a NullHandler), Python's
    last-resort handler no longer prints them on stderr. Logging a user configures (``basicConfig`` or a
    handler on the root logger) still receives every record, which propagates as before."""
    from mi_helpers.logs import SDK_LOGGERS

    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())


def _readable_tables() -> None:
    """Let table cells show whole sentences and IDs (pandas cuts text at 50 characters by default)."""
    import pandas as pd

    pd.set_option("display.max_colwidth", 200)


def _installed_rows() -> tuple[list[dict[str, str]], bool]:
    """(package, required, installed) rows, python first; and whether mi-helpers' metadata was found."""
    from packaging.requirements import Requirement

    try:
        reqs = [Requirement(r) for r in (md.requires("mi-helpers") or [])]
    except md.PackageNotFoundError:
        reqs = []
    wanted = {r.name.lower(): r for r in reqs if r.marker is None}
    python = ".".join(map(str, sys.version_info[:3]))
    required_python = (md.metadata("mi-helpers")["Requires-Python"] or "") if wanted else ""
    rows = [{"package": "python", "required": required_python, "installed": python}]
    for name in sorted(set(wanted) | set(_STACK)):
        req = wanted.get(name)
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            installed = ""
        rows.append({"package": name, "required": str(req.specifier) if req else "", "installed": installed})
    return rows, bool(wanted)


def stack_check(show: str = "problems") -> pd.DataFrame:
    """Say in one line whether the installed packages satisfy what ``mi-helpers`` requires.

    The requirements are read from the installed ``mi-helpers`` metadata, so there is no second list to
    keep in sync. Prints the verdict; with ``show="problems"`` (the default) the rows that fail are shown
    under it, with ``show="all"`` every row. Returns the whole table (package, required, installed, ok).
    """
    import pandas as pd
    from packaging.specifiers import SpecifierSet

    from mi_helpers.notebook.display import display

    if show not in ("problems", "all", "none"):
        raise InputError("show", f"{show!r} is not allowed (one of 'problems', 'all', 'none')", show)
    rows, installed = _installed_rows()
    checked = [
        {
            **row,
            "ok": bool(row["installed"])
            and SpecifierSet(row["required"]).contains(row["installed"], prereleases=True),
        }
        for row in rows
    ]
    df = pd.DataFrame(checked, columns=["package", "required", "installed", "ok"])
    bad = df[~df["ok"]]
    if not installed:
        print("✗ mi-helpers is not installed as a package: run `pip install -e '.[lab]'` in the repository.")
    elif bad.empty:
        print(f"✓ The stack is right: {len(df)} packages checked, all satisfy mi-helpers' requirements.")
    else:
        names = ", ".join(bad["package"])
        print(f"✗ {len(bad)} package(s) missing or too old: {names}. Run `pip install -e '.[lab]'` again.")
    shown = df if show == "all" else bad if show == "problems" else df.iloc[0:0]
    if not shown.empty and _in_ipython():
        display(shown.reset_index(drop=True))
    return df


def _in_ipython() -> bool:
    ipython = sys.modules.get("IPython")
    return ipython is not None and ipython.get_ipython() is not None
