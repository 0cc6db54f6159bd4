"""Repository hygiene: no whole tokens or keys committed; CI, the README and the two make loops keep their
promises (checked through what the commands would run, not through their wording)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KEY_MARKER = "PRIVATE " + "KEY-----"  # built at run time so this file does not match itself
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")
# pytest options that leave tests out of a run
SELECTION_OPTIONS = ("-m", "-k", "--deselect", "--ignore", "--ignore-glob", "-x", "--exitfirst", "--lf")


def _tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / p for p in out.decode().split("\0") if p]


def _dry_run(target: str) -> list[str]:
    """The shell lines ``make <target>`` would run (``make -n``: printed, not executed)."""
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", target], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.replace("\\\n", " ").splitlines()


def _pytest_runs(lines: list[str]) -> list[list[str]]:
    return [shlex.split(line) for line in lines if re.search(r"(^|/)pytest\b", line)]


def _pytest_words(lines: list[str]) -> list[str]:
    runs = _pytest_runs(lines)
    assert len(runs) == 1, lines
    return runs[0]


def _marker(words: list[str]) -> str | None:
    return words[words.index("-m") + 1] if "-m" in words else None


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, flags=re.M))


def test_no_whole_token_or_private_key_is_committed() -> None:
    offenders = []
    for path in _tracked_files():
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        if JWT.search(text) or KEY_MARKER in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_ci_runs_make_test() -> None:
    """.ci/run's last command is `make test` (a clean checkout, nothing installed by hand)."""
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [ln for ln in lines if ln and not ln.startswith("#")]
    assert shlex.split(commands[-1])[:2] == ["make", "test"], commands[-1]


def test_make_test_runs_lint_types_and_every_test_against_the_emulator() -> None:
    lines = _dry_run("test")
    joined = "\n".join(lines)
    for tool in ("ruff check", "ruff format --check", "mypy", "ensure-chromium"):
        assert tool in joined, f"make test no longer runs {tool}"
    runs = _pytest_runs(lines)
    assert runs and all("MI_HELPERS_TARGET=emulator" in words for words in runs)
    # Every test, in one run or in the two halves "not browser" (in parallel) and "browser" (serially).
    markers = sorted(str(_marker(words)) for words in runs)
    assert markers in (["None"], ["browser", "not browser"]), f"make test must run every test: {markers}"
    for words in runs:
        rest = [w for w in words if w != _marker(words)]
        left_out = [w for w in rest if w.split("=")[0] in SELECTION_OPTIONS and w != "-m"]
        assert left_out == [], f"make test must run every test, but passes {left_out}"


def test_make_check_is_the_fast_loop_without_the_browser() -> None:
    lines = _dry_run("check")
    joined = "\n".join(lines)
    for tool in ("ruff check", "ruff format --check", "mypy"):
        assert tool in joined, f"make check no longer runs {tool}"
    assert "ensure-chromium" not in joined and "apt-get" not in joined, "make check must not install Chromium"
    words = _pytest_words(lines)
    marker = words[words.index("-m") + 1]
    assert "not browser" in marker and "not slow" in marker


def test_make_check_skips_only_tests_that_exist() -> None:
    """Every CHECK_SKIP entry names a test file (and function) that exists: a renamed file must not make
    the fast loop silently slower, and nothing may be skipped by a typo that matches nothing."""
    words = _pytest_words(_dry_run("check"))
    skipped = [w.split("=", 1)[1] for w in words if w.startswith("--deselect=")]
    for node in skipped:
        path, _, name = node.partition("::")
        assert (ROOT / path).is_file(), f"CHECK_SKIP names a missing file: {path}"
        if name:
            assert re.search(rf"^def {re.escape(name)}\(", (ROOT / path).read_text(), flags=re.M), node


def test_readme_quickstart_names_exactly_two_set_up_commands() -> None:
    """The quickstart's command block holds `make lab` and `make test`, both real Makefile targets."""
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"^## Quickstart\s*$(.*?)(?=^#{1,3} )", readme, flags=re.M | re.S)
    assert m, "README.md lost its Quickstart section"
    blocks = re.findall(r"^```(?:bash|sh|shell|console)?\n(.*?)^```", m.group(1), flags=re.M | re.S)
    commands = [
        line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines() if line.strip()
    ]
    assert commands == ["make lab", "make test"]
    assert {"lab", "test"} <= _makefile_targets()


def test_pre_commit_runs_ruff_and_strips_notebooks_keeping_cell_ids() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert {"ruff", "ruff-format", "nbstripout"} <= set(hooks)
    assert "--keep-id" in hooks["nbstripout"].get("args", [])
