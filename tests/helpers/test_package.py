"""The package facade: every public name resolves lazily, module imports never hide a function, and the
0.1 module paths still import (with a DeprecationWarning) as the very same module objects."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import types
from pathlib import Path

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
    import mi_helpers.notebook.startup
    import mi_helpers.redaction
    import mi_helpers.targeting
    from mi_helpers import notebook

    for name in ("target", "doctor", "diagnose", "audiences", "redact"):
        assert isinstance(getattr(mi_helpers, name), types.FunctionType), name
    assert isinstance(notebook.setup, types.FunctionType)


def test_no_module_shares_a_name_with_what_its_package_exports() -> None:
    """``from mi_helpers.notebook import setup`` must always be the function, never a module of that name."""
    for pkg_path in [PACKAGE, *(p.parent for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE)]:
        package = importlib.import_module(_module_name(pkg_path / "__init__.py"))
        exported = set(getattr(package, "__all__", ()))
        modules = {p.stem for p in pkg_path.glob("*.py")} | {
            p.parent.name for p in pkg_path.glob("*/__init__.py")
        }
        assert exported & modules == set(), f"{package.__name__}: {sorted(exported & modules)}"


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


# ------------------------------------------------------------------------------------ structure guards

PACKAGE = Path(mi_helpers.__file__).parent
REPO = PACKAGE.parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


ALL_MODULES = {_module_name(p) for p in PACKAGE.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """Every ``mi_helpers`` module ``path`` imports: top level, inside functions, under TYPE_CHECKING."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mi_helpers"))
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").startswith("mi_helpers")
        ):
            base = str(node.module)
            for alias in node.names:  # `from mi_helpers.x import y` imports mi_helpers.x.y when y is a module
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in ALL_MODULES else base)
    return found


def _all_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_import_cycle_anywhere() -> None:
    """Lazy and TYPE_CHECKING imports count too: a cycle there is still two modules that need each other.
    The emulator is included: its layers depend on the backend, never on the server facade."""
    modules = _all_modules()
    graph = {
        name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()
    }
    assert "mi_helpers.diagnosis" in graph["mi_helpers.checklist"]  # the graph sees real imports
    assert "mi_helpers.emulator.backend" in graph["mi_helpers.emulator.server"]
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def _constant_values() -> set[str]:
    from mi_helpers import constants

    values: set[str] = {constants.AZURE_ASSET_TAG}
    for holder in (constants.Imds, constants.Arm, constants.Roles, constants.Arc):
        for name, value in vars(holder).items():
            if not name.startswith("_") and isinstance(value, str):
                values.add(value)
    return values


def _declarations(path: Path) -> list[tuple[int, str, object]]:
    """Module- and class-level ``NAME = <literal>`` assignments of ``path``."""
    out: list[tuple[int, str, object]] = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bodies = [tree.body, *(n.body for n in tree.body if isinstance(n, ast.ClassDef))]
    for body in bodies:
        for node in body:
            target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
            value = getattr(node, "value", None)
            if isinstance(target, ast.Name) and value is not None:
                try:
                    out.append((node.lineno, target.id, ast.literal_eval(value)))
                except ValueError:
                    continue
    return out


def test_nothing_redeclares_a_constant() -> None:
    """Azure facts and the lists of client variables live in ``mi_helpers.constants`` only, the default
    world's IDs in ``tests/support/world.py`` only."""
    from support import world

    from mi_helpers import constants

    facts = _constant_values()
    ids = {v for k, v in vars(world).items() if k.isupper() and isinstance(v, str) and len(v) >= 8}
    names = {v for k, v in vars(constants.EnvironmentVariables).items() if not k.startswith("_")}
    variables = names | set(constants.CLIENT_REDIRECT_VARIABLES)
    files = [p for p in _all_modules().values() if p.name != "constants.py"]
    files += sorted((REPO / "bench").glob("*.py"))
    tests = sorted((REPO / "tests").rglob("*.py"))
    files += [p for p in tests if p.name != "world.py"]
    found = []
    for path in files:
        for line, name, value in _declarations(path):
            strings = (
                [value] if isinstance(value, str) else list(value) if isinstance(value, (tuple, list)) else []
            )
            in_tests = path.parts[len(REPO.parts)] in ("tests", "bench")
            if isinstance(value, str) and (value in facts or (in_tests and value in ids)):
                found.append(f"{path.relative_to(REPO)}:{line} {name} = {value!r}")
            elif len(strings) >= 3 and all(isinstance(s, str) and s in variables for s in strings):
                found.append(f"{path.relative_to(REPO)}:{line} {name}: a hand-kept list of client variables")
    assert found == [], "import these from mi_helpers.constants instead:\n" + "\n".join(found)
