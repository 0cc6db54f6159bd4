"""Every ``az`` command the project prints, collected from where a learner reads it.

Sources: the fenced shell blocks of ``README.md``, ``docs/snippets.md`` and the notebooks' markdown cells
(shell lines of code cells too: ``!az …`` and ``%%bash`` cells), and the ``az`` text of every recipe of the
diagnosis/fix catalogue (``mi_helpers.diagnosis.catalogue.CATALOGUE``) rendered with the default world's
values. Inline code in prose (```az login --identity``` in a sentence) names a command, it does not print
one to copy, and is not collected.

A printed command is one logical shell line (``\\`` continuations joined) that invokes ``az``; in a
``console``/``text`` block only ``$ `` lines are commands and the lines under one are its shown output.
Its placeholders (``<rg>``, ``<VM-NAME>``, …) are filled from the default world, then every world value is
written back as its canonical placeholder (:data:`CANONICAL`), so the notebook's ``az vm show -g <rg> -n
<vm>`` and the catalogue's ``az vm show -g rg-mi-tutorial -n vm-mi-tutorial`` are one command:
``az vm show -g <rg> -n <vm>``. ``tests/azcli/commands.yaml`` records each one's outcome under that key.

A command that cannot run off Azure says so where it is printed, in its trailing comment:
``az vm create … --assign-identity   # needs Azure: creates a real VM`` (markdown block or catalogue
text alike); the test lists those with their reasons instead of running them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from support.world import (
    RG,
    RG_SCOPE,
    SUB,
    SYS_PRINCIPAL,
    TENANT,
    UAMI_READER,
    UAMI_READER_CLIENT,
    UAMI_READER_PRINCIPAL,
    VM,
    uami_resource_id,
)

ROOT = Path(__file__).resolve().parents[2]
MARKDOWN_SOURCES = ("README.md", "docs/snippets.md")
SHELL_LANGS = frozenset({"", "bash", "sh", "shell", "console", "azurecli", "text", "zsh"})
PROMPT_LANGS = frozenset({"console", "text"})

#: What the printed placeholders stand for in the default world (tests/support/world.py).
FILL: dict[str, str] = {
    "<sub>": SUB,
    "<subscription-id>": SUB,
    "<tenant>": TENANT,
    "<rg>": RG,
    "<resource-group>": RG,
    "<vm>": VM,
    "<VM-NAME>": VM,
    "<vm-name>": VM,
    "<principalId>": SYS_PRINCIPAL,
    "<clientId>": UAMI_READER_CLIENT,
    "<id>": UAMI_READER_CLIENT,
    "<uami-client-id>": UAMI_READER_CLIENT,
    "<uami-principal-id>": UAMI_READER_PRINCIPAL,
    "<uami>": UAMI_READER,
    "<uami-name>": UAMI_READER,
    "<uami-resource-id>": uami_resource_id(UAMI_READER),
    "<scope>": RG_SCOPE,
}

#: World value -> the one placeholder a command is keyed with (longest values first: none contains another).
CANONICAL: dict[str, str] = {
    SUB: "<sub>",
    TENANT: "<tenant>",
    SYS_PRINCIPAL: "<principalId>",
    UAMI_READER_CLIENT: "<clientId>",
    UAMI_READER_PRINCIPAL: "<uami-principal-id>",
    RG: "<rg>",
    VM: "<vm>",
    UAMI_READER: "<uami>",
}

_PLACEHOLDER = re.compile(r"<[A-Za-z][\w-]*>")
_AZ = re.compile(r"(?:^|[\s;&|(`]|\$\()az\s+[a-z]")
_NEEDS_AZURE = re.compile(r"needs Azure:\s*(?P<reason>[^)]+?)\s*\)?\s*$", re.IGNORECASE)
#: A whole-line comment that prints an alternative: ``# or: az login …``, ``# removed: az … → "error"``.
_COMMENTED = re.compile(r"^#\s*(?P<label>[\w ,-]{1,24}):\s*(?P<cmd>az\s.*)$")
#: A shell-local variable assignment that later lines of the block use: ``rg="<resource-group>"; vm=…``.
_LOCAL_ASSIGNMENT = re.compile(r'^(?:[a-z_][a-z0-9_]*=(?:"[^"]*"|\S*)\s*;?\s*)+$')


@dataclass(frozen=True)
class Printed:
    """One printed az command: canonical key, where it is printed, and what the source says about it."""

    key: str
    source: str
    printed: str
    comment: str = ""
    shown_output: str = ""
    #: Lines of the same block before it that it depends on (shell-local variable assignments).
    context: tuple[str, ...] = ()
    #: For a command printed inside a comment (``# or: az …``), the comment's label (``or``, ``removed``).
    label: str = ""

    @property
    def needs_azure(self) -> str | None:
        """The reason of a ``# needs Azure: …`` marker in the printed comment, if any."""
        m = _NEEDS_AZURE.search(self.comment)
        return m.group("reason") if m else None


