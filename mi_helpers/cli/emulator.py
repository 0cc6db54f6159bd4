"""``mi-helpers emulator`` (run the emulator in the foreground) and ``mi-helpers scenarios`` (list them)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import warnings
from typing import Any

from mi_helpers.cli.params import add_param_option, parse_params

__all__ = ["register", "run_emulator", "run_scenarios"]


def register(subparsers: Any) -> None:
    """Add ``emulator`` and ``scenarios`` to the ``mi-helpers`` sub-commands."""
    p = subparsers.add_parser(
        "emulator",
        help="run the local Azure emulator (IMDS + ARM) until Ctrl-C",
        description="Run the local Azure emulator in the foreground. Prints `export` lines for a shell, then "
        "serves until SIGINT/SIGTERM.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--imds-port", type=int, default=0, help="IMDS port (default: any free port)")
    p.add_argument("--arm-port", type=int, default=0, help="ARM (HTTPS) port (default: any free port)")
    p.add_argument("--admin-port", type=int, default=0, help="admin API port (default: any free port)")
    p.add_argument("--entra-port", type=int, default=0, help="Entra ID (HTTPS) port (default: any free port)")
    p.add_argument("--graph-port", type=int, default=0, help="Microsoft Graph (HTTPS) port (default: any)")
    p.add_argument("--scenario", default="healthy", help="scenario name (see `mi-helpers scenarios`)")
    p.add_argument(
        "--world", default=None, help="YAML/JSON world file (default: the documented default world)"
    )
    p.add_argument("--env-file", default=None, help="also write KEY=VALUE lines to this file once ready")
    add_param_option(p, "see `mi-helpers scenarios` for each scenario's parameters")
    p.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow a non-loopback --host (others can then reach it)",
    )
    p.set_defaults(func=run_emulator)

    s = subparsers.add_parser(
        "scenarios", help="list the emulator's scenarios", description="List every emulator scenario."
    )
    s.add_argument("--json", action="store_true", help="machine-readable output, including the default world")
    s.set_defaults(func=run_scenarios)


def run_emulator(args: argparse.Namespace) -> int:
    """Start the emulator, print ``export`` lines, serve until SIGINT/SIGTERM, exit 0."""
    from mi_helpers.emulator.server import Emulator

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emu = Emulator(
            scenario=args.scenario,
            world=args.world,
            host=args.host,
            imds_port=args.imds_port,
            arm_port=args.arm_port,
            admin_port=args.admin_port,
            params=parse_params(args.params) or {},
            allow_non_loopback=args.allow_non_loopback,
            entra_port=args.entra_port,
            graph_port=args.graph_port,
        )
    for w in caught:
        print(f"mi-helpers emulator: warning: {w.message}", file=sys.stderr)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    secrets_dir = ""
    try:
        try:
            emu.start()
        except OSError as exc:  # an explicit --imds-port/--arm-port/--admin-port already in use
            print(f"mi-helpers emulator: {exc} (use 0 for any free port)", file=sys.stderr)
            return 2
        env = emu.environment()
        secrets_dir = tempfile.mkdtemp(prefix="mi-helpers-emulator-")  # 0700: this user only
        for key, value in env.items():
            print(_export_line(key, value, secrets_dir))
        if args.env_file:
            emu.write_env_file(args.env_file)
        print(
            f"# emulator ready: scenario {emu.scenario!r}, IMDS {emu.imds_url}, ARM {emu.arm_url}, "
            f"Entra ID {emu.entra_url}, Graph {emu.graph_url}, admin {emu.admin_url}",
            file=sys.stderr,
        )
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
        if secrets_dir:
            shutil.rmtree(secrets_dir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _export_line(key: str, value: str, secrets_dir: str) -> str:
    """``export KEY=value``; a secret's line reads it from a 0600 file, so the value is never on screen.

    A shell that evaluates (or a user who pastes) the line gets the value while the emulator runs; the
    terminal, a log of this output (Binder keeps one) and a screen share show only the file's name.
    """
    from mi_helpers.constants import SECRET_VARIABLES

    if key not in SECRET_VARIABLES:
        return f"export {key}={shlex.quote(value)}"
    path = os.path.join(secrets_dir, key)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value)
    return f'export {key}="$(cat {shlex.quote(path)})"'


def run_scenarios(args: argparse.Namespace) -> int:
    """Print every scenario with its one-line description (``--json``: also params and the default world)."""
    from mi_helpers.emulator.scenarios import SCENARIOS
    from mi_helpers.emulator.world import World

    if args.json:
        doc = {
            "scenarios": [s.to_dict() for s in SCENARIOS.values()],
            "default_world": World.default().to_dict(),
        }
        print(json.dumps(doc, indent=2))
        return 0
    width = max(len(n) for n in SCENARIOS)
    for s in SCENARIOS.values():
        print(f"{s.name:<{width}}  {s.description}")
        params = {k: v for k, v in s.defaults.items()}
        if params:
            print(f"{'':<{width}}  params: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    return 0
