"""The three dependency lists (pyproject, environment.yml, binder/environment.yml) say the same thing."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# PyPI name -> conda-forge name, where they differ.
CONDA_NAMES = {"types-pyyaml": "types-pyyaml"}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", req)
    assert m, req
    name = m.group(1).lower().replace("_", "-")
    return CONDA_NAMES.get(name, name), m.group(3).replace(" ", "")


def _pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs.extend(extra)
    return dict(_split(r) for r in reqs)


def _conda_requirements(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge"]
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        assert isinstance(dep, str), f"{path.name}: unexpected entry {dep!r}"
        name, spec = _split(dep.replace("=", "==", 1) if re.match(r"^[\w.-]+=[^=]", dep) else dep)
        if name in {"python", "pip"}:
            continue
        out[name] = spec
    return out


def test_environment_yml_matches_pyproject() -> None:
    assert _conda_requirements(ROOT / "environment.yml") == _pyproject_requirements()


def test_binder_environment_is_an_identical_copy() -> None:
    assert (ROOT / "binder" / "environment.yml").read_bytes() == (ROOT / "environment.yml").read_bytes()


def test_pyproject_declares_the_package_contract() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "mi-helpers"
    assert project["scripts"]["mi-helpers"] == "mi_helpers.cli:main"
    assert set(project["optional-dependencies"]) >= {"lab", "test", "dev"}
    assert ">=3.10" in project["requires-python"]
