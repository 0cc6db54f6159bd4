"""The package facade: every public name resolves lazily, module imports never hide a function, and the
0.1 module paths still import (with a DeprecationWarning) as the very same module objects."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import mi_helpers
from mi_helpers import _moved


def test_every_public_name_resolves() -> None:
    for name in mi_helpers.__all__:
        assert getattr(mi_helpers, name) is not None, name


def test_importing_a_module_never_hides_a_public_function() -> None:
    import mi_helpers.checklist
    import mi_helpers.clouds
    import mi_helpers.diagnosis
    import mi_helpers.redaction
    import mi_helpers.targeting

    for name in ("target", "doctor", "diagnose", "audiences", "redact"):
        assert isinstance(getattr(mi_helpers, name), types.FunctionType), name


@pytest.mark.parametrize(("old", "new"), sorted(_moved.MOVED.items()))
def test_old_module_paths_still_import(old: str, new: str) -> None:
    code = (
        "import importlib, warnings\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        f"new = importlib.import_module({new!r})\n"
        "assert old is new, (old, new)\n"
        "assert any(issubclass(w.category, DeprecationWarning) and 'moved to' in str(w.message)\n"
        "           for w in seen)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_an_unknown_module_is_still_an_import_error() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("mi_helpers.no_such_module")


def test_the_version_is_written_once() -> None:
    from importlib.metadata import version

    assert version("mi-helpers") == mi_helpers.__version__
