"""Repository hygiene: no whole tokens or keys committed, CI and README keep their promises."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEY_MARKER = "PRIVATE " + "KEY-----"  # built at run time so this file does not match itself
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")


def _tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / p for p in out.decode().split("\0") if p]


def test_no_whole_token_or_private_key_is_committed() -> None:
    offenders = []
    for path in _tracked_files():
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        if JWT.search(text) or KEY_MARKER in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_ci_runs_make_test_against_the_emulator() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "MI_HELPERS_TARGET=emulator" in ci


def test_readme_quickstart_names_exactly_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^\s*(make \w+)\s*(?:#.*)?$", quickstart, flags=re.M)
    assert commands == ["make lab", "make test"]
