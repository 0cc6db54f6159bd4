"""``mi-helpers``: the command-line entry point, a thin argparse dispatcher.

Each sub-command module contributes one registration function that adds its parsers and sets ``func``
(a handler taking the parsed arguments and returning the exit code). Bad input is reported as one line
(``mi-helpers: error: <field>: <what is allowed>``), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mi_helpers.cli.doctor import register as add_doctor_command
from mi_helpers.cli.identity import register as add_identity_commands
from mi_helpers.cli.run import add_lab_command, add_tour_command

__all__ = ["build_parser", "main"]


def _register_emulator(sub: Any) -> None:
    from mi_helpers.cli.emulator import register

    register(sub)


# One entry per sub-command module; other modules add their own registration function here.
REGISTRATIONS: list[Callable[[Any], None]] = [_register_emulator]
REGISTRATIONS += [add_tour_command, add_lab_command]  # mi_helpers/cli_run.py
REGISTRATIONS += [add_doctor_command]  # mi_helpers/cli_doctor.py
REGISTRATIONS += [add_identity_commands]  # mi_helpers/cli_identity.py: token, whoami
REGISTRATIONS += [lambda sub: __import__("mi_helpers.cli.record", fromlist=["register"]).register(sub)]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="mi-helpers",
        description="Sign in with an Azure VM managed identity, call ARM, diagnose failures "
        "(a local Azure emulator is included).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in REGISTRATIONS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mi-helpers`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    from mi_helpers.validate import InputError

    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except InputError as exc:
        print(f"mi-helpers {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `mi-helpers scenarios | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
