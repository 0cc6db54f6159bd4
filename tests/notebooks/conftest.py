"""Fixtures for the notebook tests: each notebook executed at most once per session, in emulator mode.

``executed(name, **parameters)`` runs ``notebooks/<name>`` with papermill (kernel ``python3`` of this venv)
in a temporary working directory and caches the executed copy per (name, parameters), so the tests that
read the default run of a notebook share one execution. Executed copies go to a session temp dir, never
into ``notebooks/``. The kernel's environment and reading the outputs: :mod:`support.notebooks`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import nbformat
import pytest
from support.notebooks import NOTEBOOKS_DIR, kernel_env


def _key(name: str, parameters: dict[str, Any]) -> str:
    return name + json.dumps(parameters, sort_keys=True)


@pytest.fixture(scope="session")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., nbformat.NotebookNode]]:
    """``executed(name, **parameters)`` → the executed notebook (each distinct run happens once)."""
    import papermill as pm

    out_dir = tmp_path_factory.mktemp("executed-notebooks")
    cache: dict[str, nbformat.NotebookNode] = {}

    def run(name: str, **parameters: Any) -> nbformat.NotebookNode:
        key = _key(name, parameters)
        if key not in cache:
            suffix = f"-{len(cache)}" if parameters else ""
            output = out_dir / name.replace(".ipynb", f"{suffix}.ipynb")
            workdir = out_dir / f"cwd-{len(cache)}"
            workdir.mkdir()
            with mock.patch.dict(os.environ, kernel_env(), clear=True):
                pm.execute_notebook(
                    str(NOTEBOOKS_DIR / name),
                    str(output),
                    parameters=parameters or None,
                    kernel_name="python3",
                    cwd=str(workdir),
                    progress_bar=False,
                    log_output=False,
                    execution_timeout=90,
                )
            cache[key] = nbformat.read(output, as_version=4)
        return cache[key]

    yield run
