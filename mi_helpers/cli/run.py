"""Sub-commands that run the notebooks: ``mi-helpers tour`` (headless) and ``mi-helpers lab`` (JupyterLab).

Bad input is reported as one line (``mi-helpers <cmd>: error: ...``), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mi_helpers.validate import InputError, validate_seconds

__all__ = ["register", "run_lab", "run_tour"]


def _positive_float(text: str) -> float:
    try:
        return validate_seconds(text, "--timeout", example=300)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 for a free port, or 1-65535)")
    return value


def register(subparsers: Any) -> None:
    """Add ``tour`` and ``lab`` to the ``mi-helpers`` sub-commands."""
    _register_tour(subparsers)
    _register_lab(subparsers)


def _register_tour(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "tour",
        help="execute every notebook headless and print notebook / status / seconds",
        description="Execute the notebooks in name order (fresh kernel each, emulator target unless --target "
        "says otherwise), write executed copies to --output, print a table; exit 1 if any notebook fails.",
    )
    p.add_argument("--notebooks", type=Path, default=Path("notebooks"), help="folder of .ipynb files")
    p.add_argument("--output", type=Path, default=Path("build/notebooks"), help="where executed copies go")
    p.add_argument("--timeout", type=_positive_float, default=300.0, help="seconds per cell (default 300)")
    p.add_argument("--only", nargs="+", default=[], metavar="NAME", help="notebook names, stems or prefixes")
    p.add_argument(
        "--target",
        choices=("emulator", "azure", "auto"),
        default="emulator",
        help="where the notebooks send requests (default: emulator)",
    )
    p.set_defaults(func=run_tour)


def run_tour(args: argparse.Namespace) -> int:
    """Run the tour; 0 when every notebook passed (or there is none yet), 1 otherwise, 2 on bad input."""
    from mi_helpers.launch import tour

    try:
        if args.notebooks.is_dir() and not tour.find_notebooks(args.notebooks):
            print(f"no notebooks yet (in {args.notebooks})")
            return 0
        report = tour.run_tour(
            args.notebooks,
            args.output,
            timeout=args.timeout,
            only=args.only,
            target=args.target,
            progress=sys.stderr,
        )
    except InputError as exc:
        print(f"mi-helpers tour: error: {exc}", file=sys.stderr)
        return 2
    print(tour.format_table(report.results))
    failed = [r for r in report.results if not r.ok]
    summary = f"{len(report.results) - len(failed)} of {len(report.results)} notebooks passed"
    print(f"{summary}; executed copies in {args.output}")
    return 1 if failed else 0


def _register_lab(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "lab",
        help="JupyterLab over the notebooks with the local Azure emulator beside it",
        description="Start the emulator, export its variables into JupyterLab's environment (kernels and "
        "terminals), run JupyterLab on 127.0.0.1, and stop both on Ctrl-C.",
    )
    p.add_argument("--port", type=_port, default=None, help="Lab's port (default: 8888 or the next free one)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--scenario", default="healthy", help="emulator scenario to start in (default: healthy)")
    p.add_argument("--notebooks", type=Path, default=Path("notebooks"), help="folder Lab opens")
    p.set_defaults(func=run_lab)


def run_lab(args: argparse.Namespace) -> int:
    """Run Lab + emulator until Ctrl-C; 2 on bad input."""
    from mi_helpers.launch import jupyterlab

    try:
        return jupyterlab.run_lab(
            args.notebooks, port=args.port, scenario=args.scenario, open_browser=not args.no_browser
        )
    except InputError as exc:
        print(f"mi-helpers lab: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"mi-helpers lab: error: {exc}", file=sys.stderr)
        return 1
