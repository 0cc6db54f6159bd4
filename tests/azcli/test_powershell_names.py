"""Every PowerShell cmdlet and parameter the project prints exists (no PowerShell here to run them).

The lines come from the same sources as the az commands (README, docs/snippets.md, the notebooks'
``powershell`` blocks, the catalogue's ``powershell`` text); the names are checked against
``az_powershell_cmdlets.json``, a list kept with its Microsoft Learn source per cmdlet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.world import RG, RG_SCOPE, SUB, SYS_PRINCIPAL, UAMI_READER_CLIENT, VM

from azcli.printed import MARKDOWN_SOURCES, ROOT, split_comment

LIST = json.loads(Path(__file__).with_name("az_powershell_cmdlets.json").read_text(encoding="utf-8"))
PS_LANGS = frozenset({"powershell", "pwsh", "ps1", "ps"})
_FENCE = re.compile(r"^[ \t]*```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^[ \t]*```[ \t]*$", re.S | re.M)
_TOKEN = re.compile(r"\"(?:[^\"`]|`.)*\"|'[^']*'|@\{|\$\(|[{}()|;]|[^\s{}()|;\"']+")
_CMDLET = re.compile(r"^[A-Z][a-z]+-[A-Z][A-Za-z]+$")
_PARAM = re.compile(r"^-([A-Za-z][A-Za-z0-9]*):?$")


def _blocks() -> Iterator[tuple[str, str]]:
    for rel in MARKDOWN_SOURCES:
        for m in _FENCE.finditer((ROOT / rel).read_text(encoding="utf-8")):
            if m.group("lang").lower() in PS_LANGS:
                yield rel, m.group("body")
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        for i, cell in enumerate(cells):
            if cell["cell_type"] == "markdown":
                for m in _FENCE.finditer("".join(cell["source"])):
                    if m.group("lang").lower() in PS_LANGS:
                        yield f"{nb.name} cell {i}", m.group("body")
    from mi_helpers.diagnosis.catalogue import CATALOGUE, Placeholders

    values = Placeholders(
        sub=SUB, rg=RG, vm=VM, principal=SYS_PRINCIPAL, client=UAMI_READER_CLIENT, scope=RG_SCOPE
    )
    for diagnosis_id, recipe in CATALOGUE.items():
        yield f"catalogue {diagnosis_id}", recipe.commands(values).get("powershell", "")


def uses(code: str) -> list[tuple[str, str | None]]:
    """``(cmdlet, parameter or None)`` pairs of a PowerShell text, comments and strings left out.

    Each nesting level (``{ }``, ``( )``, ``@{ }``, ``$( )``) has its own current command; ``|`` and ``;``
    end it. A ``-Name`` token belongs to the command of its level.
    """
    found: list[tuple[str, str | None]] = []
    for raw in code.replace("`\n", " ").splitlines():
        line, _ = split_comment(raw)
        current: list[str | None] = [None]
        for token in _TOKEN.findall(line):
            if token in ("{", "(", "@{", "$("):
                current.append(None)
            elif token in ("}", ")"):
                if len(current) > 1:
                    current.pop()
            elif token in ("|", ";"):
                current[-1] = None
            elif _CMDLET.match(token):
                current[-1] = token
                found.append((token, None))
            elif (m := _PARAM.match(token)) and current[-1]:
                found.append((current[-1], m.group(1)))
    return found


def _resolve(cmdlet: str) -> str:
    alias = LIST["aliases"].get(cmdlet)
    return str(alias["cmdlet"]) if alias else cmdlet


def _problems() -> list[str]:
    common = {p.lower() for p in LIST["common_parameters"]["parameters"]}
    cmdlets = {name.lower(): (name, entry) for name, entry in LIST["cmdlets"].items()}
    problems = []
    for where, code in _blocks():
        for cmdlet, param in uses(code):
            known = cmdlets.get(_resolve(cmdlet).lower())
            if known is None:
                problems.append(f"{where}: {cmdlet} is not a listed cmdlet")
                continue
            name, entry = known
            if param is None or param.lower() in common:
                continue
            if param.lower() not in {p.lower() for p in entry["parameters"]}:
                problems.append(f"{where}: {cmdlet} has no parameter -{param}")
            elif not entry["verified"]:
                problems.append(f"{where}: -{param} of {name}: verify {name} on {entry['source']} first")
    return problems


def test_every_printed_cmdlet_and_parameter_exists() -> None:
    problems = _problems()
    assert not problems, "\n".join(sorted(set(problems)))


def test_the_list_has_a_learn_source_for_every_cmdlet_and_is_used() -> None:
    printed = {_resolve(c).lower() for _, code in _blocks() for c, _ in uses(code)}
    for name, entry in LIST["cmdlets"].items():
        assert entry["source"].startswith("https://learn.microsoft.com/powershell/module/"), name
        assert entry["source"].lower().endswith("/" + name.lower()), name
        assert name.lower() in printed, f"{name} is listed but printed nowhere: remove it"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ('Invoke-RestMethod -NoProxy -Headers @{Metadata="true"} -Method GET -Uri "http://x/-Fake"', 4),
        ("(Get-AzVM -ResourceGroupName rg -Name vm).Identity  # Get-Bogus -Nope", 2),
        ("foreach ($i in 1..2) {try {Get-AzVM -Name x -ErrorAction Stop} catch {Start-Sleep -Seconds 1}}", 3),
        ("$h['Retry-After'] | Select-Object", 0),
    ],
)
def test_parameter_reader(code: str, expected: int) -> None:
    """The reader finds parameters outside strings and comments, each with its own command."""
    params = [(c, p) for c, p in uses(code) if p]
    assert len(params) == expected, params
    assert all(not p.startswith(("Fake", "Nope")) for _, p in params)


def test_an_unknown_parameter_is_reported() -> None:
    assert uses("Connect-AzAccount -Identity -MSI") == [
        ("Connect-AzAccount", None),
        ("Connect-AzAccount", "Identity"),
        ("Connect-AzAccount", "MSI"),
    ]
    known = {p.lower() for p in LIST["cmdlets"]["Connect-AzAccount"]["parameters"]}
    assert "identity" in known and "msi" not in known
