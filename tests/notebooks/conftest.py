"""Fixtures for the notebook tests: each notebook executed at most once per session, in emulator mode.

``executed(name, **parameters)`` runs ``notebooks/<name>`` with papermill (kernel ``python3`` of this venv)
in a temporary working directory and caches the executed copy per (name, parameters), so the tests that
read the default run of a notebook share one execution. Executed copies go to a session temp dir, never
into ``notebooks/``. The kernel gets this process's environment (so the network guard's ``PYTHONPATH`` and
log file reach it) with the target forced to ``emulator`` and any pointer at a running emulator removed: each
kernel starts its own embedded emulator.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from unittest import mock

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb"))

# The stable IDs of the emulator's default world (docs/architecture.md).
SUBSCRIPTION = "3c9e6f1a-52d8-4b7e-a1c4-9d8e7f6a5b4c"
RESOURCE_GROUP = "rg-mi-tutorial"
VM_NAME = "vm-mi-tutorial"
SYSTEM_PRINCIPAL = "9a7b5c3d-1e2f-4a6b-8c9d-0e1f2a3b4c5d"
UAMI_READER_CLIENT = "1b3d5f7a-9c1e-4b3d-8f5a-7c9e1b3d5f7a"
UAMI_READER_PRINCIPAL = "6c8e0a2b-4d6f-4a8c-9e0b-2d4f6a8c0e1b"

sys.modules.setdefault("notebook_suite", sys.modules[__name__])

_POINTERS = (
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "MI_HELPERS_ARM_URL",
    "MI_HELPERS_EMULATOR_ADMIN",
    "MI_HELPERS_EMULATOR_KEY",
    "REQUESTS_CA_BUNDLE",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
)


def kernel_env() -> dict[str, str]:
    """The environment a notebook kernel gets: ours, emulator forced, no pointer at a running emulator."""
    env = {k: v for k, v in os.environ.items() if k not in _POINTERS}
    env["MI_HELPERS_TARGET"] = "emulator"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


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


# --------------------------------------------------------------------------------------------------
# Reading executed notebooks
# --------------------------------------------------------------------------------------------------


def output_texts(cell: Any) -> list[str]:
    """Every output of a cell as text: streams, text/plain, and text/html (for tables and cards)."""
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append(o.get("text", ""))
        elif o.get("output_type") == "error":
            out.append(f"{o.get('ename')}: {o.get('evalue')}")
        else:
            data = o.get("data", {})
            for mime in ("text/plain", "text/html", "application/json"):
                if mime in data:
                    value = data[mime]
                    out.append(value if isinstance(value, str) else json.dumps(value))
    return out


def cell_text(nb: Any, cell_id: str) -> str:
    """All output text of the cell with ``cell_id`` (papermill keeps ids)."""
    for cell in nb.cells:
        if cell.get("id") == cell_id:
            return "\n".join(output_texts(cell))
    raise AssertionError(f"no cell {cell_id!r} in the notebook")


def all_text(nb: Any) -> str:
    """Every output of every cell plus the notebook metadata (widget state lives there)."""
    parts = [t for cell in nb.cells for t in output_texts(cell)]
    parts.append(json.dumps(nb.get("metadata", {})))
    return "\n".join(parts)


_SEGMENTS = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def _json_segment(segment: str) -> dict[str, Any] | None:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def whole_tokens(text: str) -> list[str]:
    """Substrings that are whole JWTs: three base64url segments whose first two decode to JSON objects."""
    found = []
    for match in _SEGMENTS.finditer(text):
        header, payload, _sig = match.group(0).split(".")[:3]
        if _json_segment(header) is not None and _json_segment(payload) is not None:
            found.append(match.group(0)[:12] + "…")
    return found


class _TableRows(HTMLParser):
    """Collects the cell texts of the rows of the first <tbody> (a DataFrame's HTML rendering)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_body = self._done = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if self._done:
            return
        if tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows.append([])
        elif self._in_body and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody" and self._in_body:
            self._in_body, self._done = False, True
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_table_rows(html_text: str) -> list[list[str]]:
    """Rows (lists of cell texts) of the first ``<tbody>`` in an HTML DataFrame rendering."""
    parser = _TableRows()
    parser.feed(html_text)
    return parser.rows


def html_output(nb: Any, cell_id: str) -> str:
    """The text/html output of a cell (a DataFrame's table), or '' when there is none."""
    for cell in nb.cells:
        if cell.get("id") == cell_id:
            for o in cell.get("outputs", []):
                html = o.get("data", {}).get("text/html")
                if html:
                    return html if isinstance(html, str) else "".join(html)
    return ""
