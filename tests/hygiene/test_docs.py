"""The documentation stands on its own and stays true to the code: no citations of documents outside the
repository, every cited section of docs/protocol.md exists, every local link resolves, the failure-mode map
covers every scenario and names real diagnosis ids, long modules are explained, the changelog maps every
moved module and agrees with the version."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

from mi_helpers import __version__
from mi_helpers._moved import MOVED
from mi_helpers.diagnosis.catalogue import CATALOGUE
from mi_helpers.emulator.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "docs" / "protocol.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
CHANGELOG = ROOT / "CHANGELOG.md"

# Citations of background documents that are not part of the repository (spelled in pieces, so that
# grepping the tree for them does not find this file).
OUTSIDE = re.compile(
    "|".join(
        ["DESIGN ?" + "§", "DESIGN" + r"\.md", "reference" + " §", r"\bF" + r"M[0-9]+\b", r"\.\./" + "shared"]
    )
)
# The whole tracked tree: nothing may cite a document that is not in the repository.
CITATION_SCOPE = (
    "docs",
    "README.md",
    "CHANGELOG.md",
    "Makefile",
    "pyproject.toml",
    "mi_helpers",
    "tests",
    "bench",
    "notebooks",
    "binder",
    "scripts",
)
# Headings code comments cite as docs/protocol.md#<section>; they must stay.
PROTOCOL_SECTIONS = [
    "Sources",
    "IMDS token endpoint",
    "Request",
    "Success response",
    "Errors",
    "Identity selection",
    "Retries and throttling",
    "Instance metadata",
    "Access tokens",
    "Azure Resource Manager",
    "Request checks and their order",
    "Resources and bodies",
    "Role assignments and definitions",
    "Errors",
    "Throttling headers",
    "Cloud metadata",
    "Clients",
    "azure-identity",
    "MSAL",
    "azure-core",
    "Azure CLI",
    "Environment variables",
    "Audiences and clouds",
    "Failure modes",
    "Known differences",
]
LONG_MODULE = 500  # lines


def _tracked(*scope: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--", *scope], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return [ROOT / p for p in out.decode().split("\0") if p and (ROOT / p).is_file()]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFKC", heading).strip().lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def _headings(path: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    return [m.group(2).strip() for m in re.finditer(r"^(#{1,6}) (.+)$", text, flags=re.M)]


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in _headings(path):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    out.update(re.findall(r'<a id="([^"]+)"></a>', path.read_text()))  # explicit anchors count too
    return out


def _section(path: Path, heading: str) -> str:
    text = path.read_text()
    m = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert m, f"{path.name} has no section {heading!r}"
    return m.group(1)


def test_docs_cite_nothing_outside_the_repository() -> None:
    hits = []
    for path in _tracked(*CITATION_SCOPE):
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert hits == []


def test_protocol_keeps_the_sections_code_cites() -> None:
    assert [h for h in _headings(PROTOCOL) if h in PROTOCOL_SECTIONS] == PROTOCOL_SECTIONS


def test_every_cited_protocol_section_exists() -> None:
    anchors = _anchors(PROTOCOL)
    cited = {}
    for path in _tracked():
        if path.suffix in {".png", ".ipynb"}:
            continue
        for anchor in re.findall(r"protocol\.md#([A-Za-z0-9_-]+)", path.read_text(errors="replace")):
            cited.setdefault(anchor, str(path.relative_to(ROOT)))
    missing = {a: where for a, where in cited.items() if a not in anchors}
    assert missing == {}


DOCS = ["README.md", "CHANGELOG.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS)
def test_local_links_resolve(doc: str) -> None:
    path = ROOT / doc
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a URL
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert broken == []


def test_failure_modes_map_every_scenario_to_real_diagnosis_ids() -> None:
    section = _section(PROTOCOL, "Failure modes")
    rows = re.findall(r"^\| `([a-z-]+)` \|(.*)\|\s*$", section, flags=re.M)
    assert sorted(name for name, _ in rows) == sorted(SCENARIOS)
    for name, cells in rows:
        ids = re.findall(r"`([a-z-]+)`", cells.rsplit("|", 1)[-1])  # the diagnosis-id column
        assert all(i in CATALOGUE for i in ids), f"{name}: {ids} are not all diagnosis ids"
        assert ids or name == "healthy", f"{name} names no diagnosis"
    placed = set(re.findall(r"`([a-z-]+)`", section))
    assert set(CATALOGUE) - placed == set(), "diagnosis ids docs/protocol.md does not place"


def test_long_modules_are_explained_in_the_architecture_doc() -> None:
    section = _section(ARCHITECTURE, "Modules over 500 lines")
    listed = set(re.findall(r"^\| `(mi_helpers/[\w/]+\.py)` \|", section, flags=re.M))
    long = {
        str(p.relative_to(ROOT))
        for p in _tracked("mi_helpers")
        if p.suffix == ".py" and len(p.read_text().splitlines()) > LONG_MODULE
    }
    assert long - listed == set(), "say in docs/architecture.md why these modules are long (or split them)"
    gone = {m for m in listed if not (ROOT / m).is_file()}
    assert gone == set(), "docs/architecture.md explains modules that no longer exist"


def test_changelog_maps_every_moved_module() -> None:
    text = CHANGELOG.read_text()
    for old, new in MOVED.items():
        assert re.search(rf"\| `{re.escape(old)}` \| `{re.escape(new)}` \|", text), f"{old} -> {new}"


def test_changelog_agrees_with_the_version() -> None:
    release = re.match(r"\d+\.\d+\.\d+", __version__)
    assert release, __version__
    first = re.search(r"^## \[[^\]]+\](?: — (\d+\.\d+\.\d+))?", CHANGELOG.read_text(), flags=re.M)
    assert first, "CHANGELOG.md has no release heading"
    heading_version = first.group(1) or first.group(0)
    if __version__ == release.group(0):  # a release: its own heading comes first
        assert f"[{__version__}]" in first.group(0)
    else:  # a development version: the Unreleased section names the coming release
        assert heading_version == release.group(0), (first.group(0), __version__)
