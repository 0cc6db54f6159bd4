"""Old module paths of 0.1 that moved in 0.2, kept importable (with a ``DeprecationWarning``) for one release.

``from mi_helpers.widgets import VmIdentityView`` in a notebook written for 0.1 still works and gets the
module's new home, ``mi_helpers.notebook.widgets``. Modules whose old name was also the name of a public
function (``target``, ``audiences``, ``redact``, ``diagnose``, ``doctor``) are *not* aliased: importing them
as modules is exactly what used to hide the functions; ``CHANGELOG.md`` lists their new homes.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MOVED", "install"]

#: old dotted path -> new dotted path
MOVED: dict[str, str] = {
    "mi_helpers.widgets": "mi_helpers.notebook.widgets",
    "mi_helpers.lab_scenarios": "mi_helpers.notebook.error_lab",
    "mi_helpers.lab": "mi_helpers.launch.jupyterlab",
    "mi_helpers.tour": "mi_helpers.launch.tour",
    "mi_helpers.fixes": "mi_helpers.diagnosis.catalogue",
    "mi_helpers.cli_doctor": "mi_helpers.cli.doctor",
    "mi_helpers.cli_identity": "mi_helpers.cli.identity",
    "mi_helpers.cli_run": "mi_helpers.cli.run",
    "mi_helpers.emulator.cli": "mi_helpers.cli.emulator",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path and hands out the module at its new path (the same object, not a copy)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new} in mi-helpers 0.2; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        return None


_FINDER = _Alias()


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)