def split_comment(line: str) -> tuple[str, str]:
    """``(code, comment)`` of one shell line: ``#`` starts a comment at a word start outside quotes."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                continue
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t;"):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def fill(text: str) -> str:
    """Replace the printed placeholders with the default world's values (unknown ones stay)."""
    return _PLACEHOLDER.sub(lambda m: FILL.get(m.group(0), m.group(0)), text)


def canonical(text: str) -> str:
    """The key of a command: world values written as placeholders, whitespace collapsed."""
    out = " ".join(fill(text).split())
    for value, token in CANONICAL.items():
        out = out.replace(value, token)
    return out


def unknown_placeholders(key: str) -> list[str]:
    """Placeholders of a key that the world cannot fill (a new one needs a FILL entry)."""
    return [p for p in _PLACEHOLDER.findall(key) if p not in FILL]


def _logical_lines(code: str) -> list[str]:
    return code.replace("\\\n", " ").splitlines()


def _commented(line: str) -> tuple[str, str, str] | None:
    """``(label, command, shown)`` of a comment line that prints an az command, else None."""
    m = _COMMENTED.match(line)
    if not m:
        return None
    cmd, _, shown = m.group("cmd").partition(" → ")
    return m.group("label").strip(), cmd.strip(), shown.strip().strip('"')


def shell_commands(code: str, source: str, *, prompts: bool = False) -> Iterator[Printed]:
    """The az commands of a shell text (``prompts``: only ``$ `` lines, the rest is their output)."""
    lines = _logical_lines(code)
    context: list[str] = []
    for i, raw in enumerate(lines):
        line = raw.strip()
        if prompts:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        alternative = _commented(line)
        if alternative:
            label, cmd, shown = alternative
            yield Printed(canonical(cmd), source, cmd, "", shown, tuple(context), label)
            continue
        code_part, comment = split_comment(line)
        if _LOCAL_ASSIGNMENT.match(code_part):
            context.append(fill(code_part))
            continue
        if not _AZ.search(code_part):
            continue
        shown = ""
        if prompts:
            out = []
            for after in lines[i + 1 :]:
                if after.strip().startswith("$ ") or not after.strip():
                    break
                out.append(after)
            shown = "\n".join(out)
        yield Printed(canonical(code_part), source, code_part, comment, shown, tuple(context))


_FENCE = re.compile(r"^[ \t]*```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^[ \t]*```[ \t]*$", re.S | re.M)


def markdown_commands(text: str, source: str) -> Iterator[Printed]:
    """The az commands of the fenced shell blocks of a markdown text."""
    for m in _FENCE.finditer(text):
        lang = m.group("lang").lower()
        if lang not in SHELL_LANGS:
            continue
        line = text.count("\n", 0, m.start()) + 1
        yield from shell_commands(m.group("body"), f"{source}:{line}", prompts=lang in PROMPT_LANGS)


def notebook_commands(path: Path) -> Iterator[Printed]:
    """The az commands of a notebook: markdown blocks, ``!az`` lines and ``%%bash``/``%%sh`` cells."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    name = path.relative_to(ROOT).as_posix()
    for index, cell in enumerate(nb.get("cells", [])):
        src = "".join(cell.get("source", ""))
        where = f"{name} cell {index}"
        if cell.get("cell_type") == "markdown":
            yield from markdown_commands(src, where)
        elif cell.get("cell_type") == "code":
            if src.lstrip().startswith(("%%bash", "%%sh")):
                yield from shell_commands(src.split("\n", 1)[-1], where)
            else:
                bang = "\n".join(ln.strip()[1:] for ln in src.splitlines() if ln.strip().startswith("!"))
                yield from shell_commands(bang, where)


def catalogue_commands() -> Iterator[Printed]:
    """The az commands of every catalogue recipe, rendered with the default world's values."""
    from mi_helpers.diagnosis.catalogue import CATALOGUE, Placeholders

    values = Placeholders(
        sub=SUB, rg=RG, vm=VM, principal=SYS_PRINCIPAL, client=UAMI_READER_CLIENT, scope=RG_SCOPE
    )
    for diagnosis_id, recipe in CATALOGUE.items():
        yield from shell_commands(recipe.commands(values).get("az", ""), f"catalogue {diagnosis_id}")


def all_printed() -> list[Printed]:
    """Every printed az command of the project (one item per place it is printed)."""
    found: list[Printed] = []
    for rel in MARKDOWN_SOURCES:
        found += markdown_commands((ROOT / rel).read_text(encoding="utf-8"), rel)
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        found += notebook_commands(nb)
    found += catalogue_commands()
    return found


def by_key(printed: Iterable[Printed]) -> dict[str, list[Printed]]:
    """Printed commands grouped by their canonical key, in first-seen order."""
    out: dict[str, list[Printed]] = {}
    for p in printed:
        out.setdefault(p.key, []).append(p)
    return out
