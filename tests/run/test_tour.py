"""`mi-helpers tour`: runs notebooks headless, writes executed copies, prints a table, fails honestly."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mi_helpers.cli import run as cli_run
from mi_helpers.constants import CLIENT_REDIRECT_VARIABLES
from mi_helpers.launch import tour
from mi_helpers.validate import InputError

# Three base64url segments starting with eyJ: the shape of a JWT, built at run time so that no
# token-shaped string is committed in this file.
FAKE_TOKEN = ".".join(["eyJ" + "hbGciOiJSUzI1NiJ9", "eyJ" + "zdWIiOiJ4In0", "c2lnbmF0dXJlLXNpZw"])


def _write_notebook(folder: Path, name: str, *sources: str) -> Path:
    nb = new_notebook(cells=[new_markdown_cell(f"# {name}"), *(new_code_cell(s) for s in sources)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / name
    nbformat.write(nb, path)
    return path


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="mi-helpers")
    cli_run.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["tour", *argv])
    return int(args.func(args))


def _outputs_text(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return json.dumps([c.get("outputs", []) for c in nb.cells])


def test_tour_executes_in_order_writes_copies_and_prints_a_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nbs, out = tmp_path / "notebooks", tmp_path / "build" / "notebooks"
    nbs.mkdir()
    # The kernel reports its interpreter, working directory and target, so the test can check them.
    _write_notebook(
        nbs,
        "01-first.ipynb",
        "import os, sys\nprint('target', os.environ['MI_HELPERS_TARGET'])\nprint('python', sys.executable)",
        "print('cwd', os.getcwd())\nprint('pointer', os.environ.get('MI_HELPERS_EMULATOR_ADMIN'))\n6 * 7",
    )
    _write_notebook(nbs, "00-start.ipynb", "print('hello from', 'the tour')")

    code = _run("--notebooks", str(nbs), "--output", str(out), "--timeout", "60")
    table = capsys.readouterr().out

    assert code == 0, table
    assert sorted(p.name for p in out.glob("*.ipynb")) == ["00-start.ipynb", "01-first.ipynb"]
    first = _outputs_text(out / "01-first.ipynb")
    assert "target emulator" in first
    assert f"python {sys.executable}" in first.replace("\\n", "\n")
    assert f"cwd {nbs.resolve()}" in first or f"cwd {nbs}" in first
    assert "pointer None" in first  # a stale emulator pointer is never handed to the tour's kernels
    assert "42" in first
    assert "hello from the tour" in _outputs_text(out / "00-start.ipynb")
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["notebook", "status", "seconds"]
    rows = [line.split() for line in lines if line.endswith(".ipynb") or ".ipynb " in line]
    assert [r[0] for r in rows] == ["00-start.ipynb", "01-first.ipynb"]  # name order
    assert all(r[1] == "ok" and float(r[2]) >= 0 for r in rows)
    assert "2 of 2 notebooks passed" in table


def test_a_failing_notebook_fails_the_tour(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nbs, out = tmp_path / "nb", tmp_path / "out"
    nbs.mkdir()
    _write_notebook(nbs, "01-good.ipynb", "print('fine')")
    _write_notebook(
        nbs, "02-bad.ipynb", "print('before')", "raise ValueError('deliberate failure')", "print('after')"
    )

    code = _run("--notebooks", str(nbs), "--output", str(out), "--timeout", "60")
    table = capsys.readouterr().out

    assert code == 1
    bad = next(line for line in table.splitlines() if line.startswith("02-bad.ipynb"))
    assert bad.split()[1] == "failed"
    assert "ValueError: deliberate failure" in bad
    good = next(line for line in table.splitlines() if line.startswith("01-good.ipynb"))
    assert good.split()[1] == "ok"
    executed = _outputs_text(out / "02-bad.ipynb")  # the executed copy is kept, to see where it stopped
    assert "before" in executed and "deliberate failure" in executed and "after" not in executed


def test_a_whole_token_in_the_outputs_fails_and_is_never_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nbs, out = tmp_path / "nb", tmp_path / "out"
    nbs.mkdir()
    pieces = FAKE_TOKEN.split(".")
    _write_notebook(nbs, "01-leak.ipynb", f"print({pieces[0]!r} + '.' + {pieces[1]!r} + '.' + {pieces[2]!r})")

    code = _run("--notebooks", str(nbs), "--output", str(out), "--timeout", "60")
    table = capsys.readouterr().out

    assert code == 1
    row = next(line for line in table.splitlines() if line.startswith("01-leak.ipynb"))
    assert row.split()[1] == "failed" and "token" in row
    saved = (out / "01-leak.ipynb").read_text()
    assert FAKE_TOKEN not in saved
    assert FAKE_TOKEN[:8] + "…" in saved  # redacted form instead


def test_only_selects_by_prefix_and_rejects_unknown_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nbs = tmp_path / "nb"
    nbs.mkdir()
    for name in ("00-a.ipynb", "01-b.ipynb", "02-c.ipynb"):
        _write_notebook(nbs, name, "1")
    assert [p.name for p in tour.find_notebooks(nbs, ["02", "00-a"])] == ["00-a.ipynb", "02-c.ipynb"]
    with pytest.raises(InputError, match=r"^only: '07' matches no notebook \(available: 00-a, 01-b, 02-c\)$"):
        tour.find_notebooks(nbs, ["07"])
    assert _run("--notebooks", str(nbs), "--only", "nope") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "only:" in err and "Traceback" not in err


def test_empty_folder_says_no_notebooks_yet_through_the_console_script(tmp_path: Path) -> None:
    empty = tmp_path / "notebooks"
    empty.mkdir()
    exe = Path(sys.executable).with_name("mi-helpers")
    proc = subprocess.run(
        [str(exe), "tour", "--notebooks", str(empty), "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "no notebooks yet" in proc.stdout
    assert not (tmp_path / "out").exists()


def test_kernel_environment_forces_the_target_and_validates_it() -> None:
    pointers = {name: "http://127.0.0.1:1" for name in CLIENT_REDIRECT_VARIABLES}
    base = {"PATH": "/usr/bin", **pointers, "KEEP": "1"}
    env = tour.kernel_environment("emulator", base)
    assert env["MI_HELPERS_TARGET"] == "emulator" and env["KEEP"] == "1"
    assert set(env) & set(CLIENT_REDIRECT_VARIABLES) == set()  # each kernel starts its own emulator
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    azure = tour.kernel_environment("azure", base)
    assert azure["MI_HELPERS_TARGET"] == "azure"
    assert {k: azure[k] for k in pointers} == pointers  # only emulator mode drops them
    with pytest.raises(
        InputError, match=r"^target: 'cloud' is not a target \(one of: auto, azure, emulator\)$"
    ):
        tour.kernel_environment("cloud", base)
