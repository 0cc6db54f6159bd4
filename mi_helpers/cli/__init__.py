"""``mi-helpers``: the command-line entry point, a thin argparse dispatcher.

Every sub-command module has one ``register(subparsers)`` that adds its parsers and sets ``func`` (a
handler taking the parsed arguments and returning the exit code); a new module is one more entry in
:data:`COMMANDS`. Bad input is reported as one line (``mi-helpers <command>: error: <field>: <what is
allowed>``), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mi_helpers.cli import doctor, emulator, identity, record, run

__all__ = ["COMMANDS", "build_parser", "main"]

#: The sub-command modules, in the order ``mi-helpers --help`` lists their commands.
COMMANDS = (
    emulator,  # emulator, scenarios
    run,  # tour, lab
    doctor,  # doctor
    identity,  # token, whoami
    record,  # record, compare
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="mi-helpers",
        description="Sign in with an Azure VM managed identity, call ARM, diagnose failures "
        "(a local Azure emulator is included).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
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
