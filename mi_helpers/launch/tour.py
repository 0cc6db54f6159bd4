"""The headless tour: execute every notebook in order and report notebook / status / seconds.

``mi-helpers tour`` (and ``make tour``) is the twin of ``mi-helpers lab`` without a browser: each notebook
under ``notebooks/`` runs top to bottom in a fresh kernel of this very Python (nbclient), against the
emulator unless ``target`` says otherwise, and the executed copy is written to ``build/notebooks/``.

Two things make a notebook fail: an error in a cell, and a whole access token anywhere in the executed
notebook. A token is never written to disk: it is replaced by its redacted form before the copy is saved.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

from mi_helpers.constants import CLIENT_REDIRECT_VARIABLES
from mi_helpers.constants import EnvironmentVariables as Env
from mi_helpers.redaction import JWT_PATTERN, redact
from mi_helpers.validate import InputError

__all__ = ["NotebookResult", "TourReport", "find_notebooks", "format_table", "kernel_environment", "run_tour"]

TARGETS = ("auto", "azure", "emulator")
#: ``ok``: ran through, no error and no whole token in the outputs; ``failed``: anything else.
NotebookStatus = Literal["ok", "failed"]


@dataclass(frozen=True)
class NotebookResult:
    """Outcome of one notebook: ``status`` is ``ok`` or ``failed``; ``detail`` says why in one line."""

    name: str
    status: NotebookStatus
    seconds: float
    output: Path | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the notebook ran through without error and without a whole token in its outputs."""
        return self.status == "ok"


@dataclass(frozen=True)
class TourReport:
    """All results of one tour, in execution order."""

    results: tuple[NotebookResult, ...]

    @property
    def ok(self) -> bool:
        """True when every notebook passed (an empty tour passes)."""
        return all(r.ok for r in self.results)


def find_notebooks(notebooks_dir: Path, only: Sequence[str] = ()) -> list[Path]:
    """Return the notebooks of ``notebooks_dir`` sorted by name, optionally filtered by ``only``.

    An ``only`` entry matches a notebook by full file name, by stem, or by a stem prefix (``03`` matches
    ``03-user-assigned.ipynb``). An entry that matches nothing raises :class:`InputError`.
    """
    if not notebooks_dir.is_dir():
        raise InputError(
            "notebooks", f"{str(notebooks_dir)!r} is not a directory (pass an existing directory)"
        )
    found = sorted(p for p in notebooks_dir.glob("*.ipynb") if not p.name.startswith("."))
    if not only:
        return found
    chosen: list[Path] = []
    for want in only:
        hits = [p for p in found if want in (p.name, p.stem) or p.stem.startswith(want)]
        if not hits:
            names = ", ".join(p.stem for p in found) or "none"
            raise InputError("only", f"{want!r} matches no notebook (available: {names})")
        chosen.extend(h for h in hits if h not in chosen)
    return sorted(chosen)


def kernel_environment(target: str = "emulator", base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the tour's kernels: ``base`` (default ``os.environ``) with the target forced.

    In emulator mode every variable that points a client somewhere (``CLIENT_REDIRECT_VARIABLES``: a
    running emulator such as the one ``mi-helpers lab`` started, another identity endpoint, a proxy) is
    dropped: each notebook gets a fresh embedded emulator, so scenario switches of one notebook never leak
    into the next and the user's own settings cannot change a lesson. The directory of this interpreter goes
    first on ``PATH`` so a kernel's ``!mi-helpers``/``!python`` is the same installation as the tour's.
    """
    if target not in TARGETS:
        raise InputError("target", f"{target!r} is not a target (one of: {', '.join(TARGETS)})")
    env = dict(os.environ if base is None else base)
    env[Env.MI_HELPERS_TARGET] = target
    if target == "emulator":
        for key in CLIENT_REDIRECT_VARIABLES:
            env.pop(key, None)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, *(p for p in env.get("PATH", "").split(os.pathsep) if p)])
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # silences a debugger warning in every kernel
    return env


def _error_line(exc: BaseException) -> str:
    """One redacted line for a failed run: the cell's exception name and value, not the whole traceback."""
    ename = getattr(exc, "ename", None)
    evalue = getattr(exc, "evalue", None)
    text = f"{ename}: {evalue}" if ename else f"{type(exc).__name__}: {exc}"
    line = " ".join(redact(text).split())
    return line if len(line) <= 160 else line[:157] + "..."


def run_notebook(
    path: Path, output_dir: Path, *, timeout: float, env: dict[str, str], kernel_name: str = "python3"
) -> NotebookResult:
    """Execute one notebook in a fresh kernel (cwd: the notebook's folder) and save the executed copy."""
    import nbformat
    from nbclient import NotebookClient
    from traitlets.config import Config

    nb = nbformat.read(path, as_version=4)
    status: NotebookStatus = "ok"
    detail = ""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mi-tour-") as sockets:
        # Kernel channels over Unix sockets in a private directory rather than open loopback TCP ports.
        config = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name=kernel_name,
            resources={"metadata": {"path": str(path.parent)}},
            config=config,
        )
        try:
            client.execute(env=env)
        except Exception as exc:  # any failure of the run, reported in the table rather than raised
            status, detail = "failed", _error_line(exc)
    seconds = time.monotonic() - start

    text = nbformat.writes(nb)
    leaks = JWT_PATTERN.findall(text)
    if leaks:
        text = redact(text)
        status = "failed"
        detail = f"{len(leaks)} whole token(s) in the outputs (redacted in the saved copy)" + (
            f"; {detail}" if detail else ""
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    out = output_dir / path.name
    out.write_text(text, encoding="utf-8")
    return NotebookResult(path.name, status, seconds, out, detail)


def run_tour(
    notebooks_dir: Path,
    output_dir: Path,
    *,
    timeout: float = 300,
    only: Sequence[str] = (),
    target: str = "emulator",
    progress: TextIO | None = None,
) -> TourReport:
    """Execute the chosen notebooks in name order; ``timeout`` is per cell, in seconds.

    ``progress`` (e.g. ``sys.stderr``) gets one line as each notebook starts, so a long tour shows life.
    """
    if timeout <= 0:
        raise InputError("timeout", f"{timeout!r} is not positive (seconds per cell, e.g. 300)")
    env = kernel_environment(target)
    results = []
    for path in find_notebooks(notebooks_dir, only):
        if progress is not None:
            print(f"running {path.name} ...", file=progress, flush=True)
        results.append(run_notebook(path, output_dir, timeout=timeout, env=env))
    return TourReport(tuple(results))


def format_table(results: Iterable[NotebookResult]) -> str:
    """Render results as a plain-text table: notebook, status, seconds (and why, for failures)."""
    rows = [(r.name, r.status, f"{r.seconds:.1f}", r.detail) for r in results]
    header = ("notebook", "status", "seconds", "detail")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(3)]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2])]
        lines.append("  ".join(cells) + (f"  {row[3]}" if row[3] else ""))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
