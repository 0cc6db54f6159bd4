"""The committed notebooks: output-free, and every one follows the same skeleton."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import jwt
import nbformat
import pytest
from support.notebooks import NOTEBOOKS, NOTEBOOKS_DIR
from support.tokens import whole_jwts

EXPECTED = [
    "00-start-here.ipynb",
    "01-sign-in-with-managed-identity.ipynb",
    "02-query-arm-for-the-vm-identity.ipynb",
    "03-tokens-for-azure-services.ipynb",
    "04-user-assigned-identities.ipynb",
    "05-error-handling-lab.ipynb",
    "06-troubleshooting-your-vm.ipynb",
    "07-call-azure-services.ipynb",
]
MAX_CODE_LINES = 12  # logic lives in mi_helpers: cells stay short


def _load(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS_DIR / name, as_version=4)


def _markdown(nb: nbformat.NotebookNode) -> str:
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_the_eight_notebooks_exist():
    assert NOTEBOOKS == EXPECTED


def test_committed_notebooks_are_output_free():
    nbstripout = Path(sys.executable).parent / "nbstripout"
    paths = [str(NOTEBOOKS_DIR / n) for n in NOTEBOOKS]
    result = subprocess.run(
        [str(nbstripout), "--verify", "--keep-id", *paths], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in NOTEBOOKS:
        nb = _load(name)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, (name, cell.id)
        assert "widgets" not in nb.metadata, name


@pytest.mark.parametrize("name", EXPECTED)
def test_valid_with_unique_cell_ids_and_python3_kernel(name):
    nb = _load(name)
    nbformat.validate(nb)
    ids = [c.get("id") for c in nb.cells]
    assert all(ids) and len(ids) == len(set(ids)), name
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", EXPECTED)
def test_skeleton(name):
    nb = _load(name)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "title first"
    md = _markdown(nb)
    headings = re.findall(r"^## (.+)$", md, flags=re.M)
    skeleton = (
        "Overview",
        "Prerequisites",
        "Summary",
        "Check your understanding",
        "What's next",
        "References",
    )
    for required in skeleton:
        assert required in headings, (name, required)
    order = [headings.index(h) for h in skeleton]
    assert order == sorted(order), (name, headings)
    assert re.search(r"\*\*Time to learn\*\*: \d+ minutes", md), name
    prereq = md.split("## Prerequisites", 1)[1].split("\n## ", 1)[0]
    assert "| Concepts | Importance | Notes |" in prereq, name


@pytest.mark.parametrize("name", EXPECTED)
def test_overview_items_map_to_numbered_sections(name):
    md = _markdown(_load(name))
    overview = md.split("## Overview", 1)[1].split("\n## ", 1)[0]
    items = re.findall(r"^(\d+)\. \*\*(.+?)\*\*", overview, flags=re.M)
    assert len(items) >= 3, name
    numbers = [int(n) for n, _ in items]
    assert numbers == list(range(1, len(items) + 1)), name
    sections = dict(re.findall(r"^## (\d+)\. (.+)$", md, flags=re.M))
    assert sorted(int(n) for n in sections) == numbers, (name, sorted(sections))


@pytest.mark.parametrize("name", EXPECTED)
def test_one_parameters_cell_with_plain_defaults(name):
    nb = _load(name)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, name
    cell = tagged[0]
    assert cell.cell_type == "code"
    tree = ast.parse(cell.source)
    assert tree.body and all(isinstance(node, ast.Assign) for node in tree.body), name
    for node in tree.body:
        ast.literal_eval(node.value)  # papermill can override only literal defaults
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code is cell, "the parameters cell is the first code cell"


@pytest.mark.parametrize("name", EXPECTED)
def test_short_code_cells_and_copyable_commands(name):
    nb = _load(name)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
            lines = [ln for ln in cell.source.splitlines() if ln.strip()]
            assert len(lines) <= MAX_CODE_LINES, (name, cell.id, len(lines))
    md = _markdown(nb)
    assert "```bash" in md, name
    assert "```powershell" in md, name


@pytest.mark.parametrize("name", EXPECTED)
def test_check_your_understanding_is_a_quiz_of_this_notebook(name):
    nb = _load(name)
    heading = next(i for i, c in enumerate(nb.cells) if "## Check your understanding" in c.source)
    quiz = nb.cells[heading + 1]
    assert quiz.cell_type == "code" and quiz.source == f'nb.check_understanding("{name[:2]}")', quiz.source


@pytest.mark.parametrize("name", EXPECTED)
def test_unattended_cells_are_folded_away(name):
    """A cell that only drives a widget for a headless run is tagged and folded: a learner sees the form."""
    nb = _load(name)
    pressing = re.compile(r"^view\.(lookup|get_token|run|apply_fix)\(", re.M)
    for cell in nb.cells:
        if cell.cell_type != "code" or not pressing.search(cell.source):
            continue
        assert "unattended" in cell.metadata.get("tags", []), (name, cell.id)
        assert cell.metadata.get("jupyter") == {"source_hidden": True, "outputs_hidden": True}, (
            name,
            cell.id,
        )


GLOSSARY = NOTEBOOKS_DIR.parent / "docs" / "glossary.md"
#: Glossary anchor -> how the word reads in a notebook (the first time it appears it must be a link there).
TERMS = {
    "managed-identity": r"\bmanaged[ -]identit(?:y|ies)\b",
    "imds": r"\bIMDS\b",
    "entra-id": r"\bEntra ID\b",
    "arm": r"\bARM\b",
    "principal-id": r"\bprincipal (?:\(object\) )?ID\b",
    "client-id": r"\bclient (?:\(application\) )?ID\b",
    "audience": r"\baudiences?\b",
    "rbac": r"\bRBAC\b",
}
_GLOSSARY_LINK = re.compile(r"\[((?:[^\[\]]|\[[^\]]*\])+)\]\(\.\./docs/glossary\.md(?:#([\w-]+))?\)")


def _prose(text: str) -> str:
    """Markdown without code blocks, inline code and headings (what a word's first use is looked up in);
    characters removed are blanked, so positions stay comparable with the original."""
    blank = lambda m: re.sub(r"[^\n]", " ", m.group(0))  # noqa: E731
    text = re.sub(r"^```.*?^```", blank, text, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", blank, text)
    # links elsewhere (Microsoft Learn) are a reference of their own; of glossary links only the target goes
    text = re.sub(r"\[(?:[^\[\]]|\[[^\]]*\])+\]\(https?://[^)\s]*\)", blank, text)
    text = re.sub(r"\]\([^)\s]*\)", blank, text)
    return re.sub(r"^#+ .*$", blank, text, flags=re.M)


def test_glossary_anchors_exist():
    anchors = set(re.findall(r'<a id="([\w-]+)"></a>', GLOSSARY.read_text(encoding="utf-8")))
    assert set(TERMS) <= anchors
    for name in EXPECTED:
        for _text, anchor in _GLOSSARY_LINK.findall(_markdown(_load(name))):
            assert not anchor or anchor in anchors, (name, anchor)


@pytest.mark.parametrize("name", EXPECTED)
def test_glossary_is_linked_where_a_term_first_appears(name):
    md = _markdown(_load(name))
    prose = _prose(md)
    links = [(m.start(), m.end(), m.group(2)) for m in _GLOSSARY_LINK.finditer(md)]
    assert links, f"{name} never links the glossary"
    for anchor, pattern in TERMS.items():
        first = re.search(pattern, prose, flags=re.I if anchor in ("managed-identity", "audience") else 0)
        if first is None:
            continue
        inside = [a for start, end, a in links if start <= first.start() < end]
        assert inside == [anchor], (
            f"{name}: the first {first.group(0)!r} is not a link to the glossary's #{anchor}: "
            f"…{md[max(0, first.start() - 60) : first.end() + 20]!r}…"
        )


def test_diagrams_and_the_source_article():
    """The tutorial's promise: the source article's commands and error texts are all taught somewhere.
    (That the error lab never touches the real VM is checked by behaviour: tests/helpers/test_error_lab.)"""
    texts = {n: _markdown(_load(n)) for n in EXPECTED}
    assert "```mermaid\nsequenceDiagram" in texts["00-start-here.ipynb"]
    assert sum("```mermaid" in t for t in texts.values()) >= 3
    assert "Connect-AzAccount -Identity" in texts["01-sign-in-with-managed-identity.ipynb"]
    assert "Add-AzAccount -identity" in texts["01-sign-in-with-managed-identity.ipynb"]
    assert "az login --identity" in texts["01-sign-in-with-managed-identity.ipynb"]
    assert "az resource list -n <VM-NAME>" in texts["02-query-arm-for-the-vm-identity.ipynb"]
    lab = texts["05-error-handling-lab.ipynb"]
    assert "localhost:50342" in lab and "Unable to connect to the remote server" in lab


def test_token_scanner_finds_a_real_jwt():
    # The scan must be able to fail: a token made here (never committed) is found, its redacted form not.
    token = jwt.encode({"aud": "https://management.azure.com", "oid": "x" * 8}, "k" * 32, algorithm="HS256")
    assert whole_jwts(f"before {token} after")
    assert whole_jwts(f"{token[:8]}…({len(token)} chars)") == []
    assert whole_jwts("mi_helpers.emulator.scenarios management.chinacloudapi.cn") == []
