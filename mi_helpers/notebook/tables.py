"""One table style for everything the notebooks show as a table.

Every DataFrame a notebook cell shows (``mi.audiences()``, ``mi.resources_by_name()``, the claims, the error
lab's walk …) and the small "facts" objects (``TokenInfo``, ``InstanceMetadata``, the ``Target``, the
doctor's report) render through :func:`install_formatters` the same way:

* the verdict column (``result``, ``ok``, ``fixed``, ``status`` …) first, so it is visible however narrow
  the notebook is; booleans as ``✓ yes`` / ``✗ no`` (text, not colour only);
* text left-aligned and wrapping, no meaningless 0…n index;
* long IDs shortened on screen: a GUID shows its first 8 characters, an ARM resource ID its last segment.
  The whole value stays in the page (select and copy it) and in the tooltip.

The HTML is inline-styled, so it reads the same in JupyterLab (light and dark), in a saved notebook and in
a widget's output. The plain-text forms are unchanged.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "VERDICT_COLUMNS",
    "emulator_scenario",
    "facts_table",
    "install_formatters",
    "left_aligned",
    "ordered_columns",
    "target_reason",
    "to_html",
]

#: Column names that hold a verdict, in order of preference; the first one present is shown first.
VERDICT_COLUMNS = ("result", "verdict", "status", "ok", "fixed", "match", "matches")

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LABELLED_GUID = re.compile(r"^(?P<label>[\w.-]+=)(?P<guid>[0-9a-fA-F-]{36})$")
_RESOURCE_ID = re.compile(r"^/subscriptions/[^\s]+/[^/\s]+$", re.IGNORECASE)
_TABLE = "border-collapse:collapse;margin:0.25em 0;max-width:100%;font-size:var(--jp-ui-font-size1,13px)"
_CELL = (
    "text-align:left;vertical-align:top;padding:2px 8px;white-space:normal;overflow-wrap:anywhere;"
    "border-bottom:1px solid var(--jp-border-color2,#ddd)"
)
_HEAD = _CELL + ";font-weight:bold;border-bottom:1px solid var(--jp-border-color1,#999)"
_VERDICT = _CELL + ";overflow-wrap:normal;min-width:6em;font-weight:bold"
_CLIP = "display:inline-block;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;vertical-align:bottom"
#: Visible width of a GUID cell: its first 8 characters and the ellipsis.
_GUID_WIDTH = "9.6ch"


def ordered_columns(columns: Sequence[str]) -> list[str]:
    """``columns`` with the first verdict column (:data:`VERDICT_COLUMNS`) moved to the front."""
    by_name = {str(c).lower(): c for c in columns}
    verdict = next((by_name[v] for v in VERDICT_COLUMNS if v in by_name), None)
    return [verdict, *(c for c in columns if c != verdict)] if verdict is not None else list(columns)


def _cell_html(value: Any) -> str:
    """One value as HTML: booleans as words with a symbol, long IDs shortened (whole value kept)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "✓ yes" if bool(value) else "✗ no"
    if value is None or (isinstance(value, float) and value != value):  # None and NaN: nothing to show
        return ""
    text = str(value)
    full = html.escape(text)
    if _GUID.match(text):
        return f'<code title="{full}" style="{_CLIP};max-width:{_GUID_WIDTH}">{full}</code>'
    labelled = _LABELLED_GUID.match(text)
    if labelled and _GUID.match(labelled.group("guid")):  # client_id=<GUID>: the label, a short GUID
        guid = html.escape(labelled.group("guid"))
        return (
            f'<span title="{full}">{html.escape(labelled.group("label"))}'
            f'<code style="{_CLIP};max-width:{_GUID_WIDTH}">{guid}</code></span>'
        )
    if _RESOURCE_ID.match(text):
        head, _, tail = text.rpartition("/")
        return (
            f'<span title="{full}"><span style="{_CLIP};max-width:1.6em">{html.escape(head)}/</span>'
            f"{html.escape(tail)}</span>"
        )
    return full


