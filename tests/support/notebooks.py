"""Notebooks under test: where they are, the environment their kernels get, and reading their outputs."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from support.env import child_environ

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb"))


def kernel_env() -> dict[str, str]:
    """A notebook kernel's environment: ours (the network guard included), emulator forced, no pointer at a
    running emulator (each kernel starts its own), this venv first on PATH."""
    return child_environ(venv_first=True, PYDEVD_DISABLE_FILE_VALIDATION="1")


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