def _rows_html(columns: Sequence[Any], rows: Iterable[Sequence[Any]], verdict: bool) -> str:
    head = "".join(f'<th style="{_HEAD}">{html.escape(str(c))}</th>' for c in columns)
    body = []
    for row in rows:
        cells = [
            f'<td style="{_VERDICT if verdict and i == 0 else _CELL}">{_cell_html(v)}</td>'
            for i, v in enumerate(row)
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<table class="mi-table" style="{_TABLE}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _meaningless_index(df: pd.DataFrame) -> bool:
    import pandas as pd

    index = df.index
    return isinstance(index, pd.RangeIndex) and index.name is None


def to_html(df: pd.DataFrame) -> str:
    """A DataFrame in the one table style (verdict first, no 0…n index, left-aligned, short IDs)."""
    frame = df if _meaningless_index(df) else df.reset_index()
    columns = ordered_columns([str(c) for c in frame.columns])
    frame = frame.rename(columns=str)[columns]
    verdict = bool(columns) and columns[0].lower() in VERDICT_COLUMNS
    if frame.empty:
        return _rows_html(columns, [], verdict) + "<p><em>(no rows)</em></p>"
    return _rows_html(columns, frame.itertuples(index=False, name=None), verdict)


def facts_table(facts: Iterable[tuple[str, Any]]) -> str:
    """A two-column table (what, value) for an object's facts: a token, instance metadata, the target."""
    rows = [(name, value) for name, value in facts if value not in (None, "")]
    head = "".join(
        f'<tr><th style="{_HEAD};border-bottom:1px solid var(--jp-border-color2,#ddd)">{html.escape(k)}</th>'
        f'<td style="{_CELL}">{_cell_html(v)}</td></tr>'
        for k, v in rows
    )
    return f'<table class="mi-facts" style="{_TABLE}"><tbody>{head}</tbody></table>'


_BARE_CELL = re.compile(r"<(td|th)(?=[ >])(?![^>]*style=)")


def left_aligned(markup: str) -> str:
    """Give every ``<td>``/``<th>`` without a style of its own the table style (left-aligned, wrapping);
    a first column of ``✓ pass`` / ``✗ fail`` keeps to one line."""
    styled = _BARE_CELL.sub(lambda m: f'<{m.group(1)} style="{_CELL}"', markup)
    return styled.replace(f'<tr><td style="{_CELL}">', f'<tr><td style="{_VERDICT}">')


# ------------------------------------------------------------------------------------ the objects


def _token_facts(tok: Any) -> list[tuple[str, Any]]:
    return [
        ("token", tok.redacted),
        ("audience (aud)", tok.audience),
        ("principal ID (oid)", tok.principal_id),
        ("client ID (appid)", tok.client_id),
        ("identity resource (xms_mirid)", tok.mi_resource_id),
        ("expires", f"{tok.expires_on:%Y-%m-%d %H:%M:%S} UTC (in {tok.expires_in} s)"),
    ]


def _metadata_facts(md: Any) -> list[tuple[str, Any]]:
    return [(f.name.replace("_", " "), getattr(md, f.name)) for f in dataclasses.fields(md)]


# The parts of Target.reason that describe plumbing rather than the choice: the emulator's admin URL (a
# control endpoint, not something a learner uses) and where the emulator runs, which the line says itself.
_PLUMBING = re.compile(
    r"\s*\((?:emulator started outside this process: [^)]*|embedded emulator on 127\.0\.0\.1)\)"
    r"|\s*— using the local emulator"
)


def target_reason(t: Any) -> str:
    """Why this target was chosen, in the learner's terms (no admin URL)."""
    return _PLUMBING.sub("", t.reason).strip()


def emulator_scenario(t: Any) -> str | None:
    """The scenario of the target's emulator (None on Azure, or when the emulator cannot say)."""
    control = t.emulator
    if control is None or not t.is_emulator:
        return None
    try:
        return str(control.scenario)
    except Exception:  # an emulator that stopped answering: the line just leaves the scenario out
        return None


def _target_facts(t: Any) -> list[tuple[str, Any]]:
    return [
        ("target", t.name),
        ("why", target_reason(t)),
        ("scenario", emulator_scenario(t)),
        ("cloud", t.cloud_info.display_name),
        ("IMDS", t.imds_url),
        ("ARM", t.arm_url),
        ("CA bundle", t.ca_bundle or "system default"),
    ]


def _formatters() -> list[tuple[str, str, Any]]:
    """(module, class name, HTML function) of everything :func:`install_formatters` registers."""
    return [
        ("pandas", "DataFrame", to_html),
        ("mi_helpers.token_info", "TokenInfo", lambda o: facts_table(_token_facts(o))),
        ("mi_helpers.arm", "InstanceMetadata", lambda o: facts_table(_metadata_facts(o))),
        ("mi_helpers.targeting", "Target", lambda o: facts_table(_target_facts(o))),
        ("mi_helpers.checklist.report", "DoctorReport", lambda o: left_aligned(o._repr_html_())),
    ]


def install_formatters(shell: Any = None) -> bool:
    """Register the table style for DataFrames and the facts objects with IPython's HTML formatter.

    Registered by module and class name, so nothing is imported before it is shown. Returns False when
    not running under IPython (nothing to install).
    """
    if shell is None:
        import sys

        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    formatter = shell.display_formatter.formatters["text/html"]
    for module, name, render in _formatters():
        formatter.for_type_by_name(module, name, render)
    return True
